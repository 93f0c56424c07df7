"""Ranking metrics (hand cases, ties, exclusions) and spotting precision/recall."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wav2tok_core.data.spotting import TrueSpan
from wav2tok_core.eval.metrics import (NIST_BETA, interval_iou, match_detections, ranked_detection_metrics, ranking_metrics,
                                       relevant_in_rank_order, term_weighted_values,
                                       spotting_pr_curve)
from wav2tok_core.search.spotting import ScoredSpan

T, F = True, False


def hand_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Six queries over four database entries; expected values are worked out in the test."""
    scores = np.array([
        [0.9, 0.8, 0.7, 0.6],  # relevant at ranks 2, 3
        [0.5, 0.5, 0.5, 0.1],  # three-way tie; pessimistic rank 3
        [0.9, 0.8, 0.7, 0.6],  # nothing relevant
        [1.0, 0.4, 0.9, 0.2],  # the query itself (entry 0) is excluded
        [1.0, 0.4, 0.9, 0.2],  # its only relevant entry is excluded
        [0.1, 0.9, 0.3, 0.2],  # relevant at rank 1
    ])
    relevance = np.array([[F, T, T, F], [T, F, F, F], [F, F, F, F], [T, T, F, F], [T, F, F, F], [F, T, F, F]])
    exclude = np.zeros_like(relevance)
    exclude[3, 0] = exclude[4, 0] = True
    return scores, relevance, exclude


def test_hand_computed_mrr_map_hits() -> None:
    result = ranking_metrics(*hand_case(), ks=(1, 2, 3))
    # reciprocal ranks 1/2, 1/3, 1/2, 1; average precisions (1/2 + 2/3)/2, 1/3, 1/2, 1
    assert result.mrr == pytest.approx((1 / 2 + 1 / 3 + 1 / 2 + 1) / 4)
    assert result.map == pytest.approx((7 / 12 + 1 / 3 + 1 / 2 + 1) / 4)
    assert result.hit_at == pytest.approx({1: 1 / 4, 2: 3 / 4, 3: 1.0})
    assert (result.n_evaluated, result.n_without_relevant) == (4, 2)


def test_exclusion_removes_entries_instead_of_demoting_them() -> None:
    scores, relevance, exclude = hand_case()
    without = ranking_metrics(scores[3:4], relevance[3:4])
    assert (without.mrr, without.map) == pytest.approx((1.0, (1 + 2 / 3) / 2))
    with_exclusion = ranking_metrics(scores[3:4], relevance[3:4], exclude[3:4])
    assert (with_exclusion.mrr, with_exclusion.map) == pytest.approx((0.5, 0.5))


def test_ties_are_pessimistic() -> None:
    constant = np.zeros((1, 5))
    relevance = np.array([[T, F, F, F, F]])
    result = ranking_metrics(constant, relevance, ks=(1, 5))
    assert result.mrr == pytest.approx(1 / 5) and result.hit_at == {1: 0.0, 5: 1.0}
    assert relevant_in_rank_order(constant, relevance).tolist() == [[F, F, F, F, T]]


def test_all_queries_without_relevant_items() -> None:
    result = ranking_metrics(np.zeros((2, 3)), np.zeros((2, 3), dtype=bool))
    assert result.n_evaluated == 0 and result.n_without_relevant == 2 and np.isnan(result.mrr)


def test_invalid_inputs_are_rejected() -> None:
    with pytest.raises(ValueError):
        ranking_metrics(np.array([[np.nan, 1.0]]), np.array([[T, F]]))
    with pytest.raises(ValueError):
        ranking_metrics(np.zeros((2, 3)), np.zeros((3, 2), dtype=bool))


