"""The evaluation protocol, its reports, spotting evaluation and the index / search / evaluate commands.

Data: tone clips with class-specific pitch contours (conftest.tone_clip), 3 classes x 4 test clips from
two speakers plus 3 x 3 train clips, written as WAV files with a manifest. The model is an untrained tiny
one whose codebook comes from one E-step: usable, not good.
"""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import tone_clip

from wav2tok_core.audio.augment import pitch_shift, time_stretch
from wav2tok_core.audio.config import FeatureConfig
from wav2tok_core.cli.main import build_parser
from wav2tok_core.data.manifest import ManifestItem, write_manifest
from wav2tok_core.data.spotting import SpottingTaskConfig, TrueSpan, make_spotting_set, make_spotting_task
from wav2tok_core.errors import ConfigError, EvalError, ManifestError
from wav2tok_core.eval.baselines import dtw_score_matrix
from wav2tok_core.eval.conditions import Condition, EvalClip
from wav2tok_core.eval.config import EvalConfig
from wav2tok_core.eval.methods import METHODS, build_methods
from wav2tok_core.eval.protocol import evaluate, evaluate_manifest, judgements, protocol_sides
from wav2tok_core.eval.spotting import SPOTTING_METHODS, evaluate_spotting, evaluate_spotting_task
from wav2tok_core.model.codebook import fit_model_codebook
from wav2tok_core.model.config import ModelConfig
from wav2tok_core.model.tokens import token_runs
from wav2tok_core.model.wav2tok import Wav2Tok
from wav2tok_core.search.index import TokenIndex
from wav2tok_core.search.spotting import RecordingIndex

SR = 16000
CLASSES = 3


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """{"root", "test": [items], "train": [items], "manifest": path, "model": Wav2Tok, "model_path": path}."""
    root = tmp_path_factory.mktemp("eval")
    items = []
    for split, takes in (("train", range(3)), ("test", range(3, 7))):
        for k in range(CLASSES):
            for take in takes:
                path = root / "clips" / f"c{k}_{take}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, tone_clip(k, take), SR)
                items.append(ManifestItem(path, f"c{k}", f"s{take % 2}", split))
    write_manifest(items, root / "manifest.json")
    torch.manual_seed(0)
    model = Wav2Tok(ModelConfig(emb_dim=16, num_tokens=8, num_layers=1))
    train = [it for it in items if it.split == "train"]
    fit_model_codebook(model, model.load_clips([it.path for it in train]))
    model.eval()
    model.save(root / "model.pt")
    return {"root": root, "test": [it for it in items if it.split == "test"], "train": train,
            "manifest": root / "manifest.json", "model": model, "model_path": root / "model.pt"}


class Oracle:
    """Scores 1 for the same label, 0 otherwise (``sign=-1``: the reverse). Records what it was asked to encode."""

    unit = "tokens"

    def __init__(self, name: str = "oracle", sign: float = 1.0) -> None:
        self.name, self.sign = name, sign
        self.calls: list[list[EvalClip]] = []

    def encode(self, clips):
        self.calls.append(list(clips))
        return [c.item.label for c in clips]

    def score(self, queries, database):
        same = np.array(queries, dtype=object)[:, None] == np.array(database, dtype=object)[None, :]
        return self.sign * same.astype(float)

    def length(self, rep):
        return 1

    def nbytes(self, reps):
        return len(reps)


def run_oracles(data: dict, items_test=None, **config) -> tuple:
    oracle, anti = Oracle(), Oracle("anti", -1.0)
    config.setdefault("methods", ("wav2tok",))
    result = evaluate(data["model"], items_test or data["test"], data["train"], EvalConfig(**config), [oracle, anti])
    return result, oracle, anti


# ------------------------------------------------------------------------------------------------ ranking

def test_perfect_scorer_gets_mrr_one_and_reversed_scorer_the_worst_ranks(data) -> None:
    result, _, _ = run_oracles(data, conditions=("vanilla", "stretch0.8", "shift+3"))
    for condition in ("vanilla", "stretch0.8", "shift+3"):
        cell = result.cell("oracle", condition)
        assert (cell.mrr, cell.map, cell.hit_at[1], cell.hit_at[5]) == (1.0, 1.0, 1.0, 1.0)
        assert (cell.n_queries, cell.n_evaluated) == (12, 12)
        # 11 other clips, 3 relevant: the reversed scorer ranks them 9th, 10th and 11th
        worst = result.cell("anti", condition)
        assert worst.mrr == pytest.approx(1 / 9)
        assert worst.map == pytest.approx((1 / 9 + 2 / 10 + 3 / 11) / 3)
        assert worst.hit_at[5] == 0.0


