"""Core speed on this machine: tokenization throughput (batched and one clip at a time) and training steps.

    python benchmarks/bench_core.py [--threads N] [--clip_s 1.0] [--n_clips 64]

Prints a markdown table; numbers go in the README. Uses random-weight models with an E-step on noise
clips (speed does not depend on training).
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

from wav2tok_core.audio.config import FeatureConfig
from wav2tok_core.audio.io import pad_batch
from wav2tok_core.model.config import ModelConfig
from wav2tok_core.model.wav2tok import Wav2Tok
from wav2tok_core.train.callbacks import e_step
from wav2tok_core.train.objective import Wav2TokObjective


def timed(fn, repeat: int = 3) -> float:
    """Best wall time of ``repeat`` runs after one warm-up, in seconds."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--clip_s", type=float, default=1.0, help="clip duration in seconds")
    p.add_argument("--n_clips", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=16, help="training batch (pairs)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sr = 16000
    clips = [0.1 * torch.randn(int(args.clip_s * sr)) for _ in range(args.n_clips)]
    audio_s = args.n_clips * args.clip_s
    print(f"CPU: {platform.processor() or platform.machine()}, torch threads: {args.threads}, "
          f"{args.n_clips} clips of {args.clip_s:g} s\n")
    print("| encoder | features | tokenize batched (s audio / s) | tokenize one by one (s audio / s) "
          "| train step, batch %d pairs (ms) | train pairs / s |" % args.batch_size)
    print("|---|---|---:|---:|---:|---:|")
    for transformer in (False, True):
        for kind in ("mfcc", "logmel", "stft", "pitch"):
            model = Wav2Tok(ModelConfig(use_transformer=transformer, features=FeatureConfig(kind=kind)))
            objective = Wav2TokObjective(model)
            e_step(objective, clips[:16])
            batched = timed(lambda: model.tokenize(clips, batch_size=32))
            single = timed(lambda: [model.tokenize([c]) for c in clips[:16]], repeat=1) * args.n_clips / 16
            batch = {"anchor": pad_batch(clips[: args.batch_size]), "positive": pad_batch(clips[1 : args.batch_size + 1])}
            opt = torch.optim.Adam(objective.parameters(), lr=1e-4)

            def step() -> None:
                objective.train()
                loss = objective(batch)["loss/total"]
                opt.zero_grad()
                loss.backward()
                opt.step()
            step_s = timed(step)
            name = "Transformer" if transformer else "BiLSTM"
            print(f"| {name} | {kind} | {audio_s / batched:,.0f} | {audio_s / single:,.0f} | {step_s * 1000:.0f} "
                  f"| {args.batch_size / step_s:.0f} |")


if __name__ == "__main__":
    main()
