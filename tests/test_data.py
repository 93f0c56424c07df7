"""Sampling modes: each reference flag changes what a training item holds."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch.utils.data import DataLoader

from wav2tok_core.audio.augment import STRETCH_METHODS, AugmentConfig, augment, pitch_shift, time_stretch, vtlp, vtlp_warp
from wav2tok_core.data.reference_bin import items_from_split
from wav2tok_core.errors import ConfigError, DataFormatError
from wav2tok_core.train.data import ClipStore, DataConfig, EpochSampler, PairDataset, collate

NO_AUG = AugmentConfig(p_pitch=0, p_stretch=0, p_noise=0, p_gain=0)


def make(tiny_data, split="dict", sr=16000, **flags) -> PairDataset:
    train = tiny_data["train"]
    items = items_from_split(train if split == "dict" else [p for v in train.values() for p in v], "train")
    store = ClipStore.load([it.path for it in items], sr)
    return PairDataset(items, store, DataConfig(**flags), sr, seed=0)


def clip_of(ds: PairDataset, wave: torch.Tensor) -> int | None:
    """Index of the stored clip equal to ``wave``, if any."""
    return next((i for i, w in enumerate(ds.store.waves) if w.shape == wave.shape and torch.equal(w, wave)), None)


def test_list_data_positive_is_an_augmented_copy(tiny_data) -> None:
    ds = make(tiny_data, split="list")
    item = ds[0]
    assert torch.equal(item["anchor"], ds.store.waves[ds.anchors[0][1]])
    assert clip_of(ds, item["positive"]) is None  # not any stored clip: augmented


def test_is_dict_positive_is_another_clip_of_the_same_class(tiny_data) -> None:
    ds = make(tiny_data, is_dict=True)
    for index in range(len(ds)):
        cls, clip = ds.anchors[index]
        partner = clip_of(ds, ds[index]["positive"])
        assert partner is not None and partner != clip and partner in ds.groups[cls]


def test_positive_other_speaker_draws_from_another_speaker(tiny_data) -> None:
    items = items_from_split(tiny_data["train"], "train")
    store = ClipStore.load([it.path for it in items], 16000)
    with_speakers = [replace(it, speaker=f"s{i % 2}") for i, it in enumerate(items)]
    config = DataConfig(is_dict=True, positive_other_speaker=True)
    ds = PairDataset(with_speakers, store, config, 16000, seed=0)
    for epoch in range(3):
        ds.set_epoch(epoch)
        for index in range(len(ds)):
            cls, clip = ds.anchors[index]
            partner = clip_of(ds, ds[index]["positive"])
            assert partner in ds.groups[cls] and ds.speaker_of[partner] != ds.speaker_of[clip]
    with pytest.raises(ValueError, match="speaker ids"):
        PairDataset(items, store, config, 16000)
    with pytest.raises(ConfigError, match="is_dict"):
        DataConfig(positive_other_speaker=True)


def test_is_dict_needs_labelled_items(tiny_data) -> None:
    with pytest.raises(DataFormatError, match="0.wav: has no label"):
        make(tiny_data, split="list", is_dict=True)


def test_apply_augmentation_augments_the_dict_positive(tiny_data) -> None:
    ds = make(tiny_data, is_dict=True, apply_augmentation=True)
    assert all(clip_of(ds, ds[i]["positive"]) is None for i in range(len(ds)))


def test_is_triplet_negative_comes_from_another_class(tiny_data) -> None:
    ds = make(tiny_data, is_dict=True, is_triplet=True)
    for index in range(len(ds)):
        cls, _ = ds.anchors[index]
        negative = clip_of(ds, ds[index]["negative"])
        assert negative is not None and negative not in ds.groups[cls]


def test_is_single_uses_an_augmented_copy_even_for_dict_data(tiny_data) -> None:
    ds = make(tiny_data, is_dict=True, is_single=True, augment=AugmentConfig(stretch_rate=(1.25, 1.25), p_pitch=0,
                                                                                p_noise=0, p_gain=0))
    item = ds[0]
    assert item["positive"].numel() == round(item["anchor"].numel() / 1.25)


def test_same_length_equalises_views_by_stretching(tiny_data) -> None:
    ds = make(tiny_data, is_dict=True, is_triplet=True, same_length=True)
    plain = make(tiny_data, is_dict=True, is_triplet=True)
    assert any(plain[i]["positive"].numel() != plain[i]["anchor"].numel() for i in range(len(plain)))
    for i in range(len(ds)):
        item = ds[i]
        assert item["positive"].numel() == item["negative"].numel() == item["anchor"].numel()
    # stretched, not cropped: the positive's content spans the whole anchor length
    assert ds[0]["positive"][-200:].abs().max() > 0.01


def test_clip_crops_to_clip_duration(tiny_data) -> None:
    ds = make(tiny_data, is_dict=True, clip=True, clip_duration=0.1)
    lengths = {v: ds[i][v].numel() for i in range(len(ds)) for v in ("anchor", "positive")}
    assert set(lengths.values()) == {1600}
    assert max(w.numel() for w in ds.store.waves) > 1600


def test_sample_subdataset_draws_a_fresh_subset_each_epoch() -> None:
    sampler = EpochSampler(100, seed=0, fraction=0.1)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert len(first) == len(second) == len(sampler) == 10
    assert set(first) != set(second)
    assert sorted(EpochSampler(100, fraction=1.0)) == list(range(100))


def test_sampler_shards_across_ranks_without_overlap() -> None:
    shards = [list(EpochSampler(10, seed=3, rank=r, world_size=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 5 and not set(shards[0]) & set(shards[1])


def test_sr_resamples_every_clip(tiny_data) -> None:
    ds16, ds8 = make(tiny_data), make(tiny_data, sr=8000)
    for a, b in zip(ds16.store.waves, ds8.store.waves):
        assert abs(a.numel() - 2 * b.numel()) <= 1


def test_items_are_reproducible_per_epoch_and_change_across_epochs(tiny_data) -> None:
    ds = make(tiny_data, split="list")
    first = ds[2]["positive"]
    assert torch.equal(first, ds[2]["positive"])
    ds.set_epoch(1)
    assert not torch.equal(first, ds[2]["positive"])


def test_workers_give_the_same_batches(tiny_data) -> None:
    ds = make(tiny_data, split="list")
    batches = [next(iter(DataLoader(ds, batch_size=4, collate_fn=collate, num_workers=w))) for w in (0, 2)]
    # Workers run torch with one thread, so FFTs may differ in the last bits; a different random draw
    # (stretch rate, pitch, noise) would differ by far more than this tolerance.
    torch.testing.assert_close(batches[0]["positive"][0], batches[1]["positive"][0], rtol=1e-4, atol=1e-5)


def test_single_clip_class_needs_augmentation(tiny_data) -> None:
    tiny_data["train"]["lonely"] = tiny_data["train"]["c0"][:1]
    tiny_data["train"]["c0"] = tiny_data["train"]["c0"][1:]
    with pytest.raises(ValueError, match="'lonely'.*single clip"):
        make(tiny_data, is_dict=True)
    assert len(make(tiny_data, is_dict=True, apply_augmentation=True)) == 12


def test_bad_files_are_skipped_and_reported(tiny_data, tmp_path) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....garbage")
    store = ClipStore.load([bad, *tiny_data["train"]["c1"]], 16000)
    assert len(store.waves) == 4 and store.failed[0].path == str(bad) and "cannot be decoded" in store.failed[0].reason


@pytest.mark.parametrize("method", STRETCH_METHODS)
@pytest.mark.parametrize("semitones", [-3.0, 4.0])
def test_pitch_shift_moves_the_peak_and_keeps_duration(semitones: float, method: str) -> None:
    sr, n = 16000, 16000
    tone = torch.sin(2 * math.pi * 440 * torch.arange(n) / sr)
    shifted = pitch_shift(tone, semitones, method)
    peak = torch.fft.rfft(shifted).abs().argmax().item() * sr / n
    assert shifted.numel() == n and peak == pytest.approx(440 * 2 ** (semitones / 12), rel=0.01)


@pytest.mark.parametrize("method", STRETCH_METHODS)
def test_time_stretch_changes_duration_not_pitch(method: str) -> None:
    sr = 16000
    tone = torch.sin(2 * math.pi * 300 * torch.arange(sr) / sr)
    out = time_stretch(tone, 0.8, method)
    assert out.numel() == 20000
    assert torch.fft.rfft(out).abs().argmax().item() * sr / out.numel() == pytest.approx(300, rel=0.01)


@pytest.mark.parametrize("rate", [0.8, 1.25])
def test_wsola_keeps_a_voiced_tone_intact_and_moves_its_events_in_time(rate: float) -> None:
    """A two-harmonic tone whose pitch steps up at 0.5 s: WSOLA keeps its level and its periods, and the step
    lands at 0.5 / rate s."""
    sr = 16000
    t = torch.arange(sr) / sr
    f0 = torch.where(t < 0.5, 200.0, 250.0)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / sr
    tone = torch.sin(phase) + 0.5 * torch.sin(2 * phase)
    out = time_stretch(tone, rate, "wsola")
    assert out.numel() == round(sr / rate)
    step = round(0.5 / rate * sr)
    before, after = out[step - 2400: step - 800], out[step + 800: step + 2400]
    for piece, hz in ((before, 200.0), (after, 250.0)):
        assert piece.pow(2).mean().item() == pytest.approx(0.625, rel=0.05)  # 1/2 + 0.5^2/2
        assert torch.fft.rfft(piece).abs().argmax().item() * sr / piece.numel() == pytest.approx(hz, rel=0.02)


@pytest.mark.parametrize("alpha", [0.85, 1.15])
def test_vtlp_moves_partials_by_alpha_and_keeps_duration_and_level(alpha: float) -> None:
    """Two partials below the warp's knee land at alpha times their frequency, in one coherent piece: the level
    changes by the lobe width (about alpha), not by cancellation between frames."""
    sr, n = 16000, 16000
    t = torch.arange(n) / sr
    tone = torch.sin(2 * math.pi * 1010 * t) + 0.5 * torch.sin(2 * math.pi * 2020 * t)
    warped = vtlp(tone, alpha)
    spectrum = torch.fft.rfft(warped).abs()  # 1 Hz bins
    assert warped.numel() == n
    assert spectrum[:1500].argmax().item() == pytest.approx(1010 * alpha, rel=0.005)
    assert 1500 + spectrum[1500:].argmax().item() == pytest.approx(2020 * alpha, rel=0.005)
    assert warped.pow(2).mean().item() / tone.pow(2).mean().item() == pytest.approx(alpha, abs=0.25)
    assert torch.equal(vtlp(tone, 1.0), tone)


def test_vtlp_warp_is_monotone_and_keeps_both_ends() -> None:
    f = torch.linspace(0, 1, 101).numpy()
    for alpha in (0.8, 1.0, 1.2):
        w = vtlp_warp(f, alpha)
        assert w[0] == 0.0 and w[-1] == pytest.approx(1.0) and (w[1:] > w[:-1]).all()
        assert w[10] == pytest.approx(alpha * f[10])  # linear below the knee


def test_augment_applies_vtlp_only_when_asked() -> None:
    sr = 16000
    tone = torch.sin(2 * math.pi * 1000 * torch.arange(sr) / sr)
    only_vtlp = replace(NO_AUG, p_vtlp=1.0, vtlp_alpha=(1.2, 1.2))
    warped = augment(tone, only_vtlp, torch.Generator().manual_seed(0))
    assert torch.fft.rfft(warped).abs().argmax().item() == pytest.approx(1200, abs=2)
    assert torch.equal(augment(tone, NO_AUG, torch.Generator().manual_seed(0)), tone)
    with pytest.raises(ConfigError, match="augment.vtlp_alpha"):
        AugmentConfig(vtlp_alpha=(0.0, 1.1))
    with pytest.raises(ConfigError, match="augment.p_vtlp"):
        AugmentConfig(p_vtlp=1.5)


def test_perturbed_pairs_pair_that_share_of_anchors_with_a_copy_of_themselves(tiny_data) -> None:
    only_vtlp = replace(NO_AUG, p_vtlp=1.0)
    always = make(tiny_data, is_dict=True, perturbed_pairs=1.0, augment=only_vtlp)
    for index in range(len(always)):
        item = always[index]
        assert bool(item["copy"]) and item["positive"].numel() == item["anchor"].numel()
        assert clip_of(always, item["positive"]) is None  # warped, not a stored clip
        assert int(item["label"]) == always.anchors[index][0]
    half = make(tiny_data, is_dict=True, perturbed_pairs=0.5, augment=only_vtlp)
    copies = []
    for epoch in range(4):
        half.set_epoch(epoch)
        copies += [bool(half[i]["copy"]) for i in range(len(half))]
    assert 0 < sum(copies) < len(copies)
    never = make(tiny_data, is_dict=True, augment=only_vtlp)
    assert not any(bool(never[i]["copy"]) for i in range(len(never)))
    with pytest.raises(ConfigError, match="perturbed_pairs.*is_dict"):
        DataConfig(perturbed_pairs=0.5)
    with pytest.raises(ConfigError, match="perturbed_pairs: 1.5"):
        DataConfig(is_dict=True, perturbed_pairs=1.5)


def test_unknown_stretch_method_is_named() -> None:
    with pytest.raises(ConfigError, match="'sola'"):
        time_stretch(torch.zeros(100), 0.8, "sola")


def test_conflicting_or_bad_flags_are_named() -> None:
    with pytest.raises(ConfigError, match="is_triplet and is_single"):
        DataConfig(is_triplet=True, is_single=True)
    with pytest.raises(ConfigError, match="subdata_split"):
        DataConfig(subdata_split=0)
    with pytest.raises(ConfigError, match="augment.stretch_rate"):
        AugmentConfig(stretch_rate=(1.2, 0.9))


@pytest.mark.parametrize("method", STRETCH_METHODS)
@pytest.mark.parametrize("n", [1, 100, 256, 300])
def test_augmentations_work_on_very_short_clips(n: int, method: str) -> None:
    wave = 0.1 * torch.randn(n)
    assert time_stretch(wave, 0.8, method).numel() == round(n / 0.8)
    assert time_stretch(wave, 1.25, method).numel() == max(1, round(n / 1.25))
    assert pitch_shift(wave, 3.0, method).numel() == n
    assert vtlp(wave, 1.1).numel() == n
