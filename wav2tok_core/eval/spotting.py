"""Spotting evaluation: spoken term detection of short queries inside longer recordings (:func:`evaluate_spotting`).

Methods (:data:`SPOTTING_METHODS`): ``wav2tok`` and subsequence DTW over a baseline front end, ``sdtw-<kind>``.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
import torch

from ..audio.io import load_clips
from ..data.spotting import TrueSpan
from ..errors import EvalError
from ..model.inference import Audio
from ..model.tokens import token_spans
from ..model.wav2tok import Wav2Tok
from ..search.spotting import ScoredSpan, spot_batch
from .baselines import subsequence_dtw_matrix
from .methods import Featurizer, baseline_features, timed
from .metrics import spotting_pr_curve
from .report import SpottingResult

SDTW_KINDS = ("mfcc", "logmel")  # baseline front ends offered for subsequence DTW
SPOTTING_METHODS = ("wav2tok", *(f"sdtw-{kind}" for kind in SDTW_KINDS))
DEFAULT_THRESHOLDS = tuple(np.round(np.linspace(0.0, 1.0, 21), 2).tolist())


def _load_named(model: Wav2Tok, audio: Mapping[str, Audio], sr: int | None,
                skipped: list[dict[str, str]]) -> dict[str, torch.Tensor]:
    """id -> waveform at the model's rate; failures go to ``skipped`` (by path, or by id for arrays)."""
    def where(named: tuple[str, Audio]) -> str:
        return str(named[1]) if isinstance(named[1], (str, os.PathLike)) else named[0]

    kept, waves, failures = load_clips(list(audio.items()), lambda named: model.load_clips(named[1], sr)[0], where)
    skipped.extend(f.to_dict() for f in failures)
    return {name: wave for (name, _), wave in zip(kept, waves)}


def _spot_wav2tok(model: Wav2Tok, queries: dict[str, torch.Tensor], recordings: dict[str, torch.Tensor],
                  min_threshold: float, batch_size: int) -> list[ScoredSpan]:
    frame_s = model.config.features.hop_length / model.config.features.sr
    query_tokens = dict(zip(queries, model.tokenize(list(queries.values()), batch_size=batch_size)))
    strings, times = {}, {}
    for rid, frames in zip(recordings, model.frame_tokens(list(recordings.values()), batch_size=batch_size)):
        spans = token_spans(frames, frame_s, model.config.keep_repeats)
        strings[rid], times[rid] = [t for t, _, _ in spans], [(start, end) for _, start, end in spans]
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
    substring match of token strings, :mod:`wav2tok_core.search.spotting`; ``sdtw-*``: subsequence DTW over
    the baseline features). A detection is correct when it overlaps a true span of its query with IoU >=
    ``min_iou``, so recall is full only when a recording holds each query at most once
    (:func:`wav2tok_core.data.spotting.make_spotting_set` builds such recordings).

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
            found, run_s[name] = timed(_spot_wav2tok, model, q_waves, r_waves, min(thresholds), batch_size)
            curves[name] = spotting_pr_curve(found, kept_truths, min_iou, thresholds)
        else:
            featurize = Featurizer(baseline_features(model.config.features, name.removeprefix("sdtw-")), batch_size)
            found, run_s[name] = timed(_spot_dtw, featurize, q_waves, r_waves)
            curves[name] = spotting_pr_curve(found, kept_truths, min_iou)
    return SpottingResult(curves, run_s, len(q_waves), len(r_waves), skipped)
