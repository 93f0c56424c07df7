"""Run under torchrun by test_distributed.py: train with the reference flags, then every rank saves its
final weights (codebook and teacher included) and epoch records to ``OUT/rank{N}.pt``.

    torchrun --standalone --nproc_per_node 2 tests/ddp_worker.py OUT --dataset tones.bin --is_dict True ...
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from wav2tok_core import distributed
from wav2tok_core.train.recipe import parse_args, run

if __name__ == "__main__":
    out = Path(sys.argv[1])
    trainer = run(parse_args(sys.argv[2:]))
    torch.save({"state": trainer.model.state_dict(), "history": trainer.history, "step": trainer.step},
               out / f"rank{trainer.dist.rank}.pt")
    distributed.cleanup()
