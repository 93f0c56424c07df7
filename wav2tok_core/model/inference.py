"""Batched inference for the tokenizer: clip loading, windows for long recordings, length-sorted batches.

:class:`Inference` is a mixin: the class using it provides ``config`` (a ModelConfig), ``device``,
``features`` (a FeatureExtractor), ``encode_features(feats, frame_lengths) -> h`` and ``logits(h)``; it adds
``embed``, ``frame_tokens``, ``frame_tokens_and_starts`` and ``tokenize`` on paths or waveforms of any length.
Shapes: B batch, N samples, T frames, D code size.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence, Union

import numpy as np
import torch

from ..audio.io import length_batches, load_audio, pad_batch, resample, to_wave
from ..errors import AudioError
from .tokens import token_string

# Inference batches hold at most this much audio (padded), so memory is bounded for any clip length.
MAX_BATCH_SECONDS = 300.0

Audio = Union[str, os.PathLike, np.ndarray, torch.Tensor]


class Inference:
    """Tokenizer inference on paths and waveforms (see the module docstring for what the host class provides)."""

    def load_clips(self, audio: Audio | Sequence[Audio], sr: int | None = None) -> list[torch.Tensor]:
        """Paths and/or waveforms -> mono waveforms ``(N_i,)`` at the model's rate.

        Arrays are taken to be at ``sr`` Hz (default: the model's rate). A single path or 1-D array
        counts as one clip. Raises :class:`AudioError` naming the clip that cannot be used.
        """
        if isinstance(audio, (str, os.PathLike)) or (hasattr(audio, "ndim") and audio.ndim == 1):
            audio = [audio]
        rate = self.config.features.sr
        clips = []
        for i, item in enumerate(audio):
            if isinstance(item, (str, os.PathLike)):
                wave, name = load_audio(item, rate), str(item)
            else:
                name = f"clip {i}"
                wave = resample(to_wave(item, name), sr or rate, rate)
            if wave.numel() < self.config.features.hop_length:
                raise AudioError(f"{name}: {wave.numel()} samples at {rate} Hz is shorter than one frame "
                                 f"({self.config.features.hop_length} samples)")
            clips.append(wave)
        return clips

    def _windows(self, clip: torch.Tensor, chunk_s: float, overlap_s: float) -> list[tuple[torch.Tensor, int, int]]:
        """Split a long clip into overlapping windows: ``(wave, first kept frame, end kept frame)``.

        Windows start on frame boundaries; each keeps its central frames (half the overlap is trimmed at
        every inner edge), so the kept frames tile the clip's frames exactly once.
        """
        hop = self.config.features.hop_length
        total = 1 + clip.numel() // hop
        chunk_f = max(2, int(chunk_s * self.config.features.sr) // hop)
        overlap_f = min(chunk_f - 1, max(0, int(overlap_s * self.config.features.sr) // hop))
        if total <= chunk_f + 1:
            return [(clip, 0, total)]
        step_f = chunk_f - overlap_f
        starts = list(range(0, total - overlap_f - 1, step_f))
        windows = []
        for j, start in enumerate(starts):
            wave = clip[start * hop : (start + chunk_f) * hop]
            frames = 1 + wave.numel() // hop
            lo = 0 if j == 0 else overlap_f // 2
            hi = frames if j == len(starts) - 1 else min(frames, step_f + overlap_f // 2)
            windows.append((wave, lo, hi))
        return windows

    def _per_frame(self, clips: list[torch.Tensor], fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                   batch_size: int, chunk_s: float, overlap_s: float = 2.0) -> list[torch.Tensor]:
        """Apply ``fn``: (h ``(B, T, D)``, features ``(B, T, F)``) -> ``(B, T, ...)`` to every clip; returns
        per-clip ``(T_i, ...)`` CPU tensors.

        Clips are run in length-sorted batches of at most ``batch_size`` items and ``MAX_BATCH_SECONDS``
        of padded audio, in eval mode; clips longer than ``chunk_s`` seconds go in overlapping windows
        whose outputs are stitched, so memory is bounded for any clip length.
        """
        pieces = [(i, *w) for i, clip in enumerate(clips) for w in self._windows(clip, chunk_s, overlap_s)]
        batches = length_batches([p[1].numel() for p in pieces], batch_size,
                                 MAX_BATCH_SECONDS * self.config.features.sr)
        outputs: list[torch.Tensor | None] = [None] * len(pieces)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                for idx in batches:
                    waves, lengths = pad_batch([pieces[p][1] for p in idx])
                    feats, frame_lengths = self.features(waves.to(self.device), lengths.to(self.device))
                    h = self.encode_features(feats, frame_lengths)
                    for p, out in zip(idx, fn(h, feats).cpu()):
                        outputs[p] = out[pieces[p][2] : pieces[p][3]]
        finally:
            self.train(was_training)
        per_clip: list[list[torch.Tensor]] = [[] for _ in clips]
        for (i, *_), out in zip(pieces, outputs):
            per_clip[i].append(out)
        return [torch.cat(parts) for parts in per_clip]

    def embed(self, audio: Audio | Sequence[Audio], sr: int | None = None, batch_size: int = 32,
              chunk_s: float = 60.0) -> list[torch.Tensor]:
        """Unit frame vectors per clip: list of ``(T_i, D)`` CPU tensors."""
        return self._per_frame(self.load_clips(audio, sr), lambda h, _: h, batch_size, chunk_s)

    def frame_tokens(self, audio: Audio | Sequence[Audio], sr: int | None = None, batch_size: int = 32,
                     chunk_s: float = 60.0) -> list[torch.Tensor]:
        """Frame-level token ids per clip (before collapsing): list of ``(T_i,)`` int64 CPU tensors."""
        return [tokens for tokens, _ in self.frame_tokens_and_starts(audio, sr, batch_size, chunk_s)]

    def frame_tokens_and_starts(self, audio: Audio | Sequence[Audio], sr: int | None = None, batch_size: int = 32,
                                chunk_s: float = 60.0) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Frame-level token ids ``(T_i,)`` int64 and note starts ``(T_i,)`` bool per clip (all False unless the
        features are note-level: ``FeatureExtractor.note_starts``); what every string and span is cut from
        (:func:`~wav2tok_core.model.tokens.runs`)."""
        def tokens_and_starts(h: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:  # -> (B, T, 2) int64
            return torch.stack([self.logits(h).argmax(-1), self.features.note_starts(feats).long()], dim=-1)
        pairs = self._per_frame(self.load_clips(audio, sr), tokens_and_starts, batch_size, chunk_s)
        return [(pair[:, 0].contiguous(), pair[:, 1].bool()) for pair in pairs]

    def tokenize(self, audio: Audio | Sequence[Audio], sr: int | None = None, batch_size: int = 32,
                 chunk_s: float = 60.0, keep_repeats: bool | None = None) -> list[list[int]]:
        """Token strings per clip, ids in [0, K): consecutive repeats collapsed (one token per note at least, for
        note-level features), or one token per frame with ``keep_repeats`` (default: the model config's).

        Clips longer than ``chunk_s`` seconds are tokenized in overlapping windows joined frame by frame.
        """
        keep = self.config.keep_repeats if keep_repeats is None else keep_repeats
        return [token_string(t, keep, starts) for t, starts in self.frame_tokens_and_starts(audio, sr, batch_size,
                                                                                               chunk_s)]
