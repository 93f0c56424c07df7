"""The ``evaluate`` subcommand of ``wav2tok`` (wired in by :func:`register`).

``wav2tok evaluate --model M --manifest MANIFEST --out results.json [--markdown results.md] ...`` runs the
retrieval protocol of :mod:`wav2tok_core.eval.protocol`; with ``--task spotting`` the spoken term detection
protocol of :mod:`wav2tok_core.eval.spotting` on recordings built from the test split. Skipped clips are
reported; ``--strict`` turns any skip into exit code 1.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from ..audio.augment import STRETCH_METHODS
from ..eval import protocol
from ..eval.config import PROTOCOLS, EvalConfig
from ..eval.methods import METHODS
from ..data.spotting import QUERY_SPEAKERS, SpottingTaskConfig
from ..errors import ConfigError
from ..eval.report import EvalResult, SpottingResult
from ..eval.spotting import MIN_SCORE, SPOTTING_METHODS, evaluate_spotting_manifest
from .common import add_command, add_job_options, add_threads_option


def evaluate_from_args(args: argparse.Namespace, log: Callable[[str], None] | None = None) -> EvalResult:
    """:func:`wav2tok_core.eval.protocol.evaluate_manifest` as configured by the ``evaluate`` options (shared
    with benchmarks/results_table.py)."""
    auto = args.protocol == "auto"  # then the protocol is set from the test items
    config = EvalConfig(protocol=EvalConfig.protocol if auto else args.protocol, conditions=tuple(args.conditions),
                        stretch_method=args.stretch_method, methods=tuple(args.methods),
                        cross_speaker=args.cross_speaker, max_queries=args.max_queries, batch_size=args.batch_size,
                        seed=args.seed)
    return protocol.evaluate_manifest(args.model, args.manifest, config, auto_protocol=auto, test_split=args.test_split,
                                      train_split=args.train_split, device=args.device, log=log)


def spotting_from_args(args: argparse.Namespace) -> SpottingResult:
    """:func:`wav2tok_core.eval.spotting.evaluate_spotting_manifest` as configured by the ``evaluate`` options."""
    methods = args.methods or list(SPOTTING_METHODS)
    unknown = [m for m in methods if m not in SPOTTING_METHODS]
    if unknown:
        raise ConfigError(f"--methods: {unknown} are not spotting methods ({', '.join(SPOTTING_METHODS)})")
    config = SpottingTaskConfig(clips_per_recording=args.clips_per_recording, queries_per_label=args.queries_per_label,
                                gap_s=tuple(args.gap_s), noise_snr_db=args.noise_snr_db,
                                query_speakers=args.query_speakers, seed=args.seed)
    return evaluate_spotting_manifest(args.model, args.manifest, config, methods, args.test_split, args.device,
                                      min_iou=args.min_iou, batch_size=args.batch_size, min_score=args.min_score,
                                      repeats=args.repeats)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.task == "spotting":
        result: EvalResult | SpottingResult = spotting_from_args(args)
    else:
        args.methods = args.methods or list(EvalConfig.methods)
        result = evaluate_from_args(args, log=_stderr if args.progress else None)
    result.save(args.out, args.markdown)
    print(result.to_markdown(), end="")
    print(f"wrote {args.out}" + (f" and {args.markdown}" if args.markdown else ""), file=sys.stderr)
    for skip in result.skipped:
        _stderr(f"skipped: {skip['reason']}")
    return 1 if result.skipped and args.strict else 0


def add_evaluate_options(p: argparse.ArgumentParser, methods: Sequence[str] | None = EvalConfig.methods) -> None:
    """Options of ``wav2tok evaluate`` (also used by benchmarks/results_table.py); ``methods``: the default
    (None: chosen by the task)."""
    p.add_argument("--model", required=True, help="model or training checkpoint (.pt)")
    p.add_argument("--manifest", required=True, help="manifest (.json/.csv) with train and test splits")
    p.add_argument("--protocol", default="auto", choices=("auto", *PROTOCOLS),
                   help="auto: query_vs_targets when the test items have meta roles query and target")
    p.add_argument("--cross_speaker", action="store_true", help="exclude database clips of the query's speaker")
    p.add_argument("--methods", nargs="+", choices=(*METHODS, *SPOTTING_METHODS), metavar="METHOD",
                   default=None if methods is None else list(methods),
                   help=f"of {', '.join(METHODS)} (default: {' '.join(methods or EvalConfig.methods)})")
    p.add_argument("--conditions", nargs="+", default=list(EvalConfig.conditions), metavar="CONDITION",
                   help=f"vanilla, stretch<rate>, shift<semitones> (default: {' '.join(EvalConfig.conditions)})")
    p.add_argument("--stretch_method", choices=STRETCH_METHODS, default=EvalConfig.stretch_method,
                   help="how stretch and shift conditions are rendered: phase vocoder, or WSOLA (keeps a voice's "
                   "periods intact)")
    p.add_argument("--max_queries", type=int, help="evaluate an evenly spaced subset of the queries")
    p.add_argument("--test_split", default="test", help="manifest split searched (queries and database)")
    p.add_argument("--train_split", default="train", help="manifest split the vq / raw-encoder baselines fit on")
    p.add_argument("--seed", type=int, default=0, help="seed of the baselines' k-means and the raw encoder")
    add_threads_option(p)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``evaluate`` to the ``wav2tok`` command."""
    p = add_command(subparsers, "evaluate", cmd_evaluate,
                    help="retrieval or spoken term detection evaluation of a model against DTW and k-means baselines")
    p.add_argument("--task", choices=("retrieval", "spotting"), default="retrieval",
                   help="retrieval: whole-clip query by example; spotting: find queries inside long recordings")
    add_evaluate_options(p, methods=None)
    g = p.add_argument_group("spotting (--task spotting)", "recordings are built per speaker from the test split; "
                             "--methods of " + ", ".join(SPOTTING_METHODS) + " (default: all)")
    g.add_argument("--clips_per_recording", type=int, default=SpottingTaskConfig.clips_per_recording,
                   help="clips of one speaker joined into each recording")
    g.add_argument("--queries_per_label", type=int, default=SpottingTaskConfig.queries_per_label,
                   help="clips per speaker and label kept out of the recordings as queries")
    g.add_argument("--gap_s", type=float, nargs=2, default=list(SpottingTaskConfig.gap_s), metavar=("LOW", "HIGH"),
                   help="silence before, between and after clips, uniform in [LOW, HIGH] seconds")
    g.add_argument("--noise_snr_db", type=float, help="add white noise at this SNR (dB) over the clips")
    g.add_argument("--query_speakers", choices=QUERY_SPEAKERS, default=SpottingTaskConfig.query_speakers,
                   help="a query searches recordings of other speakers (cross-speaker), its own, or all")
    g.add_argument("--min_iou", type=float, default=0.5, help="overlap with a true span for a correct detection")
    g.add_argument("--min_score", type=float, default=MIN_SCORE,
                   help="wav2tok's detection floor: no detection scoring below it (a higher floor searches faster and "
                        "leaves the detections above it as they were)")
    g.add_argument("--repeats", type=int, default=1,
                   help="search with each method this many times and report the fastest search time")
    p.add_argument("--out", required=True, help="JSON report to write")
    p.add_argument("--markdown", help="also write the markdown tables here")
    add_job_options(p)
