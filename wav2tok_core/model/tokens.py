"""Token strings: collapsing frame tokens, on single sequences and on padded batches."""
from __future__ import annotations

from typing import Sequence

import torch


def collapse(tokens: Sequence[int]) -> list[int]:
    """Drop consecutive repeats: ``[3, 3, 7, 7, 3] -> [3, 7, 3]``."""
    out: list[int] = []
    for t in tokens:
        t = int(t)
        if not out or out[-1] != t:
            out.append(t)
    return out


def collapse_batch(tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Collapse every row of a padded batch of frame tokens, without a Python loop.

    Args:
        tokens: ``(B, T)`` frame token ids; lengths: ``(B,)`` real frame counts.

    Returns:
        collapsed: ``(B, S)`` token strings left-aligned and padded with 0; string_lengths: ``(B,)``.
    """
    b, t = tokens.shape
    mask = torch.arange(t, device=tokens.device)[None, :] < lengths[:, None]
    change = torch.ones_like(mask)
    change[:, 1:] = tokens[:, 1:] != tokens[:, :-1]
    keep = change & mask  # (B, T): first frame of every run
    string_lengths = keep.sum(dim=1)
    pos = keep.long().cumsum(dim=1) - 1  # (B, T): slot of each kept frame
    s = max(int(string_lengths.max()) if b else 0, 1)
    collapsed = torch.zeros(b, s, dtype=tokens.dtype, device=tokens.device)
    rows = torch.arange(b, device=tokens.device)[:, None].expand(b, t)
    collapsed[rows[keep], pos[keep]] = tokens[keep]
    return collapsed, string_lengths


def unpad(strings: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """``(B, S)`` padded strings and ``(B,)`` lengths -> Python lists."""
    return [row[:n].tolist() for row, n in zip(strings.cpu(), lengths.cpu().tolist())]
