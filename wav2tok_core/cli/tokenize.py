"""The ``tokenize``, ``index`` and ``search`` subcommands of ``wav2tok`` (wired in by :func:`register`).

* ``wav2tok tokenize INPUT... --model M [--out tokens.json]``: token strings of audio files, folders or manifests.
* ``wav2tok index --model M MANIFEST... --out index.npz [--split test]``: tokenize clips (or long
  recordings) into a :class:`TokenIndex` with token times (id = path; metadata path, label, speaker, split).
* ``wav2tok search --index I --model M QUERY.wav... [--k 10] [--candidates N] [--json OUT]``: ranked hits.
* ``wav2tok spot --index I --model M QUERY.wav... [--threshold 0.6] [--k 10] [--json OUT]``: where in the
  indexed recordings each query is spoken (recording, start and end second, score).

Batch jobs never stop at a bad audio file: they skip it, report it by name with the reason (on stderr and
in their JSON output), and exit 1 only with ``--strict``. ``tokenize`` and ``index`` can be sharded
(:mod:`wav2tok_core.search.shards`).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from ..data.manifest import ManifestItem, read_manifest
from ..errors import ConfigError, InputError, ShardError
from ..model.wav2tok import load_model
from ..runtime import atomic_write, timed, write_json
from ..search.batch import tokenize_files
from ..search.index import Hit, TokenIndex
from ..search.shards import resolve_shard, run_shard
from ..search.spotting import RecordingIndex
from .common import add_command, add_job_options, add_shard_options, add_threads_option, expand_inputs, report_failures

SPOT_THRESHOLD = 0.6  # the spot command's default detection threshold


def tokenize_job(args: argparse.Namespace, paths: list[Path],
                 times: bool = False) -> tuple[list[dict], list[dict[str, str]]] | None:
    """Token strings of ``paths`` as ``[{"path", "tokens"}]`` rows in input order, plus the failures; with
    ``times`` each row's tokens are ``[token string, frames per token]``.

    With ``--shard/--num-shards`` (or under torchrun) only this shard's block is tokenized into its part
    file; returns None until every part is done (see :mod:`wav2tok_core.search.shards`).
    """
    shard, device = resolve_shard(args.shard, args.num_shards, args.device)
    model = load_model(args.model, device)
    work = lambda ps: tokenize_files(model, ps, args.batch_size, progress=args.progress, times=times)  # noqa: E731
    if shard.count == 1:
        tokens, failed = work(paths)
        return [{"path": str(p), "tokens": t} for p, t in tokens.items()], failed
    if not args.out:
        raise ShardError("--shard/--num-shards (and torchrun) need --out: parts are written beside it")
    merged = run_shard(args.out, paths, shard, args.model, work)
    return None if merged is None else (merged["items"], merged["failed"])


def cmd_tokenize(args: argparse.Namespace) -> int:
    paths = expand_inputs(args.inputs)
    if not paths:
        raise InputError(f"no audio files in {' '.join(args.inputs)}")
    job = tokenize_job(args, paths)
    if job is None:
        return 0
    rows, failed = job
    if args.out:
        with atomic_write(args.out, "w", encoding="utf-8") as fh:
            json.dump({"model": str(args.model), "items": rows, "failed": failed}, fh)
        print(f"wrote {len(rows)} token strings to {args.out}")
    else:
        for row in rows:
            print(f"{row['path']}\t{' '.join(map(str, row['tokens']))}")
    report_failures(failed, len(paths))
    return 1 if failed and args.strict else 0


def collect_items(inputs: Sequence[str], split: str | None = None) -> list[ManifestItem]:
    """Clips named by manifests (.json/.csv, filtered by ``split`` when given), audio files or folders.

    Plain files and folders carry no split and are always kept. Repeated paths are kept once.
    """
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


def cmd_index(args: argparse.Namespace) -> int:
    items = collect_items(args.inputs, args.split)
    if not items:
        raise InputError("no clips to index (check the inputs and --split)")
    job = tokenize_job(args, [it.path for it in items], times=True)
    if job is None:
        return 0
    rows, failed = job
    encoded = {row["path"]: row["tokens"] for row in rows}  # path -> (token string, frames per token)
    kept = [it for it in items if str(it.path) in encoded]
    index = TokenIndex(ngram=args.ngram, frame_s=load_model(args.model).config.features.frame_s)
    index.add([str(it.path) for it in kept], [encoded[str(it.path)][0] for it in kept],
              [item_metadata(it) for it in kept], [encoded[str(it.path)][1] for it in kept])
    index.save(args.out)
    print(f"indexed {len(kept)} of {len(items)} clip(s) into {args.out}")
    report_failures(failed, len(items))
    return 1 if not kept or (failed and args.strict) else 0


def hit_row(index: TokenIndex, hit: Hit) -> dict[str, Any]:
    """A search hit with the stored label, speaker and path."""
    meta = index.metadata(hit.id)
    return {"rank": hit.rank, "id": hit.id, "score": hit.score, "label": meta.get("label"),
            "speaker": meta.get("speaker"), "path": meta.get("path")}


def cmd_search(args: argparse.Namespace) -> int:
    if args.k < 1 or (args.candidates is not None and args.candidates < 1):
        raise ConfigError("--k and --candidates must be >= 1")
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


def cmd_spot(args: argparse.Namespace) -> int:
    if args.k < 1 or args.max_hits < 1:
        raise ConfigError("--k and --max_hits must be >= 1")
    if not 0.0 <= args.threshold <= 1.0:
        raise ConfigError(f"--threshold must be in [0, 1], got {args.threshold}")
    index = RecordingIndex.load(args.index)
    model = load_model(args.model, args.device)
    paths = expand_inputs(args.queries)
    tokens, failed = tokenize_files(model, paths, args.batch_size, progress=args.progress)
    failed += [{"path": str(p), "reason": f"{p}: no tokens (too short)"} for p in paths if p in tokens and not tokens[p]]
    results = []
    for path in (p for p in paths if tokens.get(p)):
        detections, seconds = timed(index.spot, {str(path): tokens[path]}, args.threshold, args.max_hits)
        hits = [{"rank": rank, "recording": d.recording_id, "start_s": d.start_s, "end_s": d.end_s, "score": d.score,
                 "label": index.metadata[index.ids.index(d.recording_id)].get("label")}
                for rank, d in enumerate(detections[:args.k], 1)]
        results.append({"query": str(path), "tokens": tokens[path], "search_s": seconds, "hits": hits})
        print(f"query {path}")
        for hit in hits:
            print(f"  {hit['rank']:>3}  {hit['score']:.3f}  {hit['start_s']:9.2f}-{hit['end_s']:.2f} s  {hit['recording']}")
    if args.json:
        write_json(args.json, {"index": str(args.index), "model": str(args.model), "threshold": args.threshold,
                               "k": args.k, "max_hits": args.max_hits, "results": results, "failed": failed})
    report_failures(failed, len(paths))
    return 1 if failed and args.strict else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tokenize``, ``index`` and ``search`` to the ``wav2tok`` command."""
    def batch_job(name: str, command, help: str, out_help: str, out_required: bool) -> argparse.ArgumentParser:
        """tokenize and index: inputs, a model, an output, and the job, shard and thread options."""
        p = add_command(subparsers, name, command, help=help)
        p.add_argument("inputs", nargs="+", help="audio files, folders, or .json/.csv manifests")
        p.add_argument("--model", required=True, help="model or training checkpoint (.pt)")
        p.add_argument("--out", required=out_required, help=out_help)
        add_job_options(p)
        add_shard_options(p)
        add_threads_option(p)
        return p

    batch_job("tokenize", cmd_tokenize, "token strings for audio files, folders or manifests",
              "write JSON {items: [{path, tokens}], failed: [...]} here instead of printing", False)
    p = batch_job("index", cmd_index, "tokenize clips into a searchable token index", "index file to write (.npz)", True)
    p.add_argument("--split", help="index only the manifest items of this split (e.g. test)")
    p.add_argument("--ngram", type=int, default=2, choices=(1, 2, 3), help="n-gram order of the candidate index")

    p = add_command(subparsers, "search", cmd_search, help="search a token index with query audio")
    p.add_argument("queries", nargs="+", help="query audio files, folders or manifests")
    p.add_argument("--index", required=True, help="index file written by `wav2tok index`")
    p.add_argument("--model", required=True, help="the model the index was built with")
    p.add_argument("--k", type=int, default=10, help="hits per query")
    p.add_argument("--candidates", type=int, help="n-gram candidates rescored per query (default: exhaustive)")
    p.add_argument("--json", help="also write the results as JSON here")
    add_job_options(p)
    add_threads_option(p)

    p = add_command(subparsers, "spot", cmd_spot, help="find where query audio is spoken in indexed recordings")
    p.add_argument("queries", nargs="+", help="query audio files, folders or manifests")
    p.add_argument("--index", required=True, help="index of the recordings, written by `wav2tok index`")
    p.add_argument("--model", required=True, help="the model the index was built with")
    p.add_argument("--threshold", type=float, default=SPOT_THRESHOLD,
                   help="least score 1 - edit distance / query length of a detection (default %(default)s)")
    p.add_argument("--k", type=int, default=10, help="detections per query, best first")
    p.add_argument("--max_hits", type=int, default=5, help="most detections per query in one recording")
    p.add_argument("--json", help="also write the results as JSON here")
    add_job_options(p)
    add_threads_option(p)
