"""Spotting evaluation: spoken term detection of short queries inside longer recordings.

:func:`evaluate_spotting` runs given queries and recordings; :func:`evaluate_spotting_task` runs the protocol of
``wav2tok evaluate --task spotting`` (:func:`wav2tok_core.data.spotting.make_spotting_task`). Methods
(:data:`SPOTTING_METHODS`):

* ``wav2tok``: approximate substring search of the query's token string in the recordings' strings
  (:mod:`wav2tok_core.search.spotting`), scores ``1 - d / m``; detections below ``min_score`` (default
  :data:`MIN_SCORE`) are not produced. A higher floor searches faster and leaves every detection at or above
  it as it was.
* ``sdtw-mfcc`` / ``sdtw-logmel`` / ``sdtw-pitch``: subsequence DTW (Euclidean) over the baseline front ends
  (:func:`wav2tok_core.eval.methods.baseline_features`), scores ``-D / L``.
* ``sdtw-encoder``: subsequence DTW (cosine) over the model's own frame vectors, unquantised.

Every method reports up to ``max_hits`` non-overlapping placements per (query, recording) pair. Costs are
measured apart: ``prepare_s`` turns all audio into the method's representation (the index, for a deployed
system), ``search_s`` searches every query in the recordings it is searched in.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ..audio.io import load_clips
from ..data.spotting import SpottingTask, SpottingTaskConfig, TrueSpan, make_spotting_task
from ..errors import EvalError
from ..model.inference import Audio
from ..model.wav2tok import Wav2Tok, load_model
from ..runtime import timed
from ..search.batch import recording_index
from ..search.spotting import RecordingIndex, ScoredSpan
from .baselines import subsequence_dtw_hits
from .methods import Featurizer, baseline_features, frame_vectors
from .protocol import load_split_items
from .report import MethodSpotting, SpottingResult

SDTW_KINDS = ("mfcc", "logmel", "pitch")  # baseline front ends offered for subsequence DTW
SPOTTING_METHODS = ("wav2tok", *(f"sdtw-{kind}" for kind in SDTW_KINDS), "sdtw-encoder")
MIN_SCORE = 0.2  # wav2tok: no detection with more than 80 % of the query's length in edits

Searched = Mapping[str, Sequence[str]]  # query id -> ids of the recordings it is searched in
# A method's search: (queries, recordings, searched, max_hits) -> detections; queries and recordings are in the
# method's representation, see the _prepare_* functions
Search = Callable[[dict, Any, Searched, int], list[ScoredSpan]]


def _load_named(model: Wav2Tok, audio: Mapping[str, Audio], sr: int | None,
                skipped: list[dict[str, str]]) -> dict[str, torch.Tensor]:
    """id -> waveform at the model's rate; failures go to ``skipped`` (by path, or by id for arrays)."""
    def where(named: tuple[str, Audio]) -> str:
        return str(named[1]) if isinstance(named[1], (str, os.PathLike)) else named[0]

    kept, waves, failures = load_clips(list(audio.items()), lambda named: model.load_clips(named[1], sr)[0], where)
    skipped.extend(f.to_dict() for f in failures)
    return {name: wave for (name, _), wave in zip(kept, waves)}


def _groups(searched: Searched) -> dict[tuple[str, ...], list[str]]:
    """Queries grouped by the recordings they are searched in (one search call per group)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for qid, rids in searched.items():
        groups.setdefault(tuple(rids), []).append(qid)
    return groups


def _prepare_wav2tok(model: Wav2Tok, queries: dict[str, torch.Tensor], recordings: dict[str, torch.Tensor],
                     batch_size: int) -> tuple[dict, RecordingIndex]:
    """Query token strings, and the recordings' token strings with token times."""
    query_tokens = dict(zip(queries, model.tokenize(list(queries.values()), batch_size=batch_size)))
    return query_tokens, recording_index(model, recordings, batch_size)


