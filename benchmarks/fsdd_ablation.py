"""FSDD ablations of the README recipe: one training run per variant and seed, cross-speaker evaluation.

    python benchmarks/fsdd_ablation.py --fsdd path/to/fsdd --out runs/fsdd_ablation \
        --variants temp=0.05 temp=0.2 apply_augmentation=false iter_clust=25,EPOCHS=4 [--seeds 0]

A variant is comma-separated ``flag=value`` overrides of the speech recipe, configs/speech.yaml (training flag
names; scalar values, read as YAML: ``0.05``, ``false``, ``200``); ``recipe`` is the recipe itself. Each variant
trains on the standard speaker split (or ``--split takes|words``) and is evaluated like ``fsdd_results.py``,
with ``wav2tok`` and ``dtw-encoder`` unless ``--methods`` says otherwise (about 5 min per run on 2 cores).
``--extra_train MANIFEST`` adds that manifest's train items to the training clips (FSDD's still validate).
Writes each variant's runs under ``OUT/<variant>/`` and prints one table of vanilla / stretched / shifted MRR,
mean over the seeds.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from fsdd_results import RECIPE, fsdd_data
from seed_runs import parse_variant, run_seeds

from wav2tok_core.data.fsdd import SPLITTERS
from wav2tok_core.data.manifest import read_manifest, write_manifest
from wav2tok_core.eval.config import EvalConfig
from wav2tok_core.eval.protocol import detect_protocol
from wav2tok_core.runtime import configure

METHODS = ("wav2tok", "dtw-encoder")
GROUPS = ("vanilla", "stretched", "shifted")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fsdd", required=True, help="FSDD folder holding recordings/")
    p.add_argument("--out", default="runs/fsdd_ablation")
    p.add_argument("--variants", nargs="+", required=True, help="flag=value[,flag=value...] or 'recipe'")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--methods", nargs="+", default=list(METHODS), help=f"evaluation methods (default: {METHODS})")
    p.add_argument("--split", choices=sorted(SPLITTERS), default="speakers", help="FSDD split (see fsdd_results.py)")
    p.add_argument("--extra_train", help="a manifest whose train items join the training clips (e.g. the synthetic "
                                         "words of `wav2tok dataset espeak`); the evaluation is unchanged")
    args = p.parse_args()
    variants = {text: parse_variant(text) for text in args.variants}
    configure(threads=args.threads)
    out = Path(args.out)
    manifest, test, train = fsdd_data(args.fsdd, out, args.split)
    if args.extra_train:
        extra = [it for it in read_manifest(args.extra_train) if it.split == "train"]
        manifest = write_manifest([*read_manifest(manifest), *extra], manifest.with_name("manifest_extra.json"))
    rows = []
    for text, overrides in variants.items():
        summary = run_seeds(RECIPE, overrides, manifest, test, train,
                            lambda seed: EvalConfig(detect_protocol(test), cross_speaker=True, seed=seed,
                                                   methods=tuple(args.methods)), args.seeds,
                            out / text.replace("=", "-").replace(",", "_"), args.threads)
        rows.append((text, summary["mean"]))
    print(f"\nFSDD cross-speaker MRR, mean over seeds {args.seeds}:")
    print("| variant | " + " | ".join(f"{m} {g}" for m in args.methods for g in GROUPS) + " |")
    print("|---|" + "---:|" * (len(args.methods) * len(GROUPS)))
    for text, mean in rows:
        print(f"| {text} | " + " | ".join(f"{mean[m][g]:.3f}" for m in args.methods for g in GROUPS) + " |")


if __name__ == "__main__":
    main()
