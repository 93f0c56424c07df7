"""Model invariants over options: token ranges, collapse, padding, seeding, persistence."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from wav2tok_core.audio.config import FeatureConfig
from wav2tok_core.audio.io import pad_batch
from wav2tok_core.errors import AudioError, CheckpointError, ConfigError
from wav2tok_core.model.codebook import fit_model_codebook
from wav2tok_core.model.config import ModelConfig
from wav2tok_core.model.wav2tok import Wav2Tok, load_model
from wav2tok_core.train.callbacks import e_step
from wav2tok_core.train.objective import ObjectiveConfig, Wav2TokObjective

CONFIGS = {
    "lstm-mfcc": ModelConfig(num_tokens=12, emb_dim=32),
    "lstm-stft": ModelConfig(num_tokens=12, emb_dim=32, features=FeatureConfig(kind="stft")),
    "transformer-logmel": ModelConfig(num_tokens=12, emb_dim=32, use_transformer=True,
                                      features=FeatureConfig(kind="logmel")),
    "lstm-small": ModelConfig(num_tokens=7, emb_dim=16, num_layers=1),
    "frames-pitch": ModelConfig(num_tokens=9, emb_dim=16, use_context=False,
                                features=FeatureConfig(kind="pitch", pitch_repr="notes")),
}
OBJECTIVES = {
    "learned-teacher": ObjectiveConfig(alpha=0.3, beta=0.7, diversity=0.2),
    "cosine-teacher": ObjectiveConfig(alpha=0.3, beta=0.7, diversity=0.2, use_cosine=True),
    "learned-online": ObjectiveConfig(alpha=0.3, beta=0.7, diversity=0.2, targets="online"),
}


def clips(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [0.1 * torch.randn(n, generator=g) for n in (4000, 11000, 600, 7000, 9000)]


def trained_codebook_model(cfg: ModelConfig, seed: int = 0) -> Wav2Tok:
    torch.manual_seed(seed)
    model = Wav2Tok(cfg)
    fit_model_codebook(model, clips(seed), seed=seed)
    return model


@pytest.mark.parametrize("name", CONFIGS)
def test_tokens_in_range_and_collapsed(name: str) -> None:
    cfg = CONFIGS[name]
    model = trained_codebook_model(cfg)
    for string, frames in zip(model.tokenize(clips()), model.frame_tokens(clips())):
        assert string and all(0 <= t < cfg.num_tokens for t in string)
        assert all(a != b for a, b in zip(string, string[1:]))
        assert len(string) <= len(frames)


@pytest.mark.parametrize("name", CONFIGS)
def test_padding_a_batch_does_not_change_any_tokens(name: str) -> None:
    model = trained_codebook_model(CONFIGS[name])
    batched = model.frame_tokens(clips(), batch_size=5)
    for clip, expected in zip(clips(), batched):
        assert torch.equal(model.frame_tokens([clip], batch_size=1)[0], expected)


@pytest.mark.parametrize("name", CONFIGS)
def test_same_seed_same_tokens(name: str) -> None:
    a = trained_codebook_model(CONFIGS[name], seed=3).tokenize(clips())
    b = trained_codebook_model(CONFIGS[name], seed=3).tokenize(clips())
    assert a == b


@pytest.mark.parametrize("skip", [0.0, 1.0])
@pytest.mark.parametrize("name", OBJECTIVES)
def test_forward_returns_named_terms_and_weights_them(name: str, skip: float) -> None:
    model = trained_codebook_model(ModelConfig(num_tokens=8, emb_dim=16, input_skip=skip))
    objective = Wav2TokObjective(model, OBJECTIVES[name]).eval()  # no dropout: two forwards must agree
    c = clips()
    batch = {"anchor": pad_batch(c), "positive": pad_batch([x.flip(0) for x in c])}
    out = objective(batch)
    assert {"loss/total", "loss/matching", "loss/ctc_xy", "loss/ctc_yx", "loss/diversity"} <= set(out)
    expected = (out["loss/matching"] + 0.3 * out["loss/ctc_xy"] + 0.7 * out["loss/ctc_yx"]
                + 0.2 * out["loss/diversity"])
    assert 0.0 < out["loss/diversity"].item() < 1.0
    assert out["loss/total"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert out["loss/ctc_xy"].item() > 0 and out["loss/ctc_yx"].item() > 0
    batch["negative"] = pad_batch(c[::-1])
    out = objective(batch)
    assert "loss/triplet" in out
    assert out["loss/total"].item() == pytest.approx((expected + out["loss/triplet"]).item(), rel=1e-5)


def test_save_load_round_trip(tmp_path) -> None:
    model = trained_codebook_model(CONFIGS["transformer-logmel"])
    path = model.save(tmp_path / "m.pt")
    loaded = load_model(path)
    assert loaded.config == model.config
    assert loaded.tokenize(clips()) == model.tokenize(clips())


def test_pitch_checkpoints_saved_before_pitch_repr_load_as_contour(tmp_path) -> None:
    contour = ModelConfig(num_tokens=8, emb_dim=16, features=FeatureConfig(kind="pitch", pitch_repr="contour"))
    model = trained_codebook_model(contour)
    ckpt = {**model.checkpoint(), "version": 1}
    del ckpt["config"]["features"]["pitch_repr"]  # as written before the option existed (version 1)
    torch.save(ckpt, tmp_path / "old.pt")
    loaded = load_model(tmp_path / "old.pt")
    assert loaded.config == contour and loaded.config.input_dim == 4
    assert loaded.tokenize(clips()) == model.tokenize(clips())
    assert load_model(model.save(tmp_path / "new.pt")).config.features.pitch_repr == "contour"


def test_keep_repeats_gives_the_frame_tokens_and_travels_with_the_model(tmp_path) -> None:
    model = trained_codebook_model(dataclasses.replace(CONFIGS["lstm-mfcc"]))  # a copy: the test changes it
    frames = [t.tolist() for t in model.frame_tokens(clips())]
    collapsed = model.tokenize(clips())
    assert model.tokenize(clips(), keep_repeats=True) == frames
    assert any(len(f) > len(c) for f, c in zip(frames, collapsed))
    model.config.keep_repeats = True
    loaded = load_model(model.save(tmp_path / "m.pt"))
    assert loaded.config.keep_repeats and loaded.tokenize(clips()) == frames
    assert loaded.tokenize(clips(), keep_repeats=False) == collapsed
    assert not CONFIGS["lstm-mfcc"].keep_repeats
    assert loaded.config.fits_weights_of(CONFIGS["lstm-mfcc"])  # strings only: the weights fit either way


def test_input_skip_keeps_the_input_features_in_every_frame_vector() -> None:
    cfg = ModelConfig(num_tokens=6, emb_dim=16, input_skip=1000.0)
    assert cfg.code_dim == 8 + 39
    torch.manual_seed(0)
    model = Wav2Tok(cfg).eval()
    waves, lengths = pad_batch(clips()[:2])
    with torch.no_grad():
        h, frames = model.encode(waves, lengths)  # (2, T, 47)
        feats, _ = model.features(waves, lengths)  # (2, T, 39)
    assert h.shape[-1] == cfg.code_dim
    assert torch.allclose(h.norm(dim=-1)[0, : frames[0]], torch.ones(int(frames[0])), atol=1e-5)
    unit = torch.nn.functional.normalize(feats[0, : frames[0]], dim=-1)
    assert torch.allclose(h[0, : frames[0], 8:], unit, atol=1e-4)  # a large weight leaves the features alone
    fit_model_codebook(model, clips())
    assert model.codebook.shape == (6, 47) and len(model.tokenize(clips())) == 5
    with pytest.raises(Exception, match="input_skip"):
        ModelConfig(input_skip=-1.0)


def test_without_context_equal_frames_get_equal_vectors() -> None:
    torch.manual_seed(0)
    model = Wav2Tok(ModelConfig(num_tokens=6, emb_dim=16, use_context=False, num_layers=2)).eval()
    feats = torch.randn(1, 3, model.config.input_dim).repeat_interleave(torch.tensor([4, 7, 5]), dim=1)  # 3 runs
    with torch.no_grad():
        h = model.encode_features(feats, torch.tensor([16]))  # (1, 16, E)
    assert torch.allclose(h[0, :4], h[0, :1].expand(4, -1)) and torch.allclose(h[0, 4:11], h[0, 4:5].expand(7, -1))
    assert not torch.allclose(h[0, 3], h[0, 4])
    lstm = Wav2Tok(ModelConfig(num_tokens=6, emb_dim=16)).eval()  # with context, a run's frames differ
    with torch.no_grad():
        assert not torch.allclose(lstm.encode_features(feats, torch.tensor([16]))[0, 0],
                                  lstm.encode_features(feats, torch.tensor([16]))[0, 3])
    with pytest.raises(ConfigError, match="use_context"):
        ModelConfig(use_context=False, use_transformer=True)


def test_corrupt_checkpoint_is_refused_by_name(tmp_path) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(b"garbage" * 10)
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_model(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nothing.pt")


def test_tokenize_accepts_paths_and_other_sample_rates(tmp_path) -> None:
    import soundfile as sf

    model = trained_codebook_model(CONFIGS["lstm-mfcc"])
    wave = clips()[1]
    sf.write(tmp_path / "a.wav", wave.numpy(), 16000)
    assert model.tokenize(tmp_path / "a.wav") == model.tokenize(wave.numpy(), sr=16000)
    assert len(model.tokenize(wave[::2].numpy(), sr=8000)) == 1
    with pytest.raises(AudioError, match="shorter than one frame"):
        model.tokenize(0.1 * torch.randn(10))


def test_teacher_targets_stay_fixed_until_the_next_e_step() -> None:
    model = trained_codebook_model(ModelConfig(num_tokens=8, emb_dim=16))
    objective = Wav2TokObjective(model, ObjectiveConfig(targets="teacher"))
    feats, frames = model.features(*pad_batch(clips()))
    h = model.encode_features(feats, frames)
    before = objective.assign(feats, frames, h)
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(0.5 * torch.randn_like(p))  # an M-step moves the student ...
    h_moved = model.encode_features(feats, frames)
    assert torch.equal(objective.assign(feats, frames, h_moved), before)  # ... not the targets
    e_step(objective, clips())
    assert not torch.equal(objective.assign(feats, frames, h_moved), before)


def test_online_targets_follow_the_model() -> None:
    model = trained_codebook_model(ModelConfig(num_tokens=8, emb_dim=16))
    objective = Wav2TokObjective(model, ObjectiveConfig(targets="online"))
    feats, frames = model.features(*pad_batch(clips()))
    h = model.encode_features(feats, frames)
    assert not hasattr(objective, "teacher")
    assert torch.equal(objective.assign(feats, frames, h), model.logits(h).argmax(-1))


def test_model_checkpoint_holds_the_model_only(tmp_path) -> None:
    model = trained_codebook_model(ModelConfig(num_tokens=8, emb_dim=16))
    Wav2TokObjective(model)  # the objective's teacher and similarity must not leak into the model's file
    ckpt = torch.load(model.save(tmp_path / "m.pt"), weights_only=True)
    assert ckpt["version"] == 2
    assert not [k for k in ckpt["state_dict"] if k.startswith(("teacher.", "similarity."))]
    assert not {"alpha", "beta", "use_cosine", "targets", "diversity"} & set(ckpt["config"])


def test_version_1_checkpoints_load_with_identical_tokens() -> None:
    """tests/data/model_v1_tiny.pt was written by the code before the objective left the model (teacher,
    learned similarity and loss weights inside); its tokens on three tone clips were recorded then."""
    from conftest import REPO, tone_clip

    old = REPO / "tests" / "data" / "model_v1_tiny.pt"
    expected = json.loads((REPO / "tests" / "data" / "model_v1_tiny_tokens.json").read_text())
    raw = torch.load(old, weights_only=True)
    assert raw["version"] == 1 and any(k.startswith("teacher.") for k in raw["state_dict"])
    model = load_model(old)
    queries = [tone_clip(k, 10 + k) for k in range(3)]
    assert [t.tolist() for t in model.frame_tokens(queries)] == expected["frame_tokens"]
    assert model.tokenize(queries) == expected["tokens"]
    assert model.config.dropout == 0.1 and not hasattr(model, "teacher")


def test_the_shipped_speech_model_loads_with_its_recipe() -> None:
    from wav2tok_core.workbench.runs import asset

    model = load_model(asset("weights/wav2tok-speech.pt"))
    cfg = model.config
    assert (cfg.features.kind, cfg.num_tokens, cfg.emb_dim, cfg.keep_repeats) == ("mfcc", 200, 128, True)
    wave = clips()[1]
    assert model.tokenize([wave]) == [t.tolist() for t in model.frame_tokens([wave])]  # one token per frame
