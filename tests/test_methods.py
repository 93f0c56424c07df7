"""The method registry: a method registered outside the package is evaluated like a built-in one.

Data: the tone clips of conftest.write_tone_data (3 classes, 4 train and 2 test clips each); the model is an
untrained tiny one whose codebook comes from one E-step, as in test_evaluate.py.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import write_tone_data

from wav2tok_core.data.manifest import ManifestItem
from wav2tok_core.errors import ConfigError, EvalError
from wav2tok_core.eval import methods
from wav2tok_core.eval.conditions import EvalClip
from wav2tok_core.eval.config import EvalConfig
from wav2tok_core.eval.methods import FeatureDTW, TokenMethod, build_methods, register
from wav2tok_core.eval.protocol import evaluate
from wav2tok_core.model.codebook import fit_model_codebook
from wav2tok_core.model.config import ModelConfig
from wav2tok_core.model.tokens import collapse
from wav2tok_core.model.wav2tok import Wav2Tok
from wav2tok_core.search.index import encode_tokens


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """{"model": Wav2Tok, "test": [items], "train": [items]}."""
    tones = write_tone_data(tmp_path_factory.mktemp("methods"))
    items = {split: [ManifestItem(path, label, split=split) for label, paths in tones[split].items() for path in paths]
             for split in ("train", "test")}
    torch.manual_seed(0)
    model = Wav2Tok(ModelConfig(emb_dim=16, num_tokens=8, num_layers=1))
    fit_model_codebook(model, model.load_clips([it.path for it in items["train"]]))
    return {"model": model.eval(), **items}


@pytest.fixture
def registry(monkeypatch) -> None:
    """Methods registered by the test are forgotten after it."""
    monkeypatch.setattr(methods, "_REGISTRY", dict(methods._REGISTRY))


def test_a_method_registered_in_one_class_is_evaluated_end_to_end(data, registry) -> None:
    model, test_items, train_items = data["model"], data["test"], data["train"]

    @register("zcr-tokens")
    class ZeroCrossingTokens(TokenMethod):
        """Each 20 ms frame's zero-crossing rate in 16 bands, repeats collapsed: a crude pitch contour."""

        def tokenize(self, waves):  # waveforms (N,) at the model's rate -> token strings
            frames = [w[: len(w) // 320 * 320].reshape(-1, 320) for w in waves]  # (T, 320) each
            rates = [(f[:, 1:].sign() != f[:, :-1].sign()).float().mean(dim=1) for f in frames]  # (T,)
            return [collapse((r * 200).long().clamp(max=15)) for r in rates]

    result = evaluate(model, test_items, train_items, EvalConfig(methods=("wav2tok", "zcr-tokens")))

    assert result.methods == ["wav2tok", "zcr-tokens"]
    for condition in result.config.conditions:
        cell = result.cell("zcr-tokens", condition)
        assert (cell.n_queries, cell.n_evaluated) == (6, 6) and 0 < cell.mrr <= 1
    costs = result.costs["zcr-tokens"]
    assert costs.unit == "tokens" and costs.units_per_s > 0 and costs.index_bytes > 0
    assert "| zcr-tokens | shift+3 |" in result.to_markdown() and "zcr-tokens" in result.to_dict()["summary"]


def test_unknown_method_names_are_refused_with_the_known_names(data, registry) -> None:
    with pytest.raises(EvalError, match=r"^unknown method 'dtw-stft'; known methods: \['wav2tok', 'wav2tok-partial', "):
        build_methods(["wav2tok", "dtw-stft"], data["model"], [])
    with pytest.raises(ConfigError, match=r"unknown \['dtw-stft'\]; known methods: \[.*'vq-pitch'\]$"):
        EvalConfig(methods=("dtw-stft",))
    register("dtw-stft")(FeatureDTW)  # a family class takes its front end from its name
    (method,) = build_methods(["dtw-stft"], data["model"], [])
    assert method.featurizer.extractor.config.kind == "stft" and "dtw-stft" in EvalConfig(methods=("dtw-stft",)).methods
    with pytest.raises(EvalError, match=r"\['wav2tok'\] are already registered \(by ModelTokens\)"):
        register("wav2tok")(FeatureDTW)


def test_a_method_fitted_on_train_clips_gets_them_or_is_refused(data, registry) -> None:
    built_with: list[int] = []

    @register("train-count")
    class TrainCount(TokenMethod):
        """One constant token per clip; records how many train clips it was built with."""

        needs_train = True

        def __init__(self, name, context):
            super().__init__(name, context)
            built_with.append(len(context.train_waves))

        def tokenize(self, waves):
            return [[0] for _ in waves]

    config = EvalConfig(methods=("train-count",), conditions=("vanilla",))
    assert evaluate(data["model"], data["test"], data["train"], config).methods == ["train-count"]
    assert built_with == [12]
    with pytest.raises(EvalError, match=r"^methods \['train-count'\] are fitted on train clips, but there are none"):
        evaluate(data["model"], data["test"], [], config)
    assert built_with == [12]  # never built without them


def test_kmeans_encoder_quantises_the_models_frames_with_a_fresh_codebook(data) -> None:
    model = Wav2Tok(ModelConfig(emb_dim=16, num_tokens=8, num_layers=1)).eval()  # codebook: random unit vectors
    before = model.codebook.clone()
    train = [model.load_clips([it.path])[0] for it in data["train"]]
    (method,) = build_methods(["kmeans-encoder"], model, train)
    assert method.needs_train and torch.equal(model.codebook, before)  # the evaluated model is left as it was
    owners = (torch.cat(model.embed(train)) @ method.model.codebook.T).argmax(-1)
    assert set(owners.tolist()) == set(range(8))  # k-means over the train frames: every codeword owns frames
    waves = [model.load_clips([it.path])[0] for it in data["test"]]
    strings = method.encode([EvalClip(it, w) for it, w in zip(data["test"], waves)])
    assert strings == [encode_tokens(collapse(t)) for t in method.model.frame_tokens(waves)]


def test_the_string_forms_of_the_model_tokens(data) -> None:
    model = data["model"]
    collapsed, repeats = build_methods(["wav2tok-collapsed", "wav2tok-repeats"], model, [])
    waves = model.load_clips([it.path for it in data["test"]])
    frames = [t.tolist() for t in model.frame_tokens(waves)]
    assert repeats.tokenize(waves) == frames and collapsed.tokenize(waves) == [collapse(f) for f in frames]
    assert any(len(f) > len(collapse(f)) for f in frames)


def test_pq_encoder_gives_one_string_per_part_and_averages_their_similarities(data) -> None:
    model = data["model"]
    train = model.load_clips([it.path for it in data["train"]])
    (method,) = build_methods(["pq-encoder"], model, train)
    waves = model.load_clips([it.path for it in data["test"]])
    reps = method.encode([EvalClip(it, w) for it, w in zip(data["test"], waves)])
    frames = [len(t) for t in model.frame_tokens(waves)]
    assert all(len(r) == methods.PQ_GROUPS for r in reps)
    assert all(len(s) <= n for r, n in zip(reps, frames) for s in r)  # collapsed: the model does not keep repeats
    scores = method.score(reps, reps)
    assert scores.shape == (len(reps), len(reps)) and np.allclose(np.diag(scores), 1.0)
    assert method.length(reps[0]) == sum(len(s) for s in reps[0]) and method.nbytes(reps) > 0
