"""The README's FSDD results: standard speaker-disjoint split, the documented recipe, cross-speaker evaluation.

    python benchmarks/fsdd_results.py --fsdd path/to/fsdd --out runs/fsdd [--seeds 0 1 2] [--threads 1]
                                      [--split speakers|takes|words]

For each seed: train on jackson/nicolas/theo/lucas (early stopping on the carved validation split), then
evaluate on george + yweweler, cross-speaker (a query never sees its own speaker's clips), with vanilla,
stretched (0.8x, 1.25x) and pitch-shifted (-3, +3 semitones) queries against DTW and VQ baselines and
against DTW over the model's own frame vectors (``dtw-encoder``).
Prints the markdown table per seed and the mean ± sample sd over seeds; writes JSON per seed and a summary.
``--split takes`` uses FSDD's own split instead (takes 0-4 of all six speakers are test, the other takes
train): the test speakers are seen in training, and cross-speaker queries search the other five speakers.
``--split words`` trains on digits 0-4 of the training speakers and tests on digits 5-9 of the test speakers:
words never trained on. ``--split loso-SPEAKER`` is one leave-one-speaker-out rotation: that speaker is never
trained on, and its clips query takes 0-4 of the other five (trained on their takes 5-49).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from seed_runs import run_seeds

from wav2tok_core.data.fsdd import SPLITTERS, ensure_fsdd, load_fsdd
from wav2tok_core.data.manifest import ManifestItem
from wav2tok_core.data.splits import write_split_outputs
from wav2tok_core.eval.config import EvalConfig
from wav2tok_core.eval.protocol import detect_protocol
from wav2tok_core.runtime import configure
from wav2tok_core.workbench.runs import asset

RECIPE = asset("configs/speech.yaml")  # the speech recipe (its comments say how each choice was made)

# dtw-encoder (DTW over the model's frame vectors) separates what the encoder learned from what quantising costs.
METHODS = ("wav2tok", "dtw-encoder", "dtw-mfcc", "dtw-logmel", "vq-mfcc", "vq-logmel")


def eval_config(seed: int, protocol: str = "query_by_example") -> EvalConfig:
    """Cross-speaker retrieval over the test speakers (query by example; query vs targets for ``loso-*``)."""
    return EvalConfig(protocol, cross_speaker=True, seed=seed, methods=METHODS)


def fsdd_data(root: str, out: Path, split: str = "speakers") -> tuple[Path, list[ManifestItem], list[ManifestItem]]:
    """FSDD at ``root``, split (``SPLITTERS``) and written to ``out/data``: (manifest, test items, train items)."""
    items = SPLITTERS[split](load_fsdd(ensure_fsdd(root)), seed=0)
    manifest = write_split_outputs(items, out / "data", name="fsdd", by_class=True).manifest
    return manifest, [it for it in items if it.split == "test"], [it for it in items if it.split == "train"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fsdd", required=True, help="FSDD folder holding recordings/")
    p.add_argument("--out", default="runs/fsdd")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--epochs", type=int, help="override the recipe's EPOCHS")
    p.add_argument("--split", choices=sorted(SPLITTERS), default="speakers",
                   help="speakers: test speakers unseen (the README's table); takes: FSDD's own split; words: "
                        "test digits 5-9 never trained on; loso-SPEAKER: that speaker's clips query the other five's "
                        "takes 0-4, trained on their other takes")
    args = p.parse_args()
    configure(threads=args.threads)
    out = Path(args.out)
    manifest, test, train = fsdd_data(args.fsdd, out, args.split)
    overrides = {"EPOCHS": args.epochs} if args.epochs else {}
    protocol = detect_protocol(test)
    run_seeds(RECIPE, overrides, manifest, test, train, lambda seed: eval_config(seed, protocol), args.seeds, out,
              args.threads)


if __name__ == "__main__":
    main()
