"""Masks and per-clip statistics over padded batches of frames (``(B, T, F)`` with ``(B,)`` frame counts)."""
from __future__ import annotations

import torch


def frame_mask(frame_lengths: torch.Tensor, max_frames: int | None = None) -> torch.Tensor:
    """``(B,)`` frame counts -> ``(B, T)`` bool mask, True on real frames."""
    t = int(frame_lengths.max()) if max_frames is None else max_frames
    return torch.arange(t, device=frame_lengths.device)[None, :] < frame_lengths[:, None]


def masked_standardize(feats: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-item mean/variance normalisation over real frames. feats ``(B, T, F)``, mask ``(B, T)``."""
    m = mask[..., None].to(feats.dtype)  # (B, T, 1)
    count = m.sum(dim=1, keepdim=True).clamp(min=1.0)  # (B, 1, 1)
    mean = (feats * m).sum(dim=1, keepdim=True) / count
    var = (((feats - mean) * m) ** 2).sum(dim=1, keepdim=True) / count
    return (feats - mean) / (var + eps).sqrt() * m
