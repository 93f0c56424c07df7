"""Spotting: finding a short query token string inside long recordings' token strings.

Matching is approximate substring search with unit-cost Levenshtein distance (semi-global
alignment: the query must be used whole, the recording span is free). For a query of length m and
a span with edit distance d the score is ``1 - d / m`` in [0, 1] (1.0 = exact occurrence).

The dynamic programme runs in numba (``prange`` over recordings). Among equally cheap alignments the
predecessor preference is substitution/match, then skipping a query token, then skipping a recording
token. Several occurrences per recording are found greedily: spans are taken in order of increasing
distance, then of ``|span length - query length|``, then of end position, skipping empty spans and
spans overlapping one already taken.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, NamedTuple, Sequence

import numpy as np
from numba import njit, prange


class ScoredSpan(NamedTuple):
    """A spotting detection: ``query_id`` found in ``recording_id`` over ``[start, end)`` with ``score``."""

    query_id: str
    recording_id: str
    score: float
    start: float
    end: float


@dataclass(frozen=True)
class SpotMatch:
    """An occurrence: tokens ``[start, end)`` of the recording, edit ``distance`` and ``score``."""

    start: int
    end: int
    distance: int
    score: float


@dataclass(frozen=True)
class Detection:
    """A spotted query in a recording; times are None when no token times were given."""

    query_id: str
    recording_id: str
    score: float
    start: int
    end: int
    start_s: float | None = None
    end_s: float | None = None

    def scored_span(self, seconds: bool = False) -> ScoredSpan:
        """This detection for :func:`wav2tok_core.metrics.spotting_pr_curve`, in tokens or seconds."""
        if seconds:
            if self.start_s is None or self.end_s is None:
                raise ValueError("this detection has no times")
            return ScoredSpan(self.query_id, self.recording_id, self.score, self.start_s, self.end_s)
        return ScoredSpan(self.query_id, self.recording_id, self.score, self.start, self.end)


@njit(cache=False)
def _semiglobal_last_row(query: np.ndarray, text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every end position j (0..n), the least edit distance of ``query`` to a span ``text[s:j]`` and that s.

    Returns ``(distance, start)``, both (n + 1,) int64. Uses O(m) memory (one DP column).
    """
    m, n = query.size, text.size
    column = np.arange(m + 1)
    column_start = np.zeros(m + 1, dtype=np.int64)
    distance = np.empty(n + 1, dtype=np.int64)
    start = np.empty(n + 1, dtype=np.int64)
    distance[0], start[0] = m, 0
    for j in range(1, n + 1):
        diag, diag_start = column[0], column_start[0]
        column[0], column_start[0] = 0, j
        for i in range(1, m + 1):
            best = diag + (query[i - 1] != text[j - 1])
            best_start = diag_start
            if column[i - 1] + 1 < best:
                best, best_start = column[i - 1] + 1, column_start[i - 1]
            if column[i] + 1 < best:
                best, best_start = column[i] + 1, column_start[i]
            diag, diag_start = column[i], column_start[i]
            column[i], column_start[i] = best, best_start
        distance[j], start[j] = column[m], column_start[m]
    return distance, start


@njit(cache=False)
def _greedy_spans(distance: np.ndarray, start: np.ndarray, query_length: int, max_hits: int, out: np.ndarray) -> None:
    """Fill ``out`` (max_hits, 3) with non-overlapping non-empty (distance, start, end) rows, best first; -1 = none."""
    ends = np.arange(distance.size)
    length_gap = np.abs(ends - start - query_length)
    order = np.argsort(distance * (distance.size + query_length + 1) + length_gap, kind="mergesort")
    taken = 0
    for j in order:
        if taken == max_hits:
            break
        s = start[j]
        if s == j:
            continue
        overlaps = False
        for h in range(taken):
            if s < out[h, 2] and out[h, 1] < j:
                overlaps = True
        if not overlaps:
            out[taken, 0], out[taken, 1], out[taken, 2] = distance[j], s, j
            taken += 1


