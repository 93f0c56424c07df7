"""The ``evaluate`` subcommand of ``wav2tok`` (wired in by :func:`register`).

``wav2tok evaluate --model M --manifest MANIFEST --out results.json [--markdown results.md] ...`` runs the
protocol of :mod:`wav2tok_core.eval.protocol`. Skipped clips are reported; ``--strict`` turns any skip
into exit code 1.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from ..eval import protocol
from ..eval.config import PROTOCOLS, EvalConfig
from ..eval.methods import METHODS
from ..eval.report import EvalResult
from .common import add_command, add_job_options, add_threads_option


def evaluate_from_args(args: argparse.Namespace, log: Callable[[str], None] | None = None) -> EvalResult:
    """:func:`wav2tok_core.eval.protocol.evaluate_manifest` as configured by the ``evaluate`` options (shared
    with benchmarks/results_table.py)."""
    auto = args.protocol == "auto"  # then the protocol is set from the test items
    config = EvalConfig(protocol=EvalConfig.protocol if auto else args.protocol, conditions=tuple(args.conditions),
                        methods=tuple(args.methods), cross_speaker=args.cross_speaker, max_queries=args.max_queries,
                        batch_size=args.batch_size, seed=args.seed)
    return protocol.evaluate_manifest(args.model, args.manifest, config, auto_protocol=auto, test_split=args.test_split,
                                      train_split=args.train_split, device=args.device, log=log)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_evaluate(args: argparse.Namespace) -> int:
    result = evaluate_from_args(args, log=_stderr if args.progress else None)
    result.save(args.out, args.markdown)
    print(result.to_markdown(), end="")
    print(f"wrote {args.out}" + (f" and {args.markdown}" if args.markdown else ""), file=sys.stderr)
    for skip in result.skipped:
        _stderr(f"skipped: {skip['reason']}")
    return 1 if result.skipped and args.strict else 0


def add_evaluate_options(p: argparse.ArgumentParser, methods: Sequence[str] = EvalConfig.methods) -> None:
    """Options of ``wav2tok evaluate`` (also used by benchmarks/results_table.py); ``methods``: the default."""
    p.add_argument("--model", required=True, help="model or training checkpoint (.pt)")
    p.add_argument("--manifest", required=True, help="manifest (.json/.csv) with train and test splits")
    p.add_argument("--protocol", default="auto", choices=("auto", *PROTOCOLS),
                   help="auto: query_vs_targets when the test items have meta roles query and target")
    p.add_argument("--cross_speaker", action="store_true", help="exclude database clips of the query's speaker")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(methods), metavar="METHOD",
                   help=f"of {', '.join(METHODS)} (default: {' '.join(methods)})")
    p.add_argument("--conditions", nargs="+", default=list(EvalConfig.conditions), metavar="CONDITION",
                   help=f"vanilla, stretch<rate>, shift<semitones> (default: {' '.join(EvalConfig.conditions)})")
    p.add_argument("--max_queries", type=int, help="evaluate an evenly spaced subset of the queries")
    p.add_argument("--test_split", default="test", help="manifest split searched (queries and database)")
    p.add_argument("--train_split", default="train", help="manifest split the vq / raw-encoder baselines fit on")
    p.add_argument("--seed", type=int, default=0, help="seed of the baselines' k-means and the raw encoder")
    add_threads_option(p)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``evaluate`` to the ``wav2tok`` command."""
    p = add_command(subparsers, "evaluate", cmd_evaluate,
                    help="retrieval evaluation of a model against DTW and k-means baselines")
    add_evaluate_options(p)
    p.add_argument("--out", required=True, help="JSON report to write")
    p.add_argument("--markdown", help="also write the markdown tables here")
    add_job_options(p)
