"""Accuracy and speed of the pitch front end's f0 trackers (``--f0 yin|crepe|pesto``) on synthetic audio.

    python benchmarks/f0_trackers.py [--trackers yin crepe pesto] [--threads 2]

Accuracy: steady tones of 82-880 Hz with 1 or 8 harmonics (0.5 s each, the frames 4 from either edge),
the tests' tones: median and worst error in cents over voiced frames, the share of frames off by more than
half a semitone (octave errors count there), and how many frames are voiced. Voicing: white noise and
silence should be unvoiced. Speed: seconds of audio turned into pitch features per second, on 20 clips of
4 s (one batch), after a warm-up call. Trackers whose package is missing (``pip install .[pitch]``) are
skipped.
"""
from __future__ import annotations

import argparse
import importlib.util
import time

import numpy as np
import torch

from wav2tok_core.audio.config import NEURAL_F0_PACKAGES, FeatureConfig
from wav2tok_core.audio.features import FeatureExtractor
from wav2tok_core.runtime import configure

SR = 16000
F0S = (82.4, 110.0, 196.0, 440.0, 880.0)


def tone(f0: float, seconds: float, harmonics: int) -> torch.Tensor:
    """(N,) a steady tone with ``harmonics`` partials of falling amplitude."""
    phase = 2 * np.pi * f0 * np.arange(int(SR * seconds)) / SR
    wave = sum(np.sin(h * phase) / h for h in range(1, harmonics + 1))
    return torch.tensor(0.3 * wave / np.abs(wave).max(), dtype=torch.float32)


def contour(extractor: FeatureExtractor, waves: list[torch.Tensor]) -> torch.Tensor:
    """(B, T, 4) contour features (MIDI pitch, delta, voicing, energy) of equal-length clips."""
    feats, _ = extractor(torch.stack(waves), torch.full((len(waves),), len(waves[0])))
    return feats


def accuracy(extractor: FeatureExtractor) -> dict[str, float]:
    errors, voiced = [], []
    for harmonics in (1, 8):
        feats = contour(extractor, [tone(f0, 0.5, harmonics) for f0 in F0S])[:, 4:-4]
        for f0, clip in zip(F0S, feats):
            on = clip[:, 2] == 1
            voiced.append(on.float().mean().item())
            errors.append(100 * (clip[on, 0] - (69 + 12 * np.log2(f0 / 440))).abs().numpy())
    cents = np.concatenate(errors)
    torch.manual_seed(0)
    quiet = contour(extractor, [0.1 * torch.randn(SR), torch.zeros(SR)])[:, :, 2].mean(1)
    return {"median cents": float(np.median(cents)), "worst cents": float(cents.max()),
            "frames off > 50 cents": float((cents > 50).mean()), "tone frames voiced": float(np.mean(voiced)),
            "noise voiced": float(quiet[0]), "silence voiced": float(quiet[1])}


def speed(extractor: FeatureExtractor) -> float:
    """Seconds of audio per second of feature extraction."""
    rng = np.random.default_rng(0)
    waves = [tone(float(rng.uniform(100, 600)), 4.0, 6) for _ in range(20)]
    contour(extractor, waves[:2])  # warm-up: model loading, first-call compilation
    start = time.perf_counter()
    contour(extractor, waves)
    return 20 * 4.0 / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trackers", nargs="+", default=["yin", "crepe", "pesto"])
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    configure(threads=args.threads)
    rows = {}
    for name in args.trackers:
        if name != "yin" and importlib.util.find_spec(NEURAL_F0_PACKAGES[name]) is None:
            print(f"{name}: skipped (pip install .[pitch])")
            continue
        extractor = FeatureExtractor(FeatureConfig(kind="pitch", normalize=False, pitch_repr="contour", f0=name))
        rows[name] = {**accuracy(extractor), "audio s / s": speed(extractor)}
    keys = list(next(iter(rows.values())))
    print("| tracker | " + " | ".join(keys) + " |\n|---|" + "---:|" * len(keys))
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{row[k]:.3g}" for k in keys) + " |")


if __name__ == "__main__":
    main()
