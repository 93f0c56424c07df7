"""One table from the variant folders of ``fsdd_ablation.py``: MRR and the token-consistency diagnostic.

    python benchmarks/ablation_table.py runs/fsdd_recipe/recipe runs/ablation/* [--methods wav2tok dtw-encoder]

Each folder holds ``results_seed<N>.json`` (one per seed). Per folder and method: vanilla / stretched /
shifted MRR as mean ± sd over the seeds; and, from the same reports, the cross-speaker token consistency
of same-label pairs (share of DTW-aligned frames with the same token, bigram Jaccard; different-label pairs
in brackets), mean over the seeds.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

GROUPS = ("vanilla", "stretched", "shifted")


def mean_sd(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0.0:.3f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--methods", nargs="+", default=["wav2tok", "dtw-encoder"])
    args = p.parse_args()
    head = ["variant", "seeds", *(f"{m} {g}" for m in args.methods for g in GROUPS),
            "aligned same token (diff.)", "bigram Jaccard (diff.)"]
    print("| " + " | ".join(head) + " |\n|---|---:|" + "---:|" * (len(head) - 2))
    for folder in args.folders:
        reports = [json.loads(p.read_text()) for p in sorted(folder.glob("results_seed*.json"))]
        if not reports:
            continue
        cells = [mean_sd([r["summary"][m]["mrr"][g] for r in reports]) for m in args.methods for g in GROUPS]
        consistency = [r["consistency"] for r in reports if r.get("consistency")]
        for measure in ("aligned_agreement", "bigram_jaccard"):
            same = np.mean([c["same_label"][measure] for c in consistency]) if consistency else np.nan
            other = np.mean([c["different_label"][measure] for c in consistency]) if consistency else np.nan
            cells.append(f"{same:.2f} ({other:.2f})")
        print(f"| {folder.name} | {len(reports)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
