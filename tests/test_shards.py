"""Sharded tokenize/index: parts merge into what one run writes, finished parts are not redone, stale
parts are never merged, and one torchrun job shards by rank."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch
import torch.distributed as dist
from conftest import tone_clip

from wav2tok_core.cli.main import main as cli
from wav2tok_core.data.manifest import ManifestItem, write_manifest
from wav2tok_core.errors import ShardError
from wav2tok_core.model.config import ModelConfig
from wav2tok_core.model.wav2tok import Wav2Tok
from wav2tok_core.search.index import TokenIndex
from wav2tok_core.search.shards import Shard


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> dict:
    """10 tone clips in a manifest, one bad file, and two different tiny models."""
    root = tmp_path_factory.mktemp("shards")
    items = []
    for i in range(10):
        path = root / "clips" / f"c{i % 3}_{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone_clip(i % 3, i), 16000)
        items.append(ManifestItem(path, f"c{i % 3}", f"s{i % 2}", "test"))
    (root / "clips" / "broken.wav").write_bytes(b"RIFF not really")
    items.insert(4, ManifestItem(root / "clips" / "broken.wav", "c0", "s0", "test"))
    write_manifest(items, root / "manifest.json")
    for seed in (0, 1):
        torch.manual_seed(seed)
        Wav2Tok(ModelConfig(emb_dim=16, num_tokens=8, num_layers=1)).save(root / f"model{seed}.pt")
    return {"root": root, "manifest": root / "manifest.json", "model": root / "model0.pt", "other": root / "model1.pt"}


def index_args(job: dict, out: Path, *extra: str, model: Path | None = None) -> list[str]:
    return ["index", str(job["manifest"]), "--model", str(model or job["model"]), "--out", str(out),
            "--device", "cpu", *extra]


def same_index(a: Path, b: Path) -> None:
    x, y = TokenIndex.load(a), TokenIndex.load(b)
    assert x.ids == y.ids and len(x) == 10
    assert all(x.tokens(i) == y.tokens(i) and x.metadata(i) == y.metadata(i) for i in x.ids)


def test_blocks_cover_the_inputs_once_in_order() -> None:
    items = list(range(11))
    blocks = [Shard(i, 4).block(items) for i in range(4)]
    assert sum(blocks, []) == items and {len(b) for b in blocks} == {2, 3}
    with pytest.raises(ShardError):
        Shard(4, 4)


def test_sharded_index_equals_one_run_and_reports_the_bad_file(job, tmp_path, capsys) -> None:
    assert cli(index_args(job, tmp_path / "whole.npz")) == 0
    out = tmp_path / "sharded.npz"
    for shard in (2, 0):
        assert cli(index_args(job, out, "--shard", str(shard), "--num-shards", "3")) == 0
        assert not out.exists()  # shard 1 is still missing
    assert cli(index_args(job, out, "--shard", "1", "--num_shards", "3")) == 0
    same_index(tmp_path / "whole.npz", out)
    assert "broken.wav" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.glob("sharded.part*")) == [f"sharded.part{i}-of-3.json" for i in range(3)]


def test_finished_parts_are_not_redone_and_stale_parts_are_not_merged(job, tmp_path, capsys) -> None:
    out = tmp_path / "index.npz"
    assert cli(index_args(job, out, "--shard", "0", "--num-shards", "2")) == 0
    part = Shard(0, 2).part(out)
    before = part.stat().st_mtime_ns
    assert cli(index_args(job, out, "--shard", "0", "--num-shards", "2")) == 0
    assert part.stat().st_mtime_ns == before and "already done" in capsys.readouterr().err
    # Shard 1 with another model: shard 0's part belongs to another job, so nothing is merged ...
    assert cli(index_args(job, out, "--shard", "1", "--num-shards", "2", model=job["other"])) == 0
    assert not out.exists()
    # ... until shard 0 is redone with that model.
    assert cli(index_args(job, out, "--shard", "0", "--num-shards", "2", model=job["other"])) == 0
    assert part.stat().st_mtime_ns != before and out.exists()
    assert cli(index_args(job, tmp_path / "whole.npz", model=job["other"])) == 0
    same_index(tmp_path / "whole.npz", out)


def test_sharded_tokenize_merges_into_the_same_json(job, tmp_path) -> None:
    common = ["tokenize", str(job["manifest"]), "--model", str(job["model"]), "--device", "cpu"]
    assert cli([*common, "--out", str(tmp_path / "whole.json")]) == 0
    for shard in range(2):
        assert cli([*common, "--out", str(tmp_path / "parts.json"), "--shard", str(shard), "--num-shards", "2"]) == 0
    whole, merged = (json.loads((tmp_path / name).read_text()) for name in ("whole.json", "parts.json"))
    assert merged["items"] == whole["items"] and len(whole["items"]) == 10
    assert [f["path"] for f in merged["failed"]] == [f["path"] for f in whole["failed"]]


def test_bad_shard_options_exit_2(job, tmp_path, capsys) -> None:
    assert cli(index_args(job, tmp_path / "i.npz", "--shard", "2", "--num-shards", "2")) == 2
    assert cli(index_args(job, tmp_path / "i.npz", "--shard", "0")) == 2
    assert cli(["tokenize", str(job["manifest"]), "--model", str(job["model"]), "--shard", "0", "--num-shards", "2"]) == 2
    assert "need --out" in capsys.readouterr().err


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed (gloo)")
def test_one_torchrun_job_shards_by_rank_and_rank_zero_merges(job, tmp_path) -> None:
    assert cli(index_args(job, tmp_path / "whole.npz")) == 0
    out = tmp_path / "ddp.npz"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "wav2tok_core.cli", *index_args(job, out)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.glob("ddp.part*")) == ["ddp.part0-of-2.json", "ddp.part1-of-2.json"]
    same_index(tmp_path / "whole.npz", out)
