"""Live training curves in a notebook: a trainer callback that redraws the loss plot in place."""
from __future__ import annotations

from ..train.trainer import Callback, Trainer
from .viz import training_curves


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
