"""The ``index``, ``search`` and ``evaluate`` subcommands of ``wav2tok`` (wired in by :func:`register`).

* ``wav2tok index --model M MANIFEST... --out index.npz [--split test]``: tokenize clips into a
  :class:`TokenIndex` (id = path; metadata path, label, speaker, split).
* ``wav2tok search --index I --model M QUERY.wav... [--k 10] [--candidates N] [--json OUT]``: ranked hits.
* ``wav2tok evaluate --model M --manifest MANIFEST --out results.json [--markdown results.md] ...``: the
  protocol of :mod:`wav2tok_core.evaluate`.

Bad audio files are skipped and reported (stderr and JSON); ``--strict`` turns any skip into exit code 1.
Unusable models, manifests, indexes or options exit with code 2 and a one-line message.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import runtime
from ..data.manifest import ManifestItem, read_manifest
from ..errors import CheckpointError, ConfigError, EvalError, IndexFileError, ManifestError, ShardError
from ..eval import protocol
from ..eval.config import PROTOCOLS, EvalConfig
from ..eval.methods import METHODS
from ..eval.report import EvalResult
from ..model.wav2tok import load_model
from ..runtime import write_json
from ..search.index import Hit, TokenIndex

# ``cli`` imports this module to call ``register``, so its helpers are imported inside the functions below.

Command = Callable[[argparse.Namespace], int]
USAGE_ERRORS = (ConfigError, EvalError, ManifestError, CheckpointError, IndexFileError, ShardError)


def add_threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, help="torch and numba worker threads (default: one per core)")


def _subcommand(command: Command) -> Command:
    """Wrap a subcommand: apply ``--threads``, and turn configuration, evaluation, manifest, checkpoint and
    index errors into a one-line message and exit code 2."""
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            runtime.configure(threads=args.threads)
            return command(args)
        except USAGE_ERRORS as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    return run


def collect_items(inputs: Sequence[str], split: str | None = None) -> list[ManifestItem]:
    """Clips named by manifests (.json/.csv, filtered by ``split`` when given), audio files or folders.

    Plain files and folders carry no split and are always kept. Repeated paths are kept once.
    """
    from .main import expand_inputs

    items: dict[Path, ManifestItem] = {}
    for text in inputs:
        if Path(text).suffix.lower() in (".json", ".csv"):
            found = [it for it in read_manifest(text) if split is None or it.split == split]
        else:
            found = [ManifestItem(path) for path in expand_inputs([text])]
        for item in found:
            items.setdefault(item.path, item)
    return list(items.values())


def item_metadata(item: ManifestItem) -> dict[str, Any]:
    """What the index stores with each clip."""
    return {"path": str(item.path), "label": item.label, "speaker": item.speaker, "split": item.split}


@_subcommand
def cmd_index(args: argparse.Namespace) -> int:
    from .main import report_failures, tokenize_job

    items = collect_items(args.inputs, args.split)
    if not items:
        print("error: no clips to index (check the inputs and --split)", file=sys.stderr)
        return 2
    job = tokenize_job(args, [it.path for it in items])
    if job is None:
        return 0
    rows, failed = job
    tokens = {row["path"]: row["tokens"] for row in rows}
    kept = [it for it in items if str(it.path) in tokens]
    index = TokenIndex(ngram=args.ngram)
    index.add([str(it.path) for it in kept], [tokens[str(it.path)] for it in kept], [item_metadata(it) for it in kept])
    index.save(args.out)
    print(f"indexed {len(kept)} of {len(items)} clip(s) into {args.out}")
    report_failures(failed, len(items))
    return 1 if not kept or (failed and args.strict) else 0


def hit_row(index: TokenIndex, hit: Hit) -> dict[str, Any]:
    """A search hit with the stored label, speaker and path."""
    meta = index.metadata(hit.id)
    return {"rank": hit.rank, "id": hit.id, "score": hit.score, "label": meta.get("label"),
            "speaker": meta.get("speaker"), "path": meta.get("path")}


@_subcommand
def cmd_search(args: argparse.Namespace) -> int:
    from .main import expand_inputs, report_failures, tokenize_files

    if args.k < 1 or (args.candidates is not None and args.candidates < 1):
        print("error: --k and --candidates must be >= 1", file=sys.stderr)
        return 2
    index = TokenIndex.load(args.index)
    model = load_model(args.model, args.device)
    paths = expand_inputs(args.queries)
    tokens, failed = tokenize_files(model, paths, args.batch_size, progress=args.progress)
    found = [p for p in paths if p in tokens]
    hits = index.search([tokens[p] for p in found], k=args.k, candidates=args.candidates) if found else []
    results = [{"query": str(p), "tokens": tokens[p], "hits": [hit_row(index, h) for h in hs]}
               for p, hs in zip(found, hits)]
    for result in results:
        print(f"query {result['query']}")
        for row in result["hits"]:
            print(f"  {row['rank']:>3}  {row['score']:.3f}  {row['label'] or '-'}  {row['path'] or row['id']}")
    if args.json:
        write_json(args.json, {"index": str(args.index), "model": str(args.model), "k": args.k,
                               "candidates": args.candidates, "results": results, "failed": failed})
    report_failures(failed, len(paths))
    return 1 if failed and args.strict else 0


def load_split_items(manifest: str | os.PathLike, test_split: str,
                     train_split: str) -> tuple[list[ManifestItem], list[ManifestItem]]:
    """:func:`wav2tok_core.eval.protocol.load_split_items`, still imported from here."""
    return protocol.load_split_items(manifest, test_split, train_split)


def evaluate_manifest(args: argparse.Namespace, log: Callable[[str], None] | None = None) -> EvalResult:
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


@_subcommand
def cmd_evaluate(args: argparse.Namespace) -> int:
    result = evaluate_manifest(args, log=_stderr if args.progress else None)
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
    """Add ``index``, ``search`` and ``evaluate`` to the ``wav2tok`` command."""
    from .main import add_common, add_shard_options

    p = subparsers.add_parser("index", help="tokenize clips into a searchable token index")
    p.add_argument("inputs", nargs="+", help="manifests (.json/.csv), audio files or folders")
    p.add_argument("--model", required=True, help="model or training checkpoint (.pt)")
    p.add_argument("--out", required=True, help="index file to write (.npz)")
    p.add_argument("--split", help="index only the manifest items of this split (e.g. test)")
    p.add_argument("--ngram", type=int, default=2, choices=(1, 2, 3), help="n-gram order of the candidate index")
    add_common(p)
    add_shard_options(p)
    add_threads_option(p)
    p.set_defaults(func=cmd_index)

    p = subparsers.add_parser("search", help="search a token index with query audio")
    p.add_argument("queries", nargs="+", help="query audio files, folders or manifests")
    p.add_argument("--index", required=True, help="index file written by `wav2tok index`")
    p.add_argument("--model", required=True, help="the model the index was built with")
    p.add_argument("--k", type=int, default=10, help="hits per query")
    p.add_argument("--candidates", type=int, help="n-gram candidates rescored per query (default: exhaustive)")
    p.add_argument("--json", help="also write the results as JSON here")
    add_common(p)
    add_threads_option(p)
    p.set_defaults(func=cmd_search)

    p = subparsers.add_parser("evaluate", help="retrieval evaluation of a model against DTW and k-means baselines")
    add_evaluate_options(p)
    p.add_argument("--out", required=True, help="JSON report to write")
    p.add_argument("--markdown", help="also write the markdown tables here")
    add_common(p)
    p.set_defaults(func=cmd_evaluate)
