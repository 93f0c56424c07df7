"""Search-engine benchmark; prints markdown tables.

Token search: the database holds N / 10 base strings, each stored once as is and 9 times perturbed
(15 % of tokens deleted, substituted or followed by an insertion); queries are fresh perturbed copies
of random bases. Bases are real token strings when ``--tokens`` names a ``wav2tok tokenize --out``
JSON (all of them, then new ones spliced from two random pieces of real strings, so lengths and token
statistics stay real at any N); without it, random strings (length 10-40, K = 50 tokens). Reports
build time, index array bytes, the resident memory the build added (Python objects included),
single-query latency p50/p95 (one ``search`` call per query) and batch cost per query, for exhaustive
and candidate search, and the candidate stage's recall@10 against exhaustive search.

DTW: path-normalised DTW of queries against 500 random MFCC-like sequences (30-60 frames x 39).
Spotting: 20-token queries against 1000 recordings of 500 tokens.

Run: ``python benchmarks/bench_search.py [--sizes 10000 100000 1000000] [--tokens tokens.json]``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wav2tok_core.eval.baselines import dtw_score_matrix  # noqa: E402
from wav2tok_core.search.index import TokenIndex, candidate_recall  # noqa: E402
from wav2tok_core.search.spotting import spot_batch  # noqa: E402

K = 50


def perturb(tokens: np.ndarray, rng: np.random.Generator, rate: float = 0.15) -> list[int]:
    """Delete, substitute, or insert after, each token with probability rate / 3 each."""
    action = rng.random(tokens.size)
    out = np.where((action >= rate / 3) & (action < 2 * rate / 3), rng.integers(0, K, tokens.size), tokens)
    inserted = np.where((action >= 2 * rate / 3) & (action < rate), rng.integers(0, K, tokens.size), -1)
    pairs = np.stack([out, inserted], axis=1)[action >= rate / 3].ravel()
    return pairs[pairs >= 0].tolist()


def random_bases(count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` random token strings of length 10-40."""
    return [rng.integers(0, K, rng.integers(10, 41)) for _ in range(count)]


