"""The YIN pitch front end: f0 accuracy, no octave errors on rich tones, voicing, key normalisation, and the
octave-invariant chroma representation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wav2tok_core.audio.config import NEURAL_F0_PACKAGES, FeatureConfig
from wav2tok_core.audio.features import FeatureExtractor
from wav2tok_core.audio.pitch import _forward_fill
from wav2tok_core.errors import ConfigError

SR = 16000


def tone(f0: np.ndarray | float, seconds: float = 0.5, harmonics: int = 1) -> torch.Tensor:
    """A tone with ``harmonics`` partials of falling amplitude; ``f0`` constant or per sample (Hz)."""
    n = int(SR * seconds)
    phase = 2 * np.pi * np.cumsum(np.broadcast_to(f0, (n,))) / SR
    wave = sum(np.sin(h * phase) / h for h in range(1, harmonics + 1))
    return torch.tensor(0.3 * wave / np.abs(wave).max(), dtype=torch.float32)


def features(wave: torch.Tensor, normalize: bool = False, representation: str = "contour",
             f0: str = "yin") -> torch.Tensor:
    """(T, 4) contour or (T, 5) chroma pitch features of one clip."""
    config = FeatureConfig(kind="pitch", normalize=normalize, pitch_repr=representation, f0=f0)
    feats, _ = FeatureExtractor(config)(wave[None], torch.tensor([len(wave)]))
    return feats[0]


def tracker(name: str) -> str:
    """``name``, skipping the test when its optional package is missing."""
    if name != "yin":
        pytest.importorskip(NEURAL_F0_PACKAGES[name], reason=f"f0 tracker {name!r} needs pip install .[pitch]")
    return name


TOLERANCE_CENTS = {"yin": 10, "crepe": 30, "pesto": 40}  # worst frame of a steady tone, away from its edges
LOWEST_HZ = {"yin": 80.0, "crepe": 80.0, "pesto": 100.0}  # PESTO: ~1 semitone off on an 82 Hz sine, 1/3 on 110-196 Hz sines
# (benchmarks/f0_trackers.py measures all three on every tone)


def chroma_semitones(feats: torch.Tensor) -> torch.Tensor:
    """(T,) the pitch class held in chroma features' (cos, sin) channels, in semitones [0, 12)."""
    return torch.remainder(torch.atan2(feats[:, 1], feats[:, 0]) * 12 / (2 * np.pi), 12.0)


