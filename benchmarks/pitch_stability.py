"""How steady the pitch front end's key and octave are under the re-synthesis that makes the query conditions.

    python benchmarks/pitch_stability.py [--cache data/cache/melodies] [--clips 120] [--shifts 0.3 -3 3]

Each test clip of the built-in melody set is pitch-shifted by the evaluation's phase vocoder
(``wav2tok_core.augment.pitch_shift``) and both versions go through YIN (``--features pitch`` defaults).
Prints, for the two keys a pitch representation can use:

* key movement: how far the clip's key moved beyond the shift itself, in semitones. ``contour`` uses the
  median of the voiced frames' pitch, ``chroma`` their circular mean over pitch classes;
* octave slips: the share of frames voiced in both versions whose pitch moved by the shift plus or minus
  12 semitones (within 1), which ``contour`` sees as a jump and ``chroma`` does not.

Time stretching is left out: the frames of the two versions would no longer line up.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from wav2tok_core.augment import fit_length, pitch_shift
from wav2tok_core.audio import load_audio
from wav2tok_core.config import FeatureConfig
from wav2tok_core.datasets.melodies import MelodySetConfig, build_melody_set
from wav2tok_core.features import FeatureExtractor
from wav2tok_core.manifest import read_manifest
from wav2tok_core.runs import REPO

RAW = FeatureConfig(kind="pitch", pitch_repr="contour", normalize=False)  # channel 0: MIDI pitch, 2: voicing


def raw_pitch(extract: FeatureExtractor, wave: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``(T,)`` MIDI pitch and ``(T,)`` voiced flags of one clip."""
    feats, _ = extract(wave[None], torch.tensor([wave.numel()]))
    return feats[0, :, 0].numpy(), feats[0, :, 2].numpy() > 0


def median_key(midi: np.ndarray, voiced: np.ndarray) -> float:
    return float(np.median(midi[voiced]))


def circular_key(midi: np.ndarray, voiced: np.ndarray) -> float:
    angle = 2 * np.pi * midi[voiced] / 12
    return float(np.angle(np.exp(1j * angle).sum()) * 12 / (2 * np.pi))


def wrapped(semitones: float) -> float:
    """A pitch-class difference folded into [-6, 6)."""
    return (semitones + 6) % 12 - 6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", default=str(REPO / "data" / "cache" / "melodies"), help="generated audio (reused)")
    p.add_argument("--clips", type=int, default=120, help="test clips to use (the first N)")
    p.add_argument("--shifts", type=float, nargs="+", default=[0.3, -3.0, 3.0], help="semitones")
    args = p.parse_args()
    torch.set_num_threads(2)
    items = read_manifest(build_melody_set(args.cache, MelodySetConfig(n_tunes=120, queries_per_tune=8, seed=0)))
    clips = [it for it in items if it.split == "test"][: args.clips]
    extract = FeatureExtractor(RAW)
    moved = {"contour (median key)": [], "chroma (circular key)": []}
    slipped, both_voiced = 0, 0
    for item in clips:
        wave = load_audio(item.path, RAW.sr)
        midi, voiced = raw_pitch(extract, wave)
        for shift in args.shifts:
            midi2, voiced2 = raw_pitch(extract, fit_length(pitch_shift(wave, shift), wave.numel()))
            if not voiced.any() or not voiced2.any():
                continue
            moved["contour (median key)"].append(abs(median_key(midi2, voiced2) - median_key(midi, voiced) - shift))
            moved["chroma (circular key)"].append(
                abs(wrapped(circular_key(midi2, voiced2) - circular_key(midi, voiced) - shift)))
            both = voiced & voiced2
            slipped += int((np.abs(np.abs(midi2[both] - midi[both] - shift) - 12) < 1).sum())
            both_voiced += int(both.sum())
    print(f"{len(clips)} test clips x shifts {args.shifts} semitones "
          f"({len(moved['contour (median key)'])} pairs with voiced frames)\n")
    print("| key | share moved > 0.25 st | share moved > 1.5 st | median (st) | 90th percentile (st) |")
    print("|---|---:|---:|---:|---:|")
    for name, values in moved.items():
        v = np.array(values)
        print(f"| {name} | {np.mean(v > 0.25):.3f} | {np.mean(v > 1.5):.3f} | {np.median(v):.3f} | "
              f"{np.percentile(v, 90):.3f} |")
    print(f"\noctave slips: {slipped / max(both_voiced, 1):.3f} of {both_voiced} frames voiced in both versions")


if __name__ == "__main__":
    main()
