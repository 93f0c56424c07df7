"""A run's training data as manifest items: read from a manifest or a reference ``.bin``, cut for debug runs.

Whatever the file, training sees items (path, label, speaker, split); the reference ``[X_train, X_test]``
shape is converted where the file is read (:func:`wav2tok_core.data.reference_bin.read_reference_items`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..data.manifest import ManifestItem, group_by_label, read_manifest, require_labels
from ..data.reference_bin import read_reference_items

MANIFEST_SUFFIXES = (".json", ".csv")


def read_training_items(dataset: str, bin_dir: str, is_dict: bool) -> tuple[list[ManifestItem], list[ManifestItem]]:
    """(train, validation) items of ``dataset``.

    ``dataset`` is a manifest (``.json``/``.csv``: its train and unsplit rows train, its val rows
    validate), a reference ``.bin`` path, or NAME for ``{bin_dir}/NAME.bin`` (X_test validates). With
    ``is_dict`` every train and val item needs a label, and the items come class by class (classes in
    order of first appearance), the order a reference ``{class: [paths]}`` split has.
    """
    path = Path(dataset)
    if path.suffix.lower() in MANIFEST_SUFFIXES:
        items = read_manifest(path)
    else:
        items = read_reference_items(path if path.suffix.lower() == ".bin" else Path(bin_dir) / f"{dataset}.bin",
                                     is_dict)
    train = [it for it in items if it.split in ("train", None)]
    val = [it for it in items if it.split == "val"]
    if not is_dict:
        return train, val
    if path.suffix.lower() in MANIFEST_SUFFIXES:
        require_labels(train + val)  # a .bin's X_test may be a plain list: validation is then unlabelled
    return class_order(train), class_order(val)


def class_order(items: Sequence[ManifestItem]) -> list[ManifestItem]:
    """``items`` class by class (classes in order of first appearance), each class in its own order."""
    return [it for group in group_by_label(items).values() for it in group]


def debug_subset(items: Sequence[ManifestItem], n: int, by_class: bool) -> list[ManifestItem]:
    """About ``n`` items for a quick debug run: the first ``n``, or with ``by_class`` the first clips of the
    first classes (at least 2 per class, so pairs exist)."""
    if not by_class:
        return list(items[:n])
    groups = list(group_by_label(items).values())
    per_class = max(2, n // max(1, len(groups)))
    return [it for group in groups[: max(1, n // 2)] for it in group[:per_class]]