def semitone_gap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance between pitch classes in semitones, around the circle (0 to 6)."""
    d = torch.remainder(a - b, 12.0)
    return torch.minimum(d, 12.0 - d)


@pytest.mark.parametrize("name", ["yin", "crepe", "pesto"])
@pytest.mark.parametrize("f0", [82.4, 110.0, 196.0, 440.0, 880.0])
@pytest.mark.parametrize("harmonics", [1, 8])
def test_f0_of_steady_tones(name: str, f0: float, harmonics: int) -> None:
    cents = TOLERANCE_CENTS[tracker(name)] / 100
    if f0 < LOWEST_HZ[name]:
        pytest.skip(f"{name} is not checked below {LOWEST_HZ[name]} Hz")
    pitch = features(tone(f0, harmonics=harmonics), f0=name)[4:-4]  # away from the clip edges
    expected = 69 + 12 * np.log2(f0 / 440)
    assert (pitch[:, 2] == 1).all(), "a steady tone is voiced throughout"
    assert (pitch[:, 0] - expected).abs().max().item() < cents  # semitones: no octave (12) errors
    chroma = features(tone(f0, harmonics=harmonics), representation="chroma", f0=name)[4:-4]
    assert (chroma[:, 3] == 1).all()
    assert semitone_gap(chroma_semitones(chroma), torch.tensor(expected % 12)).max().item() < cents


@pytest.mark.parametrize("name", ["yin", "crepe", "pesto"])
def test_noise_and_silence_are_unvoiced(name: str) -> None:
    tracker(name)
    torch.manual_seed(0)
    noise = 0.1 * torch.randn(SR // 2)
    quiet_then_tone = torch.cat([torch.zeros(SR // 4), tone(220.0, 0.25)])
    for representation in ("contour", "chroma"):  # voicing is the second channel from the end in both
        assert features(noise, representation=representation, f0=name)[:, -2].mean().item() < 0.1
        voicing = features(quiet_then_tone, representation=representation, f0=name)[:, -2]
        assert voicing[:10].sum().item() == 0 and voicing[-8:-2].min().item() == 1


def test_a_missing_tracker_package_is_named(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchcrepe" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install \.\[pitch\]"):
        FeatureConfig(kind="pitch", f0="crepe")
    with pytest.raises(ConfigError, match="features.f0"):
        FeatureConfig(kind="pitch", f0="swipe")


def test_key_normalisation_makes_a_transposed_melody_equal() -> None:
    notes = np.repeat([220.0, 247.0, 262.0, 294.0, 330.0], SR // 5)  # a rising scale, 1 s
    up = notes * 2 ** (5 / 12)  # a fourth higher
    a, b = features(tone(notes, 1.0, 6), normalize=True), features(tone(up, 1.0, 6), normalize=True)
    voiced = (a[:, 2] == 1) & (b[:, 2] == 1)
    assert voiced.float().mean().item() > 0.9
    assert (a[voiced, 0] - b[voiced, 0]).abs().median().item() < 0.05  # same contour in semitones
    raw_a, raw_b = features(tone(notes, 1.0, 6)), features(tone(up, 1.0, 6))
    assert (raw_b[voiced, 0] - raw_a[voiced, 0]).median().item() == pytest.approx(5.0, abs=0.1)


@pytest.mark.parametrize("representation,delta", [("contour", 1), ("chroma", 2)])
def test_delta_follows_pitch_changes(representation: str, delta: int) -> None:
    glide = features(tone(np.geomspace(200.0, 400.0, SR), 1.0, 4), representation=representation)  # an octave up
    middle = glide[10:-10, delta]
    assert (middle > 0).all()  # rising everywhere, also where chroma's pitch class wraps around
    assert middle.mean().item() == pytest.approx(12 * 256 / SR, rel=0.2)  # semitones per frame


def test_the_track_before_the_first_voiced_frame_holds_that_frame() -> None:
    values = torch.tensor([[9.0, 9.0, 5.0, 8.0, 7.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    keep = torch.tensor([[False, False, True, False, True], [False] * 5])
    assert _forward_fill(values, keep).tolist() == [[5.0, 5.0, 5.0, 5.0, 7.0], [0.0] * 5]


@pytest.mark.parametrize("representation,delta", [("contour", 1), ("chroma", 2)])
def test_no_pitch_step_where_the_first_voiced_frame_starts(representation: str, delta: int) -> None:
    feats = features(torch.cat([torch.zeros(SR // 4), tone(220.0, 0.5, 4)]), representation=representation)
    first = int(torch.nonzero(feats[:, -2] == 1)[0, 0])
    assert first > 5  # the clip starts unvoiced
    # holding 0 before the first voiced frame made the delta jump by the whole pitch there (82 semitones
    # for the contour's MIDI numbers, a wrapped step for chroma); held at the first voiced pitch it is flat
    assert feats[:first, delta].abs().max().item() < 1e-6


def test_chroma_key_normalisation_makes_a_transposed_melody_equal() -> None:
    notes = np.repeat([220.0, 247.0, 262.0, 294.0, 330.0], SR // 5)
    a = features(tone(notes, 1.0, 6), True, "chroma")
    b = features(tone(notes * 2 ** (5 / 12), 1.0, 6), True, "chroma")
    voiced = (a[:, 3] == 1) & (b[:, 3] == 1)
    assert voiced.float().mean().item() > 0.9
    assert semitone_gap(chroma_semitones(a[voiced]), chroma_semitones(b[voiced])).median().item() < 0.05


def test_chroma_ignores_octave_errors_and_its_key_does_not_jump_between_notes() -> None:
    """The two failures of the median-key contour under re-synthesis (README): an octave slip in part of a
    note, and a key that jumps from one note to the next when a few frames change."""
    melody = np.repeat([220.0, 262.0], [SR // 2 + 800, SR // 2 - 800])  # A3 just outlasts C4: median = A3
    slipped = melody.copy()
    slipped[SR // 4 : SR // 4 + 1600] *= 2  # 0.1 s of the A an octave up, as a tracker's octave error
    longer_c = np.repeat([220.0, 262.0], [SR // 2 - 800, SR // 2 + 800])  # now C4 just outlasts A3
    base, slip, swap = (tone(m, 1.0, 6) for m in (melody, slipped, longer_c))
    steady = np.r_[18:20, 38:59]  # frames (16 ms) inside the slip and inside the C

    contour = [features(w, True, "contour")[steady, 0] for w in (base, swap)]
    assert (contour[0] - contour[1]).abs().median().item() == pytest.approx(3.0, abs=0.1)  # the key jumped
    chroma = [chroma_semitones(features(w, True, "chroma")[steady]) for w in (base, slip, swap)]
    assert semitone_gap(chroma[0], chroma[1]).max().item() < 0.1  # an octave slip is not a change
    assert semitone_gap(chroma[0], chroma[2]).max().item() < 0.5  # the key moves a little, not 3 semitones


def test_pitch_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="n_fft"):
        FeatureConfig(kind="pitch", n_fft=256, f0_min=60.0)  # 256 samples hold less than two 60 Hz periods
    with pytest.raises(ConfigError, match="f0_min/f0_max"):
        FeatureConfig(kind="pitch", f0_min=500.0, f0_max=400.0)
    with pytest.raises(ConfigError, match="pitch_repr"):
        FeatureConfig(kind="pitch", pitch_repr="midi")
