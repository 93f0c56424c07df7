"""Tests of bring-your-own folders, splits, FSDD (local copy and offline download), summaries and the CLI."""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import tone_clip
from hypothesis import given, settings
from hypothesis import strategies as st

from wav2tok_core.cli import dataset as dataset_cli
from wav2tok_core.data.folder import scan_folder
from wav2tok_core.data.fsdd import (FSDD_COMMIT, MARKER, PART, SPLITTERS, download_fsdd, ensure_fsdd, is_complete,
                                    leave_one_speaker_out, load_fsdd, parse_name, standard_split, takes_split,
                                    urlopen_from, words_split)
from wav2tok_core.data.manifest import ManifestItem, read_manifest
from wav2tok_core.data.reference_bin import read_reference_bin, read_reference_items
from wav2tok_core.data.splits import (allocate, explicit_speaker_split, speaker_split, stratified_split,
                                      write_split_outputs)
from wav2tok_core.data.summary import summarize
from wav2tok_core.errors import FolderDatasetError, FsddError, SplitError
from wav2tok_core.eval.protocol import detect_protocol
from wav2tok_core.train.data import ClipStore, DataConfig, PairDataset

SR = 16000


# ------------------------------------------------------------------------------------------------ helpers

def fake_items(assignment: list[tuple[str, str]]) -> list[ManifestItem]:
    """In-memory items (no files) from (speaker, label) pairs."""
    return [ManifestItem(Path(f"/data/{label}/{speaker}_{i}.wav"), label=label, speaker=speaker)
            for i, (speaker, label) in enumerate(assignment)]


def splits_of(items: list[ManifestItem]) -> dict[Path, str | None]:
    return {it.path: it.split for it in items}


@pytest.fixture
def class_folder(tmp_path: Path) -> Path:
    """ROOT/<class>/... : 3 classes x 3 speakers x 2 takes of tone clips, plus files that must be ignored."""
    root = tmp_path / "mydata"
    for k, label in enumerate(("bird", "car", "door")):
        for s, speaker in enumerate(("ann", "bob", "cy")):
            for take in range(2):
                sub = root / label / ("deep" if take else "")
                sub.mkdir(parents=True, exist_ok=True)
                suffix = ".flac" if (s + take) % 3 == 0 else ".wav"
                sf.write(sub / f"{label}-{speaker}-{take}{suffix}", tone_clip(k, s * 2 + take), SR)
    (root / "bird" / "notes.txt").write_text("not audio")
    (root / "bird" / "._bird-ann-0.wav").write_bytes(b"macOS resource fork")
    (root / ".cache").mkdir()
    sf.write(root / ".cache" / "x.wav", tone_clip(0, 0), SR)
    return root


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wav2tok")
    dataset_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def run_cli(*argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    return args.func(args)


# ------------------------------------------------------------------------------------------ folder scanning

def test_scan_folder_labels_speakers_and_ignored_files(class_folder: Path) -> None:
    items = scan_folder(class_folder, speaker=r"-(?P<speaker>[a-z]+)-\d")
    assert len(items) == 18
    assert Counter(it.label for it in items) == {"bird": 6, "car": 6, "door": 6}
    assert Counter(it.speaker for it in items) == {"ann": 6, "bob": 6, "cy": 6}
    assert {it.path.suffix for it in items} == {".wav", ".flac"}
    assert all(it.path.is_absolute() and not it.path.name.startswith(".") for it in items)
    assert any("deep" in it.path.parts for it in items)  # recursive inside class folders


def test_scan_folder_speaker_from_first_group_or_callable(class_folder: Path) -> None:
    by_group = scan_folder(class_folder, speaker=r"^[a-z]+-([a-z]+)-")
    by_callable = scan_folder(class_folder, speaker=lambda p: p.stem.split("-")[1].upper())
    assert [it.speaker for it in by_group] == [it.speaker.lower() for it in by_callable]
    assert {it.speaker for it in scan_folder(class_folder, speaker=r"-(zed)-")} == {None}  # no match: unknown


def test_scan_folder_errors_name_the_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FolderDatasetError, match="empty"):
        scan_folder(empty)
    with pytest.raises(FolderDatasetError, match="does not exist"):
        scan_folder(tmp_path / "missing")
    sf.write(empty / "loose.wav", tone_clip(0, 0), SR)
    with pytest.raises(FolderDatasetError, match="loose.wav"):
        scan_folder(empty)
    with pytest.raises(FolderDatasetError, match="needs a group"):
        scan_folder(empty, speaker=r"[a-z]+")


