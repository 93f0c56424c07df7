"""The ``wav2tok`` command: ``train``, ``tokenize`` and the other workbench jobs as subcommands.

Batch jobs never stop at a bad file: they skip it, report it by name with the reason (on stderr and in
their JSON output), and exit non-zero only with ``--strict``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from .. import distributed, runtime
from ..audio.io import AUDIO_SUFFIXES
from ..data.manifest import read_manifest
from ..errors import AudioError, CheckpointError, ConfigError, ShardError
from ..model.wav2tok import Wav2Tok, load_model
from ..runtime import atomic_write
from ..search.shards import resolve_shard, run_shard
from ..train.recipe import main as train_main
from ..workbench.pipeline import main as pipeline_main
from .dataset import register as register_datasets
from .evaluate import add_threads_option
from .evaluate import register as register_evaluation


def expand_inputs(inputs: Sequence[str]) -> list[Path]:
    """Audio paths from arguments: files, folders (searched recursively) and manifests (.json/.csv)."""
    paths: list[Path] = []
    for text in inputs:
        path = Path(text)
        if path.suffix.lower() in (".json", ".csv"):
            paths += [item.path for item in read_manifest(path)]
        elif path.is_dir():
            paths += sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
        else:
            paths.append(path)
    return paths


def tokenize_files(model: Wav2Tok, paths: Sequence[Path], batch_size: int = 32, progress: bool = False,
                   chunk: int = 512, chunk_s: float = 1800.0) -> tuple[dict[Path, list[int]], list[dict[str, str]]]:
    """Token strings of every readable file; unreadable ones are listed with the reason, not raised.

    Decoded audio is held for at most ``chunk`` files or ``chunk_s`` seconds at a time, whichever comes
    first, so memory stays bounded for any number and length of files.

    Returns:
        tokens: path -> token string; failed: ``[{"path", "reason"}]``.
    """
    tokens: dict[Path, list[int]] = {}
    failed: list[dict[str, str]] = []
    clips: list[torch.Tensor] = []
    kept: list[Path] = []
    held = 0  # samples decoded and not yet tokenized
    bar = tqdm(total=len(paths), desc="tokenizing", disable=not progress, leave=False)
    for i, path in enumerate(paths):
        bar.update(1)
        try:
            clips += model.load_clips([path])
            kept.append(path)
            held += clips[-1].numel()
        except AudioError as err:
            failed.append({"path": str(path), "reason": str(err)})
        if clips and (len(clips) == chunk or held >= chunk_s * model.config.features.sr or i == len(paths) - 1):
            tokens.update(zip(kept, model.tokenize(clips, batch_size=batch_size)))
            clips, kept, held = [], [], 0
    bar.close()
    return tokens, failed


def report_failures(failed: list[dict[str, str]], total: int) -> None:
    if failed:
        print(f"skipped {len(failed)} of {total} file(s):", file=sys.stderr)
        for f in failed:
            print(f"  {f['reason']}", file=sys.stderr)


def tokenize_job(args: argparse.Namespace, paths: list[Path]) -> tuple[list[dict], list[dict[str, str]]] | None:
    """Token strings of ``paths`` as ``[{"path", "tokens"}]`` rows in input order, plus the failures.

    With ``--shard/--num-shards`` (or under torchrun) only this shard's block is tokenized into its part
    file; returns None until every part is done (see :mod:`wav2tok_core.shards`).
    """
    shard, device = resolve_shard(args.shard, args.num_shards, args.device)
    model = load_model(args.model, device)
    work = lambda ps: tokenize_files(model, ps, args.batch_size, progress=args.progress)  # noqa: E731
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
        print(f"error: no audio files in {' '.join(args.inputs)}", file=sys.stderr)
        return 2
    try:
        runtime.configure(threads=args.threads)
        job = tokenize_job(args, paths)
    except (ShardError, CheckpointError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
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


def add_shard_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shard", type=int, help="tokenize only block SHARD (from 0) of --num-shards; restartable")
    p.add_argument("--num-shards", "--num_shards", dest="num_shards", type=int,
                   help="number of blocks; parts merge into --out when all are done (torchrun: one per rank)")


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    p.add_argument("--batch_size", type=int, default=32, help="clips per inference batch")
    p.add_argument("--strict", action="store_true", help="exit 1 when any input file was skipped")
    p.add_argument("--progress", action="store_true", help="show progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wav2tok", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train", help="train a model (reference flags; see `wav2tok train --help`)", add_help=False)
    p = sub.add_parser("tokenize", help="token strings for audio files, folders or manifests")
    p.add_argument("inputs", nargs="+", help="audio files, folders, or .json/.csv manifests")
    p.add_argument("--model", required=True, help="model or training checkpoint (.pt)")
    p.add_argument("--out", help="write JSON {items: [{path, tokens}], failed: [...]} here instead of printing")
    add_common(p)
    add_shard_options(p)
    add_threads_option(p)
    p.set_defaults(func=cmd_tokenize)
    sub.add_parser("run", help="run the notebooks headlessly (see `wav2tok run --help`)", add_help=False)
    register_datasets(sub)
    register_evaluation(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:
        return train_main(argv[1:])
    if argv[:1] == ["run"]:
        return pipeline_main(argv[1:])
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    finally:
        distributed.cleanup()  # sharded jobs under torchrun joined a process group

