"""DTW against brute force over all warping paths, subsequence DTW, and the k-means token baseline."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wav2tok_core.eval.baselines import (KMeansTokenizer, dtw_distance, dtw_partners, dtw_score_matrix, subsequence_dtw,
                                         subsequence_dtw_hits, vq_score_matrix)
from wav2tok_core.model.tokens import collapse


def local_cost(x: np.ndarray, y: np.ndarray, metric: str) -> float:
    if metric == "euclidean":
        return float(np.linalg.norm(x - y))
    norms = np.linalg.norm(x) * np.linalg.norm(y)
    return 1.0 - float(x @ y) / norms if norms > 0 else 1.0


def all_paths(i: int, j: int) -> list[list[tuple[int, int]]]:
    """Every warping path from (0, 0) to (i, j) with steps (1, 0), (0, 1), (1, 1)."""
    if i == 0 and j == 0:
        return [[(0, 0)]]
    previous = [(i - 1, j), (i, j - 1), (i - 1, j - 1)]
    return [path + [(i, j)] for pi, pj in previous if pi >= 0 and pj >= 0 for path in all_paths(pi, pj)]


def brute_force(a: np.ndarray, b: np.ndarray, metric: str, first_column: int = 0) -> tuple[float, int]:
    """Lexicographically least (accumulated cost, path length) over all paths from (0, first_column)."""
    shifted = b[first_column:]
    return min(
        (sum(local_cost(a[p], shifted[q], metric) for p, q in path), len(path))
        for path in all_paths(len(a) - 1, len(shifted) - 1)
    )


def reference_subsequence(a: np.ndarray, b: np.ndarray, metric: str) -> tuple[float, int, int]:
    """Per end frame the best (cost, length) over all starts; then the end with the least cost / length."""
    best = None
    for end in range(1, len(b) + 1):
        cost, length, start = min(brute_force(a, b[:end], metric, s) + (s,) for s in range(end))
        if best is None or cost / length < best[0]:
            best = (cost / length, start, end)
    return best


arrays = st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 3), st.integers(0, 2**32 - 1))


@settings(max_examples=60, deadline=None)
@given(arrays, st.sampled_from(["euclidean", "cosine"]))
def test_dtw_equals_brute_force(shape: tuple[int, int, int, int], metric: str) -> None:
    m, n, f, seed = shape
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((m, f)), rng.standard_normal((n, f))
    cost, length = brute_force(a, b, metric)
    assert dtw_distance(a, b, metric) == pytest.approx(cost / length, abs=1e-9)


def test_path_length_normalisation_hand_case() -> None:
    # best path (0,0) (1,0) (2,1) (2,2) costs 1 + 1 + 0 + 0 = 2 over 4 cells
    a, b = np.array([[0.0], [0.0], [9.0]]), np.array([[1.0], [9.0], [9.0]])
    assert dtw_distance(a, b) == pytest.approx(0.5)


def test_equal_cost_paths_prefer_the_shorter_one() -> None:
    # the diagonal and both 3-cell paths all cost 2; the 2-cell diagonal wins: 2 / 2
    assert dtw_distance(np.array([[0.0], [1.0]]), np.array([[1.0], [0.0]])) == pytest.approx(1.0)


def test_score_matrix_is_negated_distance_and_self_match_is_best() -> None:
    rng = np.random.default_rng(0)
    sequences = [rng.standard_normal((rng.integers(3, 9), 4)).astype(np.float32) for _ in range(5)]
    scores = dtw_score_matrix(sequences[:3], sequences)
    assert scores.shape == (3, 5)
    for i in range(3):
        assert scores[i, i] == 0.0 and np.argmax(scores[i]) == i
        for j in range(5):
            assert scores[i, j] == pytest.approx(-dtw_distance(sequences[i], sequences[j]))


def test_cosine_treats_zero_frames_as_maximally_far() -> None:
    assert dtw_distance(np.zeros((2, 3)), np.ones((3, 3)), metric="cosine") == pytest.approx(1.0)


def test_invalid_inputs_are_rejected() -> None:
    with pytest.raises(ValueError):
        dtw_score_matrix([np.zeros((2, 3))], [np.zeros((2, 4))])
    with pytest.raises(ValueError):
        dtw_score_matrix([np.zeros((0, 3))], [np.zeros((2, 3))])
    with pytest.raises(ValueError):
        dtw_distance(np.zeros((2, 3)), np.zeros((2, 3)), metric="manhattan")


@settings(max_examples=40, deadline=None)
@given(arrays)
def test_subsequence_dtw_equals_brute_force(shape: tuple[int, int, int, int]) -> None:
    m, n, f, seed = shape
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((m, f)), rng.standard_normal((n, f))
    cost, start, end = subsequence_dtw(a, b)
    expected_cost, expected_start, expected_end = reference_subsequence(a, b, "euclidean")
    assert cost == pytest.approx(expected_cost, abs=1e-9)
    if (start, end) != (expected_start, expected_end):  # a tie: the span returned must be optimal too
        span_cost, span_length = brute_force(a, b[:end], "euclidean", start)
        assert span_cost / span_length == pytest.approx(expected_cost, abs=1e-9)


def test_subsequence_dtw_finds_planted_segments() -> None:
    rng = np.random.default_rng(3)
    recordings = [rng.standard_normal((120, 13)) for _ in range(3)]
    query = recordings[1][40:70] + 0.01 * rng.standard_normal((30, 13))
    recordings[1][85:115] = query + 0.01 * rng.standard_normal((30, 13))  # a second occurrence, after the first
    distance, start, end = subsequence_dtw_hits([query], recordings, max_hits=3)
    assert distance.shape == start.shape == end.shape == (1, 3, 3)
    assert int(np.argmin(distance[0, :, 0])) == 1
    assert sorted(zip(start[0, 1, :2], end[0, 1, :2])) == [(40, 70), (85, 115)]
    assert distance[0, 1, 1] < 0.1 < distance[0, 0, 0] <= distance[0, 0, 1]
    spans = sorted(zip(start[0, 0], end[0, 0]))
    assert all(e1 <= s2 for (_, e1), (s2, _) in zip(spans, spans[1:]))  # placements never overlap


def blob_features(seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Three well separated 2-D blobs; sequences of blob visits."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    frames = np.concatenate([c + 0.1 * rng.standard_normal((100, 2)) for c in centres])
    visits = [[0, 0, 0, 1, 1, 0], [2, 2, 1, 1, 1], [0, 0, 0, 1, 1, 0]]
    sequences = [centres[v] + 0.1 * rng.standard_normal((len(v), 2)) for v in visits]
    return frames, sequences


def test_collapse_repeats() -> None:
    assert collapse(np.array([3, 3, 1, 1, 3])) == [3, 1, 3] and collapse(np.array([])) == []


def test_kmeans_tokenizer_collapses_and_is_deterministic() -> None:
    frames, sequences = blob_features(0)
    tokenizer = KMeansTokenizer(num_tokens=3, seed=7).fit([frames])
    tokens = tokenizer.tokenize(sequences)
    a, b = tokens[0][0], tokens[0][1]
    assert tokens[0] == [a, b, a] and a != b and len(tokens[1]) == 2 and tokens[1][1] == b
    assert tokens == KMeansTokenizer(num_tokens=3, seed=7).fit([frames]).tokenize(sequences)
    assert tokenizer.centroids.shape == (3, 2)
    scores = vq_score_matrix(tokenizer, sequences[:1], sequences)
    assert scores[0, 0] == scores[0, 2] == 1.0 and scores[0, 1] < 1.0


def test_kmeans_tokenizer_needs_fitting_and_enough_frames() -> None:
    with pytest.raises(RuntimeError):
        KMeansTokenizer(num_tokens=2).tokenize([np.zeros((3, 2))])
    with pytest.raises(ValueError):
        KMeansTokenizer(num_tokens=10).fit([np.zeros((3, 2))])


def brute_force_partners(a: np.ndarray, b: np.ndarray) -> tuple[list[int], list[int]]:
    """Enumerate every monotone path of (1,1)/(1,0)/(0,1) steps; the cheapest path's middle partners."""
    import itertools
    m, n = len(a), len(b)
    cost = np.linalg.norm(a[:, None] - b[None], axis=-1)
    best, best_path = np.inf, None
    for moves in itertools.product(range(3), repeat=m + n - 2):
        i = j = 0
        path = [(0, 0)]
        for step in moves:
            i, j = (i + 1, j + 1) if step == 0 else (i + 1, j) if step == 1 else (i, j + 1)
            if i >= m or j >= n:
                break
            path.append((i, j))
            if (i, j) == (m - 1, n - 1):
                break
        if path[-1] != (m - 1, n - 1):
            continue
        total = sum(cost[p] for p in path)
        if total < best - 1e-12:
            best, best_path = total, path
    a_to_b = [int(np.floor(np.mean([q for p, q in best_path if p == i]) + 0.5)) for i in range(m)]
    b_to_a = [int(np.floor(np.mean([p for p, q in best_path if q == j]) + 0.5)) for j in range(n)]
    return a_to_b, b_to_a


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(0, 10_000))
def test_dtw_partners_follow_the_cheapest_path(m: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(m, 2)), rng.normal(size=(n, 2))
    a_to_b, b_to_a = dtw_partners([a], [b])
    expected = brute_force_partners(a, b)  # random real costs: no two paths cost the same
    assert (list(a_to_b[0]), list(b_to_a[0])) == expected


def test_dtw_partners_recover_a_known_time_warp() -> None:
    rng = np.random.default_rng(0)
    a = np.cumsum(rng.normal(size=(30, 3)), axis=0)  # a smooth random walk
    b = np.repeat(a, 2, axis=0)  # every frame twice: b[2i] and b[2i + 1] match a[i]
    a_to_b, b_to_a = dtw_partners([a, b], [b, a])
    assert np.array_equal(b_to_a[0], np.arange(60) // 2)
    assert np.all(np.abs(a_to_b[0] - (2 * np.arange(30) + 0.5)) <= 0.5)
    assert np.array_equal(a_to_b[1], np.arange(60) // 2)  # the second pair is the first reversed
