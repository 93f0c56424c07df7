"""``python -m wav2tok_core.train``: the reference command line, every flag under its own name.

    python -m wav2tok_core.train --dataset audios --is_dict True --apply_augmentation True

``--dataset NAME`` reads ``{bin_dir}/NAME.bin`` (the reference ``[X_train, X_test]`` pickle, read
safely); a path to a ``.bin``, ``.json`` or ``.csv`` manifest works too. ``X_test`` (or the manifest's
``val`` rows) is the validation set early stopping watches. ``--config run.yaml`` holds the same keys
as the flags; flags given on the command line win.

The same command trains on several processes or GPUs when started by torchrun (README, "Train on N GPUs"):

    torchrun --nproc_per_node 4 -m wav2tok_core.train --dataset audios --is_dict True --batch_size 64
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .. import distributed
from ..audio.augment import AugmentConfig
from ..audio.config import F0_TRACKERS, FEATURE_KINDS, PITCH_REPRS, FeatureConfig
from ..config import load_config_file, to_dict
from ..errors import ConfigError
from ..model.config import ModelConfig
from ..model.wav2tok import Wav2Tok
from ..runtime import seed_everything, write_json
from .callbacks import EStep, Stages
from .data import DataConfig
from .loading import TrainingData, debug_subset, hold_out_speaker, read_training_items
from .objective import ALIGN_ON, ALIGNMENTS, NEGATIVES, ObjectiveConfig, Wav2TokObjective
from .trainer import TrainConfig, Trainer
from .validation import make_validator

# flag -> (section, field). Sections: model, features, objective, data, augment, train, run.
FLAGS: dict[str, tuple[str, str]] = {
    # class wav2tok
    "use_transformer": ("model", "use_transformer"), "use_context": ("model", "use_context"),
    "emb_dim": ("model", "emb_dim"), "num_tokens": ("model", "num_tokens"), "num_layers": ("model", "num_layers"),
    "dropout": ("model", "dropout"),
    "temp": ("model", "temp"), "nhead": ("model", "nhead"), "keep_repeats": ("model", "keep_repeats"),
    "input_skip": ("model", "input_skip"),
    # the objective's loss weights and targets
    "use_cosine": ("objective", "use_cosine"), "alpha": ("objective", "alpha"), "beta": ("objective", "beta"),
    "triplet_margin": ("objective", "triplet_margin"), "diversity": ("objective", "diversity"),
    "diversity_per_clip": ("objective", "diversity_per_clip"), "targets": ("objective", "targets"),
    "stage1_epochs": ("objective", "stage1_epochs"), "contrastive": ("objective", "contrastive"),
    "contrastive_temp": ("objective", "contrastive_temp"), "negatives": ("objective", "negatives"),
    "align": ("objective", "align"), "align_on": ("objective", "align_on"),
    "token_prediction": ("objective", "token_prediction"),
    "token_prediction_temp": ("objective", "token_prediction_temp"),
    "token_prediction_soft": ("objective", "token_prediction_soft"),
    "reconstruction": ("objective", "reconstruction"),
    "input_dim": ("run", "input_dim"),
    # features
    "sr": ("features", "sr"), "features": ("features", "kind"), "n_fft": ("features", "n_fft"),
    "hop_length": ("features", "hop_length"), "n_mels": ("features", "n_mels"), "f0_min": ("features", "f0_min"),
    "f0_max": ("features", "f0_max"), "pitch_repr": ("features", "pitch_repr"), "f0": ("features", "f0"),
    # Trainer(...) sampling
    "is_dict": ("data", "is_dict"), "is_triplet": ("data", "is_triplet"), "is_single": ("data", "is_single"),
    "is_pairwise": ("run", "is_pairwise"), "apply_augmentation": ("data", "apply_augmentation"),
    "positive_other_speaker": ("data", "positive_other_speaker"), "perturbed_pairs": ("data", "perturbed_pairs"),
    "same_length": ("data", "same_length"), "clip": ("data", "clip"), "clip_duration": ("data", "clip_duration"),
    "sample_subdataset": ("data", "sample_subdataset"), "subdata_split": ("data", "subdata_split"),
    "aug_pitch": ("augment", "pitch_semitones"), "aug_stretch": ("augment", "stretch_rate"),
    "aug_noise_snr": ("augment", "noise_snr_db"), "aug_gain": ("augment", "gain_db"),
    "aug_vtlp": ("augment", "vtlp_alpha"), "aug_p_pitch": ("augment", "p_pitch"),
    "aug_p_stretch": ("augment", "p_stretch"), "aug_p_noise": ("augment", "p_noise"), "aug_p_gain": ("augment", "p_gain"),
    "aug_p_vtlp": ("augment", "p_vtlp"),
    # Trainer(...), optimizer, scheduler, weights
    "debug": ("train", "debug"), "device": ("train", "device"), "cluster_split": ("train", "cluster_split"),
    "iter_clust": ("train", "iter_clust"), "batch_size": ("train", "batch_size"), "EPOCHS": ("train", "epochs"),
    "autosave": ("train", "autosave"), "patience": ("train", "patience"), "name": ("train", "name"),
    "epoch_start": ("train", "epoch_start"), "learning_rate": ("train", "learning_rate"),
    "train_steps": ("train", "train_steps"), "warmup": ("train", "warmup"), "save_dir": ("train", "save_dir"),
    "load_dir": ("train", "load_dir"), "load_model_epochid": ("train", "load_model_epochid"),
    "seed": ("train", "seed"), "num_workers": ("train", "num_workers"), "grad_clip": ("train", "grad_clip"),
    "progress": ("train", "progress"), "threads": ("train", "threads"),
    # where the data is
    "dataset": ("run", "dataset"), "bin_dir": ("run", "bin_dir"), "val_speaker": ("run", "val_speaker"),
}
DEBUG_CLIPS = 32  # --debug keeps this many training and validation clips


# Help text of every flag without its own below (defaults: see the config classes and `--config` files).
HELP = {
    "emb_dim": "encoder output size (BiLSTM: half per direction; default 256)",
    "num_tokens": "codebook size K (default 50)",
    "num_layers": "BiLSTM or Transformer layers (default 2)",
    "nhead": "Transformer attention heads (emb_dim must divide by it)",
    "iter_clust": "E-step (k-means codebook) every this many steps (default 500)",
    "batch_size": "pairs per step, global under torchrun (default 4)",
    "EPOCHS": "passes over the training data (default 100)",
    "autosave": "keep epoch_N.pt every this many epochs (0: never; default 5)",
    "patience": "stop after this many epochs without a better validation metric (0: never; default 5)",
    "epoch_start": "epoch number to count from (default: the loaded checkpoint's)",
    "seed": "seed of weights, sampling, augmentation and dropout",
    "num_workers": "DataLoader worker processes (augmentation runs there)",
    "threads": "CPU threads of torch, numba and rapidfuzz (default: one per core; 1 on a busy 2-core machine)",
    "sr": "sample rate every clip is resampled to (Hz; default 16000)",
    "n_fft": "STFT window and FFT size (default 1024)",
    "hop_length": "frame step in samples (default 256)",
    "n_mels": "mel bands of logmel and of the MFCC filterbank (default 64)",
    "temp": "logit temperature: logits = cos(h, e) / temp (default 0.1)",
    "alpha": "weight of the CTC term X -> tokens(X') (default 0.01)",
    "beta": "weight of the CTC term X' -> tokens(X) (default 0.01)",
    "dropout": "dropout between encoder layers (default 0.25)",
    "triplet_margin": "triplet mode: hinge margin in nats per token (default 1.0)",
    "diversity": "weight of a codebook-usage entropy term (not in the paper; default 0)",
    "cluster_split": "fraction of training clips each E-step clusters (default 1.0)",
    "subdata_split": "with sample_subdataset: fraction of anchors per epoch (default 0.1)",
    "clip_duration": "with clip: seconds kept by the random crop (default 3.0)",
    "learning_rate": "Adam learning rate, warmed up then decayed linearly (default 0.002)",
    "warmup": "fraction of the steps with linear warm-up (default 0.08)",
    "f0_min": "pitch features: lowest f0 searched (Hz; default 60)",
    "f0_max": "pitch features: highest f0 searched (Hz; default 1000)",
    "grad_clip": "max gradient norm, or None (default 10)",
    "train_steps": "stop after this many steps (default: epochs x batches per epoch)",
    "load_model_epochid": "with load_dir: load epoch_N.pt instead of last.pt",
    "device": "auto (CUDA when present), cpu, cuda or cuda:N",
    "name": "run name: the run folder is save_dir/name (default TrialTok)",
    "save_dir": "parent folder of run folders (default weights)",
    "load_dir": "resume from a run name under save_dir or a run folder, or warm-start from a .pt file",
    "aug_pitch": "pitch shift range of augmented views, semitones",
    "aug_stretch": "time-stretch rate range of augmented views",
    "aug_noise_snr": "noise SNR range of augmented views, dB",
    "aug_gain": "gain range of augmented views, dB",
    "aug_vtlp": "vocal-tract-length warp factor range of augmented views (>1: formants move up)",
    "aug_p_pitch": "probability that an augmented view is pitch-shifted (default 1)",
    "aug_p_stretch": "probability that an augmented view is time-stretched (default 1)",
    "aug_p_noise": "probability that an augmented view gets white noise (default 0.5)",
    "aug_p_gain": "probability that an augmented view changes level (default 0.5)",
    "aug_p_vtlp": "probability that an augmented view gets a vocal-tract-length warp (default 0)",
    "perturbed_pairs": "dict data: share of anchors paired with an augmented copy of themselves (no label needed)",
    "use_cosine": "1: the matching loss scores prototypes by cosine instead of the learned similarity",
    "diversity_per_clip": "1: the diversity term's entropy is per clip (default), 0: over the batch",
    "is_dict": "1: the data is grouped by class and positives are other clips of the anchor's class",
    "is_triplet": "1: add a negative from another class and a hinge term",
    "is_single": "1: the positive is always an augmented copy of the anchor",
    "is_pairwise": "pairs of views (the default mode; set is_triplet or is_single instead of 0)",
    "apply_augmentation": "1: also augment the sampled positive of dict data",
    "positive_other_speaker": "1: dict data takes the positive from another speaker of the class (needs speakers)",
    "same_length": "1: time-stretch the positive and negative to the anchor's length",
    "clip": "1: random crop of every clip to clip_duration",
    "sample_subdataset": "1: a fresh random subset of anchors each epoch (subdata_split)",
    "progress": "1: progress bars (default)",
    "input_skip": "weight of the input features kept in every frame vector beside the learned part (0: off)",
    "keep_repeats": "1: token strings keep one token per frame (durations count in edit distance); "
                    "0: collapse repeats, as the paper (default)",
}


def parse_bool(text: str | bool) -> bool:
    """Reference spellings: True/False, 1/0 (also yes/no, on/off), any case."""
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("true", "1", "yes", "y", "on"):
        return True
    if value in ("false", "0", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected True/False or 1/0, got {text!r}")


def optional_int(text: str) -> int | None:
    return None if str(text).lower() in ("none", "") else int(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wav2tok train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    s = argparse.SUPPRESS  # unset flags stay absent, so YAML values and defaults show through
    def flag(name: str, **kw: Any) -> None:
        kw.setdefault("help", HELP.get(name))
        p.add_argument(f"--{name}", default=s, **kw)

    def boolean(name: str, help: str | None = None) -> None:
        flag(name, type=parse_bool, nargs="?", const=True, help=help or HELP[name])

    p.add_argument("--config", help="YAML/JSON file with any of these flags as keys")
    flag("dataset", help="NAME of {bin_dir}/NAME.bin, or a path to a .bin/.json/.csv manifest")
    flag("val_speaker", help="validate on this training speaker (held out of training; 'auto' picks one) "
                             "instead of the val split; needs a manifest with speakers")
    flag("bin_dir", help="folder of reference .bin splits (default: bin)")
    boolean("debug", "1: tiny fast run (32 clips, 2 epochs of <= 8 batches)")
    boolean("use_transformer", "Transformer encoder instead of BiLSTM")
    boolean("use_context", "false: encode each frame alone (an MLP), e.g. over --pitch_repr notes")
    flag("input_dim", type=int, help="checked against the dimension the feature config gives")
    for name in ("emb_dim", "num_tokens", "num_layers", "nhead", "iter_clust", "batch_size", "EPOCHS", "autosave",
                 "patience", "epoch_start", "seed", "num_workers", "threads", "sr", "n_fft", "hop_length", "n_mels"):
        flag(name, type=int)
    for name in ("temp", "input_skip", "alpha", "beta", "dropout", "triplet_margin", "diversity", "cluster_split", "subdata_split",
                 "clip_duration", "learning_rate", "warmup", "f0_min", "f0_max", "perturbed_pairs", "aug_p_pitch",
                 "aug_p_stretch", "aug_p_noise", "aug_p_gain", "aug_p_vtlp"):
        flag(name, type=float)
    flag("grad_clip", type=lambda t: None if t.lower() == "none" else float(t))
    flag("train_steps", type=optional_int)
    flag("load_model_epochid", type=optional_int)
    flag("features", choices=list(FEATURE_KINDS), help="frame features (default mfcc; pitch for melodies)")
    flag("pitch_repr", choices=list(PITCH_REPRS),
         help="pitch features: octave-invariant chroma (default), contour, notes (per-note interval, duration ratio "
              "and pitch class) or intervals (per-note interval alone)")
    flag("f0", choices=list(F0_TRACKERS), help="pitch features: f0 tracker, yin (default) or the neural crepe / pesto "
                                                 "(pip install .[pitch])")
    flag("targets", choices=["teacher", "online"], help="M-step tokens from the E-step's frozen model or the live one")
    flag("stage1_epochs", type=int, help="epochs of stage I (aligned contrastive frames only, no codebook) before EM")
    flag("contrastive", type=float, help="weight of the aligned frame contrastive term in the EM stage (0: off)")
    flag("contrastive_temp", type=float, help="temperature of the aligned frame contrastive term")
    flag("negatives", choices=list(NEGATIVES), help="contrastive negatives: every other clip's frames, or other labels'")
    flag("align", choices=list(ALIGNMENTS), help="pairing frames of two recordings: DTW or the diagonal path")
    flag("align_on", choices=list(ALIGN_ON), help="what DTW compares: input features or current encoder frames")
    flag("token_prediction", type=float, help="weight of aligned token prediction in the EM stage (0: off)")
    flag("token_prediction_temp", type=float, help="temperature of aligned token prediction")
    boolean("token_prediction_soft", "1: predict the partner's posterior instead of its token")
    flag("reconstruction", type=float, help="weight of predicting each frame's aligned partner's input features "
                                            "(correspondence autoencoder; 0: off)")
    for name in ("device", "name", "save_dir", "load_dir"):
        flag(name)
    for name in ("use_cosine", "diversity_per_clip", "is_dict", "is_triplet", "is_single", "is_pairwise", "apply_augmentation",
                 "positive_other_speaker", "same_length", "clip", "sample_subdataset", "progress", "keep_repeats"):
        boolean(name)
    for name in ("aug_pitch", "aug_stretch", "aug_noise_snr", "aug_gain", "aug_vtlp"):
        flag(name, type=float, nargs=2, metavar=("LOW", "HIGH"))
    return p


@dataclass
class RunSpec:
    """Everything a training run needs, resolved from defaults, a config file and flags."""

    model: ModelConfig
    data: DataConfig
    train: TrainConfig
    dataset: str
    bin_dir: str = "bin"
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    val_speaker: str = ""  # validate on this training speaker's clips (held out of training; "auto": one chosen
    #                        by clip count), not the manifest's val split: a measure of unseen voices


def spec_from_options(options: dict[str, Any]) -> RunSpec:
    """Parsed flag values (by flag name) -> typed configs; bad values raise ConfigError naming the field."""
    sections: dict[str, dict[str, Any]] = {k: {} for k in ("model", "features", "objective", "data", "augment",
                                                           "train", "run")}
    for name, value in options.items():
        section, key = FLAGS[name]
        sections[section][key] = value
    run = sections["run"]
    if run.get("is_pairwise") is False and not (sections["data"].get("is_triplet") or sections["data"].get("is_single")):
        raise ConfigError("is_pairwise False: choose is_triplet or is_single instead (pairs are the default)")
    if "dataset" not in run:
        raise ConfigError("dataset: no training data given (--dataset NAME or a manifest path)")
    model = ModelConfig(features=FeatureConfig(**sections["features"]), **sections["model"])
    if run.get("input_dim") is not None and run["input_dim"] != model.input_dim:
        raise ConfigError(f"input_dim: {run['input_dim']} given, but features {model.features.kind!r} give "
                          f"{model.input_dim} dims; drop --input_dim (it is derived) or change the features")
    data = DataConfig(augment=AugmentConfig(**sections["augment"]), **sections["data"])
    return RunSpec(model, data, TrainConfig(**sections["train"]), str(run["dataset"]), run.get("bin_dir", "bin"),
                   ObjectiveConfig(**sections["objective"]), str(run.get("val_speaker", "")))


def options_argv(options: Mapping[str, Any], where: str) -> list[str]:
    """Flag-name keys and values as command-line tokens, so they parse exactly like flags; ``where`` names
    their source in the error for an unknown key."""
    unknown = sorted(set(options) - set(FLAGS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; keys are the flag names of `wav2tok train --help`")
    tokens: list[str] = []
    for name, value in options.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        tokens += [f"--{name}", *(str(v) for v in values)]
    return tokens


def config_file_argv(path: str) -> list[str]:
    """A YAML/JSON config of flag-name keys as command-line tokens."""
    return options_argv(load_config_file(path), f"config file {path}")


def recipe_spec(config: str | os.PathLike, **overrides: Any) -> RunSpec:
    """The run a recipe file (``configs/*.yaml``) describes, with ``overrides`` (flag names) on top."""
    return parse_args(["--config", str(config), *options_argv(overrides, "overrides")])


def parse_args(argv: Sequence[str] | None = None) -> RunSpec:
    """Flags, with ``--config FILE`` values underneath them (flags on the command line win)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    config_path = vars(parser.parse_known_args(argv)[0]).get("config")
    tokens = config_file_argv(config_path) if config_path else []
    options = vars(parser.parse_args(tokens + argv))
    options.pop("config", None)
    return spec_from_options(options)


def load_training_data(spec: RunSpec) -> TrainingData:
    """The run's items (debug runs: a few of them), their decoded clips, pairs and validation clips."""
    ctx, _ = distributed.setup(spec.train.device)  # under torchrun: join the job before loading data
    train, val = read_training_items(spec.dataset, spec.bin_dir, spec.data.is_dict)
    if spec.val_speaker:
        train, val = hold_out_speaker(train + val, spec.val_speaker)
    if spec.train.debug:
        train, val = (debug_subset(items, DEBUG_CLIPS, spec.data.is_dict) for items in (train, val))
    return TrainingData.load(train, val, spec.data, spec.model.features.sr, seed=spec.train.seed,
                             progress=spec.train.progress and ctx.is_main)


def build_trainer(spec: RunSpec, data: TrainingData, callbacks: Sequence = ()) -> Trainer:
    """The model and its trainer on loaded ``data`` (see :func:`load_training_data`); the E-step callback
    comes before ``callbacks``."""
    seed_everything(spec.train.seed)
    evaluate = None
    if data.validates:
        evaluate = make_validator(data.val_clips, data.val_labels, spec.data.augment, seed=spec.train.seed)
    estep = EStep(data.train_clips, spec.train.iter_clust, spec.train.cluster_split, seed=spec.train.seed,
                  start_epoch=spec.objective.stage1_epochs)
    stages = [Stages(spec.objective.stage1_epochs)] if spec.objective.stage1_epochs else []
    objective = Wav2TokObjective(Wav2Tok(spec.model), spec.objective)
    trainer = Trainer(objective, data.pairs, spec.train, evaluate=evaluate, callbacks=[*stages, estep, *callbacks])
    return trainer


def run(spec: RunSpec, callbacks: Sequence = ()) -> Trainer:
    """Train as ``spec`` says; writes ``run_config.json`` and ``data_report.json`` to the run folder."""
    data = load_training_data(spec)
    trainer = build_trainer(spec, data, callbacks)
    report = data.report()
    if trainer.dist.is_main:
        write_json(trainer.run_dir / "run_config.json", {"model": to_dict(spec.model),
                                                         "objective": to_dict(spec.objective), "data": to_dict(spec.data),
                                                         "train": to_dict(spec.train), "dataset": spec.dataset,
                                                         "world_size": trainer.dist.world_size})
        write_json(trainer.run_dir / "data_report.json", report)
        for failed in report["failed"]:
            print(f"skipped {failed['path']}: {failed['reason']}", file=sys.stderr)
        if "warning" in report:
            print(f"warning: {report['warning']}", file=sys.stderr)
    trainer.fit()
    return trainer
