"""The README's melody results over several seeds: the main job's training recipe on the built-in melody set.

    python benchmarks/melody_results.py --out runs/melody_seeds [--seeds 0 1 2] [--threads 2] \
        [--variant pitch_repr=notes,num_tokens=50] [--methods wav2tok dtw-pitch notes-align] \
        [--stretch_method wsola|vocoder]

The data and recipe are those of ``make run`` (notebooks 01 and 02 with ``notebooks/params/default.yaml``):
120 tunes, 8 hummed queries each, generation and split seed 0; seed 0 reproduces the shipped model. Each
seed's model is evaluated like notebook 04 (hummed queries of unseen tunes search their targets; vanilla,
stretched and shifted queries) against DTW and k-means baselines over the pitch contour and MFCC, and
against DTW over the model's own frame vectors (``dtw-encoder``). About 8 min per seed on 2 cores.
``--variant`` overrides recipe flags as in ``fsdd_ablation.py``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from seed_runs import parse_variant, run_seeds

from wav2tok_core.audio.augment import STRETCH_METHODS
from wav2tok_core.data.manifest import read_manifest
from wav2tok_core.data.melodies import MelodySetConfig, build_melody_set
from wav2tok_core.data.splits import write_split_outputs
from wav2tok_core.eval.config import EvalConfig
from wav2tok_core.runtime import configure
from wav2tok_core.workbench.runs import asset, home

RECIPE = asset("configs/melody.yaml")  # the recipe the main job's notebook 02 trains
METHODS = ("wav2tok", "dtw-encoder", "dtw-pitch", "vq-pitch", "dtw-mfcc", "vq-mfcc")


def eval_config(seed: int, methods: tuple[str, ...] = METHODS, stretch_method: str = "wsola") -> EvalConfig:
    """Notebook 04's protocol in the main job: hummed queries search the targets of unseen tunes; stretched and
    shifted queries rendered by ``stretch_method``."""
    return EvalConfig(protocol="query_vs_targets", seed=seed, methods=methods, stretch_method=stretch_method)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/melody_seeds")
    p.add_argument("--cache", default=str(home() / "data" / "cache" / "melodies"), help="generated audio (reused)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--variant", default="recipe", help="flag=value[,flag=value...] overrides of the recipe")
    p.add_argument("--methods", nargs="+", default=list(METHODS), help=f"evaluation methods (default: {METHODS})")
    p.add_argument("--stretch_method", choices=STRETCH_METHODS, default="wsola",
                   help="how the stretched and shifted queries are rendered (the main job: wsola)")
    args = p.parse_args()
    configure(threads=args.threads)
    out = Path(args.out)
    items = read_manifest(build_melody_set(args.cache, MelodySetConfig(n_tunes=120, queries_per_tune=8, seed=0)))
    manifest = write_split_outputs(items, out / "data", name="melodies", by_class=True).manifest
    test = [it for it in items if it.split == "test"]
    train = [it for it in items if it.split == "train"]
    run_seeds(RECIPE, parse_variant(args.variant), manifest, test, train,
              lambda seed: eval_config(seed, tuple(args.methods), args.stretch_method), args.seeds, out, args.threads)


if __name__ == "__main__":
    main()
