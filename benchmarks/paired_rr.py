"""Paired comparison of two methods on the same queries, from evaluation reports (per-query reciprocal ranks).

    python benchmarks/paired_rr.py runs/x/results_seed0.json runs/x/results_seed1.json --a wav2tok --b dtw-mfcc \
        [--b_from runs/x/results_seed1.json] [--condition vanilla]

For each report: the mean reciprocal rank of ``--a`` and ``--b`` over the queries both evaluated, their mean
difference and its standard error (sd of the per-query differences / sqrt(n)). ``--b_from`` takes ``--b`` from
another report over the same queries (a method that does not depend on the seed, such as DTW over MFCC, need
not be rerun with every seed).
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def reciprocal_ranks(report: dict, method: str, condition: str) -> np.ndarray:
    """Per-query 1 / rank of the first relevant item, in query order (NaN for a query with no relevant item,
    which the reports' MRR leaves out too)."""
    for cell in report["cells"]:
        if cell["method"] == method and cell["condition"] == condition:
            return np.array([1.0 / r if r is not None else np.nan for r in cell["first_ranks"]])
    raise SystemExit(f"no {method} / {condition} cell in the report")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reports", nargs="+")
    p.add_argument("--a", required=True)
    p.add_argument("--b", required=True)
    p.add_argument("--b_from", help="report to take --b from (default: each report itself)")
    p.add_argument("--condition", default="vanilla")
    args = p.parse_args()
    other = json.load(open(args.b_from)) if args.b_from else None
    print(f"| report | {args.a} MRR | {args.b} MRR | difference | standard error | n |\n|---|---:|---:|---:|---:|---:|")
    for path in args.reports:
        report = json.load(open(path))
        a = reciprocal_ranks(report, args.a, args.condition)
        b = reciprocal_ranks(other or report, args.b, args.condition)
        if len(a) != len(b):
            raise SystemExit(f"{path}: {len(a)} and {len(b)} queries; the reports do not share their queries")
        both = ~(np.isnan(a) | np.isnan(b))
        a, b = a[both], b[both]
        diff = a - b
        print(f"| {path} | {a.mean():.3f} | {b.mean():.3f} | {diff.mean():+.3f} | "
              f"{diff.std(ddof=1) / np.sqrt(len(diff)):.3f} | {len(diff)} |")


if __name__ == "__main__":
    main()