# ----------------------------------------------------------------------------------------------------- splits

@given(n=st.integers(0, 60), shares=st.tuples(st.integers(1, 10), st.integers(0, 10), st.integers(0, 10)))
def test_allocate_sums_and_gives_every_positive_split_a_clip(n: int, shares: tuple[int, int, int]) -> None:
    fractions = [s / sum(shares) for s in shares]
    counts = allocate(n, fractions)
    assert sum(counts) == n and min(counts) >= 0
    positive = [i for i, f in enumerate(fractions) if f > 0]
    if n >= len(positive):
        assert all(counts[i] >= 1 for i in positive)
    if n >= 1:
        assert counts[0] >= 1
    assert all(counts[i] == 0 for i, f in enumerate(fractions) if f == 0)


def test_stratified_split_keeps_every_class_in_train_and_is_seeded() -> None:
    sizes = {"a": 1, "b": 2, "c": 3, "d": 10, "e": 57}
    items = fake_items([("s", label) for label, n in sizes.items() for _ in range(n)])
    split = stratified_split(items, (0.7, 0.15, 0.15), seed=3)
    table = Counter((it.label, it.split) for it in split)
    assert all(table[(label, "train")] >= 1 for label in sizes)
    assert all(table[(label, "val")] >= 1 and table[(label, "test")] >= 1 for label in ("c", "d", "e"))
    assert table[("e", "train")] == 40
    assert splits_of(stratified_split(items, (0.7, 0.15, 0.15), seed=3)) == splits_of(split)
    assert splits_of(stratified_split(items, (0.7, 0.15, 0.15), seed=4)) != splits_of(split)
    shuffled = random.Random(0).sample(items, len(items))
    assert splits_of(stratified_split(shuffled, (0.7, 0.15, 0.15), seed=3)) == splits_of(split)


def test_split_arguments_are_checked() -> None:
    items = fake_items([("s", "a")] * 4)
    for bad in ((0.5, 0.5), (0.5, 0.2, 0.2), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1)):
        with pytest.raises(SplitError, match="fractions"):
            stratified_split(items, bad)
    with pytest.raises(SplitError, match="more than once"):
        stratified_split(items + items[:1])
    with pytest.raises(SplitError, match="no speaker"):
        speaker_split([ManifestItem(Path("/x.wav"), label="a")] + items)
    with pytest.raises(SplitError, match="at least 3 speakers"):
        speaker_split(fake_items([("s", "a"), ("t", "a")]))


@settings(max_examples=60, deadline=None)
@given(assignment=st.lists(st.tuples(st.sampled_from("ABCDEFGHIJ"), st.sampled_from("xyz")), min_size=3,
                           max_size=120),
       seed=st.integers(0, 2**31))
def test_speaker_split_is_speaker_disjoint(assignment: list[tuple[str, str]], seed: int) -> None:
    items = fake_items(assignment)
    n_speakers = len({s for s, _ in assignment})
    if n_speakers < 3:
        with pytest.raises(SplitError):
            speaker_split(items, seed=seed)
        return
    split = speaker_split(items, (0.6, 0.2, 0.2), seed=seed)
    assert [it.path for it in split] == [it.path for it in items]
    splits_per_speaker: dict[str, set[str]] = {}
    for it in split:
        splits_per_speaker.setdefault(it.speaker, set()).add(it.split)
    assert all(len(s) == 1 for s in splits_per_speaker.values())
    assert {it.split for it in split} == {"train", "val", "test"}
    assert splits_of(speaker_split(items, (0.6, 0.2, 0.2), seed=seed)) == splits_of(split)


