"""Spotting: finding a short query token string inside long recordings' token strings.

Matching is approximate substring search with unit-cost Levenshtein distance (semi-global
alignment: the query must be used whole, the recording span is free). For a query of length m and
a span with edit distance d the score is ``1 - d / m`` in [0, 1] (1.0 = exact occurrence).

Search runs in numba (``prange`` over recordings) in two passes. A bit-parallel pass (Myers' algorithm)
gives, for every end position of a recording, the least distance of the query to a span ending there, at a
few word operations per recording token and 64 query tokens. Only around the ends that can pass the score
threshold does a second, exact dynamic programme find each span's start: a span of distance ``d`` is at
most ``m + d`` tokens long, so the windows ``[end - m - d, end]`` hold every span that can be reported.
Among equally cheap alignments the start comes from the predecessor preference substitution/match, then
skipping a query token, then skipping a recording token. Several occurrences per recording are found
greedily: spans are taken in order of increasing distance, then of ``|span length - query length|``, then
of end position, skipping empty spans and spans overlapping one already taken.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
from numba import njit, prange

from ..errors import IndexFileError
from .index import read_index_file


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


_ONE = np.uint64(1)
_WORD = 64  # query rows per bit-vector block


def pattern_masks(query: np.ndarray) -> np.ndarray:
    """Match masks of a query for the bit-parallel kernel: ``(n_blocks, max token + 1)`` uint64, where bit ``i``
    of ``masks[b, t]`` is set when ``query[64 b + i] == t``."""
    rows = np.arange(query.size)
    masks = np.zeros(((query.size + _WORD - 1) // _WORD, int(query.max()) + 1), dtype=np.uint64)
    np.bitwise_or.at(masks, (rows // _WORD, query), np.left_shift(_ONE, (rows % _WORD).astype(np.uint64)))
    return masks


@njit(cache=False)
def _end_distances_one_word(masks: np.ndarray, m: int, text: np.ndarray, out: np.ndarray) -> None:
    """:func:`_end_distances` for queries of at most 64 tokens: one word, held in registers."""
    alphabet = masks.size
    pv, mv = ~np.uint64(0), np.uint64(0)
    last = _ONE << np.uint64(m - 1)
    score = m
    out[0] = m
    for j in range(text.size):
        token = text[j]
        eq = masks[token] if token < alphabet else np.uint64(0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | ~(xh | pv)
        mh = pv & xh
        if ph & last:
            score += 1
        elif mh & last:
            score -= 1
        ph <<= _ONE
        mh <<= _ONE
        pv = mh | ~(xv | ph)
        mv = ph & xv
        out[j + 1] = score


@njit(cache=False)
def _end_distances(masks: np.ndarray, m: int, text: np.ndarray, out: np.ndarray) -> None:
    """``out[j]`` (j = 0..n) = least edit distance of the query to any span of ``text`` that ends at ``j``
    (exclusive), for all j in one pass.

    Bit-parallel semi-global edit distance (Myers 1999, in Hyyrö's blocked form): each column of the DP
    matrix is held as vertical +1/-1 deltas in 64-row words, so a text token costs a few word operations per
    64 query tokens. The top row is free (a span may start anywhere), so no horizontal delta enters block 0.
    """
    n_blocks, alphabet = masks.shape
    if n_blocks == 1:
        _end_distances_one_word(masks[0], m, text, out)
        return
    plus = np.full(n_blocks, ~np.uint64(0))  # vertical deltas: column 0 is 0, 1, ..., m
    minus = np.zeros(n_blocks, dtype=np.uint64)
    top = _ONE << np.uint64(_WORD - 1)
    last = _ONE << np.uint64((m - 1) % _WORD)  # the bit of query row m in the last block
    score = m
    out[0] = m
    for j in range(text.size):
        token = text[j]
        carry = 0  # horizontal delta entering the block from above
        for b in range(n_blocks):
            eq = masks[b, token] if token < alphabet else np.uint64(0)
            pv, mv = plus[b], minus[b]
            xv = eq | mv
            if carry < 0:
                eq |= _ONE
            xh = (((eq & pv) + pv) ^ pv) | eq
            ph = mv | ~(xh | pv)
            mh = pv & xh
            high = last if b == n_blocks - 1 else top
            out_carry = 1 if ph & high else (-1 if mh & high else 0)
            ph <<= _ONE
            mh <<= _ONE
            if carry < 0:
                mh |= _ONE
            elif carry > 0:
                ph |= _ONE
            plus[b] = mh | ~(xv | ph)
            minus[b] = ph & xv
            carry = out_carry
        score += carry
        out[j + 1] = score


@njit(cache=False)
def select_spans(distance: np.ndarray, start: np.ndarray, end: np.ndarray, query_length: int,
                 chosen: np.ndarray) -> None:
    """Greedy choice of non-overlapping, non-empty spans among candidates (shared with subsequence DTW).

    Candidates are taken in order of increasing ``distance``, then of ``|end - start - query_length|``, then
    of position in the arrays; a candidate is skipped when it is empty or overlaps one already taken.

    Args:
        distance: (c,) int or float; start, end: (c,) int64 spans ``[start, end)``, in increasing ``end`` order.
        chosen: (max_hits,) int64, filled with the chosen candidates' positions, best first; -1 = none.
    """
    by_gap = np.argsort(np.abs(end - start - query_length), kind="mergesort")
    order = by_gap[np.argsort(distance[by_gap], kind="mergesort")]
    chosen[:] = -1
    taken = 0
    for c in order:
        if taken == chosen.size:
            break
        if start[c] == end[c]:
            continue
        overlaps = False
        for h in range(taken):
            if start[c] < end[chosen[h]] and start[chosen[h]] < end[c]:
                overlaps = True
        if not overlaps:
            chosen[taken] = c
            taken += 1


@njit(cache=False)
def _candidate_spans(query: np.ndarray, masks: np.ndarray, text: np.ndarray,
                     max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every end position of ``text`` whose best span has distance <= ``max_distance``: that (distance,
    start, end), three (c,) int64 arrays in increasing end order."""
    m, n = query.size, text.size
    best = np.empty(n + 1, dtype=np.int64)
    _end_distances(masks, m, text, best)
    ends = np.flatnonzero(best[1:] <= max_distance) + 1
    distance = np.empty(ends.size, dtype=np.int64)
    start = np.empty(ends.size, dtype=np.int64)
    opens = ends - m - best[ends]  # a span of distance d is at most m + d long: its window [end - m - d, end]
    c = 0
    while c < ends.size:  # one exact pass per run of overlapping windows
        first, lo = c, opens[c]
        while c + 1 < ends.size and opens[c + 1] <= ends[c]:
            c += 1
            lo = min(lo, opens[c])
        lo = max(0, lo)
        window_distance, window_start = _semiglobal_last_row(query, text[lo:ends[c]])
        for k in range(first, c + 1):
            distance[k] = window_distance[ends[k] - lo]
            start[k] = window_start[ends[k] - lo] + lo
        c += 1
    return distance, start, ends


@njit(parallel=True, cache=False)
def _spot_in_recordings(query: np.ndarray, masks: np.ndarray, flat: np.ndarray, offsets: np.ndarray,
                        max_distance: int, max_hits: int) -> np.ndarray:
    """(n_recordings, max_hits, 3) int64 (distance, start, end) of the best spans in each recording with
    distance <= ``max_distance``; -1 rows = none."""
    n_recordings = offsets.size - 1
    out = np.full((n_recordings, max_hits, 3), -1, dtype=np.int64)
    for r in prange(n_recordings):
        distance, start, end = _candidate_spans(query, masks, flat[offsets[r]:offsets[r + 1]], max_distance)
        chosen = np.empty(max_hits, dtype=np.int64)
        select_spans(distance, start, end, query.size, chosen)
        for h in range(max_hits):
            if chosen[h] >= 0:
                out[r, h, 0], out[r, h, 1], out[r, h, 2] = distance[chosen[h]], start[chosen[h]], end[chosen[h]]
    return out


def _search(query: np.ndarray, flat: np.ndarray, offsets: np.ndarray, max_hits: int, threshold: float) -> np.ndarray:
    """:func:`_spot_in_recordings` for a query and a score threshold."""
    slack = 1.0 - max(0.0, threshold)  # score >= threshold  <=>  distance <= slack * m
    max_distance = min(query.size, int(np.floor(slack * query.size + 1e-9)))
    return _spot_in_recordings(query, pattern_masks(query), flat, offsets, max_distance, max_hits)


def _as_array(tokens: Sequence[int]) -> np.ndarray:
    """Token string as a 1-D int64 array."""
    arr = np.asarray(tokens, dtype=np.int64)
    if arr.ndim != 1:
        raise ValueError(f"a token string must be 1-D, got shape {arr.shape}")
    return arr


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
    text = _as_array(recording)
    return _matches(_search(q, text, np.array([0, text.size], dtype=np.int64), max_hits, threshold)[0], q.size, threshold)


def substring_similarity_matrix(queries: Sequence[str], choices: Sequence[str]) -> np.ndarray:
    """Similarities ``1 - d / m`` of each query's best placement inside each choice (the query used whole, any
    non-empty stretch of the choice), for strings encoded by :func:`wav2tok_core.search.index.encode_tokens`:
    (len(queries), len(choices)) float64; 0 for an empty query or choice."""
    index = RecordingIndex.from_strings({str(i): [ord(c) for c in s] for i, s in enumerate(choices)})
    scores = np.zeros((len(queries), len(choices)))
    for row, query in zip(scores, queries):
        q = np.array([ord(c) for c in query], dtype=np.int64)
        if q.size and len(choices):
            best = _search(q, index.tokens, index.offsets, 1, 0.0)[:, 0]  # (n_choices, 3)
            found = best[:, 1] >= 0
            row[found] = 1.0 - best[found, 0] / q.size
    return scores


def span_seconds(token_times: Sequence[tuple[float, float]], start: int, end: int) -> tuple[float, float]:
    """Time of the token span ``[start, end)``: start time of token ``start`` to end time of token ``end - 1``.

    Args:
        token_times: per token of the recording, its ``(start_s, end_s)``.
        start, end: a non-empty token span.
    """
    if not 0 <= start < end <= len(token_times):
        raise ValueError(f"span [{start}, {end}) is empty or outside a recording of {len(token_times)} tokens")
    return float(token_times[start][0]), float(token_times[end - 1][1])


@dataclass
class RecordingIndex:
    """Token strings of (long) recordings, held flat for spotting, with each token's time when known.

    Built from an index file written by ``wav2tok index`` (:meth:`load`, which needs the file's token times)
    or from strings in memory (:meth:`from_strings`).
    """

    ids: list[str]
    metadata: list[dict[str, Any]]
    tokens: np.ndarray  # (N,) int64: every recording's tokens, concatenated
    offsets: np.ndarray  # (n_recordings + 1,) int64
    starts_s: np.ndarray | None = None  # (N,) float64: each token's start in its recording
    ends_s: np.ndarray | None = None  # (N,) float64

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RecordingIndex":
        """Read an index file; raise :class:`IndexFileError` naming ``path`` when it is unreadable or holds no
        token times."""
        contents = read_index_file(path)
        if contents.runs is None:
            raise IndexFileError(f"{path}: holds no token times (it was written before version 2); build it again "
                                 "with `wav2tok index`")
        frame_ends = np.cumsum(contents.runs, dtype=np.int64)
        base = np.concatenate([[0], frame_ends])[contents.offsets[:-1]]  # frames before each recording
        first = np.repeat(base, np.diff(contents.offsets))
        frame_s = float(contents.frame_s)
        return cls(contents.ids, contents.metadata, contents.tokens.astype(np.int64), contents.offsets,
                   (frame_ends - contents.runs - first) * frame_s, (frame_ends - first) * frame_s)

    @classmethod
    def from_strings(cls, recordings: Mapping[str, Sequence[int]],
                     token_times: Mapping[str, Sequence[tuple[float, float]]] | None = None) -> "RecordingIndex":
        """From recording id -> token string, and optionally -> per-token ``(start_s, end_s)``."""
        ids = list(recordings)
        arrays = [_as_array(recordings[rid]) for rid in ids]
        offsets = np.concatenate([[0], np.cumsum([a.size for a in arrays])]).astype(np.int64)
        tokens = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
        index = cls(ids, [{} for _ in ids], tokens, offsets)
        if token_times is not None:
            for rid in ids:
                if len(token_times[rid]) != len(recordings[rid]):
                    raise ValueError(f"recording {rid!r}: {len(recordings[rid])} tokens but {len(token_times[rid])} "
                                     "token times")
            times = np.array([t for rid in ids for t in token_times[rid]], dtype=np.float64).reshape(-1, 2)
            index.starts_s, index.ends_s = times[:, 0], times[:, 1]
        return index

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, ids: Sequence[str]) -> "RecordingIndex":
        """The recordings ``ids`` only, in that order."""
        position = {rid: r for r, rid in enumerate(self.ids)}
        rows = [position[rid] for rid in ids]
        pieces = [np.arange(self.offsets[r], self.offsets[r + 1]) for r in rows]
        take = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum([p.size for p in pieces])]).astype(np.int64)
        times = (None, None) if self.starts_s is None or self.ends_s is None else (self.starts_s[take], self.ends_s[take])
        return RecordingIndex(list(ids), [self.metadata[r] for r in rows], self.tokens[take], offsets, *times)

    def spot(self, queries: Mapping[str, Sequence[int]], threshold: float = 0.5, max_hits: int = 1) -> list[Detection]:
        """Spot every query in every recording.

        Args:
            queries: query id -> non-empty token string.
            threshold: keep detections with score >= threshold.
            max_hits: most detections per (query, recording) pair.

        Returns:
            Detections sorted by score descending, then query id, recording id and start; with times when the
            index has them.
        """
        if max_hits < 1:
            raise ValueError("max_hits must be >= 1")
        detections = []
        for qid, query in queries.items():
            q = _as_array(query)
            if q.size == 0:
                raise ValueError(f"query {qid!r} is empty")
            detections += self._detections(qid, q.size, _search(q, self.tokens, self.offsets, max_hits, threshold),
                                           threshold)
        detections.sort(key=lambda d: (-d.score, d.query_id, d.recording_id, d.start))
        return detections

    def _detections(self, qid: str, query_length: int, rows: np.ndarray, threshold: float) -> list[Detection]:
        """The kernel's (n_recordings, max_hits, 3) rows as detections scoring >= ``threshold``, with their
        seconds when known (vectorised: a long index yields many rows)."""
        recording = np.repeat(np.arange(rows.shape[0]), rows.shape[1])
        distance, start, end = rows.reshape(-1, 3).T
        score = 1.0 - distance / query_length
        keep = (start >= 0) & (score >= threshold)
        recording, start, end, score = recording[keep], start[keep], end[keep], score[keep]
        if self.starts_s is None or self.ends_s is None:
            times = [(None, None)] * score.size
        else:
            first = self.offsets[recording]
            times = zip(self.starts_s[first + start].tolist(), self.ends_s[first + end - 1].tolist())
        return [Detection(qid, self.ids[r], s, b, e, *t)
                for r, s, b, e, t in zip(recording.tolist(), score.tolist(), start.tolist(), end.tolist(), times)]


def spot_batch(
    queries: Mapping[str, Sequence[int]],
    recordings: Mapping[str, Sequence[int]],
    threshold: float = 0.5,
    max_hits: int = 1,
    token_times: Mapping[str, Sequence[tuple[float, float]]] | None = None,
) -> list[Detection]:
    """Spot every query in every recording (:meth:`RecordingIndex.spot` over :meth:`RecordingIndex.from_strings`).

    Args:
        queries: query id -> non-empty token string.
        recordings: recording id -> token string.
        threshold: keep detections with score >= threshold.
        max_hits: most detections per (query, recording) pair.
        token_times: optional recording id -> per-token ``(start_s, end_s)``; fills the detections' times.

    Returns:
        Detections sorted by score descending, then query id, recording id and start.
    """
    return RecordingIndex.from_strings(recordings, token_times).spot(queries, threshold, max_hits)
