"""How audio becomes frames: the front end's config (travels inside model checkpoints)."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from ..config import require

FEATURE_KINDS = ("stft", "logmel", "mfcc", "pitch")
PITCH_DIMS = {"chroma": 5, "contour": 4, "notes": 4, "intervals": 1}  # channels; see audio.pitch.pitch_features
PITCH_REPRS = tuple(PITCH_DIMS)
NOTE_REPRS = ("notes", "intervals")  # pitch representations that hold one value per note, not per frame
F0_TRACKERS = ("yin", "crepe", "pesto")  # see wav2tok_core.audio.f0
NEURAL_F0_PACKAGES = {"crepe": "torchcrepe", "pesto": "pesto"}  # the pip extra "pitch" installs them


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
    f0: str = "yin"  # pitch only: f0 tracker, "yin" (built in), "crepe" (CREPE tiny) or "pesto" (PESTO, MIR-1K);
    #                  the neural ones need the optional extra: pip install .[pitch]
    pitch_repr: str = "chroma"  # pitch only: "chroma" (pitch class relative to the key as cos/sin, octave-
    #                             invariant; steadier under re-synthesis, README) or "contour" (semitones
    #                             relative to the median pitch; checkpoints saved before this option) or
    #                             "notes" (each frame holds its note's interval, duration ratio and pitch class)
    #                             or "intervals" (its interval alone)

    def __post_init__(self) -> None:
        require(self.kind in FEATURE_KINDS, "features.kind", f"{self.kind!r} is not one of {FEATURE_KINDS}")
        require(self.sr >= 1000, "features.sr", f"sample rate {self.sr} Hz is too low (>= 1000)")
        require(self.n_fft >= 16, "features.n_fft", f"{self.n_fft} must be >= 16")
        require(0 < self.hop_length <= self.n_fft, "features.hop_length", "must be in (0, n_fft]")
        require(self.n_mels >= 4, "features.n_mels", "must be >= 4")
        require(1 <= self.n_mfcc <= self.n_mels, "features.n_mfcc", "must be in [1, n_mels]")
        require(self.pitch_repr in PITCH_REPRS, "features.pitch_repr",
                 f"{self.pitch_repr!r} is not one of {PITCH_REPRS}")
        require(self.f0 in F0_TRACKERS, "features.f0", f"{self.f0!r} is not one of {F0_TRACKERS}")
        if self.kind == "pitch":
            require(self.f0 == "yin" or importlib.util.find_spec(NEURAL_F0_PACKAGES[self.f0]) is not None,
                    "features.f0", f"{self.f0!r} needs the optional pitch trackers: pip install .[pitch]")
            require(0 < self.f0_min < self.f0_max < self.sr / 2, "features.f0_min/f0_max",
                     f"need 0 < f0_min < f0_max < sr/2, got {self.f0_min}, {self.f0_max}")
            require(self.n_fft >= 2 * self.sr / self.f0_min, "features.n_fft",
                     f"{self.n_fft} samples cannot hold two periods of f0_min={self.f0_min} Hz at {self.sr} Hz")

    @property
    def frame_s(self) -> float:
        """Seconds per frame step (hop)."""
        return self.hop_length / self.sr

    @property
    def note_level(self) -> bool:
        """Whether every frame holds its note's values (pitch ``notes`` / ``intervals``): the model's strings
        then have one token per note (:meth:`FeatureExtractor.note_starts`)."""
        return self.kind == "pitch" and self.pitch_repr in NOTE_REPRS

    @property
    def dim(self) -> int:
        """Feature dimension F of one frame."""
        if self.kind == "stft":
            return self.n_fft // 2 + 1
        if self.kind == "logmel":
            return self.n_mels
        if self.kind == "pitch":
            return PITCH_DIMS[self.pitch_repr]
        return self.n_mfcc * (3 if self.deltas else 1)