def test_query_itself_is_excluded_from_its_ranking(data) -> None:
    relevant, excluded = judgements([it for it in data["test"]], data["test"], cross_speaker=False)
    assert np.array_equal(excluded, np.eye(12, dtype=bool))
    assert relevant.sum() == 12 * 4


def test_cross_speaker_excludes_every_same_speaker_entry(data) -> None:
    relevant, excluded = judgements(data["test"], data["test"], cross_speaker=True)
    speakers = np.array([it.speaker for it in data["test"]])
    assert np.array_equal(excluded, speakers[:, None] == speakers[None, :])
    # every class holds both speakers: still evaluated, still perfect for the oracle
    result, _, _ = run_oracles(data, conditions=("vanilla",), cross_speaker=True)
    assert (result.cell("oracle", "vanilla").n_evaluated, result.cell("oracle", "vanilla").mrr) == (12, 1.0)


def test_query_whose_only_relevant_items_share_its_speaker_counts_as_without_relevant(data) -> None:
    one_speaker_per_class = [ManifestItem(it.path, it.label, f"spk-{it.label}", it.split) for it in data["test"]]
    open_result, _, _ = run_oracles(data, one_speaker_per_class, conditions=("vanilla",))
    assert open_result.cell("oracle", "vanilla").n_evaluated == 12
    result, _, _ = run_oracles(data, one_speaker_per_class, conditions=("vanilla",), cross_speaker=True)
    cell = result.cell("oracle", "vanilla")
    assert (cell.n_evaluated, cell.n_without_relevant) == (0, 12)
    assert math.isnan(cell.mrr)
    report = result.to_dict()
    assert next(c for c in report["cells"] if c["method"] == "oracle")["mrr"] is None
    json.dumps(report, allow_nan=False)  # strict JSON: no NaN


def test_query_vs_targets_searches_targets_only(data) -> None:
    with_roles = [ManifestItem(it.path, it.label, it.speaker, it.split, {"role": "target" if i % 4 == 0 else "query"})
                  for i, it in enumerate(data["test"])]
    result, oracle, _ = run_oracles(data, with_roles, conditions=("vanilla",), protocol="query_vs_targets")
    assert (result.n_queries, result.n_database) == (9, 3)
    cell = result.cell("oracle", "vanilla")
    assert (cell.mrr, cell.n_evaluated) == (1.0, 9)
    assert [c.item.meta["role"] for c in oracle.calls[1]] == ["target"] * 3  # the database side
    assert [c.item.meta["role"] for c in oracle.calls[2]] == ["query"] * 9  # vanilla queries are encoded


def test_dtw_encoder_runs_cosine_dtw_over_the_models_frame_vectors(data) -> None:
    model = data["model"]
    waves = model.load_clips([it.path for it in data["test"]])
    (method,) = build_methods(["dtw-encoder"], model, [])
    reps = method.encode([EvalClip(it, w) for it, w in zip(data["test"], waves)])
    embedded = model.embed(waves)
    assert [r.shape for r in reps] == [tuple(e.shape) for e in embedded] and reps[0].shape[1] == model.config.code_dim
    np.testing.assert_allclose(reps[0], embedded[0].numpy())
    scores = method.score(reps[:4], reps)
    np.testing.assert_allclose(scores, dtw_score_matrix(reps[:4], reps, metric="cosine"))
    assert not np.allclose(scores, dtw_score_matrix(reps[:4], reps))  # not the Euclidean cost
    assert method.unit == "frames" and method.nbytes(reps) == sum(r.size for r in reps) * 4