def reference_metrics(scores: np.ndarray, relevance: np.ndarray, exclude: np.ndarray, k: int) -> tuple[float, float, float]:
    """Plain per-query loop; valid when each row's scores are distinct."""
    rrs, aps, hits = [], [], []
    for s, r, x in zip(scores, relevance, exclude):
        ranked = [bool(r[j]) for j in sorted(np.flatnonzero(~x), key=lambda j: -s[j])]
        if not any(ranked):
            continue
        positions = [i + 1 for i, rel in enumerate(ranked) if rel]
        rrs.append(1 / positions[0])
        aps.append(np.mean([(n + 1) / p for n, p in enumerate(positions)]))
        hits.append(positions[0] <= k)
    return float(np.mean(rrs)), float(np.mean(aps)), float(np.mean(hits))


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_matches_reference_on_distinct_scores(n_queries: int, n_db: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.permutation(n_queries * n_db).reshape(n_queries, n_db).astype(float)
    relevance = rng.random((n_queries, n_db)) < 0.4
    exclude = rng.random((n_queries, n_db)) < 0.2
    relevance[0, 0], exclude[0, 0] = True, False  # at least one evaluated query
    result = ranking_metrics(scores, relevance, exclude, ks=(2,))
    assert (result.mrr, result.map, result.hit_at[2]) == pytest.approx(reference_metrics(scores, relevance, exclude, 2))


def spotting_case() -> tuple[list[ScoredSpan], list[TrueSpan]]:
    truths = [TrueSpan("q1", "r1", 10, 20), TrueSpan("q1", "r2", 0, 10), TrueSpan("q2", "r1", 30, 40)]
    detections = [
        ScoredSpan("q1", "r1", 0.9, 11, 21),  # IoU 9/11: correct
        ScoredSpan("q1", "r1", 0.8, 10, 20),  # same occurrence again: false positive
        ScoredSpan("q2", "r1", 0.7, 30, 36),  # IoU 0.6: correct
        ScoredSpan("q1", "r2", 0.6, 5, 15),  # IoU 1/3: wrong at min_iou 0.5
        ScoredSpan("q2", "r2", 0.5, 0, 10),  # no such occurrence
    ]
    return detections, truths


def test_interval_iou() -> None:
    assert interval_iou(30, 36, 30, 40) == pytest.approx(0.6)
    assert interval_iou(0, 1, 2, 3) == 0.0 and interval_iou(1, 1, 1, 1) == 0.0


def test_matching_counts_duplicates_as_false_positives() -> None:
    detections, truths = spotting_case()
    assert match_detections(detections, truths).tolist() == [T, F, T, F, F]
    assert match_detections(detections, truths, min_iou=0.3).tolist() == [T, F, T, T, F]


def test_pr_curve_hand_case() -> None:
    curve = spotting_pr_curve(*spotting_case())
    np.testing.assert_allclose(curve.thresholds, [0.9, 0.8, 0.7, 0.6, 0.5])
    np.testing.assert_allclose(curve.precision, [1, 1 / 2, 2 / 3, 2 / 4, 2 / 5])
    np.testing.assert_allclose(curve.recall, [1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3])
    assert curve.best() == pytest.approx((0.7, 2 / 3))


def test_pr_curve_at_given_thresholds() -> None:
    curve = spotting_pr_curve(*spotting_case(), thresholds=[0.95, 0.75])
    np.testing.assert_allclose(curve.thresholds, [0.95, 0.75])
    np.testing.assert_allclose(curve.precision, [1.0, 1 / 2])
    np.testing.assert_allclose(curve.recall, [0.0, 1 / 3])
    np.testing.assert_allclose(curve.f1, [0.0, 0.4])


def test_pr_curve_needs_ground_truth() -> None:
    with pytest.raises(ValueError):
        spotting_pr_curve(spotting_case()[0], [])


def test_term_weighted_value_hand_case() -> None:
    """Terms q1 (2 true occurrences, searched in 100 s) and q2 (1, in 50 s), beta = 10, one trial per second.

    Costs P_miss + 10 P_FA per threshold: q1 1, 0.5, 0.5 + 10/98, same, 0.5 + 20/98, same; q2 1, 1, 1, 0, 0,
    10/49. TWV = 1 - mean cost; the best is at 0.7. ATWV: q1 is scored at the threshold best for q2 (0.7), q2
    at the one best for q1 (0.9): 1 - (0.5 + 10/98 + 1) / 2.
    """
    curve = term_weighted_values(*spotting_case(), searched_s={"q1": 100.0, "q2": 50.0}, beta=10.0)
    np.testing.assert_allclose(curve.thresholds, [np.inf, 0.9, 0.8, 0.7, 0.6, 0.5])
    q1 = np.array([1, 0.5, 0.5 + 10 / 98, 0.5 + 10 / 98, 0.5 + 20 / 98, 0.5 + 20 / 98])
    q2 = np.array([1, 1, 1, 0, 0, 10 / 49])
    np.testing.assert_allclose(curve.twv, 1 - (q1 + q2) / 2)
    assert curve.maximum() == pytest.approx((0.7, 1 - (0.5 + 10 / 98) / 2))
    assert curve.two_fold() == pytest.approx(1 - (0.5 + 10 / 98 + 1) / 2)
    assert curve.twv[0] == 0.0  # detecting nothing is worth 0


def test_term_weighted_value_nist_constants() -> None:
    assert NIST_BETA == pytest.approx(999.9)
    detections, truths = spotting_case()
    curve = term_weighted_values(detections, truths, searched_s={"q1": 3600.0, "q2": 3600.0})
    # at 0.7: q1 misses one of two and has one false alarm in 3598 non-target trials; q2 is perfect
    assert curve.maximum() == pytest.approx((0.7, 1 - (0.5 + 999.9 / 3598) / 2))
    with pytest.raises(ValueError, match="non-target"):
        term_weighted_values(detections, truths, searched_s={"q1": 2.0, "q2": 50.0})


def test_ranked_detection_metrics_hand_case() -> None:
    # q1: correct, wrong, wrong over 2 occurrences -> AP 1/2; q2: correct, wrong over 1 -> AP 1
    assert ranked_detection_metrics(*spotting_case()) == pytest.approx((0.75, 0.1))
    tied = [ScoredSpan("q", "r", 0.5, 0, 10), ScoredSpan("q", "r", 0.5, 20, 30)]
    # a tie between a correct and a wrong detection ranks the wrong one first
    assert ranked_detection_metrics(tied, [TrueSpan("q", "r", 0, 10)], depth=1) == pytest.approx((0.5, 0.0))
