"""The evaluation protocol: query-by-example retrieval under query transformations, its costs, and spotting.

Protocols
---------
* ``query_by_example``: every test clip queries all test clips; relevant = same label.
* ``query_vs_targets``: test items with ``meta["role"] == "query"`` search the test items with
  ``meta["role"] == "target"``; relevant = same label (the melody set).

A database entry takes no part in a query's ranking when it is the query's own file (same path) and, in
cross-speaker mode, when it has the query's speaker. Queries left with no relevant entry are counted in
``n_without_relevant`` and left out of the means (see :mod:`wav2tok_core.metrics`, which also defines the
pessimistic tie-breaking).

Conditions
----------
Queries are transformed, the database never: ``vanilla``; ``stretch<R>``: time stretch at rate R, pitch
kept (R < 1 slows down: a ``stretch0.8`` query lasts 1.25x as long); ``shift<S>``: pitch shift by S
semitones, duration kept. Reports group them as in the paper: "stretched" is the mean over the stretch
conditions, "shifted" the mean over the shift conditions.

Methods
-------
* ``wav2tok``: the model's token strings, ranked by edit similarity (:mod:`wav2tok_core.retrieval`).
* ``raw-encoder``: the same, with an untrained model of the same config whose codebook comes from one
  E-step on the train clips: what training buys.
* ``dtw-mfcc`` / ``dtw-logmel``: exact path-normalised DTW (Euclidean local cost) over MFCC 13 + delta +
  delta-delta or log-mel frames, each normalised per utterance (mean/variance).
* ``dtw-encoder``: DTW (cosine local cost) over the trained model's own unit frame vectors, the ones its
  tokens are made from, unquantised: ``wav2tok`` minus ``dtw-encoder`` is what quantising and edit
  distance change, ``dtw-encoder`` minus ``dtw-mfcc`` what the encoder learned over its input features.
* ``dtw-pitch``: the same DTW over the YIN pitch front end (:mod:`wav2tok_core.pitch`: key-normalised
  pitch, its delta, voicing, energy; in the model's ``pitch_repr``): the classic query-by-humming baseline.
* ``vq-mfcc`` / ``vq-logmel`` / ``vq-pitch``: k-means tokens + edit similarity (:class:`KMeansTokenizer`,
  K = the model's ``num_tokens``, fitted on the frames of the train clips only, never on test clips).

Baseline features come from :class:`FeatureExtractor` with the model's sample rate, FFT size, hop and mel
bands, so every method sees the same frames.

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

The database side is encoded once per method; each condition's queries are encoded from the transformed
audio (vanilla queries that are database clips reuse the database encoding). Unreadable or too short
files are skipped and listed in the result, never fatal.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np
import torch

from ..audio.augment import pitch_shift, time_stretch
from ..audio.config import FeatureConfig
from ..audio.features import FeatureExtractor
from ..audio.io import pad_batch
from ..data.manifest import ManifestItem
from ..data.spotting import TrueSpan
from ..errors import AudioError, ConfigError, EvalError
from ..model.codebook import fit_model_codebook
from ..model.inference import Audio
from ..model.wav2tok import Wav2Tok
from ..runtime import atomic_write, write_json
from ..search.index import edit_similarity_matrix
from ..search.spotting import ScoredSpan, spot_batch
from .baselines import KMeansTokenizer, dtw_score_matrix, subsequence_dtw_matrix
from .metrics import PRCurve, ranking_metrics, relevant_in_rank_order, spotting_pr_curve

PROTOCOLS = ("query_by_example", "query_vs_targets")
METHODS = ("wav2tok", "raw-encoder", "dtw-mfcc", "dtw-logmel", "dtw-pitch", "dtw-encoder", "vq-mfcc", "vq-logmel",
           "vq-pitch")
TRAINED_METHODS = ("raw-encoder", "vq-mfcc", "vq-logmel", "vq-pitch")  # need the train clips
GROUPS = ("vanilla", "stretched", "shifted")
REFERENCE_METHOD = "dtw-mfcc"  # speed-ups are relative to this method's search time
RESULT_FORMAT = "wav2tok-eval"
RESULT_VERSION = 1

_CONDITION = re.compile(r"^(?:(vanilla)|(stretch)(\+?\d+(?:\.\d+)?)|(shift)([+-]?\d+(?:\.\d+)?))$")
_GROUP_OF_KIND = {"vanilla": "vanilla", "stretch": "stretched", "shift": "shifted"}

Log = Callable[[str], None]


# ------------------------------------------------------------------------------------------------ configuration

@dataclass(frozen=True)
class Condition:
    """A query transformation parsed from its name (``vanilla``, ``stretch0.8``, ``shift-3``, ...)."""

    name: str
    kind: str  # "vanilla", "stretch" or "shift"
    value: float  # stretch rate (> 0), or semitones; 0.0 for vanilla

    @classmethod
    def parse(cls, name: str) -> "Condition":
        match = _CONDITION.match(name)
        if match is None:
            raise ConfigError(f"conditions: {name!r} is not 'vanilla', 'stretch<rate>' or 'shift<semitones>' "
                              "(e.g. stretch0.8, shift-3, shift+3)")
        if match[1]:
            return cls(name, "vanilla", 0.0)
        if match[2]:
            rate = float(match[3])
            if rate <= 0:
                raise ConfigError(f"conditions: {name!r}: the stretch rate must be > 0")
            return cls(name, "stretch", rate)
        return cls(name, "shift", float(match[5]))

    @property
    def group(self) -> str:
        """Report group: "vanilla", "stretched" or "shifted"."""
        return _GROUP_OF_KIND[self.kind]

    def apply(self, wave: torch.Tensor) -> torch.Tensor:
        """Transform a query ``(N,)`` -> ``(N',)``; N' = round(N / rate) for a stretch, N otherwise."""
        if self.kind == "stretch":
            return time_stretch(wave, self.value)
        if self.kind == "shift":
            return pitch_shift(wave, self.value)
        return wave


@dataclass
class EvalConfig:
    """What to evaluate and how (see the module docstring for the protocols, conditions and methods)."""

    protocol: str = "query_by_example"  # or "query_vs_targets" (role "query" items search role "target" items)
    conditions: tuple[str, ...] = ("vanilla", "stretch0.8", "stretch1.25", "shift-3", "shift+3")  # query
    #                              transformations as in the paper; the database is never transformed
    methods: tuple[str, ...] = ("wav2tok", "dtw-mfcc", "dtw-logmel", "vq-logmel", "vq-mfcc")  # add
    #                           "raw-encoder" to see what training buys
    cross_speaker: bool = False  # exclude database entries of the query's own speaker
    ks: tuple[int, ...] = (1, 5)  # hit@k cut-offs
    max_queries: int | None = None  # evaluate an evenly spaced subset of this many queries (None: all)
    batch_size: int = 32  # clips per tokenizer / feature batch
    seed: int = 0  # k-means of the vq baselines; initialisation and E-step of the raw encoder

    def __post_init__(self) -> None:
        self.conditions, self.methods, self.ks = tuple(self.conditions), tuple(self.methods), tuple(self.ks)
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"protocol: {self.protocol!r} is not one of {PROTOCOLS}")
        for name, values in (("conditions", self.conditions), ("methods", self.methods)):
            if not values or len(set(values)) != len(values):
                raise ConfigError(f"{name}: must be non-empty and without repeats, got {list(values)}")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"methods: unknown {unknown}; known methods: {list(METHODS)}")
        self.parsed_conditions()
        if not self.ks or min(self.ks) < 1:
            raise ConfigError(f"ks: must be positive cut-offs, got {list(self.ks)}")
        if self.max_queries is not None and self.max_queries < 1:
            raise ConfigError("max_queries: must be >= 1 (or None for all queries)")
        if self.batch_size < 1:
            raise ConfigError("batch_size: must be >= 1")

    def parsed_conditions(self) -> list[Condition]:
        return [Condition.parse(name) for name in self.conditions]


def detect_protocol(items: Sequence[ManifestItem]) -> str:
    """``query_vs_targets`` when the items carry both ``meta["role"]`` "query" and "target", else
    ``query_by_example``."""
    roles = {item.meta.get("role") for item in items}
    return "query_vs_targets" if {"query", "target"} <= roles else "query_by_example"


# ------------------------------------------------------------------------------------------------ methods

@dataclass(frozen=True)
class EvalClip:
    """A clip under evaluation: its manifest item and its waveform ``(N,)`` at the model's rate (maybe transformed)."""

    item: ManifestItem
    wave: torch.Tensor


class Method(Protocol):
    """A retrieval method: clips -> per-clip representations -> a score matrix (higher = more similar)."""

    name: str
    unit: str  # what a representation is made of: "tokens" or "frames"

    def encode(self, clips: Sequence[EvalClip]) -> list[Any]:
        """One representation per clip."""

    def score(self, queries: Sequence[Any], database: Sequence[Any]) -> np.ndarray:
        """Similarities, shape (n_queries, n_database), no NaN."""

    def length(self, rep: Any) -> int:
        """Units (tokens or frames) in one representation."""

    def nbytes(self, reps: Sequence[Any]) -> int:
        """Storage of these representations in bytes."""


class Featurizer:
    """Waveforms at ``config.sr`` -> per-clip frame features ``(T_i, F)`` float32, on length-sorted padded batches."""

    def __init__(self, config: FeatureConfig, batch_size: int = 32) -> None:
        self.extractor = FeatureExtractor(config)
        self.batch_size = batch_size

    @property
    def frame_s(self) -> float:
        """Seconds per frame step."""
        return self.extractor.config.hop_length / self.extractor.config.sr

    def __call__(self, waves: Sequence[torch.Tensor]) -> list[np.ndarray]:
        out: list[np.ndarray] = [np.zeros(0)] * len(waves)
        order = sorted(range(len(waves)), key=lambda i: waves[i].numel())
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                feats, frames = self.extractor(*pad_batch([waves[i].cpu() for i in idx]))  # (B, T, F), (B,)
                for i, x, t in zip(idx, feats.numpy(), frames.tolist()):
                    out[i] = np.ascontiguousarray(x[:t], dtype=np.float32)
        return out


def baseline_features(model_features: FeatureConfig, kind: str) -> FeatureConfig:
    """The baselines' front end: ``kind`` ("mfcc": 13 + deltas, or "logmel") with the model's rate, FFT, hop
    and mel bands, normalised per utterance."""
    return dataclasses.replace(model_features, kind=kind, n_mfcc=13, deltas=True, normalize=True)


class TokenMethod:
    """Token strings ranked by edit similarity; ``tokenize`` maps waveforms ``(N_i,)`` to token strings."""

    unit = "tokens"

    def __init__(self, name: str, tokenize: Callable[[list[torch.Tensor]], list[list[int]]], num_tokens: int) -> None:
        self.name = name
        self._tokenize = tokenize
        self.bytes_per_token = 1 if num_tokens <= 256 else 2 if num_tokens <= 65536 else 4

    def encode(self, clips: Sequence[EvalClip]) -> list[list[int]]:
        return self._tokenize([c.wave for c in clips]) if clips else []

    def score(self, queries: Sequence[list[int]], database: Sequence[list[int]]) -> np.ndarray:
        return edit_similarity_matrix(queries, database)

    def length(self, rep: list[int]) -> int:
        return len(rep)

    def nbytes(self, reps: Sequence[list[int]]) -> int:
        return sum(len(r) for r in reps) * self.bytes_per_token


class DTWMethod:
    """Exact path-normalised DTW over frame vectors (``metric``: "euclidean" or "cosine" local cost);
    similarity ``-D / L``. ``featurize`` maps waveforms ``(N_i,)`` to frame vectors ``(T_i, F)``."""

    unit = "frames"

    def __init__(self, name: str, featurize: Callable[[list[torch.Tensor]], list[np.ndarray]],
                 metric: str = "euclidean") -> None:
        self.name = name
        self._featurize = featurize
        self.metric = metric

    def encode(self, clips: Sequence[EvalClip]) -> list[np.ndarray]:
        return self._featurize([c.wave for c in clips])

    def score(self, queries: Sequence[np.ndarray], database: Sequence[np.ndarray]) -> np.ndarray:
        return dtw_score_matrix(queries, database, metric=self.metric)

    def length(self, rep: np.ndarray) -> int:
        return int(rep.shape[0])

    def nbytes(self, reps: Sequence[np.ndarray]) -> int:
        return sum(int(r.size) * 4 for r in reps)  # float32


def frame_vectors(model: Wav2Tok, waves: list[torch.Tensor], batch_size: int = 32) -> list[np.ndarray]:
    """The model's unit frame vectors before quantisation: ``(T_i, D)`` float32 per waveform."""
    return [e.numpy() for e in model.embed(waves, batch_size=batch_size)]


def untrained_twin(model: Wav2Tok, train_waves: Sequence[torch.Tensor], seed: int = 0, batch_size: int = 32) -> Wav2Tok:
    """A freshly initialised model with ``model``'s config, codebook from one E-step on ``train_waves``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        twin = Wav2Tok(model.config)
    twin = twin.to(model.device).eval()
    fit_model_codebook(twin, list(train_waves), seed=seed, batch_size=batch_size)
    return twin


def build_methods(names: Sequence[str], model: Wav2Tok, train_waves: Sequence[torch.Tensor], batch_size: int = 32,
                  seed: int = 0) -> list[Method]:
    """Method objects for ``names`` (see :data:`METHODS`); the trained baselines are fitted on ``train_waves``."""
    missing = [n for n in names if n in TRAINED_METHODS]
    if missing and not train_waves:
        raise EvalError(f"methods {missing} are fitted on train clips, but there are none (check the train split)")
    k = model.config.num_tokens
    featurizers: dict[str, Featurizer] = {}  # by feature kind, built for the methods asked only (a front end
    #                                          may not fit the model's frames, e.g. pitch with a short n_fft)

    def featurizer(kind: str) -> Featurizer:
        if kind not in featurizers:
            featurizers[kind] = Featurizer(baseline_features(model.config.features, kind), batch_size)
        return featurizers[kind]

    methods: list[Method] = []
    for name in names:
        if name in ("wav2tok", "raw-encoder"):
            tokenizer = model if name == "wav2tok" else untrained_twin(model, train_waves, seed, batch_size)
            methods.append(TokenMethod(name, lambda w, t=tokenizer: t.tokenize(w, batch_size=batch_size), k))
        elif name == "dtw-encoder":
            methods.append(DTWMethod(name, functools.partial(frame_vectors, model, batch_size=batch_size), "cosine"))
        elif name.startswith("dtw-"):
            methods.append(DTWMethod(name, featurizer(name[4:])))
        elif name.startswith("vq-"):
            featurize = featurizer(name[3:])
            kmeans = KMeansTokenizer(k, seed=seed).fit(featurize(train_waves))
            methods.append(TokenMethod(name, lambda w, f=featurize, km=kmeans: km.tokenize(f(w)), k))
        else:
            raise EvalError(f"unknown method {name!r}; known methods: {list(METHODS)}")
    return methods


# ------------------------------------------------------------------------------------------------ results

def _number(value: float | None) -> float | None:
    """JSON-safe float: NaN and infinities become None."""
    return None if value is None or not math.isfinite(value) else float(value)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


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
        return {"method": self.method, "condition": self.condition, "mrr": _number(self.mrr), "map": _number(self.map),
                "hit_at": {str(k): _number(v) for k, v in self.hit_at.items()}, "n_queries": self.n_queries,
                "n_evaluated": self.n_evaluated, "n_without_relevant": self.n_without_relevant,
                "search_ms_per_query": _number(self.search_ms_per_query), "first_ranks": self.first_ranks,
                "precision_at_recall": [_number(p) for p in self.precision_at_recall]}


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
        out = {k: (_number(v) if isinstance(v, float) else v) for k, v in dataclasses.asdict(self).items()}
        out["compression"] = _number(self.compression)
        return out


@dataclass
class EvalResult:
    """Every method x condition cell, per-method costs, and the files that were skipped."""

    config: EvalConfig
    methods: list[str]
    cells: list[CellResult]
    costs: dict[str, MethodCosts]
    n_queries: int
    n_database: int
    skipped: list[dict[str, str]] = field(default_factory=list)  # [{"path", "reason"}]

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
        summary = {m: {"mrr": {g: _number(v) for g, v in self.group_mrr(m).items()},
                       "search_ms_per_query": _number(self.costs[m].search_ms_per_query),
                       f"speedup_vs_{REFERENCE_METHOD}": _number(self.speedup(m))} for m in self.methods}
        return {"format": RESULT_FORMAT, "version": RESULT_VERSION, "config": dataclasses.asdict(self.config),
                "n_queries": self.n_queries, "n_database": self.n_database, "summary": summary,
                "cells": [c.to_dict() for c in self.cells],
                "costs": {m: c.to_dict() for m, c in self.costs.items()}, "skipped": list(self.skipped)}

    def to_markdown(self) -> str:
        """Summary table (as in the paper), costs table, every method x condition, and the skipped files."""
        cfg, ref = self.config, self.reference_condition
        hit_cols = [f"hit@{k}" for k in cfg.ks]
        lines = [f"Protocol `{cfg.protocol}`{', cross-speaker' if cfg.cross_speaker else ''}: "
                 f"{self.n_queries} queries, {self.n_database} database clips.", "",
                 _row(["method", "MRR vanilla", "MRR stretched", "MRR shifted", *[f"{h} ({ref})" for h in hit_cols],
                       f"MAP ({ref})", "ms/query", f"speed-up vs {REFERENCE_METHOD}"]),
                 _row(["---"] * (7 + len(hit_cols)))]
        for m in self.methods:
            groups, cell = self.group_mrr(m), self.cell(m, ref)
            speedup = self.speedup(m)
            lines.append(_row([m, *[_fmt(groups[g]) for g in GROUPS], *[_fmt(cell.hit_at[k]) for k in cfg.ks],
                               _fmt(cell.map), _fmt(self.costs[m].search_ms_per_query, 2),
                               "n/a" if not math.isfinite(speedup) else f"{speedup:.1f}x"]))
        lines += ["", "ms/query: scoring one query against the whole database (tokenization excluded, see below).",
                  "", _row(["method", "unit", "units/s", "frames/s", "compression", "encode ms per s audio",
                            "index bytes"]), _row(["---"] * 7)]
        for m in self.methods:
            c = self.costs[m]
            lines.append(_row([m, c.unit, _fmt(c.units_per_s, 1), _fmt(c.frames_per_s, 1), _fmt(c.compression, 2),
                               _fmt(c.encode_ms_per_audio_s, 2), str(c.index_bytes)]))
        lines += ["", _row(["method", "condition", "MRR", "MAP", *hit_cols, "evaluated", "without relevant",
                            "ms/query"]), _row(["---"] * (7 + len(hit_cols)))]
        for c in self.cells:
            lines.append(_row([c.method, c.condition, _fmt(c.mrr), _fmt(c.map), *[_fmt(c.hit_at[k]) for k in cfg.ks],
                               str(c.n_evaluated), str(c.n_without_relevant), _fmt(c.search_ms_per_query, 2)]))
        if self.skipped:
            lines += ["", f"Skipped {len(self.skipped)} file(s):", *[f"- {s['reason']}" for s in self.skipped]]
        return "\n".join(lines) + "\n"

    def save(self, json_path: str | os.PathLike, markdown_path: str | os.PathLike | None = None) -> None:
        """Write the JSON (and optionally the markdown) report atomically."""
        write_json(json_path, self.to_dict())
        if markdown_path is not None:
            with atomic_write(markdown_path, "w", encoding="utf-8") as fh:
                fh.write(self.to_markdown())


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


# ------------------------------------------------------------------------------------------------ the protocol

def load_eval_clips(model: Wav2Tok, items: Sequence[ManifestItem], skipped: list[dict[str, str]]) -> list[EvalClip]:
    """Read ``items`` at the model's rate; unreadable or sub-frame clips are appended to ``skipped``."""
    clips = []
    for item in items:
        try:
            clips.append(EvalClip(item, model.load_clips([item.path])[0]))
        except AudioError as err:
            skipped.append({"path": str(item.path), "reason": str(err)})
    return clips


def protocol_sides(clips: Sequence[EvalClip], protocol: str,
                   max_queries: int | None = None) -> tuple[list[int], list[int]]:
    """Positions in ``clips`` of the queries and of the database entries under ``protocol``.

    ``max_queries`` keeps an evenly spaced subset of the queries (manifests are usually sorted by label,
    so the subset spans the classes).
    """
    if protocol == "query_by_example":
        queries = database = list(range(len(clips)))
    else:
        queries = [i for i, c in enumerate(clips) if c.item.meta.get("role") == "query"]
        database = [i for i, c in enumerate(clips) if c.item.meta.get("role") == "target"]
    if not queries or not database:
        raise EvalError(f"protocol {protocol}: {len(queries)} queries and {len(database)} database clips; "
                        "need at least one of each (query_vs_targets needs meta role 'query' and 'target')")
    if max_queries is not None and max_queries < len(queries):
        picks = np.linspace(0, len(queries) - 1, max_queries).round().astype(int)
        queries = [queries[i] for i in picks]
    return queries, database


def judgements(queries: Sequence[ManifestItem], database: Sequence[ManifestItem],
               cross_speaker: bool) -> tuple[np.ndarray, np.ndarray]:
    """Relevance and exclusion masks, both (n_queries, n_database) bool.

    Relevant: same (known) label. Excluded: the same file and, with ``cross_speaker``, the same (known) speaker.
    """
    def same(a: list[Any], b: list[Any]) -> np.ndarray:
        x, y = np.array(a, dtype=object)[:, None], np.array(b, dtype=object)[None, :]
        return (x == y) & (x != None)  # noqa: E711 - elementwise comparison with None

    relevant = same([q.label for q in queries], [d.label for d in database])
    excluded = same([str(q.path) for q in queries], [str(d.path) for d in database])
    if cross_speaker:
        excluded |= same([q.speaker for q in queries], [d.speaker for d in database])
    return relevant, excluded


def transform_queries(condition: Condition, clips: Sequence[EvalClip], min_samples: int,
                      skipped: list[dict[str, str]]) -> tuple[list[int], list[EvalClip]]:
    """Apply ``condition`` to each query clip; returns (kept positions in ``clips``, transformed clips).

    A query left with fewer than ``min_samples`` samples (a very short clip sped up) is dropped from this
    condition and listed in ``skipped``.
    """
    kept, out = [], []
    for i, clip in enumerate(clips):
        wave = condition.apply(clip.wave)
        if wave.numel() < min_samples:
            skipped.append({"path": str(clip.item.path), "reason": f"{clip.item.path}: only {wave.numel()} samples "
                            f"under {condition.name}, shorter than one frame ({min_samples})"})
            continue
        kept.append(i)
        out.append(EvalClip(clip.item, wave))
    return kept, out


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start


@dataclass
class _Tally:
    """Running cost sums of one method."""

    database_audio_s: float
    encode_s: float = 0.0
    encoded_audio_s: float = 0.0
    search_s: float = 0.0
    searched: int = 0


def evaluate(
    model: Wav2Tok,
    items_test: Sequence[ManifestItem],
    items_train: Sequence[ManifestItem],
    config: EvalConfig | None = None,
    extra_methods: Sequence[Method] = (),
    log: Log | None = None,
) -> EvalResult:
    """Run the protocol for every method (config's, then ``extra_methods``) under every condition.

    Args:
        model: the trained tokenizer; its feature config also sets the baselines' rate, FFT and hop.
        items_test: the evaluation clips (queries and database, as the protocol says).
        items_train: clips the baselines are fitted on (vq k-means, raw-encoder E-step); read only
            when such a method is requested.
        config: see :class:`EvalConfig`.
        extra_methods: further :class:`Method` objects to evaluate alongside (e.g. a new baseline).
        log: receives progress messages.
    """
    config = config or EvalConfig()
    say = log or (lambda message: None)
    skipped: list[dict[str, str]] = []
    clips = load_eval_clips(model, items_test, skipped)
    query_pos, db_pos = protocol_sides(clips, config.protocol, config.max_queries)
    queries, database = [clips[i] for i in query_pos], [clips[i] for i in db_pos]
    relevant, excluded = judgements([q.item for q in queries], [d.item for d in database], config.cross_speaker)
    needs_train = any(m in TRAINED_METHODS for m in config.methods)
    train_waves = [c.wave for c in load_eval_clips(model, items_train, skipped)] if needs_train else []
    say(f"{len(queries)} queries, {len(database)} database clips, {len(train_waves)} train clips")
    methods = build_methods(config.methods, model, train_waves, config.batch_size, config.seed) + list(extra_methods)
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise EvalError(f"method names must be unique, got {names}")

    sr, hop = model.config.features.sr, model.config.features.hop_length
    db_reps, tallies = _encode_database(methods, database, sr, say)
    db_row = {pos: row for row, pos in enumerate(db_pos)}
    cells = []
    for condition in config.parsed_conditions():
        kept, transformed = transform_queries(condition, queries, hop, skipped)
        audio_s = sum(c.wave.numel() for c in transformed) / sr
        for method in methods:
            tally = tallies[method.name]
            if condition.kind == "vanilla" and all(query_pos[i] in db_row for i in kept):
                reps = [db_reps[method.name][db_row[query_pos[i]]] for i in kept]
            else:
                reps, seconds = _timed(method.encode, transformed)
                tally.encode_s, tally.encoded_audio_s = tally.encode_s + seconds, tally.encoded_audio_s + audio_s
            scores, seconds = _timed(method.score, reps, db_reps[method.name])
            tally.search_s, tally.searched = tally.search_s + seconds, tally.searched + len(kept)
            cells.append(_cell(method.name, condition.name, scores, relevant[kept], excluded[kept], config.ks,
                               1e3 * seconds / max(len(kept), 1)))
            say(f"{method.name} / {condition.name}: MRR {_fmt(cells[-1].mrr)}")

    frames_per_s = sum(1 + c.wave.numel() // hop for c in database) / tallies[names[0]].database_audio_s
    costs = {m.name: _costs(m, db_reps[m.name], tallies[m.name], frames_per_s) for m in methods}
    return EvalResult(config, names, cells, costs, len(queries), len(database), skipped)


def _encode_database(methods: Sequence[Method], database: Sequence[EvalClip], sr: int,
                     say: Log) -> tuple[dict[str, list[Any]], dict[str, _Tally]]:
    """Warm each method up (JIT compilation, thread pools: outside the timings), then encode the database once."""
    audio_s = sum(c.wave.numel() for c in database) / sr
    reps, tallies = {}, {}
    for method in methods:
        warm = method.encode(database[:1])
        method.score(warm, warm)
        reps[method.name], seconds = _timed(method.encode, database)
        tallies[method.name] = _Tally(encode_s=seconds, encoded_audio_s=audio_s, database_audio_s=audio_s)
        say(f"{method.name}: database encoded in {seconds:.2f} s")
    return reps, tallies


def _costs(method: Method, db_reps: Sequence[Any], tally: _Tally, frames_per_s: float) -> MethodCosts:
    return MethodCosts(
        unit=method.unit,
        units_per_s=sum(method.length(r) for r in db_reps) / tally.database_audio_s,
        frames_per_s=frames_per_s,
        encode_ms_per_audio_s=1e3 * tally.encode_s / tally.encoded_audio_s,
        search_ms_per_query=1e3 * tally.search_s / max(tally.searched, 1),
        index_bytes=method.nbytes(db_reps))


def _cell(method: str, condition: str, scores: np.ndarray, relevant: np.ndarray, excluded: np.ndarray,
          ks: Sequence[int], ms_per_query: float) -> CellResult:
    """Ranking metrics of one method x condition from its (n_queries, n_database) scores."""
    if scores.shape != relevant.shape:
        raise ValueError(f"method {method!r} returned scores of shape {scores.shape}, expected {relevant.shape}")
    r = ranking_metrics(scores, relevant, excluded, ks)
    ranked = relevant_in_rank_order(scores, relevant, excluded)
    ranked = ranked[ranked.any(axis=1)]  # evaluated queries only
    return CellResult(method, condition, r.mrr, r.map, dict(r.hit_at), scores.shape[0], r.n_evaluated,
                      r.n_without_relevant, ms_per_query, (ranked.argmax(axis=1) + 1).tolist(),
                      interpolated_precision(ranked))


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


# ------------------------------------------------------------------------------------------------ spotting

SPOTTING_METHODS = ("wav2tok", "sdtw-mfcc", "sdtw-logmel")
DEFAULT_THRESHOLDS = tuple(np.round(np.linspace(0.0, 1.0, 21), 2).tolist())


@dataclass
class SpottingResult:
    """Precision/recall/F1 curves of spoken term detection, per method.

    ``curves[m]`` sweeps the given thresholds for ``wav2tok`` (scores ``1 - d / m`` in [0, 1]) and every
    distinct score for subsequence DTW (scores ``-D / L``, no natural scale).
    """

    curves: dict[str, PRCurve]
    run_s: dict[str, float]  # wall time per method: tokenization or features of everything, then the search
    n_queries: int
    n_recordings: int
    skipped: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        methods = {}
        for name, curve in self.curves.items():
            threshold, f1 = curve.best()
            methods[name] = {"best_threshold": _number(threshold), "best_f1": _number(f1),
                             "thresholds": curve.thresholds.tolist(), "precision": curve.precision.tolist(),
                             "recall": curve.recall.tolist(), "f1": curve.f1.tolist(), "n_true": curve.n_true,
                             "run_s": _number(self.run_s[name])}
        return {"n_queries": self.n_queries, "n_recordings": self.n_recordings, "methods": methods,
                "skipped": list(self.skipped)}

    def to_markdown(self) -> str:
        lines = [_row(["method", "best F1", "at threshold", "precision", "recall", "run s"]), _row(["---"] * 6)]
        for name, curve in self.curves.items():
            i = int(np.argmax(curve.f1))
            lines.append(_row([name, _fmt(curve.f1[i]), _fmt(curve.thresholds[i]), _fmt(curve.precision[i]),
                               _fmt(curve.recall[i]), _fmt(self.run_s[name], 2)]))
        return "\n".join(lines) + "\n"


def collapse_with_times(frame_tokens: np.ndarray, frame_s: float) -> tuple[list[int], list[tuple[float, float]]]:
    """Frame tokens ``(T,)`` -> collapsed token string and each token's ``(start_s, end_s)``.

    Frame t covers ``[t, t + 1) * frame_s``; a token spans the frames of its run.
    """
    frame_tokens = np.asarray(frame_tokens)
    starts = np.flatnonzero(np.concatenate([[True], frame_tokens[1:] != frame_tokens[:-1]]))
    ends = np.append(starts[1:], frame_tokens.size)
    return frame_tokens[starts].tolist(), [(s * frame_s, e * frame_s) for s, e in zip(starts.tolist(), ends.tolist())]


def _load_named(model: Wav2Tok, audio: Mapping[str, Audio], sr: int | None,
                skipped: list[dict[str, str]]) -> dict[str, torch.Tensor]:
    """id -> waveform at the model's rate; failures go to ``skipped`` (by path, or by id for arrays)."""
    out = {}
    for name, source in audio.items():
        try:
            out[name] = model.load_clips(source, sr)[0]
        except AudioError as err:
            where = str(source) if isinstance(source, (str, os.PathLike)) else name
            skipped.append({"path": where, "reason": f"{name}: {err}"})
    return out


def _spot_wav2tok(model: Wav2Tok, queries: dict[str, torch.Tensor], recordings: dict[str, torch.Tensor],
                  min_threshold: float, batch_size: int) -> list[ScoredSpan]:
    frame_s = model.config.features.hop_length / model.config.features.sr
    query_tokens = dict(zip(queries, model.tokenize(list(queries.values()), batch_size=batch_size)))
    strings, times = {}, {}
    for rid, frames in zip(recordings, model.frame_tokens(list(recordings.values()), batch_size=batch_size)):
        strings[rid], times[rid] = collapse_with_times(frames.numpy(), frame_s)
    detections = spot_batch(query_tokens, strings, threshold=min_threshold, max_hits=1, token_times=times)
    return [d.scored_span(seconds=True) for d in detections]


def _spot_dtw(featurize: Featurizer, queries: dict[str, torch.Tensor],
              recordings: dict[str, torch.Tensor]) -> list[ScoredSpan]:
    q_feats, r_feats = featurize(list(queries.values())), featurize(list(recordings.values()))
    distance, start, end = subsequence_dtw_matrix(q_feats, r_feats)  # each (n_queries, n_recordings)
    step = featurize.frame_s
    return [ScoredSpan(qid, rid, -float(distance[i, j]), start[i, j] * step, end[i, j] * step)
            for i, qid in enumerate(queries) for j, rid in enumerate(recordings)]


def evaluate_spotting(
    model: Wav2Tok,
    queries: Mapping[str, Audio],
    recordings: Mapping[str, Audio],
    truths: Sequence[TrueSpan],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    methods: Sequence[str] = ("wav2tok", "sdtw-mfcc"),
    min_iou: float = 0.5,
    sr: int | None = None,
    batch_size: int = 32,

) -> SpottingResult:
    """Spoken term detection: find each query in each recording; precision/recall/F1 over a threshold sweep.

    Every method reports its single best placement per (query, recording) pair (``wav2tok``: approximate
    substring match of token strings, :mod:`wav2tok_core.spotting`; ``sdtw-*``: subsequence DTW over the
    baseline features). A detection is correct when it overlaps a true span of its query with IoU >=
    ``min_iou``, so recall is full only when a recording holds each query at most once
    (:func:`wav2tok_core.spotting_data.make_spotting_set` builds such recordings).

    Args:
        queries / recordings: id -> path or mono waveform ``(N,)`` (at ``sr``, default the model's rate).
        truths: true occurrences in seconds, ``TrueSpan(query_id, recording_id, start_s, end_s)``. Those of
            skipped queries or recordings are dropped.
        thresholds: score thresholds swept for ``wav2tok``.
    """
    unknown = [m for m in methods if m not in SPOTTING_METHODS]
    if unknown:
        raise EvalError(f"unknown spotting methods {unknown}; known: {list(SPOTTING_METHODS)}")
    skipped: list[dict[str, str]] = []
    q_waves, r_waves = _load_named(model, queries, sr, skipped), _load_named(model, recordings, sr, skipped)
    kept_truths = [t for t in truths if t.query_id in q_waves and t.recording_id in r_waves]
    if not q_waves or not r_waves or not kept_truths:
        raise EvalError(f"nothing to evaluate: {len(q_waves)} queries, {len(r_waves)} recordings and "
                        f"{len(kept_truths)} true occurrences were usable")
    curves, run_s = {}, {}
    for name in methods:
        if name == "wav2tok":
            found, run_s[name] = _timed(_spot_wav2tok, model, q_waves, r_waves, min(thresholds), batch_size)
            curves[name] = spotting_pr_curve(found, kept_truths, min_iou, thresholds)
        else:
            featurize = Featurizer(baseline_features(model.config.features, name[5:]), batch_size)
            found, run_s[name] = _timed(_spot_dtw, featurize, q_waves, r_waves)
            curves[name] = spotting_pr_curve(found, kept_truths, min_iou)
    return SpottingResult(curves, run_s, len(q_waves), len(r_waves), skipped)
