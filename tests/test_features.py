"""Feature front end: dimensions, padding invariance, normalisation, audio loading."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from wav2tok_core.audio.config import FeatureConfig
from wav2tok_core.audio.features import FeatureExtractor
from wav2tok_core.audio.io import load_audio, pad_batch
from wav2tok_core.errors import AudioError, ConfigError
from wav2tok_core.model.config import ModelConfig


@pytest.mark.parametrize("kind,dim", [("stft", 513), ("logmel", 64), ("mfcc", 39), ("pitch", 5)])
def test_feature_dims_and_derived_input_dim(kind: str, dim: int) -> None:
    cfg = FeatureConfig(kind=kind)
    assert cfg.dim == dim == ModelConfig(features=cfg).input_dim
    feats, frames = FeatureExtractor(cfg)(torch.randn(2, 16000), torch.tensor([16000, 8000]))
    assert feats.shape == (2, 63, dim) and frames.tolist() == [63, 32]


def test_mfcc_without_deltas_and_pitch_contour_dims() -> None:
    assert FeatureConfig(kind="mfcc", deltas=False).dim == 13
    assert FeatureConfig(kind="pitch", pitch_repr="contour").dim == 4  # chroma spends 2 channels on pitch


@pytest.mark.parametrize("kind", ["stft", "logmel", "mfcc", "pitch"])
@pytest.mark.parametrize("normalize", [True, False])
def test_padding_does_not_change_any_item(kind: str, normalize: bool) -> None:
    torch.manual_seed(0)
    fe = FeatureExtractor(FeatureConfig(kind=kind, normalize=normalize))
    waves = [torch.randn(n) for n in (3000, 9000, 300, 12345)]
    feats, frames = fe(*pad_batch(waves))
    for i, w in enumerate(waves):
        alone, n = fe(w[None], torch.tensor([len(w)]))
        assert n.item() == frames[i].item()
        assert torch.allclose(alone[0], feats[i, : n.item()], atol=1e-4)
        assert feats[i, n.item():].abs().max().item() == 0.0 if n.item() < feats.shape[1] else True


def test_per_utterance_normalisation_gives_zero_mean_unit_variance() -> None:
    feats, _ = FeatureExtractor(FeatureConfig(kind="logmel"))(torch.randn(1, 16000), torch.tensor([16000]))
    assert feats[0].mean(0).abs().max().item() < 1e-4
    assert (feats[0].std(0, unbiased=False) - 1).abs().max().item() < 1e-2


def test_stft_log_option_changes_features() -> None:
    x, n = torch.randn(1, 4000), torch.tensor([4000])
    raw, _ = FeatureExtractor(FeatureConfig(kind="stft", log=False, normalize=False))(x, n)
    logged, _ = FeatureExtractor(FeatureConfig(kind="stft", log=True, normalize=False))(x, n)
    assert torch.allclose(torch.log1p(raw), logged, atol=1e-5)


def test_bad_feature_config_names_the_field() -> None:
    with pytest.raises(ConfigError, match="features.kind"):
        FeatureConfig(kind="wavelet")
    with pytest.raises(ConfigError, match="hop_length"):
        FeatureConfig(hop_length=0)


def test_load_audio_mixes_down_and_resamples(tmp_path) -> None:
    t = np.arange(8000) / 8000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1) * 0.5
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, 8000, subtype="PCM_24")
    wave = load_audio(path, 16000)
    assert wave.ndim == 1 and wave.shape[0] == 16000 and wave.dtype == torch.float32
    assert wave.abs().max().item() == pytest.approx(0.5, abs=0.02)


def test_load_audio_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(AudioError, match="missing.wav: file does not exist"):
        load_audio(tmp_path / "missing.wav", 16000)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty.wav: file is empty"):
        load_audio(tmp_path / "empty.wav", 16000)
    (tmp_path / "text.wav").write_text("not audio at all")
    with pytest.raises(AudioError, match="text.wav: cannot be decoded"):
        load_audio(tmp_path / "text.wav", 16000)