def test_dtw_codewords_replaces_each_frame_by_the_codeword_of_its_token(data) -> None:
    model = data["model"]
    waves = model.load_clips([it.path for it in data["test"][:3]])
    (method,) = build_methods(["dtw-codewords"], model, [])
    reps = method.encode([EvalClip(it, w) for it, w in zip(data["test"][:3], waves)])
    codebook = model.codebook.numpy()
    for rep, tokens, frames in zip(reps, model.frame_tokens(waves), model.embed(waves)):
        np.testing.assert_allclose(rep, codebook[tokens.numpy()])
        assert rep.shape == tuple(frames.shape)
    np.testing.assert_allclose(method.score(reps, reps), dtw_score_matrix(reps, reps, metric="cosine"))


def test_only_the_front_ends_asked_for_are_built() -> None:
    # n_fft 512 at 16 kHz cannot hold two periods of 60 Hz: the pitch front end does not fit this model
    model = Wav2Tok(ModelConfig(features=FeatureConfig(n_fft=512), emb_dim=16, num_tokens=8, num_layers=1))
    assert [m.name for m in build_methods(["dtw-mfcc", "dtw-logmel"], model, [])] == ["dtw-mfcc", "dtw-logmel"]
    with pytest.raises(ConfigError, match="n_fft"):
        build_methods(["dtw-pitch"], model, [])


def test_max_queries_keeps_an_evenly_spaced_subset(data) -> None:
    clips = [EvalClip(it, torch.zeros(1)) for it in data["test"]]
    queries, database = protocol_sides(clips, "query_by_example", max_queries=3)
    assert queries == [0, 6, 11] and database == list(range(12))
    with pytest.raises(EvalError, match="query_vs_targets"):
        protocol_sides(clips, "query_vs_targets")


# ------------------------------------------------------------------------------------------------ conditions

def spectral_centroid(wave: torch.Tensor, below_hz: float = 2000.0) -> float:
    """Power-weighted mean frequency under ``below_hz`` (the tones' band, above most of the noise)."""
    power = np.abs(np.fft.rfft(wave.numpy())) ** 2
    freqs = np.fft.rfftfreq(wave.numel(), 1 / SR)
    keep = freqs < below_hz
    return float((power[keep] * freqs[keep]).sum() / power[keep].sum())


def test_conditions_transform_queries_and_never_the_database(data) -> None:
    conditions = ("vanilla", "stretch0.8", "stretch1.25", "shift+3")
    _, oracle, _ = run_oracles(data, conditions=conditions)
    warm_up, database, *per_condition = oracle.calls
    assert len(warm_up) == 1 and len(per_condition) == 3  # vanilla queries reuse the database encoding
    original = {c.item.path: c.wave for c in database}
    assert all(torch.equal(c.wave, data["model"].load_clips([c.item.path])[0]) for c in database)
    slow, fast, shifted = per_condition
    for clip in slow:
        assert clip.wave.numel() == round(original[clip.item.path].numel() * 1.25)
    for clip in fast:
        assert clip.wave.numel() == round(original[clip.item.path].numel() / 1.25)
    for clip in shifted:
        before = original[clip.item.path]
        assert clip.wave.numel() == before.numel()
        semitones = 12 * np.log2(spectral_centroid(clip.wave) / spectral_centroid(before))
        assert 1.5 < semitones < 4.5  # shift+3 raised the pitch (the vocoder is not exact on gliding tones)


def test_the_stretch_method_renders_the_conditions(data) -> None:
    """``stretch_method="wsola"`` reaches the queries: they are WSOLA's renderings, not the vocoder's."""
    conditions = ("stretch0.8", "shift+3")
    _, oracle, _ = run_oracles(data, conditions=conditions, stretch_method="wsola")
    _, database, slow, shifted = oracle.calls
    original = {c.item.path: c.wave for c in database}
    for clip in slow:
        assert torch.equal(clip.wave, time_stretch(original[clip.item.path], 0.8, "wsola"))
    for clip in shifted:
        assert torch.equal(clip.wave, pitch_shift(original[clip.item.path], 3.0, "wsola"))
        assert not torch.equal(clip.wave, pitch_shift(original[clip.item.path], 3.0, "vocoder"))


@pytest.mark.parametrize("name, kind, value", [("vanilla", "vanilla", 0.0), ("stretch0.8", "stretch", 0.8),
                                               ("stretch1.25", "stretch", 1.25), ("shift-3", "shift", -3.0),
                                               ("shift+2.5", "shift", 2.5)])
