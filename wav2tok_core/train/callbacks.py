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
    """Trainer callback: an E-step every ``every`` optimizer steps, from the first step after
    ``start_epoch`` epochs (0: from step 0; later when a stage I trains the frames first).

    Each E-step clusters a fresh random ``fraction`` of ``clips`` (waveforms at the model's rate); the
    choice depends only on (seed, step), so a resumed run clusters exactly what the original would.
    """

    def __init__(self, clips: Sequence[torch.Tensor], every: int, fraction: float = 1.0, seed: int = 0,
                 batch_size: int = 32, start_epoch: int = 0) -> None:
        self.clips, self.every, self.fraction, self.seed, self.batch_size = list(clips), every, fraction, seed, batch_size
        self.start_epoch = start_epoch
        self.done_at: int | None = None

    def on_step_start(self, trainer) -> None:
        step, start = trainer.step, self.start_epoch * trainer.batches_per_epoch
        if step < start or (step - start) % self.every or step == self.done_at:
            return
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        count = max(1, round(self.fraction * len(self.clips)))
        chosen = torch.randperm(len(self.clips), generator=gen)[:count].tolist()
        e_step(trainer.objective, [self.clips[i] for i in chosen], seed=self.seed + step, batch_size=self.batch_size)
        self.done_at = step


class Stages(Callback):
    """Trainer callback: stage I (the objective's continuous term alone) for ``stage1_epochs`` epochs, then the
    EM stage. Early stopping and ``best.pt`` follow the EM stage only: the validation's tokens mean nothing
    before the first E-step."""

    def __init__(self, stage1_epochs: int) -> None:
        self.stage1_epochs = stage1_epochs

    def on_step_start(self, trainer: Trainer) -> None:
        trainer.objective.stage = 1 if trainer.step < self.stage1_epochs * trainer.batches_per_epoch else 2

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if trainer.epoch <= self.stage1_epochs:
            trainer.reset_early_stopping()


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
