"""Ranking metrics for query-by-example search and detection metrics for spotting.

Ranking
-------
Inputs are a score matrix ``scores`` (n_queries, n_db), higher = more similar, a boolean
``relevance`` matrix of the same shape and an optional boolean ``exclude`` mask of database entries
that do not take part in a query's ranking at all (the query itself, or same-speaker entries in
cross-speaker evaluation). Excluded entries are removed, not just demoted.

Ties are broken *pessimistically*: within a group of equal scores every non-relevant entry is ranked
before every relevant one. A tie therefore never helps a query, and a constant scorer gets the
worst possible MRR/MAP/hit@k instead of a lucky one.

Queries with no relevant, non-excluded entry are left out of every mean and counted in
``RankingMetrics.n_without_relevant``.

Spotting
--------
A detection (query id, recording id, score, span) is correct when its span overlaps a not yet
matched true occurrence of that query in that recording with intersection-over-union >= ``min_iou``
(default 0.5). Detections are matched greedily in order of decreasing score (input order among equal
scores), each true occurrence at most once, so duplicate detections of one occurrence count as false
positives. Spans are half-open ``[start, end)`` in any unit (token positions or seconds) as long as
detections and ground truth use the same one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..data.spotting import TrueSpan
from ..search.spotting import ScoredSpan


@dataclass(frozen=True)
class RankingMetrics:
    """Means over the evaluated queries; ``hit_at[k]`` is the fraction with a relevant entry in the top k."""

    mrr: float
    map: float
    hit_at: dict[int, float]
    n_evaluated: int
    n_without_relevant: int


def _check_ranking_inputs(scores: np.ndarray, relevance: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
    """Validate shapes and values; return the exclusion mask (all False if ``exclude`` is None)."""
    if scores.ndim != 2 or relevance.shape != scores.shape:
        raise ValueError(f"scores and relevance must be 2-D of one shape, got {scores.shape} and {relevance.shape}")
    if exclude is not None and exclude.shape != scores.shape:
        raise ValueError(f"exclude must have shape {scores.shape}, got {exclude.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    return np.zeros(scores.shape, dtype=bool) if exclude is None else exclude.astype(bool)


def relevant_in_rank_order(scores: np.ndarray, relevance: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """Relevance flags in pessimistic rank order, excluded entries removed (moved to the end as False).

    Args:
        scores: (n_queries, n_db) similarities.
        relevance: (n_queries, n_db) bool.
        exclude: optional (n_queries, n_db) bool, True = not ranked for that query.

    Returns:
        (n_queries, n_db) bool; column r is "the entry at rank r + 1 is relevant".
    """
    excluded = _check_ranking_inputs(scores, relevance, exclude)
    relevant = relevance.astype(bool) & ~excluded
    order = np.lexsort((relevant, -scores.astype(np.float64), excluded), axis=-1)
    return np.take_along_axis(relevant, order, axis=-1)


def ranking_metrics(
    scores: np.ndarray, relevance: np.ndarray, exclude: np.ndarray | None = None, ks: Sequence[int] = (1, 5)
) -> RankingMetrics:
    """MRR, MAP and hit@k for each k in ``ks`` (see module docstring for ties and exclusions).

    Average precision of a query is the mean, over all its relevant non-excluded entries, of the
    precision at that entry's rank.
    """
    ranked = relevant_in_rank_order(scores, relevance, exclude)
    n_relevant = ranked.sum(axis=1)
    evaluated = n_relevant > 0
    ranked, n_relevant = ranked[evaluated], n_relevant[evaluated]
    if not evaluated.any():
        nan = float("nan")
        return RankingMetrics(nan, nan, {k: nan for k in ks}, 0, int((~evaluated).sum()))
    first_rank = ranked.argmax(axis=1) + 1
    precision_at = np.cumsum(ranked, axis=1) / np.arange(1, ranked.shape[1] + 1)
    average_precision = (precision_at * ranked).sum(axis=1) / n_relevant
    return RankingMetrics(
        mrr=float(np.mean(1.0 / first_rank)),
        map=float(np.mean(average_precision)),
        hit_at={k: float(np.mean(first_rank <= k)) for k in ks},
        n_evaluated=int(evaluated.sum()),
        n_without_relevant=int((~evaluated).sum()),
    )


def interpolated_precision(ranked: np.ndarray, levels: int = 11) -> list[float]:
    """Mean over queries of the best precision reached at recall >= r, for r = 0, 0.1, ..., 1.

    Args:
        ranked: ``(n_queries, n_db)`` bool relevance in rank order (pessimistic ties, exclusions removed).
    """
    if not len(ranked):
        return [float("nan")] * levels
    hits = np.cumsum(ranked, axis=1)
    precision = hits / np.arange(1, ranked.shape[1] + 1)
    recall = hits / hits[:, -1:]
    return [float(np.where(recall >= r, precision, 0.0).max(axis=1).mean()) for r in np.linspace(0, 1, levels)]


@dataclass(frozen=True)
class PRCurve:
    """Precision/recall/F1 at each threshold (a detection counts when its score >= threshold).

    All arrays have shape (n_thresholds,), thresholds descending. Precision is 1.0 where nothing is
    detected; F1 is 0.0 where precision and recall are both 0.
    """

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    n_true: int

    def best(self) -> tuple[float, float]:
        """``(threshold, f1)`` with the highest F1 (the highest such threshold on ties)."""
        i = int(np.argmax(self.f1))
        return float(self.thresholds[i]), float(self.f1[i])


def interval_iou(a_start: float, a_end: float, b_start: float, b_end: float) -> float:
    """Intersection over union of two half-open intervals; 0.0 if the union is empty."""
    intersection = max(0.0, min(a_end, b_end) - max(a_start, b_start))
    union = max(a_end, b_end) - min(a_start, b_start)
    return intersection / union if union > 0 else 0.0


def match_detections(detections: Sequence[ScoredSpan], truths: Sequence[TrueSpan], min_iou: float = 0.5) -> np.ndarray:
    """Greedy score-ordered matching; returns (n_detections,) bool "is a true positive", in input order."""
    open_truths: dict[tuple[str, str], list[TrueSpan]] = {}
    for truth in truths:
        open_truths.setdefault((truth.query_id, truth.recording_id), []).append(truth)
    correct = np.zeros(len(detections), dtype=bool)
    for i in np.argsort([-d.score for d in detections], kind="stable"):
        det = detections[i]
        candidates = open_truths.get((det.query_id, det.recording_id), [])
        overlaps = [interval_iou(det.start, det.end, t.start, t.end) for t in candidates]
        if overlaps and max(overlaps) >= min_iou:
            candidates.pop(int(np.argmax(overlaps)))
            correct[i] = True
    return correct


def spotting_pr_curve(
    detections: Sequence[ScoredSpan],
    truths: Sequence[TrueSpan],
    min_iou: float = 0.5,
    thresholds: Sequence[float] | None = None,
) -> PRCurve:
    """Precision, recall and F1 over a threshold sweep.

    Args:
        detections: all detections, at any score.
        truths: all true occurrences (must not be empty).
        min_iou: overlap needed for a detection to be correct.
        thresholds: scores to sweep; default every distinct detection score.
    """
    if not truths:
        raise ValueError("spotting metrics need at least one true occurrence")
    correct = match_detections(detections, truths, min_iou)
    scores = np.array([d.score for d in detections], dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    true_positives = np.concatenate([[0], np.cumsum(correct[order])])
    sweep = np.unique(scores)[::-1] if thresholds is None else np.sort(np.asarray(thresholds, dtype=np.float64))[::-1]
    n_detected = np.searchsorted(-scores[order], -sweep, side="right")
    tp = true_positives[n_detected]
    precision = np.where(n_detected > 0, tp / np.maximum(n_detected, 1), 1.0)
    recall = tp / len(truths)
    denominator = precision + recall
    f1 = np.where(denominator > 0, 2 * precision * recall / np.where(denominator > 0, denominator, 1), 0.0)
    return PRCurve(sweep, precision, recall, f1, len(truths))