def test_condition_names_parse(name: str, kind: str, value: float) -> None:
    assert Condition.parse(name) == Condition(name, kind, value)


@pytest.mark.parametrize("bad", [{"conditions": ("stretch0",)}, {"conditions": ("louder",)},
                                 {"conditions": ("shift",)}, {"methods": ("dtw-stft",)}, {"protocol": "pairs"},
                                 {"methods": ()}, {"ks": (0,)}, {"stretch_method": "sola"}])
def test_bad_config_is_refused(bad: dict) -> None:
    with pytest.raises(ConfigError):
        EvalConfig(**bad)


# ------------------------------------------------------------------------------------------------ reports

def test_reports_hold_every_method_and_condition(data, tmp_path) -> None:
    config = EvalConfig(methods=METHODS)
    result = evaluate(data["model"], data["test"], data["train"], config)
    result.save(tmp_path / "r.json", tmp_path / "r.md")
    report = json.loads((tmp_path / "r.json").read_text())
    markdown = (tmp_path / "r.md").read_text()
    assert {(c["method"], c["condition"]) for c in report["cells"]} == {(m, c) for m in METHODS
                                                                      for c in config.conditions}
    assert set(report["summary"]) == set(report["costs"]) == set(METHODS)
    for method in METHODS:
        assert set(report["summary"][method]["mrr"]) == {"vanilla", "stretched", "shifted"}
        assert f"| {method} | " in markdown
        for condition in config.conditions:
            assert f"| {method} | {condition} | " in markdown
    groups = result.group_mrr("wav2tok")
    cells = {c: result.cell("wav2tok", c).mrr for c in config.conditions}
    assert groups["stretched"] == pytest.approx((cells["stretch0.8"] + cells["stretch1.25"]) / 2)
    assert groups["shifted"] == pytest.approx((cells["shift-3"] + cells["shift+3"]) / 2)
    assert result.speedup("dtw-mfcc") == pytest.approx(1.0)


def test_costs_count_tokens_and_feature_bytes(data) -> None:
    result = evaluate(data["model"], data["test"], data["train"],
                      EvalConfig(methods=("wav2tok", "dtw-mfcc"), conditions=("vanilla",)))
    tokens = data["model"].tokenize([it.path for it in data["test"]])
    audio_s = sum(sf.info(str(it.path)).frames for it in data["test"]) / SR
    wav2tok, dtw = result.costs["wav2tok"], result.costs["dtw-mfcc"]
    assert wav2tok.index_bytes == sum(map(len, tokens))  # 8 tokens: one byte each
    assert wav2tok.units_per_s == pytest.approx(sum(map(len, tokens)) / audio_s)
    assert dtw.index_bytes == pytest.approx(dtw.units_per_s * audio_s * 39 * 4)  # float32 MFCC + deltas
    assert dtw.units_per_s == pytest.approx(dtw.frames_per_s) and wav2tok.compression > 1.0
    assert wav2tok.search_ms_per_query > 0 and wav2tok.encode_ms_per_audio_s > 0


def test_unreadable_file_is_skipped_and_listed(data, tmp_path) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio at all")
    items = [*data["test"], ManifestItem(bad, "c0", "s0", "test")]
    result, _, _ = run_oracles(data, items, conditions=("vanilla",))
    assert result.n_database == 12
    assert [s["path"] for s in result.skipped] == [str(bad)]
    assert "broken.wav" in result.to_markdown()


def test_baselines_need_train_clips(data) -> None:
    with pytest.raises(EvalError, match="train"):
        evaluate(data["model"], data["test"], [], EvalConfig(methods=("vq-mfcc",), conditions=("vanilla",)))


# ------------------------------------------------------------------------------------------------ spotting

