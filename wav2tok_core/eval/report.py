"""Evaluation results and their JSON / markdown reports: ranking per method x condition, costs, spotting.

Costs (per method)
------------------
* ``search_ms_per_query``: wall time of scoring queries against the whole (already encoded) database,
  divided by the number of queries, over all conditions. Scoring runs on all queries of a condition at
  once (numba / rapidfuzz use every core). For token methods this is the edit-distance search only.
* ``encode_ms_per_audio_s``: time to turn audio into the method's representation (tokenize, or compute
  features), per second of audio, over the database and every transformed query set.
* ``units_per_s``: tokens (token methods) or frames (DTW) stored per second of database audio;
  ``frames_per_s`` is the front end's frame rate, so ``frames_per_s / units_per_s`` is the compression.
* ``index_bytes``: the database's representation: token strings at 1 byte per token (2 above 256 token
  ids), DTW feature matrices as float32.

JSON reports hold no NaN or infinity (they become null); markdown shows them as "n/a".
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..data.spotting import TrueSpan
from ..runtime import atomic_write, write_json
from ..search.spotting import ScoredSpan
from .conditions import GROUPS
from .config import EvalConfig
from .consistency import MEASURES as CONSISTENCY_MEASURES
from .metrics import (NIST_BETA, TRIAL_RATE, PRCurve, TWVCurve, match_detections, ranked_detection_metrics,
                      spotting_pr_curve, term_weighted_values)

REFERENCE_METHOD = "dtw-mfcc"  # speed-ups are relative to this method's search time
RESULT_FORMAT = "wav2tok-eval"
RESULT_VERSION = 2  # 2: the consistency diagnostic
SPOTTING_FORMAT = "wav2tok-spotting"


def json_number(value: float | None) -> float | None:
    """JSON-safe float: NaN and infinities become None."""
    return None if value is None or not math.isfinite(value) else float(value)


def fmt(value: float | None, digits: int = 3) -> str:
    """A table cell: ``value`` with ``digits`` decimals, "n/a" when missing or not finite."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def table_row(cells: Sequence[str]) -> str:
    """One markdown table row."""
    return "| " + " | ".join(cells) + " |"


class Report:
    """A result that writes itself as a JSON report and a markdown table (``to_dict`` and ``to_markdown``)."""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_markdown(self) -> str:
        raise NotImplementedError

    def save(self, json_path: str | os.PathLike, markdown_path: str | os.PathLike | None = None) -> None:
        """Write the JSON (and optionally the markdown) report atomically."""
        write_json(json_path, self.to_dict())
        if markdown_path is not None:
            with atomic_write(markdown_path, "w", encoding="utf-8") as fh:
                fh.write(self.to_markdown())


@dataclass(frozen=True)
class CellResult:
    """Ranking quality of one method under one condition (means over the evaluated queries)."""

    method: str
    condition: str
    mrr: float
    map: float
    hit_at: dict[int, float]
    n_queries: int  # queries searched
    n_evaluated: int  # of those, queries with at least one relevant, non-excluded entry
    n_without_relevant: int
    search_ms_per_query: float
    first_ranks: list[int] = field(default_factory=list)  # rank of the first relevant entry, per evaluated query
    precision_at_recall: list[float] = field(default_factory=list)  # 11-point interpolated, recall 0, 0.1 .. 1

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "condition": self.condition, "mrr": json_number(self.mrr),
                "map": json_number(self.map), "hit_at": {str(k): json_number(v) for k, v in self.hit_at.items()},
                "n_queries": self.n_queries, "n_evaluated": self.n_evaluated,
                "n_without_relevant": self.n_without_relevant,
                "search_ms_per_query": json_number(self.search_ms_per_query), "first_ranks": self.first_ranks,
                "precision_at_recall": [json_number(p) for p in self.precision_at_recall]}


@dataclass
class MethodCosts:
    """Costs of one method (see the module docstring)."""

    unit: str  # "tokens" or "frames"
    units_per_s: float  # stored units per second of database audio
    frames_per_s: float  # front-end frames per second of database audio
    encode_ms_per_audio_s: float  # tokenization / featurisation time per second of audio
    search_ms_per_query: float  # scoring one query against the whole database, mean over all conditions
    index_bytes: int  # the database's representation

    @property
    def compression(self) -> float:
        """Frames per stored unit (1.0 for frame-based methods)."""
        return self.frames_per_s / self.units_per_s if self.units_per_s > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        out = {k: (json_number(v) if isinstance(v, float) else v) for k, v in dataclasses.asdict(self).items()}
        out["compression"] = json_number(self.compression)
        return out


