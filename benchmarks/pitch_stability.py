"""How steady the pitch front end's key and octave are under the re-synthesis that makes the query conditions.

    python benchmarks/pitch_stability.py [--cache data/cache/melodies] [--clips 120] [--shifts 0.3 -3 3]

Each test clip of the built-in melody set is pitch-shifted by the evaluation's phase vocoder
(``wav2tok_core.augment.pitch_shift``) and all versions go through YIN (``--features pitch`` defaults) in
one batch; the keys are ``wav2tok_core.pitch.median_key`` and ``circular_key``, as the features use them.
Prints, for the two keys a pitch representation can use:

* key movement: how far the clip's key moved beyond the shift itself, in semitones. ``contour`` uses the
  median of the voiced frames' pitch, ``chroma`` their circular mean over pitch classes;
* octave slips: the share of frames voiced in both versions whose pitch moved by the shift plus or minus
  12 semitones (within 1), which ``contour`` sees as a jump and ``chroma`` does not.

Time stretching is left out: the frames of the two versions would no longer line up.
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from wav2tok_core.audio.augment import fit_length, pitch_shift
from wav2tok_core.audio.config import FeatureConfig
from wav2tok_core.audio.features import FeatureExtractor
from wav2tok_core.audio.io import load_audio
from wav2tok_core.audio.pitch import circular_key, median_key
from wav2tok_core.data.manifest import read_manifest
from wav2tok_core.data.melodies import MelodySetConfig, build_melody_set
from wav2tok_core.workbench.runs import home

RAW = FeatureConfig(kind="pitch", pitch_repr="contour", normalize=False)  # channel 0: MIDI pitch, 2: voicing


def raw_pitch(extract: FeatureExtractor, waves: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Equal-length clips ``(B, N)`` -> MIDI pitch ``(B, T)`` and voiced flags ``(B, T)``."""
    feats, _ = extract(waves, torch.full((waves.shape[0],), waves.shape[1]))
    return feats[..., 0], feats[..., 2] > 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", default=str(home() / "data" / "cache" / "melodies"), help="generated audio (reused)")
    p.add_argument("--clips", type=int, default=120, help="test clips to use (the first N)")
    p.add_argument("--shifts", type=float, nargs="+", default=[0.3, -3.0, 3.0], help="semitones")
    args = p.parse_args()
    torch.set_num_threads(2)
    items = read_manifest(build_melody_set(args.cache, MelodySetConfig(n_tunes=120, queries_per_tune=8, seed=0)))
    clips = [it for it in items if it.split == "test"][: args.clips]
    extract = FeatureExtractor(RAW)
    shifts = torch.tensor(args.shifts)
    moved: dict[str, list[torch.Tensor]] = {"contour (median key)": [], "chroma (circular key)": []}
    slipped, both_voiced = 0, 0
    for item in clips:
        wave = load_audio(item.path, RAW.sr)
        versions = torch.stack([wave, *(fit_length(pitch_shift(wave, s), wave.numel()) for s in args.shifts)])
        midi, voiced = raw_pitch(extract, versions)  # row 0: the clip, rows 1..: its shifted versions
        usable = voiced[0].any() & voiced[1:].any(dim=1)  # (S,) pairs with voiced frames on both sides
        median = median_key(midi, voiced)
        moved["contour (median key)"].append((median[1:] - median[0] - shifts).abs()[usable])
        circular = circular_key(midi, voiced) * 12 / (2 * math.pi)  # (1 + S,) key in semitones
        folded = torch.remainder(circular[1:] - circular[0] - shifts + 6, 12) - 6  # pitch classes: into [-6, 6)
        moved["chroma (circular key)"].append(folded.abs()[usable])
        both = voiced[0] & voiced[1:]  # (S, T)
        step = (midi[1:] - midi[0] - shifts[:, None]).abs()
        slipped += int(((step - 12).abs() < 1)[both].sum())
        both_voiced += int(both.sum())
    moved = {name: torch.cat(values).numpy() for name, values in moved.items()}
    print(f"{len(clips)} test clips x shifts {args.shifts} semitones "
          f"({len(moved['contour (median key)'])} pairs with voiced frames)\n")
    print("| key | share moved > 0.25 st | share moved > 1.5 st | median (st) | 90th percentile (st) |")
    print("|---|---:|---:|---:|---:|")
    for name, v in moved.items():
        print(f"| {name} | {np.mean(v > 0.25):.3f} | {np.mean(v > 1.5):.3f} | {np.median(v):.3f} | "
              f"{np.percentile(v, 90):.3f} |")
    print(f"\noctave slips: {slipped / max(both_voiced, 1):.3f} of {both_voiced} frames voiced in both versions")


if __name__ == "__main__":
    main()