def test_spotting_set_places_clips_at_their_spans(data, tmp_path) -> None:
    bad = tmp_path / "missing.wav"
    spotting = make_spotting_set([*data["test"], ManifestItem(bad, "c1")], n_recordings=4, per_recording=3, seed=1)
    assert [s["path"] for s in spotting.skipped] == [str(bad)]
    assert len(spotting.segments) == 12
    for rid, recording in spotting.recordings.items():
        segments = [s for s in spotting.segments if s.recording_id == rid]
        assert len({s.label for s in segments}) == 3
        silence = np.ones(recording.size, dtype=bool)
        for seg in segments:
            start, end = round(seg.start_s * SR), round(seg.end_s * SR)
            assert np.allclose(recording[start:end], sf.read(seg.path, dtype="float32")[0])
            silence[start:end] = False
        assert not recording[silence].any()
    truths = spotting.truths({"q": "c2"})
    assert len(truths) == 4 and all(t.query_id == "q" for t in truths)


def test_spotting_exact_copies_are_found_by_both_methods(data) -> None:
    chosen = [data["test"][k * 4] for k in range(CLASSES)]  # one clip of each class
    recordings = {f"r{i}": it.path for i, it in enumerate(chosen)}
    queries = {f"q{i}": it.path for i, it in enumerate(chosen)}
    truths = [TrueSpan(f"q{i}", f"r{i}", 0.0, sf.info(str(it.path)).duration) for i, it in enumerate(chosen)]
    result = evaluate_spotting(data["model"], queries, {**recordings, "bad": "/nonexistent.wav"}, truths,
                               methods=SPOTTING_METHODS)
    assert result.n_recordings == 3 and [s["path"] for s in result.skipped] == ["/nonexistent.wav"]
    for method in SPOTTING_METHODS:
        assert result.methods[method].curve.best()[1] == pytest.approx(1.0)
        assert result.methods[method].map == pytest.approx(1.0)
    report = result.to_dict()
    assert report["methods"]["wav2tok"]["best_f1"] == pytest.approx(1.0)
    assert report["methods"]["sdtw-encoder"]["mtwv"] == pytest.approx(1.0)
    assert "sdtw-mfcc" in result.to_markdown()


def test_spotting_task_keeps_queries_out_and_searches_other_speakers(data) -> None:
    config = SpottingTaskConfig(clips_per_recording=2, queries_per_label=1, seed=3)
    task = make_spotting_task(data["test"], config, sr=SR)
    assert len(task.queries) == 6 and set(task.query_labels.values()) == {"c0", "c1", "c2"}
    placed = {seg.path for seg in task.recordings.segments}
    assert len(placed) == 6 and placed.isdisjoint(str(p) for p in task.queries)
    assert sorted(task.recordings.recordings) == ["s0-000", "s0-001", "s1-000", "s1-001"]
    for qid, rids in task.searched.items():
        assert rids and all(task.speakers[r] != task.speakers[qid] for r in rids)
    truths = task.truths()
    assert len(truths) == 6  # each label is left once in the other speaker's recordings
    assert all(task.speakers[t.recording_id] != task.speakers[t.query_id] for t in truths)
    seconds = task.searched_seconds()
    assert all(s == pytest.approx(sum(task.recordings.recordings[r].size for r in task.searched[q]) / SR)
               for q, s in seconds.items())
    same = make_spotting_task(data["test"], dataclasses.replace(config, query_speakers="same"), sr=SR)
    assert all(same.speakers[r] == same.speakers[q] for q, rids in same.searched.items() for r in rids)
    with pytest.raises(ConfigError, match="no query has a recording"):
        make_spotting_task([it for it in data["test"] if it.speaker == "s0"], config, sr=SR)


def test_spotting_task_noise_has_the_asked_snr(data) -> None:
    config = SpottingTaskConfig(clips_per_recording=3, queries_per_label=1, noise_snr_db=10.0)
    clean = make_spotting_task(data["test"], dataclasses.replace(config, noise_snr_db=None), sr=SR)
    noisy = make_spotting_task(data["test"], config, sr=SR)
    for rid, wave in noisy.recordings.recordings.items():
        noise = wave - clean.recordings.recordings[rid]
        speech = np.concatenate([clean.recordings.recordings[rid][round(s.start_s * SR):round(s.end_s * SR)]
                                 for s in clean.recordings.segments if s.recording_id == rid])
        assert 10 * np.log10(np.mean(speech ** 2) / np.mean(noise ** 2)) == pytest.approx(10.0, abs=0.5)


