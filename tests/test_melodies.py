"""Tests of the built-in query-by-humming melody set (wav2tok_core.datasets.melodies)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wav2tok_core.data.manifest import ManifestItem, read_manifest
from wav2tok_core.data.melodies import (MelodySetConfig, Tune, assign_splits, build_melody_set, cut_phrase, load_tunes,
                                        pick_span)
from wav2tok_core.data.synth import SINGERS, render_hum, render_target

SMALL = MelodySetConfig(n_tunes=12, queries_per_tune=3)
HOP_S = 0.01


# ------------------------------------------------------------------------------------------ helpers

def f0_track(x: np.ndarray, sr: int, fmin: float = 60.0, fmax: float = 2100.0, frame_s: float = 0.04,
             threshold: float = 0.1) -> np.ndarray:
    """YIN-style pitch track of (N,) audio: (T,) Hz per 10 ms hop, NaN where unvoiced or quiet."""
    n, hop = int(frame_s * sr), int(HOP_S * sr)
    if len(x) < n:
        return np.full(0, np.nan)
    starts = hop * np.arange((len(x) - n) // hop + 1)
    frames = x[starts[:, None] + np.arange(n)[None, :]]
    frames = frames - frames.mean(axis=1, keepdims=True)
    max_lag = min(int(sr / fmin) + 2, n // 2)
    spec = np.fft.rfft(frames, 2 * n)
    corr = np.fft.irfft(spec * np.conj(spec))[:, :max_lag]
    energy = np.cumsum(frames ** 2, axis=1)
    lags = np.arange(max_lag)
    head = energy[:, n - 1 - lags]  # sum of x[0 : n - lag] ** 2
    tail = energy[:, -1:] - np.concatenate([np.zeros((len(frames), 1)), energy[:, :max_lag - 1]], axis=1)
    diff = np.maximum(head + tail - 2.0 * corr, 0.0)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] * lags[1:] / np.maximum(np.cumsum(diff[:, 1:], axis=1), 1e-12)
    lo = int(sr / fmax)
    cmnd[:, :lo] = 10.0  # far above any threshold: lags shorter than 1 / fmax are never picked
    below = cmnd < threshold
    first = below.argmax(axis=1)
    after = (~below) & (lags[None, :] > first[:, None])
    end = np.where(after.any(axis=1), after.argmax(axis=1), max_lag)
    in_dip = (lags[None, :] >= first[:, None]) & (lags[None, :] < end[:, None])
    best = np.clip(np.where(in_dip, cmnd, np.inf).argmin(axis=1), 1, max_lag - 2)
    rows = np.arange(len(frames))
    left, mid, right = cmnd[rows, best - 1], cmnd[rows, best], cmnd[rows, best + 1]
    curvature = left - 2.0 * mid + right
    shift = np.zeros(len(frames))  # parabolic refinement of the lag around the dip
    bowl = curvature > 0
    shift[bowl] = np.clip(0.5 * (left - right)[bowl] / curvature[bowl], -0.5, 0.5)
    f0 = sr / (best + shift)
    loud = energy[:, -1] > 1e-3 * energy[:, -1].max()
    return np.where(below.any(axis=1) & loud, f0, np.nan)


def pitch_curve(f0: np.ndarray, n_points: int = 50) -> np.ndarray | None:
    """Tempo-normalised pitch (n_points,) in MIDI semitones over the voiced extent of a track (gaps filled)."""
    semis = 69.0 + 12.0 * np.log2(f0 / 440.0)
    voiced = np.flatnonzero(np.isfinite(semis))
    if len(voiced) < 5:
        return None
    filled = np.interp(np.arange(voiced[0], voiced[-1] + 1), voiced, semis[voiced])
    return np.interp(np.linspace(0, len(filled) - 1, n_points), np.arange(len(filled)), filled)


def contour(f0: np.ndarray) -> np.ndarray | None:
    """Transposition-invariant contour: ``pitch_curve`` minus its median, clipped to tame octave errors."""
    curve = pitch_curve(f0)
    return None if curve is None else np.clip(curve - np.median(curve), -9.0, 9.0)


def read(item: ManifestItem) -> tuple[np.ndarray, int]:
    """Audio (N,) float64 and sample rate of a clip."""
    return sf.read(item.path, dtype="float64")


def span_frames(f0: np.ndarray, start_s: float, dur_s: float) -> np.ndarray:
    """The part of a 10 ms-hop track covering [start_s, start_s + dur_s)."""
    return f0[int(round(start_s / HOP_S)): int(round((start_s + dur_s) / HOP_S))]


def by_role(items: list[ManifestItem]) -> tuple[dict[str, ManifestItem], list[ManifestItem]]:
    """Targets keyed by tune id, and the list of queries."""
    targets = {it.label: it for it in items if it.meta["role"] == "target"}
    return targets, [it for it in items if it.meta["role"] == "query"]


def clip_mtimes(folder: Path) -> dict[str, int]:
    """Modification times (ns) of every file under ``folder``, by relative path."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> list[ManifestItem]:
    return read_manifest(build_melody_set(tmp_path_factory.mktemp("small"), SMALL))


