"""FSDD spoken term detection, cross-speaker: wav2tok against subsequence DTW, mean ± sd over models (seeds).

    python benchmarks/fsdd_ablation.py --fsdd PATH --out runs/fsdd_recipe --variants recipe --seeds 0 1 2
    python benchmarks/fsdd_spotting.py --fsdd PATH --models runs/fsdd_recipe/recipe/weights/seed{0,1,2}/best.pt

The first command trains the speech recipe on the standard split (one model per seed); this script builds the
spotting task of ``wav2tok evaluate --task spotting`` from the test speakers' clips (defaults: 10 clips per
recording, 2 queries per speaker and digit, a query searches the other speaker's recordings) and evaluates
every model with every spotting method. Prints each model's table and the mean ± sd of each measure; writes
``OUT/spotting_<k>.json`` per model and ``OUT/spotting_summary.json``.

wav2tok is searched again with its detection floor at its best-F1 threshold (chosen on these test queries) and
at 0.6 (``wav2tok spot``'s default): the detections above the floor stay the same, and the search time per query
is what a deployed search at that threshold costs. Those rows give its ratio to ``sdtw-mfcc``'s search time
(measured in the same run, searching the same recordings).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from fsdd_results import fsdd_data

from wav2tok_core.cli.tokenize import SPOT_THRESHOLD
from wav2tok_core.data.fsdd import SPLITTERS
from wav2tok_core.data.spotting import SpottingTaskConfig, make_spotting_task
from wav2tok_core.eval.spotting import SPOTTING_METHODS, evaluate_spotting_task
from wav2tok_core.model.wav2tok import load_model
from wav2tok_core.runtime import configure, write_json

MEASURES = ("best_f1", "mtwv", "atwv", "map", "p_at_10", "search_ms_per_query_hour")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fsdd", required=True, help="FSDD folder holding recordings/")
    p.add_argument("--models", nargs="+", required=True, help="trained models (one per seed)")
    p.add_argument("--split", choices=sorted(SPLITTERS), default="speakers")
    p.add_argument("--out", default="runs/fsdd_spotting")
    p.add_argument("--noise_snr_db", type=float, help="white noise over the recordings at this SNR")
    p.add_argument("--repeats", type=int, default=5, help="searches per method; the fastest time is reported")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    configure(threads=args.threads)
    out = Path(args.out)
    _, test, _ = fsdd_data(args.fsdd, out, args.split)
    rows = []
    for k, path in enumerate(args.models):
        model = load_model(path)
        task = make_spotting_task(test, SpottingTaskConfig(noise_snr_db=args.noise_snr_db), model.config.features.sr)
        result = evaluate_spotting_task(model, task, SPOTTING_METHODS, repeats=args.repeats)
        result.save(out / f"spotting_{k}.json", out / f"spotting_{k}.md")
        print(f"## {path}\n\n{result.to_markdown()}", flush=True)
        methods = result.to_dict()["methods"]
        rows.append({name: {m: row[m] for m in MEASURES} for name, row in methods.items()})
        for label, floor in (("best-F1 threshold", methods["wav2tok"]["best_f1_threshold"]),
                             (f"{SPOT_THRESHOLD} (wav2tok spot)", SPOT_THRESHOLD)):
            again = evaluate_spotting_task(model, task, ("wav2tok",), min_score=floor, repeats=args.repeats)
            rows[-1][f"wav2tok, floor at {label}"] = {"floor": floor, "search_ms_per_query_hour":
                                                      again.methods["wav2tok"].search_ms_per_query_hour}
    summary = {name: {m: [float(r[name][m]) for r in rows] for m in rows[0][name]} for name in rows[0]}
    write_json(out / "spotting_summary.json", {"models": args.models, "per_model": summary})
    print(f"mean ± sd over {len(rows)} model(s), {result.n_queries} queries, {result.recording_hours:.2f} h of "
          "recordings:\n")
    print("| method | " + " | ".join(MEASURES) + " |\n|---|" + "---:|" * len(MEASURES))
    for name, values in summary.items():
        cells = [f"{np.mean(values[m]):.3f} ± {np.std(values[m], ddof=1) if len(values[m]) > 1 else 0.0:.3f}"
                 if m in values else "" for m in MEASURES]
        print(f"| {name} | " + " | ".join(cells) + " |")
    sdtw = np.array(summary["sdtw-mfcc"]["search_ms_per_query_hour"])
    print("\nsearch time of sdtw-mfcc over wav2tok's, per model:")
    for name, values in summary.items():
        if name.startswith("wav2tok"):
            ratios = sdtw / np.array(values["search_ms_per_query_hour"])
            print(f"- {name}: " + " / ".join(f"{r:.0f}x" for r in ratios))


if __name__ == "__main__":
    main()
