"""A run's training data: items read from a manifest or a reference ``.bin``, then decoded clips and pairs.

Whatever the file, training sees items (path, label, speaker, split); the reference ``[X_train, X_test]``
shape is converted where the file is read (:func:`wav2tok_core.data.reference_bin.read_reference_items`).
:class:`TrainingData` holds what a trainer is built from.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..audio.io import Failure
from ..data.manifest import ManifestItem, group_by_label, read_manifest, require_labels
from ..data.reference_bin import read_reference_items
from ..errors import ConfigError
from .data import ClipStore, DataConfig, PairDataset

MANIFEST_SUFFIXES = (".json", ".csv")
MIN_VAL_CLIPS = 2  # retrieval needs a query and at least one other clip


def read_training_items(dataset: str, bin_dir: str, is_dict: bool) -> tuple[list[ManifestItem], list[ManifestItem]]:
    """(train, validation) items of ``dataset``.

    ``dataset`` is a manifest (``.json``/``.csv``: its train and unsplit rows train, its val rows
    validate), a reference ``.bin`` path, or NAME for ``{bin_dir}/NAME.bin`` (X_test validates). With
    ``is_dict`` every train and val item needs a label, and the items come class by class (classes in
    order of first appearance), the order a reference ``{class: [paths]}`` split has.
    """
    path = Path(dataset)
    is_manifest = path.suffix.lower() in MANIFEST_SUFFIXES
    if is_manifest:
        items = read_manifest(path)
    else:
        items = read_reference_items(path if path.suffix.lower() == ".bin" else Path(bin_dir) / f"{dataset}.bin",
                                     is_dict)
    train = [it for it in items if it.split in ("train", None)]
    val = [it for it in items if it.split == "val"]
    if not is_dict:
        return train, val
    if is_manifest:  # a .bin's shape was checked as it was read; its X_test may be a list (unlabelled validation)
        require_labels(train + val)
    return class_order(train), class_order(val)


def hold_out_speaker(items: Sequence[ManifestItem], speaker: str) -> tuple[list[ManifestItem], list[ManifestItem]]:
    """(train, validation): every clip of ``speaker`` validates, the others train. ``"auto"`` holds out the
    speaker with the most clips (ties: the last name), so validation measures a voice training never heard."""
    counts = Counter(it.speaker for it in items if it.speaker)
    if not counts:
        raise ConfigError("val_speaker: the training items have no speaker ids (train from a manifest with a "
                          "speaker column)")
    if len(counts) < 2:
        raise ConfigError(f"val_speaker: only one training speaker ({next(iter(counts))}), none left to train on")
    chosen = max(counts, key=lambda s: (counts[s], s)) if speaker == "auto" else speaker
    if chosen not in counts:
        raise ConfigError(f"val_speaker: {chosen!r} is not a training speaker; they are {sorted(counts)}")
    return [it for it in items if it.speaker != chosen], [it for it in items if it.speaker == chosen]


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


@dataclass
class TrainingData:
    """A run's data in memory: the pairs to train on, the clips to validate on, and the files that failed.

    ``val_clips``: ``(N,)`` waveforms at the model's rate, in validation order; ``val_labels``: their
    classes (class-grouped data), or None, when validation queries augmented copies of the clips instead.
    """

    pairs: PairDataset
    val_clips: list[torch.Tensor]
    val_labels: list[str] | None
    failed: list[Failure]  # files of either split that could not be decoded

    @classmethod
    def load(cls, train: Sequence[ManifestItem], val: Sequence[ManifestItem], config: DataConfig, sr: int,
             seed: int = 0, progress: bool = False) -> "TrainingData":
        """Decode the files of ``train`` and ``val`` at ``sr`` (each once) and pair the training items."""
        store = ClipStore.load([it.path for it in [*train, *val]], sr, progress)
        pairs = PairDataset(train, store, config, sr, seed=seed)
        where = store.index()
        kept = [it for it in val if it.path in where]
        labelled = config.is_dict and all(it.label is not None for it in kept)
        return cls(pairs, [store.waves[where[it.path]] for it in kept],
                   [it.label for it in kept] if labelled else None, store.failed)

    @property
    def train_clips(self) -> list[torch.Tensor]:
        """Every training clip ``(N,)``, in the pairs' anchor order (what the E-step clusters)."""
        return self.pairs.anchor_clips()

    def sample_clips(self, n: int = 200) -> list[torch.Tensor]:
        """Up to ``n`` training clips ``(N,)`` to watch during training (e.g. codebook usage): the first
        ``n`` in anchor order, so the same clips in every run on the same data."""
        return self.train_clips[:n]

    @property
    def validates(self) -> bool:
        """Enough validation clips for retrieval MRR; otherwise early stopping follows the training loss."""
        return len(self.val_clips) >= MIN_VAL_CLIPS

    def report(self) -> dict[str, Any]:
        """``{"train_clips", "val_clips", "failed": [{"path", "reason"}]}``, plus ``"warning"`` when there is
        no validation: what ``data_report.json`` holds."""
        report: dict[str, Any] = {"train_clips": len(self.pairs), "val_clips": len(self.val_clips),
                                  "failed": [f.to_dict() for f in self.failed]}
        if not self.validates:
            report["warning"] = (f"the validation split has {len(self.val_clips)} usable clip(s), fewer than "
                                 f"{MIN_VAL_CLIPS}: no validation MRR, so early stopping and best.pt follow the "
                                 "training loss")
        return report