def test_spotting_task_evaluation_reports_every_measure(data) -> None:
    task = make_spotting_task(data["test"], SpottingTaskConfig(clips_per_recording=2, queries_per_label=1), sr=SR)
    result = evaluate_spotting_task(data["model"], task)
    assert list(result.methods) == list(SPOTTING_METHODS) and result.max_hits == 2
    for name, row in result.to_dict()["methods"].items():
        assert row["n_true"] == 6
        assert 0 <= row["map"] <= 1 and 0 <= row["p_at_10"] <= 0.1 and 0 <= row["mtwv"] <= 1
        assert row["search_ms_per_query_hour"] > 0 and row["prepare_s"] > 0
    assert "ATWV" in result.to_markdown()


def test_spotting_floor_keeps_every_detection_above_it(data) -> None:
    task = make_spotting_task(data["test"], SpottingTaskConfig(clips_per_recording=3, queries_per_label=1), sr=SR)
    low = evaluate_spotting_task(data["model"], task, ("wav2tok",), min_score=0.0)
    high = evaluate_spotting_task(data["model"], task, ("wav2tok",), min_score=0.5)
    above = sorted(d for d in low.methods["wav2tok"].detections if d.score >= 0.5)
    assert above and sorted(high.methods["wav2tok"].detections) == above
    assert len(above) < len(low.methods["wav2tok"].detections)
    assert high.to_dict()["wav2tok_min_score"] == 0.5
    with pytest.raises(EvalError, match="min_score"):
        evaluate_spotting_task(data["model"], task, ("wav2tok",), min_score=1.5)
    with pytest.raises(EvalError, match="repeats"):
        evaluate_spotting_task(data["model"], task, ("wav2tok",), repeats=0)


# ------------------------------------------------------------------------------------------------ commands

def run_cli(*argv: str) -> int:
    args = build_parser().parse_args([str(a) for a in argv])
    return args.func(args)


def test_index_then_search_finds_the_query_itself_first(data, tmp_path, capsys) -> None:
    index = tmp_path / "index.npz"
    assert run_cli("index", "--model", data["model_path"], data["manifest"], "--split", "test", "--out", index,
                   "--device", "cpu") == 0
    tokens = data["model"].tokenize([it.path for it in data["test"]])
    strings = [tuple(t) for t in tokens]
    query = next(it for it, s in zip(data["test"], strings) if strings.count(s) == 1)  # no tie at score 1
    out = tmp_path / "hits.json"
    assert run_cli("search", "--index", index, "--model", data["model_path"], query.path, "--k", "5",
                   "--json", out, "--device", "cpu") == 0
    hits = json.loads(out.read_text())["results"][0]["hits"]
    assert len(hits) == 5
    assert (hits[0]["rank"], hits[0]["id"], hits[0]["path"]) == (1, str(query.path), str(query.path))
    assert (hits[0]["score"], hits[0]["label"], hits[0]["speaker"]) == (pytest.approx(1.0), query.label, query.speaker)
    assert str(query.path) in capsys.readouterr().out


def test_index_reports_a_bad_file_and_strict_fails(data, tmp_path, capsys) -> None:
    bad = tmp_path / "empty.wav"
    bad.write_bytes(b"")
    index = tmp_path / "index.npz"
    args = ["index", "--model", data["model_path"], data["manifest"], bad, "--split", "test", "--out", index,
            "--device", "cpu"]
    assert run_cli(*args) == 0
    assert "empty.wav" in capsys.readouterr().err
    assert run_cli(*args, "--strict") == 1
    assert run_cli("search", "--index", tmp_path / "nope.npz", "--model", data["model_path"], bad) == 2


