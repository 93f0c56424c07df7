"""Typed configurations. Every default carries a comment; every value is checked on construction.

``FeatureConfig`` and ``ModelConfig`` travel inside checkpoints (as plain dicts), so a model can be
rebuilt from its file alone. ``TrainConfig`` lives in :mod:`wav2tok_core.trainer`.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

FEATURE_KINDS = ("stft", "logmel", "mfcc", "pitch")
PITCH_REPRS = ("chroma", "contour")  # see wav2tok_core.pitch.pitch_features

C = TypeVar("C")


class ConfigError(ValueError):
    """A configuration value is unknown or out of range; the message names the field."""


def _require(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: {message}")


def from_dict(cls: type[C], values: Mapping[str, Any], where: str = "config") -> C:
    """Build dataclass ``cls`` from a mapping, refusing unknown keys by name.

    Nested dataclass fields accept nested mappings.
    """
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys: {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        default = known[name].default_factory if known[name].default_factory is not dataclasses.MISSING else None
        nested = type(default()) if default is not None else None
        if nested is not None and dataclasses.is_dataclass(nested) and isinstance(value, Mapping):
            value = from_dict(nested, value, f"{where}.{name}")
        kwargs[name] = _typed(value, known[name].default, f"{where}.{name}")
    return cls(**kwargs)


def _typed(value: Any, default: Any, name: str) -> Any:
    """``value`` checked against the type of the field's ``default`` (ints pass as floats, lists as tuples).

    Fields whose default is None or a dataclass are not checked here.
    """
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and (isinstance(default, float) or isinstance(value, int))
        value = float(value) if ok and isinstance(default, float) else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, tuple):
        ok = isinstance(value, (list, tuple))
        value = tuple(value) if ok else value
    else:
        ok = True
    if not ok:
        raise ConfigError(f"{name}: expected {type(default).__name__}, got {value!r}")
    return value


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict (YAML is a superset of JSON)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path}: not valid YAML/JSON ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: top level must be a mapping, got {type(data).__name__}")
    return data


@dataclass
class FeatureConfig:
    """How audio becomes frames. ``dim`` is derived, never set by hand."""

    kind: str = "mfcc"  # "stft" (magnitude), "logmel", "mfcc" (won on FSDD, README) or "pitch" (YIN f0
    #                     contour, voicing, energy: for melodies, see pitch.py)
    sr: int = 16000  # every clip is resampled to this rate (Hz)
    n_fft: int = 1024  # STFT window and FFT size, as in the reference (64 ms at 16 kHz)
    hop_length: int = 256  # frame step, as in the reference (16 ms at 16 kHz)
    n_mels: int = 64  # mel bands for logmel and for the filterbank under mfcc
    n_mfcc: int = 13  # cepstral coefficients before deltas
    deltas: bool = True  # mfcc only: append delta and delta-delta (13 -> 39 dims)
    log: bool = True  # stft only: log(1 + magnitude) instead of raw magnitude
    normalize: bool = True  # per-utterance mean/variance normalisation over each clip's own frames
    #                          (pitch: remove the clip's key, see pitch_repr)
    f0_min: float = 60.0  # pitch only: lowest f0 searched (Hz); needs n_fft >= 2 * sr / f0_min
    f0_max: float = 1000.0  # pitch only: highest f0 searched (Hz)
    pitch_repr: str = "chroma"  # pitch only: "chroma" (pitch class relative to the key as cos/sin, octave-
    #                             invariant; steadier under re-synthesis, README) or "contour" (semitones
    #                             relative to the median pitch; checkpoints saved before this option)

    def __post_init__(self) -> None:
        _require(self.kind in FEATURE_KINDS, "features.kind", f"{self.kind!r} is not one of {FEATURE_KINDS}")
        _require(self.sr >= 1000, "features.sr", f"sample rate {self.sr} Hz is too low (>= 1000)")
        _require(self.n_fft >= 16, "features.n_fft", f"{self.n_fft} must be >= 16")
        _require(0 < self.hop_length <= self.n_fft, "features.hop_length", "must be in (0, n_fft]")
        _require(self.n_mels >= 4, "features.n_mels", "must be >= 4")
        _require(1 <= self.n_mfcc <= self.n_mels, "features.n_mfcc", "must be in [1, n_mels]")
        _require(self.pitch_repr in PITCH_REPRS, "features.pitch_repr",
                 f"{self.pitch_repr!r} is not one of {PITCH_REPRS}")
        if self.kind == "pitch":
            _require(0 < self.f0_min < self.f0_max < self.sr / 2, "features.f0_min/f0_max",
                     f"need 0 < f0_min < f0_max < sr/2, got {self.f0_min}, {self.f0_max}")
            _require(self.n_fft >= 2 * self.sr / self.f0_min, "features.n_fft",
                     f"{self.n_fft} samples cannot hold two periods of f0_min={self.f0_min} Hz at {self.sr} Hz")

    @property
    def dim(self) -> int:
        """Feature dimension F of one frame."""
        if self.kind == "stft":
            return self.n_fft // 2 + 1
        if self.kind == "logmel":
            return self.n_mels
        if self.kind == "pitch":
            return 5 if self.pitch_repr == "chroma" else 4  # pitch (cos, sin or semitones), delta, voicing, energy
        return self.n_mfcc * (3 if self.deltas else 1)


@dataclass
class ModelConfig:
    """The wav2tok network: encoder, projection, codebook and loss weights."""

    features: FeatureConfig = field(default_factory=FeatureConfig)  # front end; sets input_dim
    use_transformer: bool = False  # Transformer encoder instead of the BiLSTM
    emb_dim: int = 256  # encoder output size (BiLSTM: emb_dim/2 per direction)
    num_layers: int = 2  # BiLSTM or Transformer layers
    dropout: float = 0.25  # between encoder layers
    nhead: int = 4  # Transformer attention heads (emb_dim must divide by it)
    num_tokens: int = 50  # codebook size K (reference examples use 50)
    temp: float = 0.1  # logits = cos(h, e) / temp, also in the matching softmax
    alpha: float = 0.01  # weight of the CTC likelihood term X -> tokens(X') (reference README; 0.1 collapses)
    beta: float = 0.01  # weight of the CTC likelihood term X' -> tokens(X)
    use_cosine: bool = False  # matching loss scores prototypes by cosine instead of learned similarity
    triplet_margin: float = 1.0  # triplet mode: hinge margin, in nats per token (see losses.triplet_loss)
    diversity: float = 0.0  # weight of a codebook-usage entropy term (not in the paper; off by default): an
    #                         alternative guard against collapse for targets="online" (see README)
    diversity_per_clip: bool = True  # entropy of each clip's token usage (True) or of the whole batch's
    targets: str = "teacher"  # who assigns tokens in the M-step: "teacher" (a frozen copy of the model
    #                           taken at each E-step, as in EM) or "online" (the model being trained, as in
    #                           the reference code); see README for the measured difference

    def __post_init__(self) -> None:
        _require(self.emb_dim >= 4 and self.emb_dim % 2 == 0, "emb_dim", f"{self.emb_dim} must be even and >= 4")
        _require(self.num_layers >= 1, "num_layers", "must be >= 1")
        _require(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        _require(self.num_tokens >= 2, "num_tokens", f"{self.num_tokens} must be >= 2")
        _require(math.isfinite(self.temp) and self.temp > 0, "temp", f"{self.temp} must be finite and > 0")
        _require(self.alpha >= 0 and self.beta >= 0, "alpha/beta", "must be >= 0")
        _require(self.triplet_margin >= 0, "triplet_margin", "must be >= 0")
        _require(self.diversity >= 0, "diversity", "must be >= 0")
        _require(self.targets in ("teacher", "online"), "targets", f"{self.targets!r} is not 'teacher' or 'online'")
        if self.use_transformer:
            _require(self.emb_dim % self.nhead == 0, "nhead", f"emb_dim {self.emb_dim} must divide by {self.nhead}")

    @property
    def input_dim(self) -> int:
        """Encoder input size, derived from the feature config."""
        return self.features.dim

    @property
    def code_dim(self) -> int:
        """Size of the projected space holding frame vectors h_t and codewords e_k."""
        return self.emb_dim // 2


def to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain nested dicts (safe for ``torch.load(weights_only=True)``)."""
    return dataclasses.asdict(config)
