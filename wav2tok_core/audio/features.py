"""Batched frame features (STFT magnitude, log-mel, MFCC + deltas, YIN pitch) on padded waveforms.

Each item of a padded batch gets exactly the frames it would get alone: the centre padding of the STFT
reflects each clip at its *own* end, deltas see the clip's last frame repeated rather than the batch's
zero padding, and normalisation statistics use the clip's own frames only.
"""
from __future__ import annotations

import torch
import torchaudio.functional as AF
from torch import nn

from .config import FeatureConfig
from .f0 import track_f0
from .frames import frame_mask, masked_standardize
from .pitch import pitch_features


def _reflect_pad(waves: torch.Tensor, lengths: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad every row by ``pad`` on both sides, reflecting at the row's own boundaries.

    waves: ``(B, N)``; lengths: ``(B,)`` -> ``(B, N + 2 * pad)``. Equals ``torch.stft(center=True)``'s
    reflect padding applied to each unpadded clip (short clips are clamped instead of failing).
    """
    n = waves.shape[1]
    last = (lengths - 1).clamp(min=0)[:, None]  # (B, 1)
    idx = (torch.arange(n + 2 * pad, device=waves.device)[None, :] - pad).abs()  # (1, N + 2 pad)
    idx = torch.where(idx > last, 2 * last - idx, idx)
    idx = torch.minimum(idx.clamp(min=0), last)  # (B, N + 2 pad)
    return waves.gather(1, idx)


def _repeat_last_frame(x: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
    """x: ``(B, C, T)``; frames past each item's length become copies of its last real frame."""
    t = x.shape[-1]
    idx = torch.minimum(torch.arange(t, device=x.device)[None, :], (frame_lengths - 1)[:, None])  # (B, T)
    return x.gather(2, idx[:, None, :].expand(-1, x.shape[1], -1))


class FeatureExtractor(nn.Module):
    """Waveforms -> frame features, on whole padded batches (CPU or GPU)."""

    def __init__(self, config: FeatureConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)
        fbank = AF.melscale_fbanks(config.n_fft // 2 + 1, 0.0, config.sr / 2, config.n_mels, config.sr,
                                   norm="slaney", mel_scale="htk")  # (n_freq, n_mels)
        self.register_buffer("fbank", fbank, persistent=False)
        dct = AF.create_dct(config.n_mfcc, config.n_mels, norm="ortho")  # (n_mels, n_mfcc)
        self.register_buffer("dct", dct, persistent=False)

    @property
    def dim(self) -> int:
        """Feature size F."""
        return self.config.dim

    def note_starts(self, feats: torch.Tensor) -> torch.Tensor:
        """Features ``(B, T, F)`` -> ``(B, T)`` bool: the frames where a new note starts, for note-level pitch
        representations (``config.note_level``: a frame whose features differ from the previous frame's, since
        every frame holds its note's values); all False for frame-level features."""
        starts = torch.zeros(feats.shape[:2], dtype=torch.bool, device=feats.device)
        if self.config.note_level:
            starts[:, 1:] = (feats[:, 1:] != feats[:, :-1]).any(dim=-1)
        return starts

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames per clip for ``(B,)`` sample counts (centred frames: ``1 + N // hop``)."""
        return 1 + torch.div(lengths, self.config.hop_length, rounding_mode="floor")

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Compute features.

        Args:
            waves: ``(B, N)`` zero-padded mono waveforms at ``config.sr``.
            lengths: ``(B,)`` real sample counts.

        Returns:
            feats: ``(B, T, F)`` with zeros on padded frames; frame_lengths: ``(B,)``.
        """
        cfg = self.config
        lengths = lengths.to(waves.device)
        frame_lengths = self.frame_lengths(lengths)
        t = int(frame_lengths.max())
        padded = _reflect_pad(waves, lengths, cfg.n_fft // 2)
        mask = frame_mask(frame_lengths, t)
        if cfg.kind == "pitch":
            frames = padded.unfold(-1, cfg.n_fft, cfg.hop_length)[:, :t]  # (B, T, n_fft), the STFT's frames
            f0, periodic = track_f0(cfg.f0, frames, waves, lengths, cfg.sr, cfg.hop_length, cfg.f0_min, cfg.f0_max)
            return pitch_features(frames, mask, f0, periodic, cfg.normalize, cfg.pitch_repr, cfg.frame_s), frame_lengths
        spec = torch.stft(padded, cfg.n_fft, cfg.hop_length, window=self.window, center=False,
                          return_complex=True)[..., :t].abs()  # (B, n_freq, T)
        if cfg.kind == "stft":
            x = torch.log1p(spec) if cfg.log else spec
        else:
            x = torch.log(torch.einsum("bft,fm->bmt", spec**2, self.fbank) + 1e-6)  # (B, n_mels, T)
            if cfg.kind == "mfcc":
                x = torch.einsum("bmt,mc->bct", x, self.dct)  # (B, n_mfcc, T)
                if cfg.deltas:
                    x = _repeat_last_frame(x, frame_lengths)
                    d1 = _repeat_last_frame(AF.compute_deltas(x), frame_lengths)
                    x = torch.cat([x, d1, AF.compute_deltas(d1)], dim=1)  # (B, 3 n_mfcc, T)
        feats = x.transpose(1, 2)  # (B, T, F)
        if cfg.normalize:
            return masked_standardize(feats, mask), frame_lengths
        return feats * mask[..., None], frame_lengths
