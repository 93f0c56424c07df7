"""Baselines on frame features: DTW, subsequence DTW, k-means tokens + edit distance, and note alignment.

Features are ``list[np.ndarray]``, each (T_i, F) with T_i >= 1; normalising them (e.g. per-utterance
mean/variance) is the caller's job.

DTW details (shared by full and subsequence DTW):

* local cost ``"euclidean"``: ``||a_i - b_j||``; ``"cosine"``: ``1 - cos(a_i, b_j)`` (a zero frame
  has cosine cost 1 to everything).
* steps (1, 0), (0, 1), (1, 1), each cell's cost counted once; accumulated cost D is minimised.
* the path length L (number of cells on the path) is tracked alongside; among predecessors with
  exactly equal D the one with the shorter path wins, so (D, L) is the lexicographic minimum over
  all warping paths.
* the reported distance is ``D / L``; similarities for :mod:`wav2tok_core.metrics` are ``-D / L``.
* subsequence DTW lets the query start and end at any recording frame; the placements reported are the
  ends with the least ``D / L``, without overlaps (:func:`subsequence_dtw_hits`).

The numba kernels are compiled on first use (a few seconds per process).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from numba import njit, prange
from sklearn.cluster import MiniBatchKMeans

from ..model.tokens import collapse
from ..search.index import edit_similarity_matrix
from ..search.spotting import select_spans

METRICS = ("euclidean", "cosine")


@njit(cache=False, fastmath=True)
def _local_cost(a: np.ndarray, b: np.ndarray, i: int, j: int, cosine: bool) -> float:
    """Cost of frames a[i] and b[j]; for cosine the rows are already unit length (or zero)."""
    total = 0.0
    if cosine:
        for f in range(a.shape[1]):
            total += a[i, f] * b[j, f]
        return 1.0 - total
    for f in range(a.shape[1]):
        diff = a[i, f] - b[j, f]
        total += diff * diff
    return np.sqrt(total)


@njit(cache=False)
def _better(cost: float, length: int, best_cost: float, best_length: int) -> bool:
    """Lexicographic (cost, length) comparison."""
    return cost < best_cost or (cost == best_cost and length < best_length)


@njit(cache=False)
def _dtw_last_row(a: np.ndarray, b: np.ndarray, cosine: bool, subsequence: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DTW of a (m, F) against b (n, F), up to the last query frame: for every end frame j of b, the path's
    accumulated cost, its length and its start frame in b, three (n,) arrays (the start is only free in
    subsequence mode)."""
    m, n = a.shape[0], b.shape[0]
    cost = np.empty(n)
    length = np.empty(n, dtype=np.int64)
    origin = np.empty(n, dtype=np.int64)
    for j in range(n):
        c = _local_cost(a, b, 0, j, cosine)
        if subsequence or j == 0:
            cost[j], length[j], origin[j] = c, 1, j
        else:
            cost[j], length[j], origin[j] = cost[j - 1] + c, length[j - 1] + 1, 0
    for i in range(1, m):
        diag_cost, diag_length, diag_origin = cost[0], length[0], origin[0]
        cost[0] += _local_cost(a, b, i, 0, cosine)
        length[0] += 1
        for j in range(1, n):
            best_cost, best_length, best_origin = diag_cost, diag_length, diag_origin
            if _better(cost[j], length[j], best_cost, best_length):
                best_cost, best_length, best_origin = cost[j], length[j], origin[j]
            if _better(cost[j - 1], length[j - 1], best_cost, best_length):
                best_cost, best_length, best_origin = cost[j - 1], length[j - 1], origin[j - 1]
            diag_cost, diag_length, diag_origin = cost[j], length[j], origin[j]
            cost[j] = best_cost + _local_cost(a, b, i, j, cosine)
            length[j] = best_length + 1
            origin[j] = best_origin
    return cost, length, origin


@njit(cache=False)
def _dtw_pair(a: np.ndarray, b: np.ndarray, cosine: bool) -> float:
    """Path-normalised DTW distance D / L of a (m, F) and b (n, F)."""
    cost, length, _ = _dtw_last_row(a, b, cosine, False)
    return cost[-1] / length[-1]


@njit(parallel=True, cache=False)
def _dtw_all_pairs(q_flat: np.ndarray, q_offsets: np.ndarray, d_flat: np.ndarray, d_offsets: np.ndarray,
                   cosine: bool) -> np.ndarray:
    """DTW distance of every query against every database sequence, (n_q, n_d)."""
    n_q, n_d = q_offsets.size - 1, d_offsets.size - 1
    distance = np.empty((n_q, n_d))
    for pair in prange(n_q * n_d):
        qi, di = pair // n_d, pair % n_d
        distance[qi, di] = _dtw_pair(q_flat[q_offsets[qi]:q_offsets[qi + 1]], d_flat[d_offsets[di]:d_offsets[di + 1]],
                                     cosine)
    return distance


