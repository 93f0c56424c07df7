"""The evaluation protocol: query-by-example retrieval under query transformations, and its costs.

Protocols
---------
* ``query_by_example``: every test clip queries all test clips; relevant = same label.
* ``query_vs_targets``: test items with ``meta["role"] == "query"`` search the test items with
  ``meta["role"] == "target"``; relevant = same label (the melody set).

A database entry takes no part in a query's ranking when it is the query's own file (same path) and, in
cross-speaker mode, when it has the query's speaker. Queries left with no relevant entry are counted in
``n_without_relevant`` and left out of the means (see :mod:`wav2tok_core.eval.metrics`, which also defines
the pessimistic tie-breaking).

Every method (:mod:`wav2tok_core.eval.methods`) runs under every condition
(:mod:`wav2tok_core.eval.conditions`). The database side is encoded once per method; each condition's
queries are encoded from the transformed audio (vanilla queries that are database clips reuse the database
encoding). Costs are defined in :mod:`wav2tok_core.eval.report`. Unreadable or too short files are skipped
and listed in the result, never fatal.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..audio.io import load_clips
from ..data.manifest import ManifestItem, read_manifest
from ..errors import EvalError, ManifestError
from ..model.wav2tok import Wav2Tok, load_model
from ..runtime import timed
from .conditions import EvalClip, transform_queries
from .config import EvalConfig
from .consistency import token_consistency
from .methods import Method, build_methods, needs_train
from .metrics import interpolated_precision, ranking_metrics, relevant_in_rank_order
from .report import CellResult, EvalResult, MethodCosts, fmt

Log = Callable[[str], None]


def detect_protocol(items: Sequence[ManifestItem]) -> str:
    """``query_vs_targets`` when the items carry both ``meta["role"]`` "query" and "target", else
    ``query_by_example``."""
    roles = {item.meta.get("role") for item in items}
    return "query_vs_targets" if {"query", "target"} <= roles else "query_by_example"


def load_split_items(manifest: str | os.PathLike, test_split: str,
                     train_split: str) -> tuple[list[ManifestItem], list[ManifestItem]]:
    """(test items, train items) of a manifest; raises ManifestError when the test split is empty."""
    items = read_manifest(manifest)
    test = [it for it in items if it.split == test_split]
    if not test:
        splits = sorted({str(it.split) for it in items})
        raise ManifestError(f"{manifest}: no items in split {test_split!r} (splits present: {splits})")
    return test, [it for it in items if it.split == train_split]


def load_eval_clips(model: Wav2Tok, items: Sequence[ManifestItem], skipped: list[dict[str, str]]) -> list[EvalClip]:
    """Read ``items`` at the model's rate; unreadable or sub-frame clips are appended to ``skipped``."""
    kept, waves, failures = load_clips(items, lambda item: model.load_clips([item.path])[0], lambda item: str(item.path))
    skipped.extend(f.to_dict() for f in failures)
    return [EvalClip(item, wave) for item, wave in zip(kept, waves)]


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
    trained = any(needs_train(m) for m in config.methods)
    train_waves = [c.wave for c in load_eval_clips(model, items_train, skipped)] if trained else []
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
        kept, transformed = transform_queries(condition, queries, hop, skipped, config.stretch_method)
        audio_s = sum(c.wave.numel() for c in transformed) / sr
        for method in methods:
            tally = tallies[method.name]
            if condition.kind == "vanilla" and all(query_pos[i] in db_row for i in kept):
                reps = [db_reps[method.name][db_row[query_pos[i]]] for i in kept]
            else:
                reps, seconds = timed(method.encode, transformed)
                tally.encode_s, tally.encoded_audio_s = tally.encode_s + seconds, tally.encoded_audio_s + audio_s
            scores, seconds = timed(method.score, reps, db_reps[method.name])
            tally.search_s, tally.searched = tally.search_s + seconds, tally.searched + len(kept)
            cells.append(_cell(method.name, condition.name, scores, relevant[kept], excluded[kept], config.ks,
                               1e3 * seconds / max(len(kept), 1)))
            say(f"{method.name} / {condition.name}: MRR {fmt(cells[-1].mrr)}")

    frames_per_s = sum(1 + c.wave.numel() // hop for c in database) / tallies[names[0]].database_audio_s
    costs = {m.name: _costs(m, db_reps[m.name], tallies[m.name], frames_per_s) for m in methods}
    consistency = None
    if config.consistency_pairs:
        found = token_consistency(model, database, config.consistency_pairs, config.seed, config.batch_size)
        consistency = found.to_dict() if found else None
    return EvalResult(config, names, cells, costs, len(queries), len(database), skipped, consistency)


def evaluate_manifest(
    model: Wav2Tok | str | os.PathLike,
    manifest: str | os.PathLike,
    config: EvalConfig | None = None,
    *,
    auto_protocol: bool = False,
    test_split: str = "test",
    train_split: str = "train",
    device: str = "cpu",
    log: Log | None = None,
) -> EvalResult:
    """:func:`evaluate` on a manifest's test split, baselines fitted on its train split.

    Args:
        model: a model, or the path of a model or training checkpoint (loaded on ``device``).
        auto_protocol: replace ``config.protocol`` by the one the test items call for (:func:`detect_protocol`).
    """
    config = config or EvalConfig()
    test, train = load_split_items(manifest, test_split, train_split)
    if auto_protocol:
        config = dataclasses.replace(config, protocol=detect_protocol(test))
    if not isinstance(model, Wav2Tok):
        model = load_model(model, device)
    return evaluate(model, test, train, config, log=log)


def _encode_database(methods: Sequence[Method], database: Sequence[EvalClip], sr: int,
                     say: Log) -> tuple[dict[str, list[Any]], dict[str, _Tally]]:
    """Warm each method up (JIT compilation, thread pools: outside the timings), then encode the database once."""
    audio_s = sum(c.wave.numel() for c in database) / sr
    reps, tallies = {}, {}
    for method in methods:
        warm = method.encode(database[:1])
        method.score(warm, warm)
        reps[method.name], seconds = timed(method.encode, database)
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
