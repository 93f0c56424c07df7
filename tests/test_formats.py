"""Reference .bin splits (restricted unpickler), our manifests, and conversion between them."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from wav2tok_core.data.manifest import ManifestItem, read_manifest, write_manifest
from wav2tok_core.data.reference_bin import (items_from_split, read_reference_bin, read_reference_items,
                                             split_from_items, write_reference_bin)
from wav2tok_core.data.splits import reference_splits
from wav2tok_core.errors import ConfigError, DataFormatError, ManifestError, UnsafePickleError


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/wav2tok_pwned",))


def test_malicious_pickle_is_refused_without_running(tmp_path) -> None:
    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps([[Exploit()], []]))
    with pytest.raises(UnsafePickleError, match="evil.bin: refusing to load posix.system|evil.bin: refusing"):
        read_reference_bin(path)
    assert not Path("/tmp/wav2tok_pwned").exists()


def test_non_container_classes_are_refused(tmp_path) -> None:
    path = tmp_path / "set.bin"
    path.write_bytes(pickle.dumps([{1, 2}, []], protocol=2))  # protocol 2 pickles sets via builtins.set
    with pytest.raises(UnsafePickleError):
        read_reference_bin(path)


@pytest.mark.parametrize("payload,match", [
    ({"a": 1}, "expected \\[X_train, X_test\\]"),
    ([[1, 2], []], "list split must hold path strings"),
    ([{"c": "x.wav"}, {}], "class 'c' must map to a list"),
])
def test_wrong_structure_names_the_file(tmp_path, payload, match) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(DataFormatError, match=match):
        read_reference_bin(path)
    path.write_bytes(b"\x80\x04truncated")
    with pytest.raises(DataFormatError, match="bad.bin: not a readable pickle"):
        read_reference_bin(path)


def test_relative_paths_resolve_from_the_reference_layout(tmp_path, monkeypatch) -> None:
    # Reference layout: Src/bin/audios.bin holding paths relative to Src/ (e.g. Dataset/a.wav)
    (tmp_path / "Src" / "bin").mkdir(parents=True)
    (tmp_path / "Src" / "Dataset").mkdir()
    (tmp_path / "Src" / "Dataset" / "a.wav").write_bytes(b"x")
    (tmp_path / "Src" / "bin" / "audios.bin").write_bytes(pickle.dumps([["Dataset/a.wav"], []]))
    monkeypatch.chdir(tmp_path)  # run from elsewhere: the reference breaks here
    train, test = read_reference_bin("Src/bin/audios.bin")
    assert train == [(tmp_path / "Src" / "Dataset" / "a.wav").resolve()] and test == []


def test_bin_and_manifest_round_trip(tmp_path, tiny_data) -> None:
    path = write_reference_bin(tiny_data["train"], tiny_data["test"], tmp_path / "bin" / "tones.bin")
    train, test = read_reference_bin(path)
    assert train == {k: [p.resolve() for p in v] for k, v in tiny_data["train"].items()}
    items = items_from_split(train, "train") + items_from_split(test, "test")
    for suffix in (".json", ".csv"):
        manifest = write_manifest(items, tmp_path / "sub" / f"m{suffix}")
        back = read_manifest(manifest)
        assert [(i.path, i.label, i.split) for i in back] == [(i.path, i.label, i.split) for i in items]
        assert split_from_items([i for i in back if i.split == "train"], by_class=True) == train


@pytest.mark.parametrize("shape", ["list", "dict"])
def test_bin_to_items_to_bin_is_byte_identical(tmp_path, tiny_data, shape) -> None:
    train, test = tiny_data["train"], tiny_data["test"]
    if shape == "list":
        train, test = [p for v in train.values() for p in v], [p for v in test.values() for p in v]
    original = write_reference_bin(train, test, tmp_path / "a.bin")
    items = read_reference_items(original, is_dict=shape == "dict")
    assert {it.split for it in items} == {"train", "val"}
    assert all((it.label is None) == (shape == "list") for it in items)
    again = write_reference_bin(*reference_splits(items, by_class=shape == "dict"), tmp_path / "b.bin")
    assert again.read_bytes() == original.read_bytes()


def test_is_dict_disagreeing_with_the_bin_names_the_file(tmp_path, tiny_data) -> None:
    path = write_reference_bin(tiny_data["train"], tiny_data["test"], tmp_path / "tones.bin")
    with pytest.raises(ConfigError, match=r"is_dict=False but .*tones.bin holds a dict .*set --is_dict True"):
        read_reference_items(path, is_dict=False)
    flat = write_reference_bin([p for v in tiny_data["train"].values() for p in v], [], tmp_path / "flat.bin")
    with pytest.raises(ConfigError, match=r"is_dict=True but .*flat.bin holds a list of paths"):
        read_reference_items(flat, is_dict=True)


def test_manifest_paths_are_relative_and_work_from_any_folder(tmp_path, monkeypatch) -> None:
    clip = tmp_path / "data" / "x.wav"
    clip.parent.mkdir()
    clip.write_bytes(b"x")
    manifest = write_manifest([ManifestItem(clip, label="a", speaker="s", split="val")], tmp_path / "data" / "m.json")
    assert '"path": "x.wav"' in manifest.read_text()
    monkeypatch.chdir("/")
    assert read_manifest(manifest)[0].path == clip


@pytest.mark.parametrize("text,match", [
    ("{", "not valid JSON"),
    ('{"format": "other"}', "not a wav2tok manifest"),
    ('{"format": "wav2tok-manifest", "version": 9, "items": []}', "version 9"),
    ('{"format": "wav2tok-manifest", "version": 1, "items": [{"label": "a"}]}', "item 0: row has no 'path'"),
    ('{"format": "wav2tok-manifest", "version": 1, "items": [{"path": "a", "split": "dev"}]}', "split 'dev'"),
])
def test_bad_manifests_are_named(tmp_path, text, match) -> None:
    path = tmp_path / "m.json"
    path.write_text(text)
    with pytest.raises(ManifestError, match=match):
        read_manifest(path)


def test_unlabelled_rows_cannot_form_classes(tmp_path) -> None:
    with pytest.raises(DataFormatError, match="has no label"):
        split_from_items([ManifestItem(tmp_path / "a.wav")], by_class=True)


def test_atomic_writes_get_normal_permissions(tmp_path) -> None:
    from wav2tok_core.runtime import write_json

    write_json(tmp_path / "x.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o666 & ~mask
