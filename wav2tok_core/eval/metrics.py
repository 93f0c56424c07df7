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

Term-weighted value (NIST STD 2006 evaluation plan): each query is a term. At a decision threshold
``t``, a term's miss probability is ``P_miss = 1 - N_correct / N_true`` and its false-alarm probability
``P_FA = N_FA / (N_trials - N_true)``, where ``N_trials = trial_rate * T`` counts one trial per second
(``trial_rate = 1``) of the audio ``T`` the term was searched in. ``TWV(t) = 1 - mean over terms with
N_true > 0 of (P_miss + beta * P_FA)`` with ``beta = (C / V) * (1 / P_term - 1) = 999.9`` for NIST's
cost ``C = 0.1``, value ``V = 1`` and prior ``P_term = 1e-4``. 1 is perfect, 0 is detecting nothing,
and it is negative when false alarms outweigh hits. MTWV is the maximum over thresholds; ATWV is the
value at a threshold fixed in advance (how the evaluation fixes it is said there).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..data.spotting import TrueSpan
from ..search.spotting import ScoredSpan


NIST_COST, NIST_VALUE, NIST_TERM_PRIOR = 0.1, 1.0, 1e-4
NIST_BETA = NIST_COST / NIST_VALUE * (1 / NIST_TERM_PRIOR - 1)  # 999.9
TRIAL_RATE = 1.0  # trials per second of searched audio


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
    correct: np.ndarray | None = None,
) -> PRCurve:
    """Precision, recall and F1 over a threshold sweep.

    Args:
        detections: all detections, at any score.
        truths: all true occurrences (must not be empty).
        min_iou: overlap needed for a detection to be correct.
        thresholds: scores to sweep; default every distinct detection score.
        correct: :func:`match_detections` of these detections, when already computed.
    """
    if not truths:
        raise ValueError("spotting metrics need at least one true occurrence")
    correct = match_detections(detections, truths, min_iou) if correct is None else correct
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


@dataclass(frozen=True)
class TWVCurve:
    """Per-term detection costs ``P_miss + beta * P_FA`` over a threshold sweep (see the module docstring).

    ``thresholds`` (n,) descending; ``term_costs`` (n, n_terms), one column per term of ``terms``.
    """

    thresholds: np.ndarray
    term_costs: np.ndarray
    terms: tuple[str, ...]

    @property
    def twv(self) -> np.ndarray:
        """(n,) TWV at each threshold."""
        return 1.0 - self.term_costs.mean(axis=1)

    def maximum(self) -> tuple[float, float]:
        """``(threshold, MTWV)``: the best TWV and its threshold (the highest such threshold on ties)."""
        i = int(np.argmax(self.twv))
        return float(self.thresholds[i]), float(self.twv[i])

    def two_fold(self) -> float:
        """ATWV with the decision threshold fixed on held-out terms: terms are split into two folds
        (alternate terms in sorted order); each fold is scored at the threshold that maximises TWV on the
        other. NaN with fewer than two terms."""
        if len(self.terms) < 2:
            return float("nan")
        fold = np.arange(len(self.terms)) % 2
        costs = []
        for held_out in (0, 1):
            tuned = int(np.argmax(1.0 - self.term_costs[:, fold != held_out].mean(axis=1)))
            costs.append(self.term_costs[tuned, fold == held_out])
        return float(1.0 - np.concatenate(costs).mean())


def term_weighted_values(
    detections: Sequence[ScoredSpan],
    truths: Sequence[TrueSpan],
    searched_s: dict[str, float],
    min_iou: float = 0.5,
    beta: float = NIST_BETA,
    trial_rate: float = TRIAL_RATE,
    correct: np.ndarray | None = None,
) -> TWVCurve:
    """Per-term costs at every distinct detection score and at +inf (detect nothing), over the terms (queries)
    with at least one true occurrence.

    Args:
        detections: all detections, at any score.
        truths: all true occurrences (must not be empty).
        searched_s: query id -> seconds of audio it was searched in (``T``).
        correct: :func:`match_detections` of these detections, when already computed.
    """
    if not truths:
        raise ValueError("spotting metrics need at least one true occurrence")
    terms = tuple(sorted({t.query_id for t in truths}))
    column = {term: i for i, term in enumerate(terms)}
    n_true = np.bincount([column[t.query_id] for t in truths], minlength=len(terms))
    non_targets = np.array([trial_rate * searched_s[term] for term in terms]) - n_true
    if np.any(non_targets <= 0):
        raise ValueError("a term has no non-target trials: less searched audio than true occurrences")
    correct = match_detections(detections, truths, min_iou) if correct is None else correct
    kept = [i for i, d in enumerate(detections) if d.query_id in column]
    owner = np.array([column[detections[i].query_id] for i in kept], dtype=np.int64)
    scores = np.array([detections[i].score for i in kept], dtype=np.float64)
    hit = correct[kept]
    sweep = np.concatenate([[np.inf], np.unique(scores)[::-1]])
    order = np.argsort(-scores, kind="stable")
    counts = np.zeros((order.size + 1, 2, len(terms)))  # after the k best detections: hits, false alarms per term
    np.add.at(counts[1:], (np.arange(order.size), (~hit[order]).astype(np.int64), owner[order]), 1.0)
    counts = np.cumsum(counts, axis=0)
    above = counts[np.searchsorted(-scores[order], -sweep, side="right")]  # (n_thresholds, 2, n_terms)
    costs = 1.0 - above[:, 0] / n_true + beta * above[:, 1] / non_targets
    return TWVCurve(sweep, costs, terms)


def ranked_detection_metrics(detections: Sequence[ScoredSpan], truths: Sequence[TrueSpan], min_iou: float = 0.5,
                             depth: int = 10, correct: np.ndarray | None = None) -> tuple[float, float]:
    """``(MAP, P@depth)`` of each query's detections ranked by score, over the queries with a true occurrence.

    A query's average precision is the sum of the precision at each correct detection's rank divided by its
    number of true occurrences (occurrences never detected count as precision 0); P@depth is the share of
    correct detections among its ``depth`` best (a missing detection counts as wrong). Among equal scores
    wrong detections rank first, as in the ranking metrics.
    """
    if not truths:
        raise ValueError("spotting metrics need at least one true occurrence")
    correct = match_detections(detections, truths, min_iou) if correct is None else correct
    n_true: dict[str, int] = {}
    for truth in truths:
        n_true[truth.query_id] = n_true.get(truth.query_id, 0) + 1
    ranked: dict[str, list[tuple[float, bool]]] = {q: [] for q in n_true}
    for det, ok in zip(detections, correct):
        if det.query_id in ranked:
            ranked[det.query_id].append((det.score, bool(ok)))
    aps, precisions = [], []
    for query, rows in ranked.items():
        scores, flags = np.array([r[0] for r in rows], dtype=np.float64), np.array([r[1] for r in rows], dtype=bool)
        relevant = flags[np.lexsort((flags, -scores))]  # ties ranked pessimistically, wrong detections first
        precision_at = np.cumsum(relevant) / np.arange(1, relevant.size + 1)
        aps.append(float(precision_at[relevant].sum()) / n_true[query])
        precisions.append(float(relevant[:depth].sum()) / depth)
    return float(np.mean(aps)), float(np.mean(precisions))