def test_spot_finds_the_query_span_in_a_synthetic_recording(data, tmp_path, capsys) -> None:
    """A recording whose tokens are three clips' tokens back to back (with their frame runs): the query clip
    is found where it sits, within one token's duration at each end."""
    model = data["model"]
    before, query, after = data["test"][0], data["test"][5], data["test"][10]
    pieces = [token_runs(f, model.config.keep_repeats) for f in model.frame_tokens([before.path, query.path, after.path])]
    index = TokenIndex(frame_s=model.config.features.frame_s)
    index.add(["rec"], [sum((t for t, _ in pieces), [])], [{"label": "mixed"}], [sum((r for _, r in pieces), [])])
    index.save(tmp_path / "rec.npz")
    frame_s = model.config.features.frame_s
    true_start, true_end = sum(pieces[0][1]) * frame_s, (sum(pieces[0][1]) + sum(pieces[1][1])) * frame_s
    out = tmp_path / "spot.json"
    assert run_cli("spot", "--index", tmp_path / "rec.npz", "--model", data["model_path"], query.path, "--k", "3",
                   "--json", out, "--device", "cpu") == 0
    (result,) = json.loads(out.read_text())["results"]
    best = result["hits"][0]
    assert (best["rank"], best["recording"], best["label"], best["score"]) == (1, "rec", "mixed", pytest.approx(1.0))
    first, last = pieces[1][1][0] * frame_s, pieces[1][1][-1] * frame_s  # the query's first and last token
    assert abs(best["start_s"] - true_start) <= first and abs(best["end_s"] - true_end) <= last
    assert "rec" in capsys.readouterr().out


