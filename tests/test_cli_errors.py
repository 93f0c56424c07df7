"""Every ``wav2tok`` subcommand turns an unusable input into one line on stderr and exit code 2.

Each subcommand gets (a) a missing file, (b) a corrupt file (random bytes under the suffix it expects) and
(c) a bad option value. Most cases run in-process through ``main(argv)``; at least one per subcommand runs
as a real ``python -m wav2tok_core.cli`` process, to check what a shell sees.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO, tone_clip

from wav2tok_core import runtime
from wav2tok_core.cli.common import guarded
from wav2tok_core.cli.main import main
from wav2tok_core.data.manifest import ManifestItem, write_manifest
from wav2tok_core.data.reference_bin import write_reference_bin
from wav2tok_core.errors import ConfigError
from wav2tok_core.model.config import ModelConfig
from wav2tok_core.model.wav2tok import Wav2Tok
from wav2tok_core.search.index import TokenIndex

CORRUPT = bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8))  # not UTF-8, zip, npz or pickle


@pytest.fixture(scope="module")
def f(tmp_path_factory) -> dict[str, Path]:
    """Good inputs (clips, manifest, model, index, reference .bin), corrupt files of every suffix, a plain file."""
    root = tmp_path_factory.mktemp("cli_errors")
    items = []
    for k in range(2):
        for take in range(4):
            path = root / "clips" / f"c{k}" / f"{take}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone_clip(k, take), 16000)
            items.append(ManifestItem(path, f"c{k}", f"s{take % 2}", "train" if take < 2 else "test"))
    write_manifest(items, root / "manifest.json")
    torch.manual_seed(0)
    Wav2Tok(ModelConfig(emb_dim=16, num_tokens=8, num_layers=1)).save(root / "model.pt")
    index = TokenIndex()
    index.add(["a"], [[1, 2, 3]])
    index.save(root / "index.npz")
    splits = {split: {f"c{k}": [it.path for it in items if it.label == f"c{k}" and it.split == split]
                      for k in range(2)} for split in ("train", "test")}
    write_reference_bin(splits["train"], splits["test"], root / "data.bin")
    files = {"root": root, "manifest": root / "manifest.json", "model": root / "model.pt", "clip": items[0].path,
             "index": root / "index.npz", "bin": root / "data.bin", "missing": root / "missing",
             "file": root / "plain.txt", "out": root / "out"}
    files["file"].write_text("a file, not a folder\n")
    for suffix in ("json", "csv", "pt", "npz", "yaml", "bin", "wav", "zip"):
        files[f"corrupt.{suffix}"] = root / f"corrupt.{suffix}"
        files[f"corrupt.{suffix}"].write_bytes(CORRUPT)
    return files


def melodies_done_with_corrupt_manifest(f: dict[str, Path]) -> Path:
    """A finished melody-set folder (its params.json matches) whose manifest.json was since corrupted."""
    from wav2tok_core.data.builds import MANIFEST_NAME, PARAMS_NAME
    from wav2tok_core.data.melodies import MelodySetConfig

    out = f["root"] / "melodies_done"
    out.mkdir(exist_ok=True)
    runtime.write_json(out / PARAMS_NAME, {"digest": MelodySetConfig(n_tunes=3).digest()})
    (out / MANIFEST_NAME).write_bytes(CORRUPT)
    return out


def params_file(f: dict[str, Path], text: str) -> Path:
    path = f["root"] / "params.yaml"
    path.write_text(text)
    return path


Argv = Callable[[dict[str, Path]], list]
M, C, B = "missing", "corrupt", "bad-value"  # (a) a missing file, (b) a corrupt file, (c) a bad option value


@dataclass(frozen=True)
class Case:
    """One unusable command line: the subcommand as the error line names it, what is wrong, the argv."""

    name: str
    kind: str
    what: str
    argv: Argv
    process: bool = False  # also run it as a `python -m wav2tok_core.cli` process

    @property
    def id(self) -> str:
        return f"{self.name.replace(' ', '-')}-{self.kind}-{self.what}"


def tokenize(f: dict[str, Path], *extra: object) -> list:
    return ["tokenize", f["clip"], "--model", f["model"], *extra]


def index(f: dict[str, Path], *extra: object) -> list:
    return ["index", f["manifest"], "--model", f["model"], "--out", f["out"] / "i.npz", *extra]


def search(f: dict[str, Path], *extra: object) -> list:
    return ["search", f["clip"], "--index", f["index"], "--model", f["model"], *extra]


def spot(f: dict[str, Path], *extra: object) -> list:
    return ["spot", f["clip"], "--index", f["index"], "--model", f["model"], *extra]


def espeak_done_with_corrupt_manifest(f: dict[str, Path]) -> Path:
    """A finished eSpeak word-set folder (its params.json matches) whose manifest.json was since corrupted."""
    from wav2tok_core.data.builds import MANIFEST_NAME, PARAMS_NAME
    from wav2tok_core.data.espeak import EspeakWordSetConfig

    out = f["root"] / "espeak_done"
    out.mkdir(exist_ok=True)
    config = EspeakWordSetConfig()
    runtime.write_json(out / PARAMS_NAME, {"digest": dataclasses.replace(config, words=config.words[:2]).digest()})
    (out / MANIFEST_NAME).write_bytes(CORRUPT)
    return out


def evaluate(f: dict[str, Path], *extra: object) -> list:
    return ["evaluate", "--model", f["model"], "--manifest", f["manifest"], "--out", f["out"] / "r.json", *extra]


def train(f: dict[str, Path], *extra: object) -> list:
    return ["train", "--dataset", f["bin"], "--is_dict", "True", "--save_dir", f["out"] / "w", "--progress", "False",
            *extra]


def folder(f: dict[str, Path], *extra: object) -> list:
    return ["dataset", "folder", "--root", f["root"] / "clips", "--out", f["out"], *extra]


def fsdd_download(f: dict[str, Path], root: str, url: str, *extra: object) -> list:
    return ["dataset", "fsdd", "--root", f["out"] / root, "--download", "--url", url, "--out", f["out"], *extra]


def run(f: dict[str, Path], params: str, *extra: object) -> list:
    return ["run", "--params", params_file(f, params), "--run_dir", f["out"] / "run", *extra]


CASES = [
    Case("tokenize", M, "manifest", lambda f: ["tokenize", f["missing"] / "m.json", "--model", f["model"],
                                               "--out", f["out"] / "t.json"], process=True),
    Case("tokenize", M, "model", lambda f: ["tokenize", f["clip"], "--model", f["missing"] / "m.pt"]),
    Case("tokenize", C, "manifest", lambda f: ["tokenize", f["corrupt.json"], "--model", f["model"]]),
    Case("tokenize", C, "csv-manifest", lambda f: ["tokenize", f["corrupt.csv"], "--model", f["model"]]),
    Case("tokenize", C, "model", lambda f: ["tokenize", f["clip"], "--model", f["corrupt.pt"]]),
    Case("tokenize", B, "threads", lambda f: tokenize(f, "--threads", "0")),
    Case("tokenize", B, "device", lambda f: tokenize(f, "--device", "nonsense")),
    Case("tokenize", B, "batch_size", lambda f: tokenize(f, "--batch_size", "0")),
    Case("tokenize", B, "out-under-a-file", lambda f: tokenize(f, "--out", f["file"] / "t.json")),
    Case("tokenize", B, "shard", lambda f: tokenize(f, "--out", f["out"] / "t.json", "--shard", "2",
                                                    "--num-shards", "2")),
    Case("index", M, "manifest", lambda f: ["index", f["missing"] / "m.json", "--model", f["model"],
                                            "--out", f["out"] / "i.npz"], process=True),
    Case("index", M, "model", lambda f: ["index", f["manifest"], "--model", f["missing"] / "m.pt",
                                         "--out", f["out"] / "i.npz"]),
    Case("index", C, "manifest", lambda f: ["index", f["corrupt.json"], "--model", f["model"],
                                            "--out", f["out"] / "i.npz"]),
    Case("index", C, "model", lambda f: ["index", f["manifest"], "--model", f["corrupt.pt"],
                                         "--out", f["out"] / "i.npz"]),
    Case("index", B, "split", lambda f: index(f, "--split", "nosuchsplit")),
    Case("index", B, "threads", lambda f: index(f, "--threads", "-1")),
    Case("index", B, "out-under-a-file", lambda f: ["index", f["manifest"], "--model", f["model"],
                                                    "--out", f["file"] / "i.npz"]),
    Case("search", M, "index", lambda f: ["search", f["clip"], "--index", f["missing"] / "i.npz",
                                          "--model", f["model"]]),
    Case("search", M, "model", lambda f: ["search", f["clip"], "--index", f["index"],
                                          "--model", f["missing"] / "m.pt"]),
    Case("search", C, "index", lambda f: ["search", f["clip"], "--index", f["corrupt.npz"], "--model", f["model"]],
         process=True),
    Case("search", C, "query-manifest", lambda f: ["search", f["corrupt.json"], "--index", f["index"],
                                                   "--model", f["model"]]),
    Case("search", B, "k", lambda f: search(f, "--k", "0")),
    Case("search", B, "candidates", lambda f: search(f, "--candidates", "0")),
    Case("search", B, "json-is-a-folder", lambda f: search(f, "--json", f["root"])),
    Case("spot", M, "index", lambda f: ["spot", f["clip"], "--index", f["missing"] / "i.npz", "--model", f["model"]],
         process=True),
    Case("spot", C, "index", lambda f: ["spot", f["clip"], "--index", f["corrupt.npz"], "--model", f["model"]]),
    Case("spot", C, "index-without-token-times", lambda f: spot(f)),
    Case("spot", B, "threshold", lambda f: spot(f, "--threshold", "1.5")),
    Case("spot", B, "max_hits", lambda f: spot(f, "--max_hits", "0")),
    Case("evaluate", B, "spotting-method", lambda f: evaluate(f, "--task", "spotting", "--methods", "dtw-mfcc")),
    Case("evaluate", B, "clips_per_recording", lambda f: evaluate(f, "--task", "spotting", "--clips_per_recording",
                                                                  "0")),
    Case("dataset espeak", M, "out-parent-is-a-file", lambda f: ["dataset", "espeak", "--out", f["file"] / "e",
                                                                 "--n_words", "2"], process=True),
    Case("dataset espeak", C, "finished-manifest", lambda f: ["dataset", "espeak", "--out",
                                                              espeak_done_with_corrupt_manifest(f), "--n_words", "2"]),
    Case("dataset espeak", B, "voice", lambda f: ["dataset", "espeak", "--out", f["out"] / "e", "--n_words", "2",
                                                  "--voices", "en+nosuch"]),
    Case("dataset espeak", B, "n_words", lambda f: ["dataset", "espeak", "--out", f["out"] / "e", "--n_words", "0"]),
    Case("evaluate", M, "model", lambda f: ["evaluate", "--model", f["missing"] / "m.pt", "--manifest", f["manifest"],
                                            "--out", f["out"] / "r.json"], process=True),
    Case("evaluate", M, "manifest", lambda f: ["evaluate", "--model", f["model"], "--manifest",
                                               f["missing"] / "m.json", "--out", f["out"] / "r.json"]),
    Case("evaluate", C, "manifest", lambda f: ["evaluate", "--model", f["model"], "--manifest", f["corrupt.json"],
                                               "--out", f["out"] / "r.json"]),
    Case("evaluate", C, "model", lambda f: ["evaluate", "--model", f["corrupt.pt"], "--manifest", f["manifest"],
                                            "--out", f["out"] / "r.json"]),
    Case("evaluate", B, "condition", lambda f: evaluate(f, "--conditions", "louder")),
    Case("evaluate", B, "test_split", lambda f: evaluate(f, "--test_split", "nosuchsplit")),
    Case("evaluate", B, "threads", lambda f: evaluate(f, "--threads", "0")),
    Case("evaluate", B, "batch_size", lambda f: evaluate(f, "--batch_size", "0")),
    Case("train", M, "bin", lambda f: ["train", "--dataset", f["missing"] / "d.bin"], process=True),
    Case("train", M, "manifest", lambda f: ["train", "--dataset", f["missing"] / "m.json"]),
    Case("train", M, "config", lambda f: train(f, "--config", f["missing"] / "c.yaml")),
    Case("train", M, "load_dir", lambda f: train(f, "--load_dir", f["missing"] / "m.pt")),
    Case("train", C, "bin", lambda f: ["train", "--dataset", f["corrupt.bin"]]),
    Case("train", C, "manifest", lambda f: ["train", "--dataset", f["corrupt.json"]]),
    Case("train", C, "config", lambda f: train(f, "--config", f["corrupt.yaml"])),
    Case("train", C, "load_dir", lambda f: train(f, "--load_dir", f["corrupt.pt"])),
    Case("train", B, "num_tokens", lambda f: train(f, "--num_tokens", "1")),
    Case("train", B, "threads", lambda f: train(f, "--threads", "0")),
    Case("train", B, "device", lambda f: train(f, "--device", "nonsense")),
    Case("train", B, "is_dict", lambda f: train(f, "--is_dict", "False")),
    # melodies reads no input file: (a) is an --out that cannot be a folder, (b) a finished folder gone bad
    Case("dataset melodies", M, "out-is-a-file", lambda f: ["dataset", "melodies", "--out", f["file"],
                                                            "--n_tunes", "3"]),
    Case("dataset melodies", C, "manifest", lambda f: ["dataset", "melodies", "--n_tunes", "3",
                                                       "--out", melodies_done_with_corrupt_manifest(f)]),
    Case("dataset melodies", B, "n_tunes", lambda f: ["dataset", "melodies", "--out", f["out"] / "mel",
                                                      "--n_tunes", "0"], process=True),
    Case("dataset fsdd", M, "root", lambda f: ["dataset", "fsdd", "--root", f["missing"] / "fsdd",
                                               "--out", f["out"]], process=True),
    Case("dataset fsdd", C, "archive", lambda f: fsdd_download(f, "fsdd_c", f["corrupt.zip"].as_uri())),
    Case("dataset fsdd", C, "archive-pinned", lambda f: fsdd_download(f, "fsdd_p", f["corrupt.zip"].as_uri(),
                                                                      "--sha256", "0" * 64)),
    Case("dataset fsdd", B, "url", lambda f: fsdd_download(f, "fsdd_u", "not-a-url")),
    Case("dataset folder", M, "root", lambda f: ["dataset", "folder", "--root", f["missing"], "--out", f["out"]],
         process=True),
    Case("dataset folder", C, "root-is-a-file", lambda f: ["dataset", "folder", "--root", f["corrupt.wav"],
                                                           "--out", f["out"]]),
    Case("dataset folder", B, "fractions", lambda f: folder(f, "--fractions", "0.5", "0.5", "0.5")),
    Case("dataset folder", B, "speaker_regex", lambda f: folder(f, "--speaker_regex", "(unclosed")),
    Case("dataset folder", B, "speaker-split-without-regex", lambda f: folder(f, "--split", "speaker")),
    Case("dataset folder", B, "out-is-a-file", lambda f: ["dataset", "folder", "--root", f["root"] / "clips",
                                                          "--out", f["file"]]),
    Case("dataset summary", M, "manifest", lambda f: ["dataset", "summary", f["missing"] / "m.json"]),
    Case("dataset summary", C, "manifest", lambda f: ["dataset", "summary", f["corrupt.json"]], process=True),
    Case("dataset summary", C, "csv-manifest", lambda f: ["dataset", "summary", f["corrupt.csv"]]),
    Case("dataset summary", B, "json-is-a-folder", lambda f: ["dataset", "summary", f["manifest"],
                                                              "--json", f["root"]]),
    Case("run", M, "params", lambda f: ["run", "--params", f["missing"] / "p.yaml", "--run_dir", f["out"] / "run"]),
    Case("run", C, "params", lambda f: ["run", "--params", f["corrupt.yaml"], "--run_dir", f["out"] / "run"]),
    Case("run", B, "parameter-type", lambda f: run(f, "02_train:\n  epochs: many\n"), process=True),
    Case("run", B, "parameter-name", lambda f: run(f, "common:\n  n_tunez: 3\n")),
    Case("run", B, "section", lambda f: run(f, "03_train: {}\n")),
    Case("run", B, "run_dir-is-a-file", lambda f: ["run", "--params", params_file(f, "common: {}\n"),
                                                   "--run_dir", f["file"]]),
]
SUBPROCESS = [c for c in CASES if c.process]


def check_one_line(name: str, code: int, err: str) -> None:
    lines = err.splitlines()
    assert code == 2 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith(f"wav2tok {name}: error: "), err


def test_every_subcommand_gets_every_kind_of_bad_input() -> None:
    names = {"tokenize", "index", "search", "spot", "evaluate", "train", "run"} | {
        f"dataset {d}" for d in ("melodies", "espeak", "fsdd", "folder", "summary")}
    assert {(c.name, c.kind) for c in CASES} == {(n, k) for n in names for k in (M, C, B)}
    assert {c.name for c in SUBPROCESS} == names


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_unusable_input_gives_one_line_and_exit_2(f, case: Case, capsys) -> None:
    code = main([str(a) for a in case.argv(f)])
    check_one_line(case.name, code, capsys.readouterr().err)
    assert not (f["out"] / "run").exists()  # run checks its parameters before papermill starts


def run_process(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("case", SUBPROCESS, ids=[c.id for c in SUBPROCESS])
def test_the_console_sees_one_line_and_exit_2(f, case: Case) -> None:
    proc = run_process("wav2tok_core.cli", *map(str, case.argv(f)))
    check_one_line(case.name, proc.returncode, proc.stderr)


def test_the_reference_training_entry_point_uses_the_same_wrapper(f) -> None:
    proc = run_process("wav2tok_core.train", "--dataset", str(f["missing"] / "d.bin"))
    check_one_line("train", proc.returncode, proc.stderr)


def test_usage_errors_stay_argparse_errors_with_exit_2(f, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["search", str(f["clip"]), "--index", str(f["index"]), "--model", str(f["model"]), "--k", "many"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("wav2tok search: error: argument --k")


def test_the_wrapper_applies_threads_and_keeps_tracebacks_of_bugs(monkeypatch, capsys) -> None:
    seen: list[int | None] = []
    monkeypatch.setattr(runtime, "configure", lambda threads=None: seen.append(threads))

    def fails(error: Exception) -> Callable[[argparse.Namespace], int]:
        def command(args: argparse.Namespace) -> int:
            raise error
        return command

    assert guarded("probe", lambda args: 0)(argparse.Namespace(threads=3)) == 0 and seen == [3]
    assert guarded("probe", fails(ConfigError("x: bad\nvalue")))(argparse.Namespace()) == 2
    assert capsys.readouterr().err == "wav2tok probe: error: x: bad value\n"
    with pytest.raises(ZeroDivisionError):
        guarded("probe", fails(ZeroDivisionError("a bug")))(argparse.Namespace())