@dataclass
class EvalResult(Report):
    """Every method x condition cell, per-method costs, and the files that were skipped."""

    config: EvalConfig
    methods: list[str]
    cells: list[CellResult]
    costs: dict[str, MethodCosts]
    n_queries: int
    n_database: int
    skipped: list[dict[str, str]] = field(default_factory=list)  # [{"path", "reason"}]
    consistency: dict[str, Any] | None = None  # the model's cross-speaker token consistency (eval.consistency)

    def cell(self, method: str, condition: str) -> CellResult:
        for c in self.cells:
            if c.method == method and c.condition == condition:
                return c
        raise KeyError(f"no result for method {method!r} under condition {condition!r}")

    def group_mrr(self, method: str) -> dict[str, float]:
        """MRR per report group ("vanilla", "stretched", "shifted"): mean over its conditions, NaN if none."""
        by_group: dict[str, list[float]] = {g: [] for g in GROUPS}
        for condition in self.config.parsed_conditions():
            by_group[condition.group].append(self.cell(method, condition.name).mrr)
        return {g: float(np.mean(v)) if v else float("nan") for g, v in by_group.items()}

    def speedup(self, method: str) -> float:
        """Search-time ratio ``REFERENCE_METHOD / method``; NaN when the reference was not run."""
        if REFERENCE_METHOD not in self.costs:
            return float("nan")
        mine = self.costs[method].search_ms_per_query
        return self.costs[REFERENCE_METHOD].search_ms_per_query / mine if mine > 0 else float("inf")

    @property
    def reference_condition(self) -> str:
        """The condition of the summary's hit@k and MAP columns: vanilla when evaluated, else the first."""
        return "vanilla" if "vanilla" in self.config.conditions else self.config.conditions[0]

    def to_dict(self) -> dict[str, Any]:
        summary = {m: {"mrr": {g: json_number(v) for g, v in self.group_mrr(m).items()},
                       "search_ms_per_query": json_number(self.costs[m].search_ms_per_query),
                       f"speedup_vs_{REFERENCE_METHOD}": json_number(self.speedup(m))} for m in self.methods}
        return {"format": RESULT_FORMAT, "version": RESULT_VERSION, "config": dataclasses.asdict(self.config),
                "n_queries": self.n_queries, "n_database": self.n_database, "summary": summary,
                "cells": [c.to_dict() for c in self.cells],
                "costs": {m: c.to_dict() for m, c in self.costs.items()}, "skipped": list(self.skipped),
                "consistency": self.consistency}

    def to_markdown(self) -> str:
        """Summary table (as in the paper), costs table, every method x condition, and the skipped files."""
        cfg, ref = self.config, self.reference_condition
        hit_cols = [f"hit@{k}" for k in cfg.ks]
        lines = [f"Protocol `{cfg.protocol}`{', cross-speaker' if cfg.cross_speaker else ''}: "
                 f"{self.n_queries} queries, {self.n_database} database clips; stretches and shifts rendered by "
                 f"{cfg.stretch_method}.", "",
                 table_row(["method", "MRR vanilla", "MRR stretched", "MRR shifted",
                            *[f"{h} ({ref})" for h in hit_cols], f"MAP ({ref})", "ms/query",
                            f"speed-up vs {REFERENCE_METHOD}"]),
                 table_row(["---"] * (7 + len(hit_cols)))]
        for m in self.methods:
            groups, cell = self.group_mrr(m), self.cell(m, ref)
            speedup = self.speedup(m)
            lines.append(table_row([m, *[fmt(groups[g]) for g in GROUPS], *[fmt(cell.hit_at[k]) for k in cfg.ks],
                                    fmt(cell.map), fmt(self.costs[m].search_ms_per_query, 2),
                                    "n/a" if not math.isfinite(speedup) else f"{speedup:.1f}x"]))
        lines += ["", "ms/query: scoring one query against the whole database (tokenization excluded, see below).",
                  "", table_row(["method", "unit", "units/s", "frames/s", "compression", "encode ms per s audio",
                                 "index bytes"]), table_row(["---"] * 7)]
        for m in self.methods:
            c = self.costs[m]
            lines.append(table_row([m, c.unit, fmt(c.units_per_s, 1), fmt(c.frames_per_s, 1), fmt(c.compression, 2),
                                    fmt(c.encode_ms_per_audio_s, 2), str(c.index_bytes)]))
        lines += ["", table_row(["method", "condition", "MRR", "MAP", *hit_cols, "evaluated", "without relevant",
                                 "ms/query"]), table_row(["---"] * (7 + len(hit_cols)))]
        for c in self.cells:
            lines.append(table_row([c.method, c.condition, fmt(c.mrr), fmt(c.map), *[fmt(c.hit_at[k]) for k in cfg.ks],
                                    str(c.n_evaluated), str(c.n_without_relevant), fmt(c.search_ms_per_query, 2)]))
        if self.consistency:
            same, other = self.consistency["same_label"], self.consistency["different_label"]
            lines += ["", f"Cross-speaker token consistency of the model's tokens ({self.consistency['n_pairs']} "
                          "pairs of each kind; alignment by DTW over MFCC frames):", "",
                      table_row(["pairs", "aligned frames with the same token", "bigram Jaccard",
                                 "normalised edit distance"]), table_row(["---"] * 4),
                      table_row(["same label", *[fmt(same[m]) for m in CONSISTENCY_MEASURES]]),
                      table_row(["different label", *[fmt(other[m]) for m in CONSISTENCY_MEASURES]])]
        if self.skipped:
            lines += ["", f"Skipped {len(self.skipped)} file(s):", *[f"- {s['reason']}" for s in self.skipped]]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class MethodSpotting:
    """One method's spoken term detection results (:func:`wav2tok_core.eval.spotting.evaluate_spotting`)."""

    curve: PRCurve  # precision / recall / F1 at every distinct score
    twv: TWVCurve
    map: float
    p_at_10: float
    prepare_s: float  # representation of all queries and recordings
    search_s: float  # all queries searched
    n_queries: int
    searched_hours: float  # audio searched per query, mean
    detections: list[ScoredSpan] = field(default_factory=list, repr=False)  # all of them (not in the JSON report)

    @classmethod
    def measure(cls, found: Sequence[ScoredSpan], truths: Sequence[TrueSpan], searched_s: dict[str, float],
                min_iou: float, prepare_s: float, search_s: float) -> "MethodSpotting":
        """Score ``found`` against ``truths`` (queries are searched in ``searched_s`` seconds each)."""
        correct = match_detections(found, truths, min_iou)  # once, for all three measures
        mean_ap, p_at_10 = ranked_detection_metrics(found, truths, min_iou, correct=correct)
        return cls(spotting_pr_curve(found, truths, min_iou, correct=correct),
                   term_weighted_values(found, truths, searched_s, min_iou, correct=correct), mean_ap, p_at_10, prepare_s, search_s, len(searched_s),
                   float(np.mean(list(searched_s.values()))) / 3600, list(found))

    @property
    def search_ms_per_query_hour(self) -> float:
        """Search time per query per hour of searched audio, in milliseconds."""
        return 1000 * self.search_s / max(self.n_queries, 1) / self.searched_hours if self.searched_hours else math.nan

    def to_dict(self) -> dict[str, Any]:
        f1_threshold, f1 = self.curve.best()
        twv_threshold, mtwv = self.twv.maximum()
        i = int(np.argmax(self.curve.f1))
        return {"best_f1": json_number(f1), "best_f1_threshold": json_number(f1_threshold),
                "precision_at_best_f1": json_number(self.curve.precision[i]),
                "recall_at_best_f1": json_number(self.curve.recall[i]),
                "mtwv": json_number(mtwv), "mtwv_threshold": json_number(twv_threshold),
                "atwv": json_number(self.twv.two_fold()), "map": json_number(self.map),
                "p_at_10": json_number(self.p_at_10), "n_true": self.curve.n_true,
                "prepare_s": json_number(self.prepare_s), "search_s": json_number(self.search_s),
                "search_ms_per_query_hour": json_number(self.search_ms_per_query_hour),
                "curve": {"thresholds": [json_number(t) for t in self.curve.thresholds],
                          "precision": self.curve.precision.tolist(), "recall": self.curve.recall.tolist()}}


