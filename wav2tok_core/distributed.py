"""Multi-process training with PyTorch's own engine (``torch.distributed``), as started by ``torchrun``.

``torchrun --nproc_per_node N -m wav2tok_core.train ...`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``
in each process; :func:`setup` reads them, joins the process group (NCCL on GPUs, gloo on CPU) and picks
the process's device. Without those variables everything here is a no-op for a single process, so the
same code path serves both. Collectives used by the Trainer and the E-step live here too.
"""
from __future__ import annotations

import os
from datetime import timedelta
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from .runtime import resolve_device


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job."""

    rank: int = 0  # global rank, 0 .. world_size - 1
    world_size: int = 1  # number of training processes
    local_rank: int = 0  # rank on this node: picks the GPU

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs and progress bars."""
        return self.rank == 0


def context() -> DistContext:
    """The running job's context (single process when no process group is up)."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistContext()


def setup(device: str = "auto") -> tuple[DistContext, torch.device]:
    """Join the process group torchrun describes (if any) and choose this process's device.

    Under torchrun with CUDA each process takes GPU ``LOCAL_RANK`` and NCCL; on CPU, gloo.
    Calling it again in the same process reuses the group.
    """
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    dev = resolve_device(device)
    if world_size <= 1:
        return context(), dev
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return context(), dev


def cleanup(timeout_s: float = 60.0) -> None:
    """Leave the process group (end of a distributed run).

    The ranks first wait for each other (gloo: at most ``timeout_s``), so no rank tears its connections down
    while another still uses them: a rank leaving early made its peer abort at exit ("terminate called
    without an active exception") now and then.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=timedelta(seconds=timeout_s))
        else:
            dist.barrier()
    except RuntimeError:
        pass  # a rank that failed or left cannot be waited for: leave anyway
    dist.destroy_process_group()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    ctx = context()
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not context().enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def broadcast_(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite ``tensor`` in place with rank ``src``'s values (any device; NCCL needs it on the GPU)."""
    if context().enabled:
        dist.broadcast(tensor, src=src)
    return tensor


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average a dict of floats over ranks (every rank must pass the same keys)."""
    if not context().enabled or not values:
        return values
    keys = sorted(values)
    packed = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(packed)
    packed /= context().world_size
    return dict(zip(keys, packed.tolist()))


def all_true(flag: bool, device: torch.device) -> bool:
    """True only if ``flag`` holds on every rank (so all ranks take the same branch)."""
    if not context().enabled:
        return flag
    value = torch.tensor([0 if flag else 1], dtype=torch.int64, device=device)
    dist.all_reduce(value)
    return int(value.item()) == 0