def _wav2tok_search(min_score: float) -> Search:
    """Token spotting, keeping detections that score at least ``min_score``."""
    def search(queries: dict, recordings: RecordingIndex, searched: Searched, max_hits: int) -> list[ScoredSpan]:
        found = []
        for rids, qids in _groups(searched).items():
            hits = recordings.subset(rids).hits({q: queries[q] for q in qids}, min_score, max_hits)
            found += [ScoredSpan(qids[q], rids[r], score, start, end) for q, r, score, start, end in
                      zip(hits.query.tolist(), hits.recording.tolist(), hits.score.tolist(), hits.start_s.tolist(),
                          hits.end_s.tolist())]
        return found
    return search


def _sdtw_search(frame_s: float, metric: str) -> Search:
    """Subsequence DTW over prepared (T, F) features with ``frame_s`` seconds per frame."""
    def search(queries: dict, recordings: dict, searched: Searched, max_hits: int) -> list[ScoredSpan]:
        found = []
        for rids, qids in _groups(searched).items():
            distance, start, end = subsequence_dtw_hits([queries[q] for q in qids], [recordings[r] for r in rids],
                                                        max_hits, metric)
            for i, j, h in zip(*np.nonzero(start >= 0)):
                found.append(ScoredSpan(qids[i], rids[j], -float(distance[i, j, h]), start[i, j, h] * frame_s,
                                        end[i, j, h] * frame_s))
        return found
    return search


def _method(model: Wav2Tok, name: str, batch_size: int, min_score: float) -> tuple[Callable, Search]:
    """A method's ``(prepare(queries, recordings) -> (queries, recordings) representations, search)``;
    ``min_score`` is wav2tok's detection floor."""
    if name == "wav2tok":
        return (lambda q, r: _prepare_wav2tok(model, q, r, batch_size)), _wav2tok_search(min_score)
    if name == "sdtw-encoder":
        frame_s = model.config.features.frame_s
        featurize = lambda waves: frame_vectors(model, waves, batch_size)  # noqa: E731
        metric = "cosine"
    else:
        featurizer = Featurizer(baseline_features(model.config.features, name.removeprefix("sdtw-")), batch_size)
        featurize, frame_s, metric = featurizer, featurizer.frame_s, "euclidean"

    def prepare(queries: dict[str, torch.Tensor], recordings: dict[str, torch.Tensor]) -> tuple[dict, dict]:
        return (dict(zip(queries, featurize(list(queries.values())))),
                dict(zip(recordings, featurize(list(recordings.values())))))
    return prepare, _sdtw_search(frame_s, metric)