# ------------------------------------------------------------------------------------------ the build

def test_manifest_round_trips_and_audio_is_sane(small_set: list[ManifestItem]) -> None:
    assert len(small_set) == SMALL.n_tunes * (1 + SMALL.queries_per_tune)
    targets, queries = by_role(small_set)
    assert len(targets) == SMALL.n_tunes
    assert all(t.speaker == "instrument" for t in targets.values())
    assert {q.speaker for q in queries} <= {s.name for s in SINGERS}
    for item in small_set:
        assert item.path.is_file()
        info = sf.info(item.path)
        assert (info.samplerate, info.channels, info.subtype) == (SMALL.sr, 1, "PCM_16")
        audio, _ = read(item)
        assert np.all(np.isfinite(audio)) and np.abs(audio).max() <= 1.0
        assert np.sqrt(np.mean(audio ** 2)) > 1e-3
        assert item.label.startswith("ryans_") and item.meta["tune_title"]
        assert {"role", "transpose", "tempo", "start_s", "dur_s", "singer"} <= set(item.meta)


def test_each_tune_lives_in_exactly_one_split(small_set: list[ManifestItem]) -> None:
    splits_of = defaultdict(set)
    for item in small_set:
        splits_of[item.label].add(item.split)
    assert all(len(s) == 1 for s in splits_of.values())
    assert {s for (s,) in splits_of.values()} == {"train", "val", "test"}


def test_same_seed_same_audio_other_seed_other_audio(small_set: list[ManifestItem], tmp_path: Path) -> None:
    again = read_manifest(build_melody_set(tmp_path / "again", SMALL))
    assert [(a.path.name, a.label, a.split, a.meta) for a in again] == \
           [(b.path.name, b.label, b.split, b.meta) for b in small_set]
    assert all(np.array_equal(read(a)[0], read(b)[0]) for a, b in zip(again, small_set))
    other = read_manifest(build_melody_set(tmp_path / "other", replace(SMALL, seed=1)))
    assert [it.label for it in other] != [it.label for it in small_set]


def test_cache_reused_for_same_params_and_rebuilt_for_new_ones(tmp_path: Path) -> None:
    config = replace(SMALL, n_tunes=4, queries_per_tune=3)
    manifest = build_melody_set(tmp_path, config)
    before = clip_mtimes(tmp_path)
    assert build_melody_set(tmp_path, config) == manifest
    assert clip_mtimes(tmp_path) == before

    fewer = replace(config, queries_per_tune=2)
    items = read_manifest(build_melody_set(tmp_path, fewer))
    assert len(items) == 4 * 3
    assert sorted(p.name for p in (tmp_path / "clips").glob("*.wav")) == sorted(it.path.name for it in items)
    assert all(clip_mtimes(tmp_path)[f"clips/{it.path.name}"] != before[f"clips/{it.path.name}"]
               for it in items)


def test_interrupted_build_is_redone(tmp_path: Path) -> None:
    config = replace(SMALL, n_tunes=3, queries_per_tune=1)
    build_melody_set(tmp_path, config)
    before = clip_mtimes(tmp_path)
    (tmp_path / "params.json").unlink()  # as if killed before the completion marker was written
    (tmp_path / "clips" / ".ryans_0001_q00.wav.x1y2.tmp").write_bytes(b"half a file")
    build_melody_set(tmp_path, config)
    after = clip_mtimes(tmp_path)
    assert after.keys() == before.keys()
    assert all(after[name] != before[name] for name in after if name != "tune_notes.json")


# ------------------------------------------------------------------------------------------ query realism

