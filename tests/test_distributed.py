"""Distributed training under torchrun (2 CPU processes, gloo): ranks agree, losses match one process,
resume works, and only rank 0 writes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from conftest import write_tone_data

from wav2tok_core.data.reference_bin import write_reference_bin

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with the gloo backend is not available")

WORKER = Path(__file__).with_name("ddp_worker.py")
# Dropout 0, so one process and two differ only by how the global batch is split and reduced.
FLAGS = ["--is_dict", "True", "--emb_dim", "16", "--num_tokens", "6", "--num_layers", "1", "--dropout", "0",
         "--batch_size", "4", "--iter_clust", "2", "--threads", "1", "--progress", "False", "--patience", "0"]


def launch(out: Path, flags: list[str], nproc: int) -> dict[int, dict]:
    """Run the worker on ``nproc`` processes (torchrun) or in one plain process; returns rank -> dump."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(WORKER.parents[1])}
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               str(WORKER), str(out), *flags]
    else:
        cmd = [sys.executable, str(WORKER), str(out), *flags]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {r: torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(nproc)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Tiny tone data; a 2-process run of 3 epochs, the same on one process, and a 2-process run of
    1 epoch resumed to 3."""
    root = tmp_path_factory.mktemp("ddp")
    splits = write_tone_data(root)
    data = write_reference_bin(splits["train"], splits["test"], root / "tones.bin")
    # train_steps pins the LR schedule, so the 1-epoch run is the 3-epoch run interrupted after epoch 1.
    common = ["--dataset", str(data), "--save_dir", str(root / "w"), "--train_steps", "9", *FLAGS]
    return {
        "root": root,
        "ddp": launch(root / "ddp", [*common, "--name", "ddp", "--EPOCHS", "3"], 2),
        "single": launch(root / "single", [*common, "--name", "single", "--EPOCHS", "3"], 1),
        "first": launch(root / "first", [*common, "--name", "resumed", "--EPOCHS", "1"], 2),
        "resumed": launch(root / "resumed", [*common, "--name", "resumed", "--EPOCHS", "3",
                                             "--load_dir", "resumed"], 2),
    }


def test_both_ranks_end_with_identical_weights_and_codebook(runs) -> None:
    zero, one = runs["ddp"][0]["state"], runs["ddp"][1]["state"]
    assert zero.keys() == one.keys() and "codebook" in zero
    for name in zero:
        assert torch.equal(zero[name], one[name]), name
    assert runs["ddp"][0]["step"] == runs["single"][0]["step"] == 9  # 12 clips / global batch 4 x 3 epochs


def test_loss_is_close_to_one_process_with_the_same_global_batch(runs) -> None:
    ddp = [r["train/loss"] for r in runs["ddp"][0]["history"]]
    single = [r["train/loss"] for r in runs["single"][0]["history"]]
    # Same global batches and schedule; only the split of each batch and the float reductions differ
    # (measured: equal to 4 decimals over 3 epochs).
    assert ddp == pytest.approx(single, rel=0.01)


def test_distributed_resume_ends_with_the_uninterrupted_weights(runs) -> None:
    assert runs["first"][0]["step"] == 3 and runs["resumed"][0]["step"] == 9
    full, resumed = runs["ddp"][0]["state"], runs["resumed"][0]["state"]
    for name in full:
        torch.testing.assert_close(resumed[name], full[name], rtol=0, atol=1e-6, msg=name)


def test_only_rank_zero_writes_run_files(runs) -> None:
    run = runs["root"] / "w" / "ddp"
    assert {p.name for p in run.glob("*.pt")} == {"last.pt", "best.pt"}
    epochs = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if '"epoch"' in ln]
    assert [r["epoch"] for r in epochs if r["kind"] == "epoch"] == [1, 2, 3]  # one record each, not two
    assert json.loads((run / "run_config.json").read_text())["world_size"] == 2
