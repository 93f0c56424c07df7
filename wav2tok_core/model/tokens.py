"""Token strings from frame tokens: runs of equal tokens, collapsed or per-frame strings, and their time spans.

Every place that turns frame tokens into strings or spans (inference, training targets, spotting, figures)
uses these functions. A run ends where the token changes and, when ``starts`` is given (``(T,)`` bool, a
model over note-level features: :meth:`~wav2tok_core.audio.features.FeatureExtractor.note_starts`), where a
new note starts: such a model's string has one token per note, also when two notes in a row get the same
token. The training targets (:func:`collapse_batch`) collapse equal tokens only.
"""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch


Frames = Union[Sequence[int], np.ndarray, torch.Tensor]  # per-frame values (T,): token ids, or note starts


def _as_array(frame_tokens: Frames) -> np.ndarray:
    """Frame tokens (or note starts) as an int64 array ``(T,)`` (tensors copied to the CPU)."""
    return np.asarray(frame_tokens.cpu() if torch.is_tensor(frame_tokens) else frame_tokens, dtype=np.int64)


def runs(frame_tokens: Frames, starts: Frames | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of equal consecutive frame tokens ``(T,)``, also cut where ``starts`` ``(T,)`` is true: each run's
    token, first frame and end frame (exclusive), as three ``(R,)`` int arrays. ``[3, 3, 7, 3] -> [3, 7, 3],
    [0, 2, 3], [2, 3, 4]``; with ``starts = [0, 1, 0, 0]``: ``[3, 3, 7, 3], [0, 1, 2, 3], [1, 2, 3, 4]``."""
    tokens = _as_array(frame_tokens)
    if tokens.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    cut = tokens[1:] != tokens[:-1]
    if starts is not None:
        cut |= _as_array(starts)[1:].astype(bool)
    first = np.flatnonzero(np.concatenate([[True], cut]))
    ends = np.append(first[1:], tokens.size)
    return tokens[first], first, ends


def collapse(frame_tokens: Frames, starts: Frames | None = None) -> list[int]:
    """Drop consecutive repeats (within a note, with ``starts``): ``[3, 3, 7, 7, 3] -> [3, 7, 3]``."""
    return runs(frame_tokens, starts)[0].tolist()


def token_string(frame_tokens: Frames, keep_repeats: bool = False, starts: Frames | None = None) -> list[int]:
    """The token string of frame tokens ``(T,)``: collapsed (:func:`collapse`, cut at ``starts``), or with
    ``keep_repeats`` one token per frame."""
    if not keep_repeats:
        return collapse(frame_tokens, starts)
    return _as_array(frame_tokens).tolist()


def token_runs(frame_tokens: Frames, keep_repeats: bool = False,
               starts: Frames | None = None) -> tuple[list[int], list[int]]:
    """The token string of frame tokens ``(T,)`` (:func:`token_string`) and, per token, the frames it covers
    (1 each with ``keep_repeats``; the run lengths otherwise)."""
    if keep_repeats:
        string = token_string(frame_tokens, True)
        return string, [1] * len(string)
    ids, first, ends = runs(frame_tokens, starts)
    return ids.tolist(), (ends - first).tolist()


def token_spans(frame_tokens: Frames, frame_s: float, keep_repeats: bool = False,
                starts: Frames | None = None) -> list[tuple[int, float, float]]:
    """Each token of the string (:func:`token_string`) with the seconds it covers, ``(token, start_s, end_s)``.

    Frame t covers ``[t, t + 1) * frame_s``; a collapsed token covers the frames of its run.
    """
    if keep_repeats:
        return [(t, i * frame_s, (i + 1) * frame_s) for i, t in enumerate(token_string(frame_tokens, True))]
    ids, first, ends = runs(frame_tokens, starts)
    return [(int(t), int(a) * frame_s, int(e) * frame_s) for t, a, e in zip(ids, first, ends)]


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
