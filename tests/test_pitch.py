"""The YIN pitch front end: f0 accuracy, no octave errors on rich tones, voicing, key normalisation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wav2tok_core.config import ConfigError, FeatureConfig
from wav2tok_core.features import FeatureExtractor

SR = 16000


def tone(f0: np.ndarray | float, seconds: float = 0.5, harmonics: int = 1) -> torch.Tensor:
    """A tone with ``harmonics`` partials of falling amplitude; ``f0`` constant or per sample (Hz)."""
    n = int(SR * seconds)
    phase = 2 * np.pi * np.cumsum(np.broadcast_to(f0, (n,))) / SR
    wave = sum(np.sin(h * phase) / h for h in range(1, harmonics + 1))
    return torch.tensor(0.3 * wave / np.abs(wave).max(), dtype=torch.float32)


def features(wave: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """(T, 4) pitch features of one clip."""
    feats, _ = FeatureExtractor(FeatureConfig(kind="pitch", normalize=normalize))(wave[None], torch.tensor([len(wave)]))
    return feats[0]


@pytest.mark.parametrize("f0", [82.4, 110.0, 196.0, 440.0, 880.0])
@pytest.mark.parametrize("harmonics", [1, 8])
def test_f0_of_steady_tones_is_within_ten_cents(f0: float, harmonics: int) -> None:
    pitch = features(tone(f0, harmonics=harmonics))[4:-4]  # away from the clip edges
    expected = 69 + 12 * np.log2(f0 / 440)
    assert (pitch[:, 2] == 1).all(), "a steady tone is voiced throughout"
    assert (pitch[:, 0] - expected).abs().max().item() < 0.1  # semitones: no octave (12) errors


def test_noise_and_silence_are_unvoiced() -> None:
    torch.manual_seed(0)
    noise = 0.1 * torch.randn(SR // 2)
    assert features(noise)[:, 2].mean().item() < 0.1
    quiet_then_tone = torch.cat([torch.zeros(SR // 4), tone(220.0, 0.25)])
    voicing = features(quiet_then_tone)[:, 2]
    assert voicing[:10].sum().item() == 0 and voicing[-8:-2].min().item() == 1


def test_key_normalisation_makes_a_transposed_melody_equal() -> None:
    notes = np.repeat([220.0, 247.0, 262.0, 294.0, 330.0], SR // 5)  # a rising scale, 1 s
    up = notes * 2 ** (5 / 12)  # a fourth higher
    a, b = features(tone(notes, 1.0, 6), normalize=True), features(tone(up, 1.0, 6), normalize=True)
    voiced = (a[:, 2] == 1) & (b[:, 2] == 1)
    assert voiced.float().mean().item() > 0.9
    assert (a[voiced, 0] - b[voiced, 0]).abs().median().item() < 0.05  # same contour in semitones
    raw_a, raw_b = features(tone(notes, 1.0, 6)), features(tone(up, 1.0, 6))
    assert (raw_b[voiced, 0] - raw_a[voiced, 0]).median().item() == pytest.approx(5.0, abs=0.1)


def test_delta_follows_pitch_changes() -> None:
    glide = features(tone(np.geomspace(200.0, 400.0, SR), 1.0, 4))  # one octave up over 1 s
    middle = glide[10:-10]
    assert (middle[:, 1] > 0).all()  # rising everywhere
    assert middle[:, 1].mean().item() == pytest.approx(12 * 256 / SR, rel=0.2)  # semitones per frame


def test_pitch_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="n_fft"):
        FeatureConfig(kind="pitch", n_fft=256, f0_min=60.0)  # 256 samples hold less than two 60 Hz periods
    with pytest.raises(ConfigError, match="f0_min/f0_max"):
        FeatureConfig(kind="pitch", f0_min=500.0, f0_max=400.0)
