"""Token strings from frame tokens: runs of equal tokens, collapsed or per-frame strings, and their time spans.

Every place that turns frame tokens into strings or spans (inference, training targets, spotting, figures)
uses these functions.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def _as_array(frame_tokens: Sequence[int] | np.ndarray | torch.Tensor) -> np.ndarray:
    """Frame tokens as an int64 array ``(T,)`` (tensors copied to the CPU)."""
    return np.asarray(frame_tokens.cpu() if torch.is_tensor(frame_tokens) else frame_tokens, dtype=np.int64)


def runs(frame_tokens: Sequence[int] | np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of equal consecutive frame tokens ``(T,)``: each run's token, first frame and end frame
    (exclusive), as three ``(R,)`` int arrays. ``[3, 3, 7, 3] -> [3, 7, 3], [0, 2, 3], [2, 3, 4]``."""
    tokens = _as_array(frame_tokens)
    if tokens.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    starts = np.flatnonzero(np.concatenate([[True], tokens[1:] != tokens[:-1]]))
    ends = np.append(starts[1:], tokens.size)
    return tokens[starts], starts, ends


def collapse(frame_tokens: Sequence[int] | np.ndarray | torch.Tensor) -> list[int]:
    """Drop consecutive repeats: ``[3, 3, 7, 7, 3] -> [3, 7, 3]``."""
    return runs(frame_tokens)[0].tolist()


def token_string(frame_tokens: Sequence[int] | np.ndarray | torch.Tensor, keep_repeats: bool = False) -> list[int]:
    """The token string of frame tokens ``(T,)``: collapsed (:func:`collapse`), or with ``keep_repeats`` one
    token per frame."""
    if not keep_repeats:
        return collapse(frame_tokens)
    return _as_array(frame_tokens).tolist()


def token_runs(frame_tokens: Sequence[int] | np.ndarray | torch.Tensor,
               keep_repeats: bool = False) -> tuple[list[int], list[int]]:
    """The token string of frame tokens ``(T,)`` (:func:`token_string`) and, per token, the frames it covers
    (1 each with ``keep_repeats``; the run lengths otherwise)."""
    if keep_repeats:
        string = token_string(frame_tokens, True)
        return string, [1] * len(string)
    ids, starts, ends = runs(frame_tokens)
    return ids.tolist(), (ends - starts).tolist()


def token_spans(frame_tokens: Sequence[int] | np.ndarray | torch.Tensor, frame_s: float,
                keep_repeats: bool = False) -> list[tuple[int, float, float]]:
    """Each token of the string (:func:`token_string`) with the seconds it covers, ``(token, start_s, end_s)``.

    Frame t covers ``[t, t + 1) * frame_s``; a collapsed token covers the frames of its run.
    """
    if keep_repeats:
        return [(t, i * frame_s, (i + 1) * frame_s) for i, t in enumerate(token_string(frame_tokens, True))]
    ids, starts, ends = runs(frame_tokens)
    return [(int(t), int(s) * frame_s, int(e) * frame_s) for t, s, e in zip(ids, starts, ends)]


def collapse_batch(tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Collapse every row of a padded batch of frame tokens, without a Python loop (training targets).

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
