"""Trainer callbacks for notebooks: live loss curves and codebook usage per epoch."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .trainer import Callback, Trainer
from .viz import training_curves


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


class LiveCurves(Callback):
    """Redraws the training curves in the notebook output every ``every`` steps and at each epoch end."""

    def __init__(self, every: int = 25) -> None:
        self.every = every
        self.handle = None

    def _draw(self, trainer: Trainer) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        records = [*trainer.step_records, *trainer.history]
        fig = training_curves(records)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if trainer.step % self.every == 0:
            self._draw(trainer)

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        self._draw(trainer)