def test_speaker_split_meets_fractions_and_depends_on_seed() -> None:
    rng = np.random.default_rng(0)
    assignment = [(f"spk{s:02d}", str(d)) for s in range(30) for d in range(10) for _ in range(int(rng.integers(2, 6)))]
    items = fake_items(assignment)
    split = speaker_split(items, (0.8, 0.1, 0.1), seed=0)
    shares = Counter(it.split for it in split)
    for name, target in (("train", 0.8), ("val", 0.1), ("test", 0.1)):
        assert abs(shares[name] / len(items) - target) < 0.02
    assert splits_of(speaker_split(items, (0.8, 0.1, 0.1), seed=1)) != splits_of(split)


def test_explicit_speaker_split_carves_val_from_train_speakers() -> None:
    items = fake_items([(s, str(d)) for s in "ABCDE" for d in range(4) for _ in range(10)])
    split = explicit_speaker_split(items, {"train": ["A", "B", "C"], "test": ["D", "E"]}, val_fraction=0.2, seed=1)
    table = Counter((it.label, it.split) for it in split)
    assert all(table[(str(d), "val")] == 6 and table[(str(d), "train")] == 24 for d in range(4))
    assert {it.speaker for it in split if it.split == "test"} == {"D", "E"}
    assert {it.speaker for it in split if it.split != "test"} == {"A", "B", "C"}
    with pytest.raises(SplitError, match="'A' is listed for both"):
        explicit_speaker_split(items, {"train": ["A"], "test": ["A", "B"]})
    with pytest.raises(SplitError, match="Zed"):
        explicit_speaker_split(items, {"train": ["A", "Zed"], "test": ["B"]})
    with pytest.raises(SplitError, match="in no split list"):
        explicit_speaker_split(items, {"train": ["A"], "test": ["B"]})
    kept = explicit_speaker_split(items, {"train": ["A"], "test": ["B"]}, drop_unlisted=True)
    assert {it.speaker for it in kept} == {"A", "B"}


# ------------------------------------------------------------------------------------ outputs and round trip

@pytest.mark.parametrize("manifest_name", ["manifest.json", "manifest.csv"])
def test_manifest_round_trip(class_folder: Path, tmp_path: Path, manifest_name: str) -> None:
    items = stratified_split(scan_folder(class_folder, speaker=r"-(?P<speaker>[a-z]+)-"), (0.5, 0.25, 0.25))
    items[0].meta["take"] = 7
    out = write_split_outputs(items, tmp_path / "out", "mine", manifest_name=manifest_name)
    back = read_manifest(out.manifest)
    assert [(it.path, it.label, it.speaker, it.split) for it in back] == \
        [(it.path, it.label, it.speaker, it.split) for it in items]
    if manifest_name.endswith(".json"):
        assert back[0].meta == {"take": 7}


def test_reference_bin_structure_and_trainer_loading(class_folder: Path, tmp_path: Path) -> None:
    items = speaker_split(scan_folder(class_folder, speaker=r"-(?P<speaker>[a-z]+)-"), (0.4, 0.3, 0.3), seed=0)
    by_split = {name: {it.path for it in items if it.split == name} for name in ("train", "val", "test")}
    out = write_split_outputs(items, tmp_path / "out", "mine", by_class=True)
    assert out.reference_bin == tmp_path / "out" / "mine.bin" and out.reference_test == "val"
    train, test = read_reference_bin(out.reference_bin)
    assert isinstance(train, dict) and set(train) == {"bird", "car", "door"}
    assert {p for paths in train.values() for p in paths} == by_split["train"]
    assert {p for paths in test.values() for p in paths} == by_split["val"]
    train_items = [it for it in read_reference_items(out.reference_bin, is_dict=True) if it.split == "train"]
    store = ClipStore.load([it.path for it in train_items], sr=SR)
    assert not store.failed
    dataset = PairDataset(train_items, store, DataConfig(is_dict=True), sr=SR, seed=0)
    assert len(dataset) == len(by_split["train"])
    item = dataset[0]
    assert set(item) == {"anchor", "positive", "copy", "label"} and item["anchor"].ndim == 1
    lists = write_split_outputs(items, tmp_path / "out2", "mine", reference_test="test")
    train_list, test_list = read_reference_bin(lists.reference_bin)
    assert isinstance(train_list, list) and set(test_list) == by_split["test"]