@njit(parallel=True, cache=False)
def _subsequence_hits(q_flat: np.ndarray, q_offsets: np.ndarray, d_flat: np.ndarray, d_offsets: np.ndarray,
                      cosine: bool, max_hits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to ``max_hits`` non-overlapping placements of every query in every recording, best D / L first
    (:func:`wav2tok_core.search.spotting.select_spans` over the ends of the last DTW row): distance (n_q, n_d,
    max_hits) float, NaN = none; start and end frames, same shape, int64, -1 = none."""
    n_q, n_d = q_offsets.size - 1, d_offsets.size - 1
    distance = np.full((n_q, n_d, max_hits), np.nan)
    start = np.full((n_q, n_d, max_hits), -1, dtype=np.int64)
    end = np.full((n_q, n_d, max_hits), -1, dtype=np.int64)
    for pair in prange(n_q * n_d):
        qi, di = pair // n_d, pair % n_d
        m = q_offsets[qi + 1] - q_offsets[qi]
        cost, length, origin = _dtw_last_row(q_flat[q_offsets[qi]:q_offsets[qi + 1]],
                                             d_flat[d_offsets[di]:d_offsets[di + 1]], cosine, True)
        ends = np.arange(1, cost.size + 1)
        normalised = cost / length
        chosen = np.empty(max_hits, dtype=np.int64)
        select_spans(normalised, origin, ends, m, chosen)
        for h in range(max_hits):
            c = chosen[h]
            if c >= 0:
                distance[qi, di, h], start[qi, di, h], end[qi, di, h] = normalised[c], origin[c], ends[c]
    return distance, start, end


@njit(cache=False)
def _dtw_partners(a: np.ndarray, b: np.ndarray, cosine: bool, a_to_b: np.ndarray, b_to_a: np.ndarray) -> None:
    """Align a (m, F) with b (n, F) by DTW (steps (1, 1), (1, 0), (0, 1)) and write, for every frame of each
    side, the middle frame of the other side it is matched to on the optimal path."""
    m, n = a.shape[0], b.shape[0]
    acc = np.full((m + 1, n + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, m + 1):
        for j in range(1, n + 1):
            acc[i, j] = _local_cost(a, b, i - 1, j - 1, cosine) + min(acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
    sum_b, count_b = np.zeros(m), np.zeros(m)
    sum_a, count_a = np.zeros(n), np.zeros(n)
    i, j = m, n
    while i > 0 and j > 0:
        sum_b[i - 1] += j - 1
        count_b[i - 1] += 1
        sum_a[j - 1] += i - 1
        count_a[j - 1] += 1
        diagonal, up, left = acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]
        if diagonal <= up and diagonal <= left:  # prefer the diagonal on ties
            i, j = i - 1, j - 1
        elif up <= left:
            i -= 1
        else:
            j -= 1
    for i in range(m):
        a_to_b[i] = int(np.floor(sum_b[i] / count_b[i] + 0.5))
    for j in range(n):
        b_to_a[j] = int(np.floor(sum_a[j] / count_a[j] + 0.5))


@njit(parallel=True, cache=False)
def _dtw_partners_batch(a_flat: np.ndarray, a_offsets: np.ndarray, b_flat: np.ndarray, b_offsets: np.ndarray,
                        cosine: bool) -> tuple[np.ndarray, np.ndarray]:
    a_to_b = np.empty(a_offsets[-1], dtype=np.int64)
    b_to_a = np.empty(b_offsets[-1], dtype=np.int64)
    for k in prange(a_offsets.size - 1):
        _dtw_partners(a_flat[a_offsets[k]:a_offsets[k + 1]], b_flat[b_offsets[k]:b_offsets[k + 1]], cosine,
                      a_to_b[a_offsets[k]:a_offsets[k + 1]], b_to_a[b_offsets[k]:b_offsets[k + 1]])
    return a_to_b, b_to_a


def dtw_partners(a: Sequence[np.ndarray], b: Sequence[np.ndarray],
                 metric: str = "euclidean") -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frame alignment of the pairs ``(a[k] (m_k, F), b[k] (n_k, F))`` by DTW, all pairs in parallel.

    Returns:
        ``(a_to_b, b_to_a)``: for pair k, ``a_to_b[k]`` ``(m_k,)`` holds for every frame of ``a[k]`` the frame of
        ``b[k]`` it is aligned with (the middle one when the path matches it to several), and ``b_to_a[k]``
        ``(n_k,)`` the converse.
    """
    if len(a) != len(b):
        raise ValueError(f"dtw_partners needs pairs: {len(a)} and {len(b)} sequences")
    a_flat, a_offsets = _stack(a, metric)
    b_flat, b_offsets = _stack(b, metric, dim=a_flat.shape[1] if len(a) else None)
    if not len(a):
        return [], []
    a_to_b, b_to_a = _dtw_partners_batch(a_flat, a_offsets, b_flat, b_offsets, metric == "cosine")
    return np.split(a_to_b, a_offsets[1:-1]), np.split(b_to_a, b_offsets[1:-1])


def _stack(features: Sequence[np.ndarray], metric: str, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate (T_i, F) sequences into float64 (sum T, F) plus (n + 1,) offsets; unit rows for cosine."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    arrays = [np.asarray(f, dtype=np.float64) for f in features]
    for arr in arrays:
        if arr.ndim != 2 or arr.shape[0] == 0 or (dim is not None and arr.shape[1] != dim):
            raise ValueError(f"each feature array must be (T >= 1, {dim or 'F'}), got {arr.shape}")
    dims = {arr.shape[1] for arr in arrays}
    if len(dims) > 1:
        raise ValueError(f"feature arrays have different widths {sorted(dims)}")
    flat = np.ascontiguousarray(np.concatenate(arrays)) if arrays else np.zeros((0, dim or 1))
    if metric == "cosine":
        norms = np.linalg.norm(flat, axis=1, keepdims=True)
        flat = np.divide(flat, norms, out=np.zeros_like(flat), where=norms > 0)
    offsets = np.concatenate([[0], np.cumsum([arr.shape[0] for arr in arrays])]).astype(np.int64)
    return flat, offsets


def _stack_pair(queries: Sequence[np.ndarray], database: Sequence[np.ndarray],
                metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Both sides stacked for the kernels, checking that feature widths agree."""
    q_flat, q_offsets = _stack(queries, metric)
    d_flat, d_offsets = _stack(database, metric, dim=q_flat.shape[1] if len(queries) else None)
    return q_flat, q_offsets, d_flat, d_offsets


NOTE_PITCH_CAP = 6.0  # note alignment: interval differences count up to this many semitones ...
NOTE_DURATION_WEIGHT = 0.5  # ... duration-ratio differences (up to 2 octaves of log2) count this much ...
NOTE_GAP = 0.75  # ... and skipping a note of either side costs this


@njit(cache=False)
def _note_cost(q: np.ndarray, t: np.ndarray) -> float:
    """Substitution cost of two notes' (interval, log2 duration ratio): 0 to 1 + NOTE_DURATION_WEIGHT."""
    if np.isnan(q[0]) or np.isnan(t[0]):
        return 1.0 + NOTE_DURATION_WEIGHT
    return (min(abs(q[0] - t[0]), NOTE_PITCH_CAP) / NOTE_PITCH_CAP
            + NOTE_DURATION_WEIGHT * min(abs(q[1] - t[1]), 2.0) / 2.0)


@njit(parallel=True, cache=False)
def _note_alignment_all_pairs(q_flat: np.ndarray, q_offsets: np.ndarray, d_flat: np.ndarray,
                              d_offsets: np.ndarray) -> np.ndarray:
    """Least cost of aligning every query's notes, all of them, with any stretch of every database sequence's
    notes, divided by the query's note count: (n_q, n_d)."""
    n_q, n_d = q_offsets.size - 1, d_offsets.size - 1
    cost = np.empty((n_q, n_d))
    for pair in prange(n_q * n_d):
        qi, di = pair // n_d, pair % n_d
        a, b = q_flat[q_offsets[qi]:q_offsets[qi + 1]], d_flat[d_offsets[di]:d_offsets[di + 1]]
        prev = np.zeros(b.shape[0] + 1)  # row 0: the stretch may start anywhere
        for i in range(1, a.shape[0] + 1):
            row = np.empty(b.shape[0] + 1)
            row[0] = i * NOTE_GAP
            for j in range(1, b.shape[0] + 1):
                substitute = prev[j - 1] + _note_cost(a[i - 1], b[j - 1])
                row[j] = min(substitute, prev[j] + NOTE_GAP, row[j - 1] + NOTE_GAP)
            prev = row
        cost[qi, di] = prev.min() / a.shape[0]
    return cost


def note_alignment_scores(queries: Sequence[np.ndarray], database: Sequence[np.ndarray]) -> np.ndarray:
    """Similarities ``-cost / n_query_notes`` of note sequences (each ``(n_i, 2)``: interval and log2 duration
    ratio, :func:`wav2tok_core.audio.notes.note_intervals`), shape (n_queries, n_database). The query is
    aligned whole against any stretch of the database sequence (a hum may cover part of a tune): substitution
    costs grow with the interval difference (capped at ``NOTE_PITCH_CAP`` semitones) and the duration-ratio
    difference, skipping a note costs ``NOTE_GAP``."""
    if not len(queries) or not len(database):
        return np.zeros((len(queries), len(database)))
    return 0.0 - _note_alignment_all_pairs(*_stack_pair(queries, database, "euclidean"))


def dtw_distance(a: np.ndarray, b: np.ndarray, metric: str = "euclidean") -> float:
    """Path-length-normalised DTW distance of a (m, F) and b (n, F)."""
    return -float(dtw_score_matrix([a], [b], metric)[0, 0])


def dtw_score_matrix(queries: Sequence[np.ndarray], database: Sequence[np.ndarray], metric: str = "euclidean") -> np.ndarray:
    """Similarities ``-D / L`` of every query against every database sequence, shape (n_queries, n_database)."""
    stacked = _stack_pair(queries, database, metric)
    if not len(queries) or not len(database):
        return np.zeros((len(queries), len(database)))
    return 0.0 - _dtw_all_pairs(*stacked, metric == "cosine")


def subsequence_dtw_hits(queries: Sequence[np.ndarray], recordings: Sequence[np.ndarray], max_hits: int = 1,
                         metric: str = "euclidean") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to ``max_hits`` non-overlapping placements of every query (m_i, F) in every recording (n_j, F), by
    subsequence DTW, best first: distance ``D / L`` (n_queries, n_recordings, max_hits), NaN = none; start
    frame and end frame (exclusive), same shape, int64, -1 = none."""
    if max_hits < 1:
        raise ValueError("max_hits must be >= 1")
    stacked = _stack_pair(queries, recordings, metric)
    if not len(queries) or not len(recordings):
        shape = (len(queries), len(recordings), max_hits)
        return np.zeros(shape), np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64)
    return _subsequence_hits(*stacked, metric == "cosine", max_hits)


def subsequence_dtw(query: np.ndarray, recording: np.ndarray, metric: str = "euclidean") -> tuple[float, int, int]:
    """Best placement of query (m, F) inside recording (n, F): (D / L, start frame, end frame exclusive)."""
    distance, start, end = subsequence_dtw_hits([query], [recording], 1, metric)
    return float(distance[0, 0, 0]), int(start[0, 0, 0]), int(end[0, 0, 0])


class KMeansTokenizer:
    """Vector-quantisation baseline: nearest k-means centroid per frame, consecutive repeats collapsed."""

    def __init__(self, num_tokens: int, seed: int = 0, batch_size: int = 4096) -> None:
        self.num_tokens = num_tokens
        self.seed = seed
        self.batch_size = batch_size
        self._kmeans: MiniBatchKMeans | None = None

    def fit(self, features: Sequence[np.ndarray]) -> "KMeansTokenizer":
        """Fit the codebook on all frames of ``features`` (list of (T, F))."""
        frames = np.concatenate([np.asarray(f, dtype=np.float32) for f in features])
        if frames.shape[0] < self.num_tokens:
            raise ValueError(f"need at least {self.num_tokens} training frames, got {frames.shape[0]}")
        kmeans = MiniBatchKMeans(n_clusters=self.num_tokens, random_state=self.seed, batch_size=self.batch_size, n_init=3)
        self._kmeans = kmeans.fit(frames)
        return self

    @property
    def centroids(self) -> np.ndarray:
        """(num_tokens, F) codebook."""
        if self._kmeans is None:
            raise RuntimeError("KMeansTokenizer is not fitted")
        return self._kmeans.cluster_centers_

    def tokenize(self, features: Sequence[np.ndarray],
                 note_starts: Sequence[np.ndarray] | None = None) -> list[list[int]]:
        """Token string (collapsed centroid ids) of each (T, F) array; runs are also cut at each array's
        ``note_starts`` ``(T,)`` bool when given, as a note-level model's strings are."""
        if self._kmeans is None:
            raise RuntimeError("KMeansTokenizer is not fitted")
        if not len(features):
            return []
        arrays = [np.asarray(f, dtype=np.float32) for f in features]
        labels = self._kmeans.predict(np.concatenate(arrays))
        bounds = np.cumsum([a.shape[0] for a in arrays])[:-1]
        starts = note_starts if note_starts is not None else [None] * len(arrays)
        return [collapse(part, cut) for part, cut in zip(np.split(labels, bounds), starts)]


def vq_score_matrix(tokenizer: KMeansTokenizer, queries: Sequence[np.ndarray], database: Sequence[np.ndarray]) -> np.ndarray:
    """"k-means tokens + edit distance" baseline: (n_queries, n_database) edit similarities."""
    return edit_similarity_matrix(tokenizer.tokenize(queries), tokenizer.tokenize(database))
