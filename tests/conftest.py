"""Shared fixtures. Real-data tests use the FSDD copy named by $WAV2TOK_FSDD (default: ../shared/data/fsdd)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FSDD_DIR = Path(os.environ.get("WAV2TOK_FSDD", REPO.parent / "shared" / "data" / "fsdd"))


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    """The local FSDD copy (``recordings/{digit}_{speaker}_{take}.wav``); skips when absent."""
    if not (FSDD_DIR / "recordings").is_dir():
        pytest.skip(f"FSDD not found at {FSDD_DIR} (set WAV2TOK_FSDD to a local copy to run this test)")
    return FSDD_DIR


def tone_clip(klass: int, take: int, sr: int = 16000) -> "np.ndarray":
    """A 0.3-0.5 s clip whose pitch contour depends on its class, with take-dependent jitter."""
    import numpy as np

    rng = np.random.default_rng(klass * 100 + take)
    n = int(sr * (0.3 + 0.2 * rng.random()))
    t = np.arange(n) / sr
    f0 = 200.0 * 2 ** (klass / 4) * (1 + 0.3 * np.sin(2 * np.pi * (klass + 1) * t / t[-1]))
    wave = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / sr) + 0.01 * rng.standard_normal(n)
    return wave.astype("float32")


def write_tone_data(root: Path) -> dict:
    """3 classes x 4 clips of tone contours (train) and 3 x 2 (test) as WAV files under ``root/audio``.

    Returns {"train": {class: [paths]}, "test": {...}, "root": root}.
    """
    import soundfile as sf

    splits: dict = {"train": {}, "test": {}, "root": root}
    for split, takes in (("train", range(4)), ("test", range(4, 6))):
        for k in range(3):
            paths = []
            for take in takes:
                path = root / "audio" / f"c{k}" / f"{take}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, tone_clip(k, take), 16000)
                paths.append(path)
            splits[split][f"c{k}"] = paths
    return splits


@pytest.fixture
def tiny_data(tmp_path) -> dict:
    """The tone data of :func:`write_tone_data` in a fresh temporary folder."""
    return write_tone_data(tmp_path)
