"""How spotting one query grows with the indexed audio, up to 100 hours, against subsequence DTW.

    python benchmarks/spotting_scale.py [--hours 1 10 100] [--queries 20] [--threads 2]

The index holds synthetic token streams shaped like the speech model's (K = 200 ids, 62.5 tokens per second
of audio as one token per 16 ms frame, runs of repeated tokens of mean length 3), cut into 10-minute
recordings; each query is a 32-token stretch of the index (half a second of speech) with 20 % of its tokens
replaced, so it has a true occurrence. Prints, per index size, the median wall time of spotting one query
(:meth:`RecordingIndex.spot`, all recordings, up to 5 hits per recording) at the evaluation's detection
floor (score 0.2) and at ``wav2tok spot``'s default threshold (0.6), and the index's token bytes. Subsequence
DTW (39-dim MFCC-sized frames, one per 16 ms) is timed on 0.05 h, where it is exactly linear in the audio,
and its time per query per hour gives the speed ratio, measured in the same run.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from wav2tok_core.cli.tokenize import SPOT_THRESHOLD
from wav2tok_core.eval.baselines import subsequence_dtw_hits
from wav2tok_core.eval.spotting import MIN_SCORE
from wav2tok_core.runtime import configure
from wav2tok_core.search.spotting import RecordingIndex

TOKENS_PER_S = 62.5
RECORDING_S = 600.0
QUERY_TOKENS = 32


def token_stream(n: int, rng: np.random.Generator, num_tokens: int = 200, mean_run: float = 3.0) -> np.ndarray:
    """(n,) int64 token ids in runs of geometric length (mean ``mean_run``)."""
    runs = rng.geometric(1 / mean_run, size=int(n / mean_run * 1.2) + 16)
    ids = np.repeat(rng.integers(0, num_tokens, runs.size), runs)
    return ids[:n]


def synthetic_index(hours: float, rng: np.random.Generator) -> RecordingIndex:
    """``hours`` of synthetic token streams in recordings of ``RECORDING_S`` seconds."""
    per_recording = int(RECORDING_S * TOKENS_PER_S)
    n_recordings = max(1, round(hours * 3600 / RECORDING_S))
    tokens = token_stream(per_recording * n_recordings, rng)
    offsets = np.arange(n_recordings + 1, dtype=np.int64) * per_recording
    return RecordingIndex([f"rec{i:05d}" for i in range(n_recordings)], [{}] * n_recordings, tokens, offsets)


def queries_from(index: RecordingIndex, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` stretches of the index with 20 % of the tokens replaced."""
    found = []
    for start in rng.integers(0, index.tokens.size - QUERY_TOKENS, n):
        query = index.tokens[start:start + QUERY_TOKENS].copy()
        edits = rng.random(QUERY_TOKENS) < 0.2
        query[edits] = rng.integers(0, 200, int(edits.sum()))
        found.append(query)
    return found


def median_spot_s(index: RecordingIndex, queries: list[np.ndarray], threshold: float) -> float:
    """Median wall seconds of spotting one query."""
    index.spot({"warm-up": queries[0]}, threshold, max_hits=5)  # compiles the kernels
    times = []
    for query in queries:
        start = time.perf_counter()
        index.spot({"q": query}, threshold, max_hits=5)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def sdtw_s_per_hour(rng: np.random.Generator, hours: float = 0.05, dim: int = 39) -> float:
    """Subsequence DTW of one 32-frame query over ``hours`` of 39-dim frames, seconds per hour of audio."""
    n_frames = int(RECORDING_S * TOKENS_PER_S)
    recordings = [rng.standard_normal((n_frames, dim)).astype(np.float32)
                  for _ in range(max(1, round(hours * 3600 / RECORDING_S)))]
    query = rng.standard_normal((QUERY_TOKENS, dim)).astype(np.float32)
    subsequence_dtw_hits([query], recordings[:1], max_hits=5)  # compiles the kernels
    start = time.perf_counter()
    subsequence_dtw_hits([query], recordings, max_hits=5)
    return (time.perf_counter() - start) / (len(recordings) * RECORDING_S / 3600)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hours", type=float, nargs="+", default=[1.0, 10.0, 100.0])
    p.add_argument("--queries", type=int, default=20)
    p.add_argument("--threads", type=int, default=None, help="worker threads (default: one per core)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    configure(threads=args.threads)
    rng = np.random.default_rng(args.seed)
    sdtw = sdtw_s_per_hour(rng)
    print(f"subsequence DTW: {1000 * sdtw:.0f} ms per query per hour of audio\n")
    print(f"| indexed audio | tokens | index MB | s / query at {MIN_SCORE} | s / query at {SPOT_THRESHOLD} | "
          f"ms / query / h at {SPOT_THRESHOLD} | x faster than sDTW at {MIN_SCORE} / {SPOT_THRESHOLD} |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for hours in args.hours:
        index = synthetic_index(hours, rng)
        queries = queries_from(index, args.queries, rng)
        low, default = median_spot_s(index, queries, MIN_SCORE), median_spot_s(index, queries, SPOT_THRESHOLD)
        print(f"| {hours:g} h | {index.tokens.size:,} | {index.tokens.size * 4 / 1e6:.0f} | {low:.3f} | {default:.3f} "
              f"| {1000 * default / hours:.2f} | {sdtw * hours / low:.0f} / {sdtw * hours / default:.0f} |", flush=True)


if __name__ == "__main__":
    main()
