"""Tests of the eSpeak NG spoken-word set (wav2tok_core.data.espeak) and ``wav2tok dataset espeak``."""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("espeakng_loader", reason="eSpeak NG is not installed (pip install .[speech-synth])")

from wav2tok_core.cli import dataset as dataset_cli  # noqa: E402
from wav2tok_core.data.espeak import (DEFAULT_VOICES, DEFAULT_WORDS, EspeakWordSetConfig,  # noqa: E402
                                      build_espeak_words, clip_settings, synthesize, trim_silence, word_splits)
from wav2tok_core.data.manifest import read_manifest  # noqa: E402
from wav2tok_core.data.reference_bin import read_reference_bin  # noqa: E402
from wav2tok_core.errors import ConfigError  # noqa: E402

SMALL = EspeakWordSetConfig(words=("cat", "dog", "banana"), voices=("en+m3", "en-us+f2"))


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="wav2tok")
    dataset_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    """SMALL built once: 3 words x 2 voices."""
    return build_espeak_words(tmp_path_factory.mktemp("espeak") / "set", SMALL)


# ------------------------------------------------------------------------------------------- synthesis

def test_a_word_is_audible_and_about_a_syllable_long() -> None:
    wave, sr = synthesize("cat", "en+m3", rate_wpm=175, pitch=50, pitch_range=50)
    assert sr == 22050 and wave.dtype == np.float32 and wave.ndim == 1
    assert 0.2 <= len(wave) / sr <= 1.5
    assert 0.05 < np.abs(wave).max() <= 1.0
    assert np.sqrt(np.mean(wave ** 2)) > 0.01


def test_voices_differ() -> None:
    male, _ = synthesize("dog", "en+m1", 160, 50, 50)
    female, _ = synthesize("dog", "en+f3", 160, 50, 50)
    n = min(len(male), len(female))
    assert len(male) != len(female) or not np.allclose(male[:n], female[:n], atol=1e-3)


def test_slower_speech_is_longer() -> None:
    slow, sr = synthesize("banana", "en+m3", 100, 50, 50)
    fast, _ = synthesize("banana", "en+m3", 300, 50, 50)
    assert len(slow) > 1.5 * len(fast)


@pytest.mark.parametrize("voice", ["en+nosuchvariant", "xx-nowhere", "en+m3; rm"])
def test_unknown_voice_is_named(voice: str) -> None:
    with pytest.raises(ConfigError, match=voice.replace("+", r"\+")):
        synthesize("cat", voice, 175, 50, 50)


def test_out_of_range_parameters_are_refused() -> None:
    with pytest.raises(ConfigError, match="rate_wpm"):
        synthesize("cat", "en+m3", rate_wpm=20)


def test_trim_silence_keeps_a_margin() -> None:
    sr = 1000
    wave = np.zeros(1000, np.float32)
    wave[400:500] = 0.5
    trimmed = trim_silence(wave, sr, margin_s=0.03)
    assert len(trimmed) == 100 + 2 * 30
    assert len(trim_silence(np.zeros(10, np.float32), sr)) == 0


# ------------------------------------------------------------------------------------------- the word set

def test_default_config_is_valid_and_varied() -> None:
    cfg = EspeakWordSetConfig()
    cfg.validate()
    assert len(DEFAULT_WORDS) == 200 and len(DEFAULT_VOICES) == 12
    digits = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "oh"}
    assert not digits & set(DEFAULT_WORDS)
    assert {v.split("+")[1][0] for v in DEFAULT_VOICES} == {"m", "f"}


@pytest.mark.parametrize("change", [{"words": ()}, {"words": ("cat", "cat")}, {"words": ("Cat",)},
                                    {"voices": ("en m3",)}, {"rates_wpm": (200, 130)}, {"pitches": (0, 120)},
                                    {"val_fraction": 1.0}, {"sr": 4000}])
def test_bad_config_is_refused(change: dict) -> None:
    with pytest.raises(ConfigError, match="EspeakWordSetConfig"):
        replace(SMALL, **change).validate()


