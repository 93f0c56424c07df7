r"""The README's results table: a trained model against DTW, k-means-token and untrained-encoder baselines.

Runs the protocol of :mod:`wav2tok_core.eval.protocol` on a manifest's test split (baselines fitted on its train
split), prints the markdown tables and writes ``OUT/results.json`` and ``OUT/results.md``.

* FSDD, standard split manifest (test speakers unseen in training)::

      python benchmarks/results_table.py --model runs/fsdd/model.pt --manifest runs/fsdd/manifest.json \
          --cross_speaker --out results/fsdd

* The melody set (hummed queries search instrument targets; ``--protocol auto`` picks query_vs_targets)::

      python benchmarks/results_table.py --model runs/melody/model.pt --manifest data/melodies/manifest.json \
          --out results/melodies

All methods run by default, including ``raw-encoder`` and ``dtw-encoder``; DTW over the FSDD test split
takes minutes on two cores (``--max_queries`` trims it). Timings are only meaningful on an otherwise idle machine; when other jobs
run, pass ``--threads 1`` (torch's thread-per-core default then stalls on every small batch).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wav2tok_core.cli.evaluate import add_evaluate_options, evaluate_from_args  # noqa: E402
from wav2tok_core.errors import Wav2TokError  # noqa: E402
from wav2tok_core.eval.methods import METHODS  # noqa: E402
from wav2tok_core.runtime import configure  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_evaluate_options(parser, methods=METHODS)
    parser.add_argument("--out", required=True, type=Path, help="folder for results.json and results.md")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, ...")
    parser.add_argument("--batch_size", type=int, default=32, help="clips per inference batch")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        configure(threads=args.threads)
        result = evaluate_from_args(args, log=lambda message: print(message, file=sys.stderr, flush=True))
    except Wav2TokError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result.save(args.out / "results.json", args.out / "results.md")
    print(result.to_markdown(), end="")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'results.md'} in {time.perf_counter() - start:.0f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
