"""Trainer callbacks of wav2tok: the E-step (k-means sets the codebook) and codebook usage per epoch.

The E-step freezes the current model as the teacher and re-fits the codebook every ``iter_clust`` steps,
starting at step 0; the choice of clips depends only on (seed, step), so a resumed run clusters exactly
what the original would.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..model.codebook import fit_model_codebook
from .objective import Wav2TokObjective
from .trainer import Callback, Trainer


def e_step(objective: Wav2TokObjective, clips: Sequence[torch.Tensor], seed: int = 0,
           batch_size: int = 32) -> torch.Tensor:
    """Run one E-step on ``clips``: freeze the current model as the objective's teacher and install the new
    codebook (warm-started from the current one). Returns the new codebook ``(K, D)``.
    """
    objective.refresh_teacher()
    return fit_model_codebook(objective.model, clips, seed, batch_size)


class EStep(Callback):
    """Trainer callback: an E-step every ``every`` optimizer steps, starting at step 0.

    Each E-step clusters a fresh random ``fraction`` of ``clips`` (waveforms at the model's rate); the
    choice depends only on (seed, step), so a resumed run clusters exactly what the original would.
    """

    def __init__(self, clips: Sequence[torch.Tensor], every: int, fraction: float = 1.0, seed: int = 0,
                 batch_size: int = 32) -> None:
        self.clips, self.every, self.fraction, self.seed, self.batch_size = list(clips), every, fraction, seed, batch_size
        self.done_at: int | None = None

    def on_step_start(self, trainer) -> None:
        step = trainer.step
        if step % self.every or step == self.done_at:
            return
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        count = max(1, round(self.fraction * len(self.clips)))
        chosen = torch.randperm(len(self.clips), generator=gen)[:count].tolist()
        e_step(trainer.objective, [self.clips[i] for i in chosen], seed=self.seed + step, batch_size=self.batch_size)
        self.done_at = step


def usage_stats(counts: np.ndarray) -> dict[str, float]:
    """Perplexity (effective number of tokens), dead tokens and share of the top token for ``(K,)`` counts."""
    probs = counts / max(counts.sum(), 1)
    nz = probs[probs > 0]
    return {"perplexity": float(np.exp(-(nz * np.log(nz)).sum())) if len(nz) else 0.0,
            "dead_tokens": int((counts == 0).sum()), "top_share": float(probs.max()) if len(probs) else 0.0}


def token_counts(model, clips: Sequence[torch.Tensor]) -> np.ndarray:
    """How many frames of ``clips`` each token takes: ``(K,)``."""
    frames = torch.cat(model.frame_tokens(list(clips)))
    return np.bincount(frames.numpy(), minlength=model.config.num_tokens)


class CodebookUsage(Callback):
    """After every epoch, token usage over a fixed sample of clips (perplexity, dead tokens)."""

    def __init__(self, clips: Sequence[torch.Tensor]) -> None:
        self.clips = list(clips)
        self.history: list[dict[str, Any]] = []

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        counts = token_counts(trainer.model, self.clips)
        self.history.append({"epoch": trainer.epoch, **usage_stats(counts), "counts": counts.tolist()})