def test_reference_outputs_refuse_unsplit_or_empty_splits(tmp_path: Path) -> None:
    items = fake_items([("s", "a")] * 3)
    with pytest.raises(SplitError, match="no split"):
        write_split_outputs(items, tmp_path)
    only_train = stratified_split(items, (1.0, 0.0, 0.0))
    with pytest.raises(SplitError, match="reference_test='test'"):
        write_split_outputs(only_train, tmp_path)
    assert not list(tmp_path.iterdir())  # validated before anything is written


# ----------------------------------------------------------------------------------------------------- summary

def test_summary_reports_unreadable_files_by_name(class_folder: Path, tmp_path: Path) -> None:
    items = scan_folder(class_folder, speaker=r"-(?P<speaker>[a-z]+)-")
    bad = class_folder / "car" / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEjunk" * 10)
    empty = class_folder / "car" / "empty.wav"
    empty.write_bytes(b"")
    header_only = class_folder / "car" / "header_only.wav"
    sf.write(header_only, tone_clip(1, 0), SR, subtype="PCM_16")
    header_only.write_bytes(header_only.read_bytes()[:44])  # a WAV header, no samples: decoded to check
    items += [ManifestItem(p, label="car", split="test") for p in (bad, empty, header_only, tmp_path / "gone.wav")]
    summary = summarize(stratified_split(items[:18], (0.5, 0.25, 0.25)) + items[18:])
    reasons = {Path(u.path).name: u.reason for u in summary.unreadable}
    assert set(reasons) == {"broken.wav", "empty.wav", "header_only.wav", "gone.wav"}
    assert "does not exist" in reasons["gone.wav"] and "empty" in reasons["empty.wav"]
    assert "zero samples" in reasons["header_only.wav"]
    assert summary.n_items == 22 and summary.per_class["car"] == 10
    assert summary.durations["all"].n == 18
    assert summary.sample_rates == {str(SR): 18}
    json.dumps(summary.to_dict())
    text = summary.to_markdown()
    assert "broken.wav" in text and "| car |" in text and "### Splits" in text


def test_summary_cli_strict_exit_code(class_folder: Path, tmp_path: Path, capsys) -> None:
    items = stratified_split(scan_folder(class_folder), (0.5, 0.25, 0.25))
    out = write_split_outputs(items, tmp_path / "out", "mine")
    assert run_cli("dataset", "summary", str(out.manifest), "--strict", "--json", str(tmp_path / "s.json")) == 0
    assert json.loads((tmp_path / "s.json").read_text())["n_unreadable"] == 0
    items[0].path.write_bytes(b"garbage")
    assert run_cli("dataset", "summary", str(out.manifest)) == 0
    assert run_cli("dataset", "summary", str(out.manifest), "--strict") == 1
    assert items[0].path.name in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------- CLI

