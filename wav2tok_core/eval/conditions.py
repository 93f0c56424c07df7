"""Query conditions: the transformations a query goes through before it searches the database.

Queries are transformed, the database never: ``vanilla``; ``stretch<R>``: time stretch at rate R, pitch
kept (R < 1 slows down: a ``stretch0.8`` query lasts 1.25x as long); ``shift<S>``: pitch shift by S
semitones, duration kept. Stretches and shifts are rendered by the phase vocoder or by WSOLA
(:data:`~wav2tok_core.audio.augment.STRETCH_METHODS`). Reports group them as in the paper: "stretched" is the
mean over the stretch conditions, "shifted" the mean over the shift conditions.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import torch

from ..audio.augment import pitch_shift, time_stretch
from ..data.manifest import ManifestItem
from ..errors import ConfigError

GROUPS = ("vanilla", "stretched", "shifted")

_CONDITION = re.compile(r"^(?:(vanilla)|(stretch)(\+?\d+(?:\.\d+)?)|(shift)([+-]?\d+(?:\.\d+)?))$")
_GROUP_OF_KIND = {"vanilla": "vanilla", "stretch": "stretched", "shift": "shifted"}


@dataclass(frozen=True)
class EvalClip:
    """A clip under evaluation: its manifest item and its waveform ``(N,)`` at the model's rate (maybe transformed)."""

    item: ManifestItem
    wave: torch.Tensor


@dataclass(frozen=True)
class Condition:
    """A query transformation parsed from its name (``vanilla``, ``stretch0.8``, ``shift-3``, ...)."""

    name: str
    kind: str  # "vanilla", "stretch" or "shift"
    value: float  # stretch rate (> 0), or semitones; 0.0 for vanilla

    @classmethod
    def parse(cls, name: str) -> "Condition":
        match = _CONDITION.match(name)
        if match is None:
            raise ConfigError(f"conditions: {name!r} is not 'vanilla', 'stretch<rate>' or 'shift<semitones>' "
                              "(e.g. stretch0.8, shift-3, shift+3)")
        if match[1]:
            return cls(name, "vanilla", 0.0)
        if match[2]:
            rate = float(match[3])
            if rate <= 0:
                raise ConfigError(f"conditions: {name!r}: the stretch rate must be > 0")
            return cls(name, "stretch", rate)
        return cls(name, "shift", float(match[5]))

    @property
    def group(self) -> str:
        """Report group: "vanilla", "stretched" or "shifted"."""
        return _GROUP_OF_KIND[self.kind]

    def apply(self, wave: torch.Tensor, method: str) -> torch.Tensor:
        """Transform a query ``(N,)`` -> ``(N',)``; N' = round(N / rate) for a stretch, N otherwise. ``method``
        renders stretches and shifts (``"vocoder"`` or ``"wsola"``)."""
        if self.kind == "stretch":
            return time_stretch(wave, self.value, method)
        if self.kind == "shift":
            return pitch_shift(wave, self.value, method)
        return wave


def transform_queries(condition: Condition, clips: Sequence[EvalClip], min_samples: int,
                      skipped: list[dict[str, str]], method: str) -> tuple[list[int], list[EvalClip]]:
    """Apply ``condition`` (rendered by ``method``) to each query clip; returns (kept positions in ``clips``,
    transformed clips).

    A query left with fewer than ``min_samples`` samples (a very short clip sped up) is dropped from this
    condition and listed in ``skipped``.
    """
    kept, out = [], []
    for i, clip in enumerate(clips):
        wave = condition.apply(clip.wave, method)
        if wave.numel() < min_samples:
            skipped.append({"path": str(clip.item.path), "reason": f"{clip.item.path}: only {wave.numel()} samples "
                            f"under {condition.name}, shorter than one frame ({min_samples})"})
            continue
        kept.append(i)
        out.append(EvalClip(clip.item, wave))
    return kept, out
