"""Sharded tokenization of large collections: split the work, keep finished parts, merge them.

``wav2tok tokenize|index ... --out OUT --shard I --num-shards N`` tokenizes the I-th of N contiguous
blocks of the inputs (I counts from 0) and writes it atomically to a part file beside OUT
(``{OUT stem}.part{I}-of-{N}.json``). A part whose recorded job digest (model file content, the whole
ordered input list, I and N) matches is not redone, so a killed job restarts where it stopped and a
stale part from another model or input list is never merged. Once every part exists, the command that
finishes last merges them into OUT in input order, so the result equals an unsharded run's.

Under ``torchrun`` without ``--shard`` each process takes the block of its rank and rank 0 merges after
all ranks are done.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import torch
import torch.distributed as dist

from .. import distributed
from ..errors import ShardError
from ..runtime import resolve_device, write_json

T = TypeVar("T")
TokenizeFn = Callable[[list[Path]], tuple[dict[Path, Any], list[dict[str, str]]]]  # path -> JSON-able tokens


@dataclass(frozen=True)
class Shard:
    """Block ``index`` of ``count`` contiguous blocks of a job's inputs."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ShardError(f"--shard {self.index} --num-shards {self.count}: need 0 <= shard < num-shards")

    def block(self, items: Sequence[T]) -> list[T]:
        """This shard's contiguous share of ``items`` (sizes differ by at most one)."""
        n = len(items)
        return list(items[self.index * n // self.count : (self.index + 1) * n // self.count])

    def part(self, out: str | os.PathLike) -> Path:
        """The part file of this shard for final output ``out``."""
        out = Path(out)
        return out.with_name(f"{out.stem}.part{self.index}-of-{self.count}.json")


def resolve_shard(index: int | None, count: int | None, device: str) -> tuple[Shard, torch.device]:
    """The shard from ``--shard``/``--num-shards``, or from torchrun's rank and world size when neither
    is given; also the device this process should use (its own GPU under torchrun)."""
    if index is None and count is None:
        ctx, dev = distributed.setup(device)
        return Shard(ctx.rank, ctx.world_size), dev
    if index is None or count is None:
        raise ShardError("--shard and --num-shards go together")
    return Shard(index, count), resolve_device(device)


def job_digest(model_file: str | os.PathLike, paths: Sequence[Path], shard: Shard) -> str:
    """SHA-256 naming one shard of one job: model file bytes, the ordered inputs, and the shard."""
    digest = hashlib.sha256()
    with open(model_file, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    digest.update(json.dumps([[str(p) for p in paths], shard.index, shard.count]).encode())
    return digest.hexdigest()


def _finished_part(path: Path, digest: str) -> dict[str, Any] | None:
    """The part document at ``path`` if it exists and belongs to the job ``digest``."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("job") == digest else None


def run_shard(out: str | os.PathLike, paths: Sequence[Path], shard: Shard, model_file: str | os.PathLike,
              tokenize: TokenizeFn) -> dict[str, Any] | None:
    """Tokenize this shard's block (unless its part is already done), then merge if every part is done.

    Returns:
        The merged document ``{"items": [{"path", "tokens"}], "failed": [...], "parts": N}`` in input
        order, or None while parts are missing (or on ranks other than 0 under torchrun).
    """
    part = shard.part(out)
    digest = job_digest(model_file, paths, shard)
    if _finished_part(part, digest) is not None:
        print(f"shard {shard.index} of {shard.count}: {part} is already done", file=sys.stderr)
    else:
        tokens, failed = tokenize(shard.block(paths))
        write_json(part, {"job": digest, "shard": [shard.index, shard.count], "failed": failed,
                          "items": [{"path": str(p), "tokens": t} for p, t in tokens.items()]})
    ctx = distributed.context()
    if ctx.enabled:
        dist.barrier()
        if not ctx.is_main:
            return None
    return merge_parts(out, paths, shard.count, model_file)


def merge_parts(out: str | os.PathLike, paths: Sequence[Path], count: int,
                model_file: str | os.PathLike) -> dict[str, Any] | None:
    """All parts of the job merged in shard order, or None if any is missing or from another job."""
    docs = []
    for index in range(count):
        shard = Shard(index, count)
        doc = _finished_part(shard.part(out), job_digest(model_file, paths, shard))
        if doc is None:
            print(f"shard {index} of {count} is not done yet: {out} will be written when it is", file=sys.stderr)
            return None
        docs.append(doc)
    return {"items": [row for doc in docs for row in doc["items"]],
            "failed": [row for doc in docs for row in doc["failed"]], "parts": count}