@njit(parallel=True, cache=False)
def _spot_in_recordings(query: np.ndarray, flat: np.ndarray, offsets: np.ndarray, max_hits: int) -> np.ndarray:
    """(n_recordings, max_hits, 3) int64 (distance, start, end) of the best spans in each recording."""
    n_recordings = offsets.size - 1
    out = np.full((n_recordings, max_hits, 3), -1, dtype=np.int64)
    for r in prange(n_recordings):
        distance, start = _semiglobal_last_row(query, flat[offsets[r]:offsets[r + 1]])
        _greedy_spans(distance, start, query.size, max_hits, out[r])
    return out


def _as_array(tokens: Sequence[int]) -> np.ndarray:
    """Token string as a 1-D int64 array."""
    arr = np.asarray(tokens, dtype=np.int64)
    if arr.ndim != 1:
        raise ValueError(f"a token string must be 1-D, got shape {arr.shape}")
    return arr


def _concatenate(recordings: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(flat int64 tokens, (n + 1,) int64 offsets)."""
    arrays = [_as_array(r) for r in recordings]
    offsets = np.concatenate([[0], np.cumsum([a.size for a in arrays])]).astype(np.int64)
    flat = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
    return flat.astype(np.int64), offsets


def _matches(rows: np.ndarray, query_length: int, threshold: float) -> list[SpotMatch]:
    """SpotMatches from (max_hits, 3) kernel rows, keeping score >= threshold."""
    found = []
    for distance, start, end in rows.tolist():
        score = 1.0 - distance / query_length
        if start >= 0 and score >= threshold:
            found.append(SpotMatch(start, end, distance, score))
    return found


def find_occurrences(query: Sequence[int], recording: Sequence[int], max_hits: int = 1, threshold: float = 0.0) -> list[SpotMatch]:
    """Up to ``max_hits`` non-overlapping approximate occurrences of ``query`` with score >= ``threshold``, best first."""
    q = _as_array(query)
    if q.size == 0:
        raise ValueError("the query is empty")
    flat, offsets = _concatenate([recording])
    return _matches(_spot_in_recordings(q, flat, offsets, max_hits)[0], q.size, threshold)


def span_seconds(token_times: Sequence[tuple[float, float]], start: int, end: int) -> tuple[float, float]:
    """Time of the token span ``[start, end)``: start time of token ``start`` to end time of token ``end - 1``.

    Args:
        token_times: per token of the recording, its ``(start_s, end_s)``.
        start, end: a non-empty token span.
    """
    if not 0 <= start < end <= len(token_times):
        raise ValueError(f"span [{start}, {end}) is empty or outside a recording of {len(token_times)} tokens")
    return float(token_times[start][0]), float(token_times[end - 1][1])


def spot_batch(
    queries: Mapping[str, Sequence[int]],
    recordings: Mapping[str, Sequence[int]],
    threshold: float = 0.5,
    max_hits: int = 1,
    token_times: Mapping[str, Sequence[tuple[float, float]]] | None = None,
) -> list[Detection]:
    """Spot every query in every recording.

    Args:
        queries: query id -> non-empty token string.
        recordings: recording id -> token string.
        threshold: keep detections with score >= threshold.
        max_hits: most detections per (query, recording) pair.
        token_times: optional recording id -> per-token ``(start_s, end_s)``; fills the detections' times.

    Returns:
        Detections sorted by score descending, then query id, recording id and start.
    """
    if max_hits < 1:
        raise ValueError("max_hits must be >= 1")
    recording_ids = list(recordings)
    if token_times is not None:
        for rid in recording_ids:
            if len(token_times[rid]) != len(recordings[rid]):
                raise ValueError(f"recording {rid!r}: {len(recordings[rid])} tokens but {len(token_times[rid])} token times")
    flat, offsets = _concatenate([recordings[rid] for rid in recording_ids])
    detections = []
    for qid, query in queries.items():
        q = _as_array(query)
        if q.size == 0:
            raise ValueError(f"query {qid!r} is empty")
        spans = _spot_in_recordings(q, flat, offsets, max_hits)
        for rid, rows in zip(recording_ids, spans):
            for match in _matches(rows, q.size, threshold):
                times = span_seconds(token_times[rid], match.start, match.end) if token_times is not None else (None, None)
                detections.append(Detection(qid, rid, match.score, match.start, match.end, *times))
    detections.sort(key=lambda d: (-d.score, d.query_id, d.recording_id, d.start))
    return detections
