"""Spotting: finding a short query token string inside long recordings' token strings.

Matching is approximate substring search with unit-cost Levenshtein distance (semi-global
alignment: the query must be used whole, the recording span is free). For a query of length m and
a span with edit distance d the score is ``1 - d / m`` in [0, 1] (1.0 = exact occurrence).

A detection ends where the query's best distance dips along the recording: at an end whose distance passes
the threshold and is no greater than at either neighbouring end (an end beside a lower one holds the same
occurrence, shifted by a token). Among the starts that reach that distance, the span nearest the query's
length is kept (the shorter one on a tie). Several occurrences per recording are chosen greedily: spans in
order of increasing distance, then of ``|span length - query length|``, then of end position, skipping empty
spans and spans overlapping one already taken.

Search runs in numba (``prange`` over chunks of query-recording pairs), bit-parallel throughout (Myers'
algorithm, a few word operations per recording token and 64 query tokens). One pass gives, for every end
position of a recording, the least distance of the query to a span ending there. Starts are found only at
the detection ends: a span of distance ``d`` is at most ``m + d`` tokens long, so a pass of the reversed
query, anchored at the end and run leftwards over at most ``m + d`` tokens, gives the distance of every span
ending there.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
from numba import get_num_threads, njit, prange

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


_ONE = np.uint64(1)
_WORD = 64  # query rows per bit-vector block
LANES = 16  # queries of one word searched side by side (:func:`_end_distances_lanes`)


def pattern_masks(queries: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Match masks of queries for the bit-parallel kernel, forwards and reversed: two
    ``(n_queries, n_blocks, alphabet)`` uint64 arrays, where bit ``i`` of ``forward[q, b, t]`` is set when
    ``queries[q][64 b + i] == t`` (and of ``backward[q, b, t]`` when ``queries[q][m - 1 - 64 b - i] == t``).
    ``n_blocks`` and ``alphabet`` cover the longest query and the largest token."""
    lengths = np.array([q.size for q in queries])
    n_blocks, alphabet = int(lengths.max() + _WORD - 1) // _WORD, max(int(q.max()) for q in queries) + 1
    forward = np.zeros((len(queries), n_blocks, alphabet), dtype=np.uint64)
    backward = np.zeros_like(forward)
    owner = np.repeat(np.arange(len(queries)), lengths)  # the query of every token
    row = np.arange(owner.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # its position in the query
    bit = np.left_shift(_ONE, (row % _WORD).astype(np.uint64))
    np.bitwise_or.at(forward, (owner, row // _WORD, np.concatenate(queries)), bit)
    np.bitwise_or.at(backward, (owner, row // _WORD, np.concatenate([q[::-1] for q in queries])), bit)
    return forward, backward


@njit(cache=False, inline="always")
def _advance(eq: np.uint64, pv: np.uint64, mv: np.uint64, carry: int, high: np.uint64) -> tuple:
    """One text token through one block of 64 query rows (Myers' step, in Hyyrö's blocked form).

    Args:
        eq: the token's match mask over the block's rows; pv / mv: the block's vertical +1 / -1 deltas.
        carry: horizontal delta (-1, 0 or +1) entering the block's first row from the row above.
        high: the bit of the block's last row.

    Returns:
        The block's new ``(pv, mv)`` and the horizontal delta leaving its last row (int).
    """
    xv = eq | mv
    if carry < 0:
        eq |= _ONE
    xh = (((eq & pv) + pv) ^ pv) | eq
    ph = mv | ~(xh | pv)
    mh = pv & xh
    delta = np.int64((ph & high) != 0) - np.int64((mh & high) != 0)  # branch-free: the sign is unpredictable
    ph = (ph << _ONE) | np.uint64(carry > 0)
    mh = (mh << _ONE) | np.uint64(carry < 0)
    return mh | ~(xv | ph), ph & xv, delta


@njit(cache=False, inline="always")
def _advance_blocks(masks: np.ndarray, m: int, token: int, plus: np.ndarray, minus: np.ndarray, carry: int) -> int:
    """One text token through every 64-row block of a query of ``m`` tokens (its (n_blocks, alphabet)
    ``masks``), updating the blocks' vertical deltas ``plus`` / ``minus`` (n_blocks,) in place; ``carry`` enters
    the first row. Returns the horizontal delta leaving row m."""
    n_blocks, alphabet = masks.shape
    last = _ONE << np.uint64((m - 1) % _WORD)  # the bit of query row m in the last block
    for b in range(n_blocks):
        eq = masks[b, token] if token < alphabet else np.uint64(0)
        high = last if b == n_blocks - 1 else _ONE << np.uint64(_WORD - 1)
        plus[b], minus[b], carry = _advance(eq, plus[b], minus[b], carry, high)
    return carry


@njit(cache=False)
def _end_distances(masks: np.ndarray, m: int, text: np.ndarray, out: np.ndarray) -> None:
    """``out[j]`` (j = 0..n) = least edit distance of a query of ``m`` tokens (``masks``: its (n_blocks,
    alphabet) match masks) to any span ``text[s:j]`` ending at ``j``, for all j in one pass.

    Bit-parallel semi-global edit distance (Myers 1999, in Hyyrö's blocked form): each column of the DP matrix
    is held as vertical +1/-1 deltas in 64-row words, so a text token costs a few word operations per 64 query
    tokens. The top row is free (a span may start anywhere): no horizontal delta enters the first block.
    Several queries of one word run faster side by side (:func:`_end_distances_lanes`).
    """
    out[0] = m
    if masks.shape[0] == 1:  # one word, held in registers
        row, alphabet = masks[0], masks.shape[1]
        pv, mv, last, score = ~np.uint64(0), np.uint64(0), _ONE << np.uint64(m - 1), m
        for j in range(text.size):
            token = text[j]
            pv, mv, delta = _advance(row[token] if token < alphabet else np.uint64(0), pv, mv, 0, last)
            score += delta
            out[j + 1] = score
        return
    plus = np.full(masks.shape[0], ~np.uint64(0))  # vertical deltas: column 0 is 0, 1, ..., m
    minus = np.zeros(masks.shape[0], dtype=np.uint64)
    for j in range(text.size):
        out[j + 1] = out[j] + _advance_blocks(masks, m, text[j], plus, minus, 0)


@njit(cache=False)
def _end_distances_lanes(masks: np.ndarray, lengths: np.ndarray, text: np.ndarray, out: np.ndarray) -> None:
    """:func:`_end_distances` of up to :data:`LANES` queries of at most 64 tokens at once, one per lane.

    Args:
        masks: (alphabet, lanes) uint64, C-contiguous: bit i of ``masks[t, l]`` is set when token i of lane l's
            query is t. Contiguous lanes let the compiler run them in SIMD registers.
        lengths: (lanes,) the queries' lengths (>= 1).
        out: (n + 1, lanes) int64, receives each lane's distances.
    """
    lanes, alphabet = lengths.size, masks.shape[0]
    pv, mv = np.full(lanes, ~np.uint64(0)), np.zeros(lanes, dtype=np.uint64)
    last = _ONE << (lengths - 1).astype(np.uint64)
    score = lengths.copy()
    none = np.zeros(lanes, dtype=np.uint64)  # the masks of a token no query holds
    out[0] = lengths
    for j in range(text.size):
        token = text[j]
        row = masks[token] if token < alphabet else none
        column = out[j + 1]
        for lane in range(lanes):
            pv[lane], mv[lane], delta = _advance(row[lane], pv[lane], mv[lane], 0, last[lane])
            score[lane] += delta
            column[lane] = score[lane]


@njit(cache=False)
def _nearest_start(backward: np.ndarray, m: int, text: np.ndarray, end: int, distance: int, plus: np.ndarray,
                   minus: np.ndarray) -> int:
    """Start s of the span ``text[s:end]`` at edit ``distance`` (the least over every start) from a query of ``m``
    tokens whose length is nearest m, the shorter on a tie.

    ``backward``: the reversed query's (n_blocks, alphabet) masks. The reversed query is aligned whole with
    ``text[end - k:end]`` read leftwards, for k = 0, 1, ... (the top row is anchored: +1 enters every column),
    up to m + distance tokens (no longer span reaches the distance), stopping once no longer span can be
    nearer m. ``plus`` / ``minus``: (n_blocks,) uint64 scratch for queries of more than one block.
    """
    one_word = backward.shape[0] == 1
    row, alphabet = backward[0], backward.shape[1]
    pv, mv, last = ~np.uint64(0), np.uint64(0), _ONE << np.uint64(m - 1)
    plus[:], minus[:] = ~np.uint64(0), np.uint64(0)
    score = m  # k = 0: the empty span
    pick = 0 if score == distance else -1
    for k in range(1, min(end, m + distance) + 1):
        if pick >= 0 and k - m >= abs(pick - m):
            break
        token = text[end - k]
        if one_word:
            pv, mv, delta = _advance(row[token] if token < alphabet else np.uint64(0), pv, mv, 1, last)
        else:
            delta = _advance_blocks(backward, m, token, plus, minus, 1)
        score += delta
        if score == distance and (pick < 0 or abs(k - m) < abs(pick - m)):
            pick = k
    return end - pick


@njit(cache=False)
def select_spans(distance: np.ndarray, start: np.ndarray, end: np.ndarray, query_length: int,
                 chosen: np.ndarray) -> None:
    """Greedy choice of non-overlapping, non-empty spans among candidates (shared with subsequence DTW).

    Candidates are taken in order of increasing ``distance``, then of ``|end - start - query_length|``, then
    of position in the arrays; a candidate is skipped when it is empty or overlaps one already taken. Each
    round takes the first candidate in that order that overlaps none taken so far, which is the same choice
    as walking the sorted list, without sorting (``max_hits`` passes over the c candidates).

    Args:
        distance: (c,) int or float; start, end: (c,) int64 spans ``[start, end)``, in increasing ``end`` order.
        chosen: (max_hits,) int64, filled with the chosen candidates' positions, best first; -1 = none.
    """
    chosen[:] = -1
    for taken in range(chosen.size):
        pick, pick_gap = -1, 0
        for c in range(distance.size):
            gap = abs(end[c] - start[c] - query_length)
            if start[c] == end[c] or (pick >= 0 and (distance[c], gap) >= (distance[pick], pick_gap)):
                continue
            overlaps = False
            for h in range(taken):
                if start[c] < end[chosen[h]] and start[chosen[h]] < end[c]:
                    overlaps = True
            if not overlaps:
                pick, pick_gap = c, gap
        if pick < 0:
            return
        chosen[taken] = pick


@njit(cache=False)
def _choose_spans(best: np.ndarray, backward: np.ndarray, m: int, text: np.ndarray, max_distance: int,
                  scratch: np.ndarray, plus: np.ndarray, minus: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """A query's detections in one recording: :func:`select_spans` over every end where the best distance is at
    most ``max_distance`` and no greater than at either neighbouring end, each with its start
    (:func:`_nearest_start`).

    Args:
        best: (n + 1,) the query's :func:`_end_distances` over ``text``.
        backward: the reversed query's (n_blocks, alphabet) masks.
        scratch: (3, >= n) int64, reused across calls; plus / minus: (n_blocks,) uint64 scratch.
        chosen: (max_hits,) int64, receives the chosen candidates' positions, best first; -1 = none.

    Returns:
        (3, c) view of ``scratch``: the candidates' (distance, start, end), in increasing end order.
    """
    n = text.size
    c = 0
    for j in range(1, n + 1):
        if best[j] > max_distance:
            continue
        if (j == 1 or best[j] <= best[j - 1]) and (j == n or best[j] <= best[j + 1]):  # the distance dips here
            scratch[0, c], scratch[1, c] = best[j], _nearest_start(backward, m, text, j, best[j], plus, minus)
            scratch[2, c] = j
            c += 1
    select_spans(scratch[0, :c], scratch[1, :c], scratch[2, :c], m, chosen)
    return scratch[:, :c]


@njit(parallel=True, cache=False)
def _spot_kernel(lanes: np.ndarray, lane_queries: np.ndarray, lane_lengths: np.ndarray, alone: np.ndarray,
                 forward: np.ndarray, backward: np.ndarray, lengths: np.ndarray, max_distances: np.ndarray,
                 flat: np.ndarray, offsets: np.ndarray, max_hits: int) -> np.ndarray:
    """(n_queries, n_recordings, max_hits, 3) int64 (distance, start, end) of each query's best spans in each
    recording with distance <= its ``max_distances`` entry; -1 rows = none.

    Queries of one word run in groups (``lanes`` (n_groups, alphabet, width), ``lane_queries`` and
    ``lane_lengths`` (n_groups, width), from :func:`_lane_groups`); the queries ``alone`` run one by one with
    their ``forward`` masks. ``backward``: every query's reversed masks (:func:`pattern_masks`). Work items,
    (group or lone query) x recording, are shared among threads in contiguous chunks, each with its own
    scratch memory.
    """
    n_queries, n_recordings, n_groups = lengths.size, offsets.size - 1, lane_queries.shape[0]
    width = lane_queries.shape[1]
    n_items = (n_groups + alone.size) * n_recordings
    out = np.full((n_queries, n_recordings, max_hits, 3), -1, dtype=np.int64)
    longest = np.max(np.diff(offsets)) if n_recordings else 0
    n_chunks = min(n_items, 8 * get_num_threads())
    for chunk in prange(n_chunks):
        best = np.empty((longest + 1, width), dtype=np.int64)
        scratch = np.empty((3, longest), dtype=np.int64)
        plus, minus = np.empty(forward.shape[1], dtype=np.uint64), np.empty(forward.shape[1], dtype=np.uint64)
        chosen = np.empty(max_hits, dtype=np.int64)
        for item in range(chunk * n_items // n_chunks, (chunk + 1) * n_items // n_chunks):
            g, r = item // n_recordings, item % n_recordings
            text = flat[offsets[r]:offsets[r + 1]]
            if g < n_groups:
                members = lane_queries[g]
                _end_distances_lanes(lanes[g], lane_lengths[g], text, best[:text.size + 1])
            else:
                members = alone[g - n_groups:g - n_groups + 1]
                q = members[0]
                _end_distances(forward[q, :(lengths[q] + _WORD - 1) // _WORD], lengths[q], text,
                               best[:text.size + 1, 0])
            for lane in range(members.size):
                q = members[lane]
                if q < 0:
                    continue
                n_blocks = (lengths[q] + _WORD - 1) // _WORD
                found = _choose_spans(best[:text.size + 1, lane], backward[q, :n_blocks], lengths[q], text,
                                      max_distances[q], scratch, plus[:n_blocks], minus[:n_blocks], chosen)
                for h in range(max_hits):
                    if chosen[h] >= 0:
                        out[q, r, h] = found[:, chosen[h]]
    return out


def _lane_groups(forward: np.ndarray,
                 lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Groups of up to :data:`LANES` queries of one word for :func:`_end_distances_lanes`, when there are at
    least two such queries: their masks (n_groups, alphabet, width) uint64, C-contiguous per group; their
    query indices (n_groups, width), -1 = an empty lane (the fewest groups, filled as evenly as they can be);
    their lengths (n_groups, width), 1 for an empty lane (zero masks: it matches nothing). Fourth, the queries
    searched alone (longer ones, or a single short one)."""
    short = np.flatnonzero(lengths <= _WORD)
    if short.size < 2:
        short = short[:0]
    n_groups = -(-short.size // LANES)
    width = max(1, -(-short.size // max(1, n_groups)))  # as even as the groups can be
    lane_queries = np.full(n_groups * width, -1, dtype=np.int64)
    lane_queries[:short.size] = short
    lane_queries = lane_queries.reshape(n_groups, width)
    lanes = np.zeros((n_groups, forward.shape[2], width), dtype=np.uint64)
    for g, members in enumerate(lane_queries):
        used = members >= 0
        lanes[g][:, used] = forward[members[used], 0, :].T
    lane_lengths = np.where(lane_queries >= 0, lengths[lane_queries], 1)
    return lanes, lane_queries, lane_lengths, np.setdiff1d(np.arange(lengths.size), short)


def _search(queries: Sequence[np.ndarray], flat: np.ndarray, offsets: np.ndarray, max_hits: int,
            threshold: float) -> np.ndarray:
    """:func:`_spot_kernel` for non-empty queries and a score threshold: (n_queries, n_recordings, max_hits, 3)."""
    lengths = np.array([q.size for q in queries], dtype=np.int64)
    slack = 1.0 - max(0.0, threshold)  # score >= threshold  <=>  distance <= slack * m
    max_distances = np.minimum(lengths, np.floor(slack * lengths + 1e-9).astype(np.int64))
    forward, backward = pattern_masks(queries)
    return _spot_kernel(*_lane_groups(forward, lengths), forward, backward, lengths, max_distances, flat, offsets,
                        max_hits)


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
    return _matches(_search([q], text, np.array([0, text.size], dtype=np.int64), max_hits, threshold)[0, 0], q.size,
                    threshold)


def substring_similarity_matrix(queries: Sequence[str], choices: Sequence[str]) -> np.ndarray:
    """Similarities ``1 - d / m`` of each query's best placement inside each choice (the query used whole, any
    non-empty stretch of the choice), for strings encoded by :func:`wav2tok_core.search.index.encode_tokens`:
    (len(queries), len(choices)) float64; 0 for an empty query or choice."""
    index = RecordingIndex.from_strings({str(i): [ord(c) for c in s] for i, s in enumerate(choices)})
    scores = np.zeros((len(queries), len(choices)))
    rows = [i for i, query in enumerate(queries) if query]
    if rows and len(choices):
        arrays = [np.array([ord(c) for c in queries[i]], dtype=np.int64) for i in rows]
        best = _search(arrays, index.tokens, index.offsets, 1, 0.0)[:, :, 0]  # (n_rows, n_choices, 3)
        lengths = np.array([a.size for a in arrays])[:, None]
        scores[rows] = np.where(best[:, :, 1] >= 0, 1.0 - best[:, :, 0] / lengths, 0.0)
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


@dataclass(frozen=True)
class Hits:
    """Detections of :meth:`RecordingIndex.hits` as (h,) arrays: each one's query (position among the queries
    given) and recording (position in the index), score, token span ``[start, end)`` in its recording, and
    that span in seconds when the index has token times."""

    query: np.ndarray
    recording: np.ndarray
    score: np.ndarray
    start: np.ndarray
    end: np.ndarray
    start_s: np.ndarray | None = None
    end_s: np.ndarray | None = None


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
        rows = np.array([position[rid] for rid in ids], dtype=np.int64)
        sizes = np.diff(self.offsets)[rows]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        take = np.repeat(self.offsets[rows] - offsets[:-1], sizes) + np.arange(offsets[-1])  # tokens kept, in order
        times = (None, None) if self.starts_s is None or self.ends_s is None else (self.starts_s[take], self.ends_s[take])
        return RecordingIndex(list(ids), [self.metadata[r] for r in rows.tolist()], self.tokens[take], offsets, *times)

    def hits(self, queries: Mapping[str, Sequence[int]], threshold: float = 0.5, max_hits: int = 1) -> "Hits":
        """Spot every query in every recording, as arrays (see :meth:`spot` for objects).

        Args:
            queries: query id -> non-empty token string.
            threshold: keep detections with score >= threshold.
            max_hits: most detections per (query, recording) pair.
        """
        if max_hits < 1:
            raise ValueError("max_hits must be >= 1")
        arrays = [_as_array(query) for query in queries.values()]
        for qid, q in zip(queries, arrays):
            if q.size == 0:
                raise ValueError(f"query {qid!r} is empty")
        if not arrays:
            return Hits(*(np.zeros(0, dtype=np.int64),) * 2, np.zeros(0), *(np.zeros(0, dtype=np.int64),) * 2)
        rows = _search(arrays, self.tokens, self.offsets, max_hits, threshold)  # (n_queries, n_recordings, max_hits, 3)
        query, recording, _ = np.indices(rows.shape[:3]).reshape(3, -1)
        distance, start, end = rows.reshape(-1, 3).T
        score = 1.0 - distance / np.array([q.size for q in arrays])[query]
        keep = (start >= 0) & (score >= threshold)
        found = Hits(query[keep], recording[keep], score[keep], start[keep], end[keep])
        if self.starts_s is None or self.ends_s is None:
            return found
        first = self.offsets[found.recording]
        return replace(found, start_s=self.starts_s[first + found.start], end_s=self.ends_s[first + found.end - 1])

    def spot(self, queries: Mapping[str, Sequence[int]], threshold: float = 0.5, max_hits: int = 1) -> list[Detection]:
        """Spot every query in every recording (:meth:`hits`).

        Returns:
            Detections sorted by score descending, then query id, recording id and start; with times when the
            index has them.
        """
        found, qids = self.hits(queries, threshold, max_hits), list(queries)
        timed = found.start_s is not None and found.end_s is not None
        times = zip(found.start_s.tolist(), found.end_s.tolist()) if timed else [(None, None)] * found.score.size
        detections = [Detection(qids[q], self.ids[r], s, b, e, *t) for q, r, s, b, e, t in
                      zip(found.query.tolist(), found.recording.tolist(), found.score.tolist(), found.start.tolist(),
                          found.end.tolist(), times)]
        detections.sort(key=lambda d: (-d.score, d.query_id, d.recording_id, d.start))
        return detections


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