@dataclass
class SpottingResult(Report):
    """Spoken term detection results per method, with what was searched.

    TWV uses NIST's constants (:mod:`wav2tok_core.eval.metrics`); ATWV's decision threshold is fixed on the
    other half of the queries (two folds), MTWV's is the best one in hindsight.
    """

    methods: dict[str, MethodSpotting]
    n_queries: int
    n_recordings: int
    recording_hours: float  # all recordings together
    min_iou: float
    max_hits: int
    min_score: float  # wav2tok's detection floor
    repeats: int  # searches per method; the fastest is reported
    skipped: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"format": SPOTTING_FORMAT, "version": 1, "n_queries": self.n_queries,
                "n_recordings": self.n_recordings, "recording_hours": self.recording_hours,
                "min_iou": self.min_iou, "max_hits": self.max_hits, "wav2tok_min_score": self.min_score,
                "search_repeats": self.repeats,
                "twv_constants": {"beta": NIST_BETA, "trial_rate_per_s": TRIAL_RATE},
                "methods": {name: m.to_dict() for name, m in self.methods.items()}, "skipped": list(self.skipped)}

    def to_markdown(self) -> str:
        head = ["method", "best F1", "precision", "recall", "MTWV", "ATWV", "MAP", "P@10",
                "search ms / query / h", "prepare s"]
        lines = [table_row(head), table_row(["---"] + ["---:"] * (len(head) - 1))]
        for name, m in self.methods.items():
            row = m.to_dict()
            lines.append(table_row([name, fmt(row["best_f1"]), fmt(row["precision_at_best_f1"]),
                                    fmt(row["recall_at_best_f1"]), fmt(row["mtwv"]), fmt(row["atwv"]), fmt(row["map"]),
                                    fmt(row["p_at_10"]), fmt(m.search_ms_per_query_hour, 1), fmt(m.prepare_s, 1)]))
        return "\n".join(lines) + "\n"