def test_cli_folder_speaker_split(class_folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code = run_cli("dataset", "folder", "--root", str(class_folder), "--speaker_regex=-(?P<speaker>[a-z]+)-",
                   "--split", "speaker", "--fractions", "0.4", "0.3", "0.3", "--seed", "2", "--out", str(out),
                   "--dict")
    assert code == 0
    items = read_manifest(out / "manifest.json")
    assert len(items) == 18 and {it.split for it in items} == {"train", "val", "test"}
    train, _ = read_reference_bin(out / "mydata.bin")
    assert isinstance(train, dict)
    assert "## Dataset summary" in capsys.readouterr().out
    assert run_cli("dataset", "folder", "--root", str(tmp_path / "nope"), "--out", str(out)) == 2
    assert "nope" in capsys.readouterr().err


def test_cli_melodies_writes_manifest_and_bin(tmp_path: Path, capsys) -> None:
    pytest.importorskip("music21")
    out = tmp_path / "mel"
    assert run_cli("dataset", "melodies", "--out", str(out), "--n_tunes", "3", "--queries_per_tune", "1",
                   "--dict") == 0
    train, test = read_reference_bin(out / "melodies.bin")
    assert isinstance(train, dict) and len(train) == 1 and len(test) == 1
    assert "## Dataset summary" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------- FSDD, local copy

def test_fsdd_local_copy_and_standard_split(fsdd_dir: Path) -> None:
    assert is_complete(fsdd_dir)
    items = load_fsdd(fsdd_dir)
    assert len(items) == 3000
    assert len({it.speaker for it in items}) == 6 and len({it.label for it in items}) == 10
    assert all(isinstance(it.meta["take"], int) for it in items)
    split = standard_split(items, val_fraction=0.1, seed=0)
    heldout = {"george", "yweweler"}
    assert not heldout & {it.speaker for it in split if it.split in ("train", "val")}
    assert {it.speaker for it in split if it.split == "test"} == heldout
    table = Counter((it.label, it.split) for it in split)
    assert all(table[(d, "val")] == 20 and table[(d, "train")] == 180 for d in map(str, range(10)))
    assert splits_of(standard_split(items, seed=0)) == splits_of(split)


def test_fsdd_takes_split_is_fsdds_own() -> None:
    items = [parse_name(Path(f"/fsdd/recordings/{d}_{s}_{t}.wav")) for d in range(10) for s in ("ann", "bob")
             for t in range(50)]
    split = takes_split(items, val_fraction=0.1, seed=0)
    assert [it.path for it in split] == [it.path for it in items]  # every clip kept, in order
    test = [it for it in split if it.split == "test"]
    assert sorted({it.meta["take"] for it in test}) == [0, 1, 2, 3, 4] and len(test) == 100
    assert {it.speaker for it in test} == {"ann", "bob"}  # every speaker is also a training speaker
    table = Counter((it.label, it.split) for it in split)
    assert all(table[(str(d), "val")] == 9 and table[(str(d), "train")] == 81 for d in range(10))
    assert splits_of(takes_split(items, seed=0)) == splits_of(split) != splits_of(takes_split(items, seed=1))
    with pytest.raises(FsddError, match="val_fraction"):
        takes_split(items, val_fraction=1.0)


def test_fsdd_words_split_tests_on_digits_never_trained_on() -> None:
    items = [parse_name(Path(f"/fsdd/recordings/{d}_{s}_{t}.wav")) for d in range(10)
             for s in ("jackson", "nicolas", "theo", "lucas", "george", "yweweler") for t in range(10)]
    split = words_split(items, val_fraction=0.1, seed=0)
    seen = {it.label for it in split if it.split in ("train", "val")}
    assert seen == {"0", "1", "2", "3", "4"} and {it.label for it in split if it.split == "test"} == {"5", "6", "7", "8", "9"}
    assert {it.speaker for it in split if it.split == "test"} == {"george", "yweweler"}
    assert {it.speaker for it in split if it.split == "train"} == {"jackson", "nicolas", "theo", "lucas"}
    assert len(split) == 300  # half the digits of each side: 4 x 5 x 10 train/val + 2 x 5 x 10 test


def test_leave_one_speaker_out_queries_come_from_the_held_out_voice_only() -> None:
    speakers = ("jackson", "nicolas", "theo", "lucas", "george", "yweweler")
    items = [parse_name(Path(f"/fsdd/recordings/{d}_{s}_{t}.wav"))
             for d in range(10) for s in speakers for t in range(50)]
    split = SPLITTERS["loso-theo"](items, val_fraction=0.1, seed=0)
    assert sorted(it.path for it in split) == sorted(it.path for it in items)  # every clip kept once
    queries = [it for it in split if it.meta.get("role") == "query"]
    targets = [it for it in split if it.meta.get("role") == "target"]
    assert {it.speaker for it in queries} == {"theo"} and len(queries) == 500
    assert all(it.split == "test" for it in queries)
    assert {it.speaker for it in targets} == set(speakers) - {"theo"}
    assert {it.meta["take"] for it in targets} == set(range(5))
    assert all(it.split == "test" for it in targets) and len(targets) == 250
    trained = [it for it in split if it.split in ("train", "val")]
    assert "theo" not in {it.speaker for it in trained} and min(it.meta["take"] for it in trained) == 5
    assert detect_protocol([it for it in split if it.split == "test"]) == "query_vs_targets"
    with pytest.raises(FsddError, match="'zed' is not an FSDD speaker"):
        leave_one_speaker_out(items, "zed")


def test_the_all_split_trains_on_everything_but_a_val_carve_out() -> None:
    items = [parse_name(Path(f"/fsdd/recordings/{d}_{s}_{t}.wav")) for d in range(10) for s in ("ann", "bob")
             for t in range(10)]
    split = SPLITTERS["all"](items, val_fraction=0.1, seed=0)
    table = Counter((it.label, it.split) for it in split)
    assert all(table[(str(d), "train")] == 18 and table[(str(d), "val")] == 2 for d in range(10))
    assert not [it for it in split if it.split == "test"]
    with pytest.raises(FsddError, match="no test part"):
        SPLITTERS["all"](items, val_fraction=0.0)


def test_cli_fsdd_takes_split(fsdd_dir: Path, tmp_path: Path) -> None:
    assert run_cli("dataset", "fsdd", "--root", str(fsdd_dir), "--split", "takes", "--out", str(tmp_path)) == 0
    counts = Counter(it.split for it in read_manifest(tmp_path / "manifest.json"))
    assert counts == {"train": 2430, "val": 270, "test": 300}


def test_cli_fsdd_words_split(fsdd_dir: Path, tmp_path: Path) -> None:
    assert run_cli("dataset", "fsdd", "--root", str(fsdd_dir), "--split", "words", "--out", str(tmp_path)) == 0
    items = read_manifest(tmp_path / "manifest.json")
    assert Counter(it.split for it in items) == {"train": 900, "val": 100, "test": 500}
    assert {it.label for it in items if it.split == "test"} == {"5", "6", "7", "8", "9"}


# -------------------------------------------------------------------------------------- FSDD download, offline

@pytest.fixture(scope="module")
def fsdd_archive(tmp_path_factory, fsdd_dir: Path) -> tuple[Path, str]:
    """A zip laid out like the GitHub archive, with 20 recordings of the local copy; and its sha256."""
    path = tmp_path_factory.mktemp("archive") / "fsdd.zip"
    top = f"free-spoken-digit-dataset-{FSDD_COMMIT}"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{top}/README.md", "Free Spoken Digit Dataset\n")
        for wav in sorted((fsdd_dir / "recordings").glob("*_theo_*.wav"))[:20]:
            zf.write(wav, f"{top}/recordings/{wav.name}")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_from_file_url_verifies_and_completes(fsdd_archive, tmp_path: Path) -> None:
    archive, digest = fsdd_archive
    root = tmp_path / "fsdd"
    with pytest.raises(FsddError, match="--download"):
        ensure_fsdd(root)
    (root / ".fsdd-extract-killed" / "recordings").mkdir(parents=True)  # left by a killed earlier run
    assert ensure_fsdd(root, download=True, url=archive.as_uri(), sha256=digest) == root
    assert is_complete(root) and (root / MARKER).is_file()
    assert not (root / PART).exists() and not (root / ".fsdd.zip").exists()
    assert [p.name for p in root.iterdir() if p.name.startswith(".fsdd-extract")] == []
    items = load_fsdd(root)
    assert len(items) == 20 and {it.speaker for it in items} == {"theo"}


def test_download_without_pinned_hash_prints_it(fsdd_archive, tmp_path: Path, capsys) -> None:
    archive, digest = fsdd_archive
    download_fsdd(tmp_path / "fsdd", url=archive.as_uri(), sha256=None)
    assert digest in capsys.readouterr().err
    assert is_complete(tmp_path / "fsdd")


def test_checksum_mismatch_is_refused_and_leaves_nothing_complete(fsdd_archive, tmp_path: Path) -> None:
    archive, _ = fsdd_archive
    root = tmp_path / "fsdd"
    with pytest.raises(FsddError, match="checksum mismatch"):
        download_fsdd(root, url=archive.as_uri(), sha256="0" * 64)
    assert not is_complete(root)
    assert not (root / "recordings").exists() and not (root / MARKER).exists() and not (root / PART).exists()
    with pytest.raises(FsddError, match="was not found"):
        load_fsdd(root)


class FlakyOpener:
    """Serves bytes from a given start offset; the first stream breaks after ``fail_at`` bytes."""

    def __init__(self, data: bytes, fail_at: int) -> None:
        self.data, self.fail_at, self.starts = data, fail_at, []

    def __call__(self, url: str, start: int) -> "FlakyOpener.Stream":
        self.starts.append(start)
        fail_at = self.fail_at if len(self.starts) == 1 else None
        return self.Stream(self.data, start, fail_at)

    class Stream(io.RawIOBase):
        def __init__(self, data: bytes, start: int, fail_at: int | None) -> None:
            self.data, self.pos, self.fail_at = data, start, fail_at

        def read(self, size: int = -1) -> bytes:
            if self.fail_at is not None and self.pos >= self.fail_at:
                raise ConnectionResetError("connection reset by peer")
            end = len(self.data) if size < 0 else self.pos + size
            if self.fail_at is not None:
                end = min(end, self.fail_at)
            chunk = self.data[self.pos : end]
            self.pos += len(chunk)
            return chunk


def test_interrupted_download_resumes_from_part_file(fsdd_archive, tmp_path: Path) -> None:
    archive, digest = fsdd_archive
    data = archive.read_bytes()
    opener = FlakyOpener(data, fail_at=len(data) // 2 + 123)
    root = tmp_path / "fsdd"
    with pytest.raises(FsddError, match="resume"):
        download_fsdd(root, url="https://example.invalid/fsdd.zip", sha256=digest, opener=opener, chunk_size=4096)
    assert (root / PART).stat().st_size == opener.fail_at
    assert not is_complete(root) and not (root / "recordings").exists()
    download_fsdd(root, url="https://example.invalid/fsdd.zip", sha256=digest, opener=opener, chunk_size=4096)
    assert opener.starts == [0, opener.fail_at]
    assert is_complete(root) and len(load_fsdd(root)) == 20


def test_download_refuses_a_foreign_incomplete_recordings_folder(tmp_path: Path) -> None:
    (tmp_path / "recordings").mkdir()
    (tmp_path / "recordings" / "0_theo_0.wav").write_bytes(b"partial copy")
    opener = FlakyOpener(b"", fail_at=0)
    with pytest.raises(FsddError, match="delete that folder"):
        download_fsdd(tmp_path, sha256="0" * 64, opener=opener)
    assert opener.starts == [] and (tmp_path / "recordings" / "0_theo_0.wav").exists()


def test_file_url_opener_honours_start_offset(fsdd_archive) -> None:
    archive, _ = fsdd_archive
    with urlopen_from(archive.as_uri(), start=100) as stream:
        assert stream.read() == archive.read_bytes()[100:]
    assert urlopen_from(archive.as_uri(), start=0).read(4) == b"PK\x03\x04"


def test_cli_fsdd_writes_manifest_and_bin(fsdd_archive, tmp_path: Path, capsys) -> None:
    archive, digest = fsdd_archive
    root, out = tmp_path / "fsdd", tmp_path / "out"
    assert run_cli("dataset", "fsdd", "--root", str(root), "--out", str(out)) == 2
    assert "--download" in capsys.readouterr().err
    download_fsdd(root, url=archive.as_uri(), sha256=digest)
    # 20 recordings of one speaker cannot fill the standard split: a clear error, not a traceback
    assert run_cli("dataset", "fsdd", "--root", str(root), "--out", str(out)) == 2
    assert "george" in capsys.readouterr().err


def test_cli_fsdd_on_local_copy(fsdd_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("dataset", "fsdd", "--root", str(fsdd_dir), "--out", str(out), "--dict") == 0
    train, val = read_reference_bin(out / "fsdd.bin")
    assert sorted(train) == [str(d) for d in range(10)] and sum(map(len, val.values())) == 200
    assert Counter(it.split for it in read_manifest(out / "manifest.json")) == {"train": 1800, "test": 1000,
                                                                                 "val": 200}