def test_clip_settings_are_keyed_and_in_range() -> None:
    a = clip_settings(SMALL, "cat", "en+m3")
    assert a == clip_settings(SMALL, "cat", "en+m3") != clip_settings(SMALL, "cat", "en-us+f2")
    assert 130 <= a["rate_wpm"] <= 200 and 30 <= a["pitch"] <= 70 and 30 <= a["pitch_range"] <= 80


def test_word_split_is_by_word_and_seeded() -> None:
    words = DEFAULT_WORDS[:50]
    splits = word_splits(words, 0.1, seed=0)
    assert sum(s == "val" for s in splits.values()) == 5
    assert splits == word_splits(tuple(reversed(words)), 0.1, seed=0)  # order of the words does not matter
    assert splits != word_splits(words, 0.1, seed=1)


def test_build_writes_a_clip_per_word_and_voice(small_set: Path) -> None:
    items = read_manifest(small_set)
    assert len(items) == 6
    assert {(it.label, it.speaker) for it in items} == {(w, v) for w in SMALL.words for v in SMALL.voices}
    assert {it.split for it in items} == {"train", "val"}
    for word in SMALL.words:  # a word keeps all its voices in one split
        assert len({it.split for it in items if it.label == word}) == 1
    for it in items:
        assert it.path == small_set.parent / "audio" / it.label / f"{it.speaker}.wav"
        wave, sr = sf.read(it.path, dtype="float32")
        assert sr == 8000 and wave.ndim == 1 and 0.15 <= len(wave) / sr <= 1.5 and np.abs(wave).max() > 0.05
        assert set(it.meta) == {"rate_wpm", "pitch", "pitch_range", "dur_s"}


def test_build_is_reused_and_reproducible(small_set: Path, tmp_path: Path) -> None:
    stamp = small_set.stat().st_mtime_ns
    assert build_espeak_words(small_set.parent, SMALL) == small_set
    assert small_set.stat().st_mtime_ns == stamp  # reused, not rebuilt
    again = build_espeak_words(tmp_path / "again", SMALL)
    for a, b in zip(read_manifest(small_set), read_manifest(again)):
        assert a.path.read_bytes() == b.path.read_bytes() and a.meta == b.meta


def test_changed_config_rebuilds_and_drops_old_clips(tmp_path: Path) -> None:
    out = tmp_path / "set"
    build_espeak_words(out, replace(SMALL, words=("cat", "dog")))
    build_espeak_words(out, replace(SMALL, words=("cat", "fish")))
    assert sorted(p.parent.name for p in (out / "audio").glob("*/*.wav")) == ["cat", "cat", "fish", "fish"]
    assert json.loads((out / "params.json").read_text())["n_clips"] == 4


def test_unknown_voice_fails_the_build_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="en-us\\+nosuchvariant"):
        build_espeak_words(tmp_path / "set", replace(SMALL, voices=("en+m3", "en-us+nosuchvariant")))
    assert not (tmp_path / "set" / "manifest.json").exists()


# ------------------------------------------------------------------------------------------- command line

def test_cli_espeak_writes_manifest_and_bin(tmp_path: Path, capsys) -> None:
    out = tmp_path / "words"
    assert run_cli("dataset", "espeak", "--out", str(out), "--n_words", "3", "--voices", "en+m3", "en+f2",
                   "--seed", "1", "--dict") == 0
    items = read_manifest(out / "manifest.json")
    assert {it.label for it in items} == set(DEFAULT_WORDS[:3]) and {it.speaker for it in items} == {"en+m3", "en+f2"}
    train, test = read_reference_bin(out / "espeak.bin")
    assert isinstance(train, dict) and len(train) == 2 and len(test) == 1
    assert "## Dataset summary" in capsys.readouterr().out


def test_cli_espeak_bad_voice_is_one_line(tmp_path: Path, capsys) -> None:
    assert run_cli("dataset", "espeak", "--out", str(tmp_path / "w"), "--n_words", "2", "--voices", "en+zz") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wav2tok dataset espeak: error: ") and "'en+zz'" in err and "\n" not in err