def test_queries_are_transposed_and_retimed_as_recorded(small_set: list[ManifestItem]) -> None:
    targets, queries = by_role(small_set)
    target_f0 = {label: f0_track(*read(t)) for label, t in targets.items()}
    pitch_ok = timing_ok = 0
    for q in queries:
        audio, sr = read(q)
        f0 = f0_track(audio, sr)
        reference = pitch_curve(span_frames(target_f0[q.label], q.meta["start_s"], q.meta["dur_s"]))
        measured_shift = np.median(pitch_curve(f0) - reference)  # frame by frame after time normalisation
        pitch_ok += abs(measured_shift - q.meta["transpose"]) < 1.0
        level = np.convolve(audio ** 2, np.ones(int(0.02 * sr)) / int(0.02 * sr), mode="same")
        loud = np.flatnonzero(level > 0.03 * level.max())
        sung_s = (loud[-1] - loud[0]) / sr
        timing_ok += abs(sung_s - q.meta["sung_s"]) < 0.15 and abs(loud[0] / sr - q.meta["lead_s"]) < 0.1
        assert q.meta["sung_s"] == pytest.approx(q.meta["dur_s"] / q.meta["tempo"], rel=0.3)
    assert pitch_ok >= 0.8 * len(queries)
    assert timing_ok >= 0.9 * len(queries)
    assert np.mean([abs(q.meta["key_shift"]) > 0.5 for q in queries]) > 0.7
    assert np.mean([abs(q.meta["tempo"] - 1.0) > 0.02 for q in queries]) > 0.8


def test_query_contours_match_their_own_tune(small_set: list[ManifestItem]) -> None:
    targets, queries = by_role(small_set)
    target_f0 = {label: f0_track(*read(t)) for label, t in targets.items()}
    wins = 0
    for q in queries:
        own = contour(f0_track(*read(q)))
        assert own is not None
        phrase_s = targets[q.label].meta["dur_s"]
        share = (q.meta["start_s"] / phrase_s, q.meta["dur_s"] / phrase_s)
        scores = {}
        for label, track in target_f0.items():  # the same share of every tune's phrase (exact for its own)
            dur = targets[label].meta["dur_s"]
            other = contour(span_frames(track, share[0] * dur, share[1] * dur))
            scores[label] = -1.0 if other is None else float(np.corrcoef(own, other)[0, 1])
        wins += max(scores, key=scores.get) == q.label
    assert wins >= 0.6 * len(queries), f"own tune ranked first for only {wins}/{len(queries)} queries"


# ------------------------------------------------------------------------------------------ building blocks

def test_load_tunes_is_deterministic_and_monophonic(tmp_path: Path) -> None:
    cache = tmp_path / "notes.json"
    first = load_tunes(4, seed=3, cache_file=cache)
    assert cache.is_file()
    assert load_tunes(4, seed=3, cache_file=cache) == first == load_tunes(4, seed=3)
    for tune in first:
        assert isinstance(tune, Tune) and len(tune.notes) >= 8
        pitches, durs = np.array(tune.notes).T
        assert np.all((pitches >= 30) & (pitches <= 100)) and np.all(durs > 0)
        assert np.median(durs) == pytest.approx(0.3)


def test_phrase_and_span_respect_their_limits() -> None:
    tune = load_tunes(1, seed=0)[0]
    rng = np.random.default_rng(0)
    for _ in range(20):
        phrase = cut_phrase(tune, rng, (3.0, 5.0), 8)
        assert 3.0 - 1e-9 <= phrase.dur_s <= 5.0 + 1e-9 and len(phrase.notes) >= 8
        first, stop = pick_span(len(phrase.notes), rng, (0.5, 1.0))
        assert 0 <= first < stop <= len(phrase.notes) and stop - first >= 0.5 * len(phrase.notes)


def test_renderers_shapes_and_determinism() -> None:
    notes = [(62.0, 0.3), (64.0, 0.3), (66.0, 0.6)]
    target = render_target(notes, 16000)
    assert target.shape == (round((1.2 + 0.3) * 16000),) and target.dtype == np.float32
    hums = [render_hum(notes, 16000, SINGERS[2], np.random.default_rng(7), transpose_st=-12.0, tempo=1.1)
            for _ in range(2)]
    assert np.array_equal(hums[0].audio, hums[1].audio)
    assert hums[0].sung_s == pytest.approx(1.2 / 1.1, rel=0.25)
    assert len(hums[0].audio) / 16000 == pytest.approx(hums[0].sung_s + hums[0].lead_s, abs=0.31)


@pytest.mark.parametrize("n", [3, 5, 12, 120])
def test_assign_splits_fills_every_split(n: int) -> None:
    splits = assign_splits(n, (0.6, 0.1, 0.3))
    assert len(splits) == n and set(splits) == {"train", "val", "test"}
    assert splits == sorted(splits, key=["train", "val", "test"].index)


def test_config_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split_fractions"):
        build_melody_set(tmp_path, replace(SMALL, split_fractions=(0.5, 0.1, 0.1)))
    with pytest.raises(ValueError, match="n_singers"):
        build_melody_set(tmp_path, replace(SMALL, n_singers=99))