def evaluate_spotting(
    model: Wav2Tok,
    queries: Mapping[str, Audio],
    recordings: Mapping[str, Audio],
    truths: Sequence[TrueSpan],
    methods: Sequence[str] = ("wav2tok", "sdtw-mfcc"),
    min_iou: float = 0.5,
    sr: int | None = None,
    batch_size: int = 32,
    searched: Searched | None = None,
    max_hits: int = 1,
    min_score: float = MIN_SCORE,
    repeats: int = 1,
) -> SpottingResult:
    """Spoken term detection: find each query in the recordings it is searched in.

    A detection is correct when it overlaps a not yet matched true span of its query with IoU >= ``min_iou``
    (:func:`wav2tok_core.eval.metrics.match_detections`). Reported per method: precision / recall / F1 over
    every distinct score, MTWV and ATWV (:class:`wav2tok_core.eval.metrics.TWVCurve`; ATWV's threshold is
    fixed on held-out queries), MAP and P@10 of each query's detections, and the costs.

    Args:
        queries / recordings: id -> path or mono waveform ``(N,)`` (at ``sr``, default the model's rate).
        truths: true occurrences in seconds, ``TrueSpan(query_id, recording_id, start_s, end_s)``. Those of
            skipped queries or recordings, or of pairs not searched, are dropped.
        searched: query id -> recording ids it is searched in; default every recording.
        max_hits: placements reported per (query, recording) pair.
        min_score: wav2tok's detection floor, in [0, 1].
        repeats: each method's search runs this many times and the fastest time is reported (a shared machine's
            noise only ever adds time).
    """
    unknown = [m for m in methods if m not in SPOTTING_METHODS]
    if unknown:
        raise EvalError(f"unknown spotting methods {unknown}; known: {list(SPOTTING_METHODS)}")
    if max_hits < 1:
        raise EvalError(f"max_hits must be >= 1, got {max_hits}")
    if not 0.0 <= min_score <= 1.0:
        raise EvalError(f"min_score must be in [0, 1], got {min_score}")
    if repeats < 1:
        raise EvalError(f"repeats must be >= 1, got {repeats}")
    skipped: list[dict[str, str]] = []
    q_waves, r_waves = _load_named(model, queries, sr, skipped), _load_named(model, recordings, sr, skipped)
    pairs = {qid: [r for r in (searched[qid] if searched is not None else recordings) if r in r_waves]
             for qid in q_waves}
    kept_truths = [t for t in truths if t.query_id in pairs and t.recording_id in pairs[t.query_id]]
    if not kept_truths:
        raise EvalError(f"nothing to evaluate: {len(q_waves)} queries, {len(r_waves)} recordings and no true "
                        "occurrence in a searched recording were usable")
    rate = model.config.features.sr
    searched_s = {qid: sum(r_waves[r].numel() / rate for r in rids) for qid, rids in pairs.items()}
    results = {}
    for name in methods:
        prepare, search = _method(model, name, batch_size, min_score)
        (q_reps, r_reps), prepare_s = timed(prepare, q_waves, r_waves)
        qid, rid = next((q, rids[0]) for q, rids in pairs.items() if rids)
        search(q_reps, r_reps, {qid: [rid]}, max_hits)  # compiles the kernels outside the timing
        found, search_s = timed(search, q_reps, r_reps, pairs, max_hits)
        search_s = min([search_s] + [timed(search, q_reps, r_reps, pairs, max_hits)[1] for _ in range(repeats - 1)])
        results[name] = MethodSpotting.measure(found, kept_truths, searched_s, min_iou, prepare_s, search_s)
    return SpottingResult(results, len(q_waves), len(r_waves), sum(w.numel() for w in r_waves.values()) / rate / 3600,
                          min_iou, max_hits, min_score, repeats, skipped)


def evaluate_spotting_manifest(model: Wav2Tok | str | os.PathLike, manifest: str | os.PathLike,
                               config: SpottingTaskConfig = SpottingTaskConfig(),
                               methods: Sequence[str] = SPOTTING_METHODS, test_split: str = "test",
                               device: str = "cpu", **options: Any) -> SpottingResult:
    """:func:`evaluate_spotting_task` on the task built from a manifest's ``test_split`` (``options``: min_iou,
    batch_size, max_hits, min_score, repeats)."""
    test, _ = load_split_items(manifest, test_split, train_split="")
    if not isinstance(model, Wav2Tok):
        model = load_model(model, device)
    return evaluate_spotting_task(model, make_spotting_task(test, config, model.config.features.sr), methods, **options)


def evaluate_spotting_task(model: Wav2Tok, task: SpottingTask, methods: Sequence[str] = SPOTTING_METHODS,
                           min_iou: float = 0.5, batch_size: int = 32, max_hits: int | None = None,
                           min_score: float = MIN_SCORE, repeats: int = 1) -> SpottingResult:
    """:func:`evaluate_spotting` on a task; ``max_hits`` defaults to the most clips in one recording."""
    rec = task.recordings
    most = max((sum(s.recording_id == rid for s in rec.segments) for rid in rec.recordings), default=1)
    result = evaluate_spotting(model, task.queries, rec.recordings, task.truths(), methods, min_iou, rec.sr,
                               batch_size, task.searched, max_hits or most, min_score, repeats)
    result.skipped = rec.skipped + result.skipped
    return result