def test_index_of_long_recordings_holds_token_times(data, tmp_path) -> None:
    long = tmp_path / "long.wav"
    sf.write(long, np.concatenate([np.zeros(SR // 2, np.float32), tone_clip(1, 8), np.zeros(SR, np.float32),
                                   tone_clip(2, 9)]), SR)
    assert run_cli("index", "--model", data["model_path"], long, "--out", tmp_path / "long.npz", "--device", "cpu") == 0
    recordings = RecordingIndex.load(tmp_path / "long.npz")
    frames = data["model"].frame_tokens([long])[0]
    assert recordings.ends_s[-1] == pytest.approx(frames.numel() * data["model"].config.features.frame_s)
    assert np.all(recordings.starts_s[1:] == recordings.ends_s[:-1])  # tokens tile the recording


def test_spot_rejects_a_missing_or_corrupt_index_in_one_line(data, tmp_path, capsys) -> None:
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    for index in (tmp_path / "missing.npz", corrupt):
        assert run_cli("spot", "--index", index, "--model", data["model_path"], data["test"][0].path) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("wav2tok spot: error:") and str(index) in err and "\n" not in err
    assert run_cli("spot", "--index", corrupt, "--model", data["model_path"], data["test"][0].path,
                   "--threshold", "1.5") == 2


def test_evaluate_spotting_command_writes_both_reports(data, tmp_path, capsys) -> None:
    out, md = tmp_path / "spot.json", tmp_path / "spot.md"
    assert run_cli("evaluate", "--task", "spotting", "--model", data["model_path"], "--manifest", data["manifest"],
                   "--methods", "wav2tok", "sdtw-mfcc", "--clips_per_recording", "2", "--queries_per_label", "1",
                   "--noise_snr_db", "20", "--min_score", "0.3", "--repeats", "2", "--out", out, "--markdown", md,
                   "--device", "cpu") == 0
    report = json.loads(out.read_text())
    assert report["format"] == "wav2tok-spotting" and report["n_queries"] == 6 and report["max_hits"] == 2
    assert report["wav2tok_min_score"] == 0.3 and report["search_repeats"] == 2
    assert set(report["methods"]) == {"wav2tok", "sdtw-mfcc"} and "| sdtw-mfcc |" in md.read_text()
    assert report["twv_constants"]["beta"] == pytest.approx(999.9)
    assert "MTWV" in capsys.readouterr().out
    assert run_cli("evaluate", "--task", "spotting", "--model", data["model_path"], "--manifest", data["manifest"],
                   "--methods", "dtw-mfcc", "--out", out) == 2


def test_evaluate_command_writes_both_reports(data, tmp_path, capsys) -> None:
    out, md = tmp_path / "res.json", tmp_path / "res.md"
    assert run_cli("evaluate", "--model", data["model_path"], "--manifest", data["manifest"], "--methods", "wav2tok",
                   "dtw-mfcc", "--conditions", "vanilla", "shift+3", "--stretch_method", "wsola", "--max_queries",
                   "6", "--out", out, "--markdown", md, "--device", "cpu") == 0
    report = json.loads(out.read_text())
    assert report["n_queries"] == 6 and report["config"]["protocol"] == "query_by_example"
    assert report["config"]["stretch_method"] == "wsola" and "rendered by wsola" in md.read_text()
    assert len(report["cells"]) == 4 and "| dtw-mfcc | shift+3 |" in md.read_text()
    assert "MRR vanilla" in capsys.readouterr().out
    assert run_cli("evaluate", "--model", data["model_path"], "--manifest", data["manifest"], "--conditions",
                   "louder", "--out", out) == 2


def test_evaluate_manifest_detects_the_protocol_and_loads_the_model(data, tmp_path) -> None:
    with_roles = [ManifestItem(it.path, it.label, it.speaker, it.split, {"role": "target" if i % 4 == 0 else "query"})
                  for i, it in enumerate(data["test"])]
    write_manifest([*with_roles, *data["train"]], tmp_path / "roles.json")
    config = EvalConfig(methods=("wav2tok",), conditions=("vanilla",))
    result = evaluate_manifest(data["model_path"], tmp_path / "roles.json", config, auto_protocol=True)
    assert result.config.protocol == "query_vs_targets" and (result.n_queries, result.n_database) == (9, 3)
    assert evaluate_manifest(data["model"], tmp_path / "roles.json", config).config.protocol == "query_by_example"
    with pytest.raises(ManifestError, match="no items in split 'dev'"):
        evaluate_manifest(data["model"], tmp_path / "roles.json", config, test_split="dev")


def test_interpolated_precision_on_a_hand_case() -> None:
    from wav2tok_core.eval.metrics import interpolated_precision

    ranked = np.array([[True, False, True, False], [False, True, False, False]])
    # query 0: P=1 at R=0.5, P=2/3 at R=1; query 1: P=1/2 at R=1
    curve = interpolated_precision(ranked)
    assert curve[0] == pytest.approx((1 + 0.5) / 2) and curve[5] == pytest.approx((1 + 0.5) / 2)
    assert curve[6] == pytest.approx((2 / 3 + 0.5) / 2) and curve[10] == pytest.approx((2 / 3 + 0.5) / 2)


def test_token_consistency_measures_on_hand_made_tokens() -> None:
    from wav2tok_core.eval.consistency import _measures

    frames = [np.array([1, 1, 2, 3]), np.array([1, 2, 2, 3, 3]), np.array([4, 4, 5, 6])]
    features = [np.array([[0.0], [0.0], [1.0], [2.0]]), np.array([[0.0], [1.0], [1.0], [2.0], [2.0]]),
                np.array([[5.0], [6.0], [7.0], [8.0]])]
    same = _measures([(0, 1)], frames, features)  # the same word: DTW pairs 1-1, 2-2, 3-3 and the strings agree
    assert same == {"aligned_agreement": 1.0, "bigram_jaccard": 1.0, "edit_distance": 0.0}
    other = _measures([(0, 2)], frames, features)  # nothing in common
    assert other == {"aligned_agreement": 0.0, "bigram_jaccard": 0.0, "edit_distance": 1.0}


def test_the_report_carries_the_cross_speaker_consistency(data) -> None:
    config = EvalConfig(methods=("wav2tok",), conditions=("vanilla",), cross_speaker=True, consistency_pairs=20)
    result = evaluate(data["model"], data["test"], data["train"], config)
    consistency = result.to_dict()["consistency"]
    assert 0 < consistency["n_pairs"] <= 20  # the test clips have two speakers
    for kind in ("same_label", "different_label"):
        assert set(consistency[kind]) == {"aligned_agreement", "bigram_jaccard", "edit_distance"}
        assert all(0.0 <= v <= 1.0 for v in consistency[kind].values())
    assert "Cross-speaker token consistency" in result.to_markdown()


def test_spotting_task_keeps_query_and_target_roles(data) -> None:
    roles = [ManifestItem(it.path, it.label, "player" if i % 2 else it.speaker, it.split,
                          {"role": "target" if i % 2 else "query"}) for i, it in enumerate(data["test"])]
    task = make_spotting_task(roles, SpottingTaskConfig(clips_per_recording=3, queries_per_label=5), sr=SR)
    assert set(task.queries) == {str(it.path) for it in roles if it.meta["role"] == "query"}
    assert {seg.path for seg in task.recordings.segments} == {str(it.path) for it in roles if it.meta["role"] == "target"}
    assert all(task.speakers[r] == "player" for rids in task.searched.values() for r in rids)