def real_bases(real: list[np.ndarray], count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The real strings, then spliced ones (a random piece of one real string + one of another)."""
    bases = real[:count]
    while len(bases) < count:
        a, b = (real[i] for i in rng.integers(0, len(real), 2))
        cut_a, cut_b = rng.integers(1, len(a) + 1), rng.integers(0, len(b))
        bases.append(np.concatenate([a[:cut_a], b[cut_b:]]))
    return bases


def read_token_file(path: str) -> list[np.ndarray]:
    """Token strings (length >= 2) from a ``wav2tok tokenize --out`` JSON file."""
    rows = json.loads(Path(path).read_text(encoding="utf-8"))["items"]
    strings = [np.asarray(r["tokens"], dtype=np.int64) for r in rows if len(r["tokens"]) >= 2]
    if not strings:
        raise SystemExit(f"{path}: no token strings of length >= 2")
    return strings


def synthetic_collection(size: int, n_queries: int, rng: np.random.Generator,
                         real: list[np.ndarray] | None = None) -> tuple[list[list[int]], list[list[int]]]:
    """(database of ``size`` token strings in groups of 10 related ones, queries)."""
    count = max(1, size // 10)
    bases = random_bases(count, rng) if real is None else real_bases(list(real), count, rng)
    database = [b.tolist() if copy == 0 else perturb(b, rng) for b in bases for copy in range(10)][:size]
    queries = [perturb(bases[i], rng) for i in rng.integers(0, len(bases), n_queries)]
    return database, queries


def latencies_ms(run: Callable[[list[int]], object], queries: list[list[int]]) -> np.ndarray:
    """Wall time of ``run`` per query, in ms."""
    times = []
    for query in queries:
        start = time.perf_counter()
        run(query)
        times.append(time.perf_counter() - start)
    return 1e3 * np.array(times)


def resident_mb() -> float:
    """This process's resident memory now (MB; Linux)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def search_row(database: list[list[int]], queries: list[list[int]], ngram: int, candidates: int) -> dict[str, float]:
    """Build an index and measure both search modes."""
    index = TokenIndex(ngram=ngram)
    rss_before = resident_mb()
    start = time.perf_counter()
    index.add([str(i) for i in range(len(database))], database)
    index.build()
    build_s = time.perf_counter() - start
    index.search(queries[:1], k=10)  # warm-up: thread pools, caches
    index.search(queries[:1], k=10, candidates=candidates)
    exhaustive = latencies_ms(lambda q: index.search([q], k=10), queries)
    candidate = latencies_ms(lambda q: index.search([q], k=10, candidates=candidates), queries)
    start = time.perf_counter()
    index.search(queries, k=10)
    batch_exhaustive = 1e3 * (time.perf_counter() - start) / len(queries)
    start = time.perf_counter()
    index.search(queries, k=10, candidates=candidates)
    batch_candidate = 1e3 * (time.perf_counter() - start) / len(queries)
    return {
        "build_s": build_s,
        "index_mb": index.nbytes() / 1e6,
        "rss_mb": resident_mb() - rss_before,
        "exh_p50": float(np.percentile(exhaustive, 50)),
        "exh_p95": float(np.percentile(exhaustive, 95)),
        "cand_p50": float(np.percentile(candidate, 50)),
        "cand_p95": float(np.percentile(candidate, 95)),
        "batch_exh": batch_exhaustive,
        "batch_cand": batch_candidate,
        "recall": candidate_recall(index, queries, k=10, candidates=candidates),
    }


def print_search_table(args: argparse.Namespace, rng: np.random.Generator) -> None:
    real = read_token_file(args.tokens) if args.tokens else None
    source = f"bases from {len(real)} real token strings in {args.tokens}" if real else "random bases"
    print(f"## Token search (k=10, candidates={args.candidates}, {args.queries} queries, {source})\n")
    print("| items | n-gram | build s | index MB | memory added MB (RSS) | exhaustive p50 / p95 ms | candidate p50 / p95 ms "
          "| batch exhaustive ms/q | batch candidate ms/q | candidate recall@10 |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        database, queries = synthetic_collection(size, args.queries, rng, real)
        for ngram in args.ngrams:
            r = search_row(database, queries, ngram, args.candidates)
            print(f"| {size:,} | {ngram} | {r['build_s']:.2f} | {r['index_mb']:.1f} | {r['rss_mb']:.0f} "
                  f"| {r['exh_p50']:.2f} / {r['exh_p95']:.2f} "
                  f"| {r['cand_p50']:.2f} / {r['cand_p95']:.2f} | {r['batch_exh']:.3f} | {r['batch_cand']:.3f} | {r['recall']:.4f} |",
                  flush=True)


def print_kernel_table(args: argparse.Namespace, rng: np.random.Generator) -> None:
    print("\n## Numba kernels\n")
    print("| kernel | first call (compile) s | ms per query |")
    print("|---|---:|---:|")
    database = [rng.standard_normal((rng.integers(30, 61), 39)).astype(np.float32) for _ in range(args.dtw_db)]
    queries = database[: args.dtw_queries]
    start = time.perf_counter()
    dtw_score_matrix(queries[:1], database[:1])
    compile_s = time.perf_counter() - start
    for metric in ("euclidean", "cosine"):
        start = time.perf_counter()
        dtw_score_matrix(queries, database, metric=metric)
        per_query = 1e3 * (time.perf_counter() - start) / len(queries)
        print(f"| DTW {metric}, query vs {args.dtw_db} sequences of 30-60 x 39 | {compile_s:.1f} | {per_query:.1f} |")
        compile_s = 0.0
    recordings = {str(i): rng.integers(0, K, 500).tolist() for i in range(1000)}
    spot_queries = {str(i): rng.integers(0, K, 20).tolist() for i in range(args.dtw_queries)}
    start = time.perf_counter()
    spot_batch({"warm-up": [1, 2]}, {"r": [1, 2, 3]})
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    spot_batch(spot_queries, recordings, threshold=0.6, max_hits=3)
    per_query = 1e3 * (time.perf_counter() - start) / len(spot_queries)
    print(f"| spotting, 20-token query in 1000 recordings x 500 tokens | {compile_s:.1f} | {per_query:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--ngrams", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--dtw-db", type=int, default=500)
    parser.add_argument("--dtw-queries", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tokens", help="`wav2tok tokenize --out` JSON whose strings seed the collection")
    parser.add_argument("--no-kernels", action="store_true", help="skip the DTW / spotting kernel table")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print_search_table(args, rng)
    if not args.no_kernels:
        print_kernel_table(args, rng)


if __name__ == "__main__":
    main()
