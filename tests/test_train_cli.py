"""The reference command line: every flag reaches its config field; the run works end to end."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from wav2tok_core.cli.main import main as cli_main
from wav2tok_core.cli.train import main
from wav2tok_core.data.reference_bin import write_reference_bin
from wav2tok_core.errors import ConfigError
from wav2tok_core.train.recipe import FLAGS, RunSpec, parse_args, parse_bool

# flag -> (command-line value, expected value); every entry of FLAGS must appear here
VALUES = {
    "use_transformer": ("True", True), "use_context": ("false", False), "emb_dim": ("64", 64), "num_tokens": ("33", 33),
    "num_layers": ("3", 3),
    "dropout": ("0.1", 0.1), "use_cosine": ("1", True), "temp": ("0.2", 0.2), "alpha": ("0.3", 0.3),
    "beta": ("0.4", 0.4), "triplet_margin": ("0.7", 0.7), "nhead": ("8", 8), "diversity": ("0.5", 0.5),
    "diversity_per_clip": ("False", False), "targets": ("online", "online"), "stage1_epochs": ("3", 3),
    "contrastive": ("0.5", 0.5), "contrastive_temp": ("0.07", 0.07), "negatives": ("other-labels", "other-labels"),
    "align": ("diagonal", "diagonal"), "align_on": ("encoder", "encoder"), "token_prediction": ("0.3", 0.3),
    "token_prediction_temp": ("0.2", 0.2), "token_prediction_soft": ("True", True), "reconstruction": ("0.4", 0.4),
    "keep_repeats": ("1", True), "input_skip": ("1.5", 1.5), "sr": ("8000", 8000),
    "features": ("logmel", "logmel"), "n_fft": ("512", 512), "hop_length": ("128", 128), "n_mels": ("40", 40),
    "f0_min": ("80", 80.0), "f0_max": ("800", 800.0), "pitch_repr": ("contour", "contour"), "f0": ("pesto", "pesto"),
    "is_dict": ("True", True), "is_triplet": ("true", True), "is_single": ("0", False),
    "apply_augmentation": ("1", True), "positive_other_speaker": ("True", True), "same_length": ("True", True),
    "clip": ("True", True),
    "clip_duration": ("1.5", 1.5), "sample_subdataset": ("True", True), "subdata_split": ("0.3", 0.3),
    "aug_pitch": (["-2", "2"], (-2.0, 2.0)), "aug_stretch": (["0.8", "1.2"], (0.8, 1.2)),
    "aug_noise_snr": (["5", "20"], (5.0, 20.0)), "aug_gain": (["-3", "3"], (-3.0, 3.0)),
    "aug_vtlp": (["0.85", "1.15"], (0.85, 1.15)), "aug_p_pitch": ("0.2", 0.2), "aug_p_stretch": ("0.3", 0.3),
    "aug_p_noise": ("0.1", 0.1), "aug_p_gain": ("0.6", 0.6), "aug_p_vtlp": ("0.7", 0.7),
    "perturbed_pairs": ("0.5", 0.5),
    "debug": ("1", True), "device": ("cpu", "cpu"), "cluster_split": ("0.5", 0.5), "iter_clust": ("77", 77),
    "batch_size": ("9", 9), "EPOCHS": ("13", 13), "autosave": ("2", 2), "patience": ("3", 3),
    "name": ("exp1", "exp1"), "epoch_start": ("4", 4), "learning_rate": ("0.01", 0.01),
    "train_steps": ("500", 500), "warmup": ("0.2", 0.2), "save_dir": ("wdir", "wdir"), "load_dir": ("old", "old"),
    "load_model_epochid": ("5", 5), "seed": ("11", 11), "num_workers": ("2", 2), "grad_clip": ("None", None),
    "progress": ("False", False), "threads": ("1", 1), "input_dim": ("39", None), "is_pairwise": ("True", None),
    "dataset": ("audios", "audios"), "bin_dir": ("splits", "splits"), "val_speaker": ("auto", "auto"),
}


def field_of(spec: RunSpec, flag: str):
    section, key = FLAGS[flag]
    holder = {"model": spec.model, "features": spec.model.features, "objective": spec.objective, "data": spec.data,
              "augment": spec.data.augment, "train": spec.train}.get(section)
    return getattr(holder, key) if holder is not None else getattr(spec, key)


def test_every_flag_has_a_test_value() -> None:
    assert set(VALUES) == set(FLAGS)


@pytest.mark.parametrize("flag", sorted(set(FLAGS) - {"input_dim", "is_pairwise", "is_single"}))
def test_flag_reaches_its_config_field(flag: str) -> None:
    text, expected = VALUES[flag]
    argv = ["--dataset", "audios"] if flag != "dataset" else []
    if flag == "nhead":
        argv += ["--use_transformer", "True"]
    if flag in ("positive_other_speaker", "perturbed_pairs"):
        argv += ["--is_dict", "True"]
    argv += [f"--{flag}", *(text if isinstance(text, list) else [text])]
    spec = parse_args(argv)
    assert field_of(spec, flag) == pytest.approx(expected) if isinstance(expected, (float, tuple)) else \
        field_of(spec, flag) == expected


def test_is_single_and_is_pairwise() -> None:
    assert parse_args(["--dataset", "a", "--is_single", "1"]).data.is_single
    assert not parse_args(["--dataset", "a", "--is_pairwise", "True"]).data.is_single
    with pytest.raises(ConfigError, match="is_pairwise False"):
        parse_args(["--dataset", "a", "--is_pairwise", "False"])


def test_input_dim_is_checked_against_the_features() -> None:
    assert parse_args(["--dataset", "a", "--input_dim", "39"]).model.input_dim == 39
    with pytest.raises(ConfigError, match="input_dim: 513 given, but features 'mfcc' give 39"):
        parse_args(["--dataset", "a", "--input_dim", "513"])
    assert parse_args(["--dataset", "a", "--features", "stft", "--input_dim", "513"]).model.input_dim == 513


@pytest.mark.parametrize("text,value", [("True", True), ("False", False), ("1", True), ("0", False),
                                        ("true", True), ("FALSE", False)])
def test_boolean_spellings(text: str, value: bool) -> None:
    assert parse_bool(text) is value
    assert parse_args(["--dataset", "a", "--is_dict", text]).data.is_dict is value


def test_bare_boolean_flag_means_true() -> None:
    assert parse_args(["--dataset", "a", "--is_dict"]).data.is_dict


def test_config_file_under_flags(tmp_path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("dataset: audios\nnum_tokens: 20\nis_dict: true\naug_pitch: [-1, 1]\nalpha: 0.05\n")
    spec = parse_args(["--config", str(path), "--alpha", "0.2"])
    assert spec.model.num_tokens == 20 and spec.data.is_dict and spec.data.augment.pitch_semitones == (-1.0, 1.0)
    assert spec.objective.alpha == 0.2  # the command line wins


def test_reference_command_trains_end_to_end(tiny_data, tmp_path, monkeypatch) -> None:
    # the reference layout: bin/audios.bin next to where the command runs
    write_reference_bin(tiny_data["train"], tiny_data["test"], tmp_path / "bin" / "audios.bin")
    monkeypatch.chdir(tmp_path)
    argv = ["--dataset", "audios", "--is_dict", "True", "--apply_augmentation", "True", "--is_pairwise", "True",
            "--debug", "1", "--emb_dim", "16", "--num_tokens", "6", "--num_layers", "1", "--batch_size", "4",
            "--progress", "False"]
    assert main(argv) == 0
    run = tmp_path / "weights" / "TrialTok"
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file()
    assert json.loads((run / "run_config.json").read_text())["data"]["apply_augmentation"] is True
    assert cli_main(["train", *argv, "--name", "viaconsole"]) == 0
    assert (tmp_path / "weights" / "viaconsole" / "last.pt").is_file()


def test_missing_dataset_is_a_clear_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--dataset", "nothere"]) == 2
    assert "bin/nothere.bin" in capsys.readouterr().err


def built(tiny_data, tmp_path, *flags: str):
    """A trainer built from reference flags on the tiny tone data (3 classes x 4 clips)."""
    from wav2tok_core.train.recipe import build_trainer, load_training_data

    data = write_reference_bin(tiny_data["train"], tiny_data["test"], tmp_path / "bin" / "tones.bin")
    argv = ["--dataset", str(data), "--is_dict", "True", "--emb_dim", "16", "--num_tokens", "6", "--num_layers", "1",
            "--save_dir", str(tmp_path / "w"), "--progress", "False", *flags]
    spec = parse_args(argv)
    return build_trainer(spec, load_training_data(spec))


def test_model_flags_shape_the_built_model(tiny_data, tmp_path) -> None:
    from torch import nn

    from wav2tok_core.model.encoders import TransformerEncoder
    from wav2tok_core.train.objective import CosineSimilarity, LearnedSimilarity

    plain = built(tiny_data, tmp_path).objective
    assert isinstance(plain.similarity, LearnedSimilarity) and plain.model.proj.in_features == 16
    objective = built(tiny_data, tmp_path, "--emb_dim", "24", "--num_layers", "3", "--use_cosine", "True",
                      "--temp", "0.5").objective
    model = objective.model
    lstm = next(m for m in model.encoder.modules() if isinstance(m, nn.LSTM))
    assert model.proj.in_features == 24 and lstm.num_layers == 3 and lstm.hidden_size == 12
    assert isinstance(objective.similarity, CosineSimilarity)
    h = torch.nn.functional.normalize(torch.randn(1, 5, model.config.code_dim), dim=-1)
    assert torch.allclose(model.logits(h), h @ model.codebook.T / 0.5)
    transformer = built(tiny_data, tmp_path, "--use_transformer", "True", "--nhead", "2").model
    assert isinstance(transformer.encoder, TransformerEncoder)


def test_data_and_device_flags_reach_the_trainer(tiny_data, tmp_path) -> None:
    full = built(tiny_data, tmp_path, "--batch_size", "2")
    assert len(full.sampler) == 12 and full.batches_per_epoch == 6 and full.device == torch.device("cpu")
    subset = built(tiny_data, tmp_path, "--batch_size", "2", "--sample_subdataset", "True", "--subdata_split", "0.5",
                   "--device", "cpu")
    assert len(subset.sampler) == 6 and subset.batches_per_epoch == 3
    rates = [built(tiny_data, tmp_path, "--sr", str(sr)).dataset.store.waves[0].numel() for sr in (16000, 8000)]
    assert abs(rates[0] - 2 * rates[1]) <= 1  # clips are resampled to --sr
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            built(tiny_data, tmp_path, "--device", "cuda")


def test_positive_other_speaker_takes_speakers_from_the_manifest(tiny_data, tmp_path) -> None:
    from wav2tok_core.data.manifest import ManifestItem, write_manifest
    from wav2tok_core.train.recipe import load_training_data

    items = [ManifestItem(p, label, f"s{i % 2}", "train") for label, paths in tiny_data["train"].items()
             for i, p in enumerate(paths)]
    write_manifest(items, tmp_path / "m.json")
    argv = ["--dataset", str(tmp_path / "m.json"), "--is_dict", "True", "--positive_other_speaker", "True",
            "--emb_dim", "16", "--num_tokens", "6", "--num_layers", "1", "--save_dir", str(tmp_path / "w")]
    dataset = load_training_data(parse_args(argv)).pairs
    assert sorted(set(dataset.speaker_of)) == ["s0", "s1"]
    with pytest.raises(ValueError, match="speaker ids"):  # the reference .bin has no speakers
        built(tiny_data, tmp_path, "--positive_other_speaker", "True")


def test_cluster_split_clusters_that_share_of_the_clips(tiny_data, tmp_path, monkeypatch) -> None:
    import wav2tok_core.train.callbacks as clustering

    sizes: list[int] = []
    real = clustering.e_step
    monkeypatch.setattr(clustering, "e_step",
                        lambda model, clips, **kw: sizes.append(len(clips)) or real(model, clips, **kw))
    trainer = built(tiny_data, tmp_path, "--cluster_split", "0.5", "--iter_clust", "2", "--EPOCHS", "1",
                    "--batch_size", "4")
    trainer.fit()
    assert sizes == [6, 6]  # steps 0 and 2 of 3, half of the 12 training clips each


@pytest.mark.parametrize("name", ["speech", "melody"])
def test_recipe_files_parse_and_overrides_win(name: str) -> None:
    from conftest import REPO

    from wav2tok_core.train.recipe import recipe_spec

    path = REPO / "configs" / f"{name}.yaml"
    spec = recipe_spec(path, dataset="data.json", num_tokens=7, EPOCHS=1)
    assert spec.model.num_tokens == 7 and spec.train.epochs == 1 and spec.dataset == "data.json"
    assert spec.model.features.kind == {"speech": "mfcc", "melody": "pitch"}[name]
    assert spec.data.is_dict and spec.model.emb_dim == 128
    same = parse_args(["--config", str(path), "--dataset", "data.json", "--num_tokens", "7", "--EPOCHS", "1"])
    assert same == spec  # the notebook's and the shell's ways of using a recipe agree


def test_val_speaker_holds_one_training_speaker_out() -> None:
    from wav2tok_core.data.manifest import ManifestItem
    from wav2tok_core.train.loading import hold_out_speaker

    items = [ManifestItem(Path(f"/d/{s}{i}.wav"), str(i % 2), s, "train") for s in ("ann", "bob", "cy")
             for i in range(4 if s == "bob" else 3)]
    train, val = hold_out_speaker(items, "auto")  # bob has the most clips
    assert {it.speaker for it in val} == {"bob"} and {it.speaker for it in train} == {"ann", "cy"}
    train, val = hold_out_speaker(items, "cy")
    assert len(val) == 3 and len(train) == 7
    with pytest.raises(ConfigError, match="'dan' is not a training speaker"):
        hold_out_speaker(items, "dan")


def test_val_speaker_needs_speaker_ids(tiny_data, tmp_path) -> None:
    with pytest.raises(ConfigError, match="no speaker ids"):
        built(tiny_data, tmp_path, "--val_speaker", "auto")


def test_every_train_flag_has_help_text() -> None:
    from wav2tok_core.train.recipe import build_parser

    actions = [a for a in build_parser()._actions if a.dest != "help"]
    assert {a.dest for a in actions} >= set(FLAGS)
    bare = [a.dest for a in actions if not a.help or len(a.help) < 10 or a.help == a.dest]
    assert not bare, f"flags without help text: {bare}"
