"""Audio input: read with soundfile, mix to mono, resample with torchaudio, and batch with lengths."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np
import soundfile as sf
import torch
import torchaudio.transforms as T
from tqdm.auto import tqdm

from ..errors import AudioError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".mp3")
SILENCE_PEAK = 1e-5  # a clip whose peak is below this (-100 dBFS) carries nothing to tokenize
S = TypeVar("S")  # a clip source: a path, a manifest item, a (name, array) pair ...
MAX_PEAK = 1e6  # no audio goes beyond this: files decode to [-1, 1]; arrays of int16-scale values (+-32768) pass


def check_wave(wave: torch.Tensor, name: str) -> torch.Tensor:
    """Validate a mono waveform ``(N,)``: non-empty, finite, not silent."""
    if wave.ndim != 1:
        raise AudioError(f"{name}: expected a mono waveform of shape (N,), got {tuple(wave.shape)}")
    if wave.numel() == 0:
        raise AudioError(f"{name}: has zero samples")
    if not torch.isfinite(wave).all():
        raise AudioError(f"{name}: contains NaN or Inf samples")
    peak = float(wave.abs().max())
    if peak < SILENCE_PEAK:
        raise AudioError(f"{name}: is silent (peak amplitude {peak:.1e})")
    if peak > MAX_PEAK:
        raise AudioError(f"{name}: peak amplitude {peak:.1e} is not audio (float audio lies in [-1, 1])")
    return wave


@lru_cache(maxsize=256)
def _resampler(orig_sr: int, sr: int) -> T.Resample:
    return T.Resample(orig_sr, sr)  # builds its sinc kernel once; reused for every clip at this pair


def resample(wave: torch.Tensor, orig_sr: int, sr: int) -> torch.Tensor:
    """Resample ``wave`` ``(..., N)`` from ``orig_sr`` to ``sr`` (band-limited sinc, torchaudio)."""
    if orig_sr == sr:
        return wave
    return _resampler(int(orig_sr), int(sr)).to(wave.device)(wave)


def load_audio(path: str | os.PathLike, sr: int) -> torch.Tensor:
    """Read an audio file as a mono float32 waveform at ``sr`` Hz.

    Returns:
        wave: ``(N,)`` float32 in roughly [-1, 1].

    Raises:
        AudioError: missing, unreadable, empty or non-finite audio (the message names the file).
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: file does not exist")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes)")
    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)  # (N, C)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(f"{path}: cannot be decoded as audio ({err})") from None
    wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))  # mono mix-down
    check_wave(wave, str(path))
    return resample(wave, file_sr, sr)


@dataclass(frozen=True)
class Failure:
    """A clip that could not be used, and why (the message of the error that refused it, naming the clip)."""

    path: str  # the file, or the name of an in-memory clip
    reason: str

    def to_dict(self) -> dict[str, str]:
        """``{"path", "reason"}``, the record reports and JSON results hold."""
        return {"path": self.path, "reason": self.reason}


def iter_clips(sources: Iterable[S], load: Callable[[S], torch.Tensor], where: Callable[[S], str] = str,
               progress: bool = False) -> Iterator[tuple[S, torch.Tensor | Failure]]:
    """Load every source with ``load``; yields ``(source, waveform (N,))``, or ``(source, Failure)`` when
    ``load`` refuses it with an :class:`AudioError` (``where(source)`` names it in the record)."""
    for source in tqdm(sources, desc="loading audio", disable=not progress):
        try:
            yield source, load(source)
        except AudioError as err:
            yield source, Failure(where(source), str(err))


def load_clips(sources: Iterable[S], load: Callable[[S], torch.Tensor], where: Callable[[S], str] = str,
               progress: bool = False) -> tuple[list[S], list[torch.Tensor], list[Failure]]:
    """:func:`iter_clips` collected: the sources that loaded, their waveforms ``(N_i,)``, and the failures
    (each list in input order)."""
    kept, waves, failures = [], [], []
    for source, result in iter_clips(sources, load, where, progress):
        if isinstance(result, Failure):
            failures.append(result)
        else:
            kept.append(source)
            waves.append(result)
    return kept, waves, failures


def to_wave(audio: torch.Tensor | np.ndarray | Sequence[float], name: str) -> torch.Tensor:
    """Turn an array-like into a checked mono float32 tensor ``(N,)``; ``(C, N)`` input is mixed down."""
    wave = torch.as_tensor(np.asarray(audio, dtype=np.float32) if not torch.is_tensor(audio) else audio)
    wave = wave.float()
    if wave.ndim == 2:
        wave = wave.mean(dim=0 if wave.shape[0] < wave.shape[1] else 1)
    return check_wave(wave, name)


def pad_batch(waves: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad mono waveforms with zeros.

    Returns:
        batch: ``(B, N_max)``; lengths: ``(B,)`` int64 sample counts.
    """
    lengths = torch.tensor([w.shape[-1] for w in waves], dtype=torch.long)
    batch = torch.zeros(len(waves), int(lengths.max()) if len(waves) else 0)
    for i, w in enumerate(waves):
        batch[i, : w.shape[-1]] = w
    return batch, lengths


def length_batches(sizes: Sequence[int], max_items: int, max_total: float | None = None) -> list[list[int]]:
    """Group item indices into batches of similar length, for padding-efficient batched processing.

    Items are taken in ascending ``sizes``; a batch holds at most ``max_items`` items and, when ``max_total``
    is given, at most that much padded size (its longest item times its count), so memory stays bounded.
    """
    batches: list[list[int]] = []
    for i in sorted(range(len(sizes)), key=lambda i: sizes[i]):
        # ascending sizes: a batch's padded size is its newest item's size times its count
        full = batches and (len(batches[-1]) == max_items
                            or (max_total is not None and sizes[i] * (len(batches[-1]) + 1) > max_total))
        if not batches or full:
            batches.append([])
        batches[-1].append(i)
    return batches
