"""Splitting manifest items into train / val / test, and writing a split as our manifest plus a reference ``.bin``.

Three ways to split (all return copies of the items with ``split`` set, in the input order):

* :func:`stratified_split`: each class is split by the fractions on its own, so every class appears in
  train and, where it has enough clips, in every split with a positive share;
* :func:`speaker_split`: whole speakers go to one split (no speaker in two splits), chosen so that the
  shares of *clips* come close to the fractions;
* :func:`explicit_speaker_split`: the speakers of each split are given; validation clips are carved from
  the training speakers' clips, stratified by label.

Results depend only on the set of items and the seed, not on the order the items come in: clips are sorted
by path before shuffling, and each class (or the speaker assignment) draws from its own random stream
keyed by the seed and the class name, so adding a class does not reshuffle the others.

The reference format has no validation split
--------------------------------------------
The reference ``{dataset}.bin`` holds only ``[X_train, X_test]``, and the reference trainer evaluates on
``X_test`` during training (best-epoch selection / early stopping). :func:`write_split_outputs` therefore
writes **our val split as X_test by default** (``reference_test="val"``), so model selection in the
reference trainer never sees our test clips; the manifest keeps all three splits for the final evaluation
with our tools. Pass ``reference_test="test"`` to write the test split instead (e.g. to reproduce a
protocol that selects on the test set, which then must be reported as such).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..errors import SplitError
from .manifest import SPLITS, ManifestItem, write_manifest
from .reference_bin import Split, split_from_items, write_reference_bin

Fractions = tuple[float, float, float]  # shares of train, val, test
REFERENCE_TEST_CHOICES = ("val", "test")


# ------------------------------------------------------------------------------------------------ helpers

def check_fractions(fractions: Sequence[float]) -> Fractions:
    """Validate three non-negative shares (train, val, test) summing to 1 with a positive train share."""
    values = tuple(float(f) for f in fractions)
    if len(values) != 3:
        raise SplitError(f"fractions: need 3 shares (train val test), got {len(values)}: {values}")
    if min(values) < 0 or abs(sum(values) - 1.0) > 1e-6:
        raise SplitError(f"fractions: {values} must be non-negative and sum to 1")
    if values[0] <= 0:
        raise SplitError(f"fractions: the train share must be positive, got {values}")
    return values  # type: ignore[return-value]


def _check_seed(seed: int) -> int:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SplitError(f"seed: {seed!r} must be a non-negative integer")
    return int(seed)


def _rng(seed: int, key: str) -> np.random.Generator:
    """A random stream for one purpose (e.g. one class), independent of every other key."""
    digest = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([_check_seed(seed), digest])


def _check_unique(items: Sequence[ManifestItem]) -> None:
    """A clip listed twice could land in two splits: refuse it by name."""
    counts = Counter(Path(it.path) for it in items)
    repeated = [p for p, n in counts.items() if n > 1]
    if repeated:
        raise SplitError(f"{len(repeated)} clip(s) are listed more than once, e.g. {repeated[0]}")


def allocate(n: int, fractions: Sequence[float]) -> list[int]:
    """Split ``n`` clips into per-split counts close to ``n * fraction`` (largest remainder).

    Every split with a positive share gets at least one clip when ``n`` is at least the number of such
    splits; with fewer clips, train (index 0) gets one first, then the others in order of their shares.
    """
    positive = [i for i, f in enumerate(fractions) if f > 0]
    if n < len(positive):
        first = [0] + sorted((i for i in positive if i != 0), key=lambda i: (-fractions[i], i))
        return [1 if i in first[:n] else 0 for i in range(len(fractions))]
    ideal = [n * f for f in fractions]
    counts = [int(np.floor(x)) for x in ideal]
    by_remainder = sorted(range(len(fractions)), key=lambda i: (-(ideal[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    for i in positive:
        if counts[i] == 0:  # take one from the fullest split; it has >= 2 by pigeonhole
            donor = max(range(len(counts)), key=lambda j: (counts[j], -j))
            counts[donor] -= 1
            counts[i] = 1
    return counts


def _with_splits(items: Sequence[ManifestItem], split_of: Mapping[Path, str]) -> list[ManifestItem]:
    """Copies of ``items`` (input order) with ``split`` taken from ``split_of``; unmapped items are dropped."""
    return [dataclasses.replace(it, split=split_of[Path(it.path)], meta=dict(it.meta))
            for it in items if Path(it.path) in split_of]


def _stratified_assign(items: Sequence[ManifestItem], fractions: Sequence[float], seed: int,
                       stream: str) -> dict[Path, str]:
    """Path -> split, splitting each label's clips by ``fractions`` (train, val, test order)."""
    by_label: dict[str, list[Path]] = {}
    for it in items:
        by_label.setdefault(it.label or "", []).append(Path(it.path))
    split_of: dict[Path, str] = {}
    for label, paths in by_label.items():
        ordered = sorted(paths, key=str)
        shuffled = [ordered[i] for i in _rng(seed, f"{stream}:{label}").permutation(len(ordered))]
        names = [name for name, count in zip(SPLITS, allocate(len(shuffled), fractions)) for _ in range(count)]
        split_of.update(zip(shuffled, names))
    return split_of


# ----------------------------------------------------------------------------------------------- splitters

def stratified_split(items: Sequence[ManifestItem], fractions: Sequence[float] = (0.8, 0.1, 0.1),
                     seed: int = 0) -> list[ManifestItem]:
    """Random split stratified by label: each class is divided by ``fractions`` (see :func:`allocate`).

    Every class keeps at least one clip in train. Items without a label are treated as one class.
    """
    fractions = check_fractions(fractions)
    _check_unique(items)
    return _with_splits(items, _stratified_assign(items, fractions, seed, "stratified"))


def _clips_per_speaker(items: Sequence[ManifestItem]) -> dict[str, int]:
    missing = [it.path for it in items if it.speaker is None]
    if missing:
        raise SplitError(f"{len(missing)} clip(s) have no speaker, e.g. {missing[0]}: a speaker-disjoint split "
                         "needs a speaker for every clip (check the speaker regex or the manifest)")
    return dict(sorted(Counter(str(it.speaker) for it in items).items()))


def _greedy_assignment(order: Sequence[str], sizes: Mapping[str, int], targets: Sequence[float]) -> list[list[str]]:
    """Give each speaker, in ``order``, to the split furthest below its target; then fill empty splits.

    A split with a zero target never gets a speaker. An empty split with a positive target takes the
    smallest speaker of the split that has the most speakers.
    """
    members: list[list[str]] = [[] for _ in targets]
    filled = [0] * len(targets)
    open_splits = [i for i, t in enumerate(targets) if t > 0]
    for speaker in order:
        best = max(open_splits, key=lambda i: (targets[i] - filled[i], -i))
        members[best].append(speaker)
        filled[best] += sizes[speaker]
    for i in open_splits:
        if not members[i]:
            donor = max(open_splits, key=lambda j: (len(members[j]), -j))
            smallest = min(members[donor], key=lambda s: (sizes[s], s))
            members[donor].remove(smallest)
            members[i].append(smallest)
    return members


def _assignment_error(members: Sequence[Sequence[str]], sizes: Mapping[str, int], targets: Sequence[float]) -> float:
    return float(sum(abs(sum(sizes[s] for s in group) - t) for group, t in zip(members, targets)))


def speaker_split(items: Sequence[ManifestItem], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0,
                  trials: int = 256) -> list[ManifestItem]:
    """Speaker-disjoint split: every speaker's clips go to one split.

    ``trials`` random speaker orders (drawn from ``seed``) are each assigned greedily (next speaker to the
    split furthest below its clip target); the assignment whose clip counts are closest to ``fractions``
    wins (the earliest on ties). Every split with a positive share gets at least one speaker.

    Raises:
        SplitError: a clip has no speaker, or there are fewer speakers than splits with a positive share.
    """
    fractions = check_fractions(fractions)
    _check_unique(items)
    sizes = _clips_per_speaker(items)
    n_needed = sum(f > 0 for f in fractions)
    if len(sizes) < n_needed:
        raise SplitError(f"a speaker-disjoint split into {n_needed} splits needs at least {n_needed} speakers, "
                         f"found {len(sizes)}: {sorted(sizes)}")
    total = sum(sizes.values())
    targets = [f * total for f in fractions]
    speakers = list(sizes)
    rng = _rng(seed, "speakers")
    best: list[list[str]] | None = None
    best_error = float("inf")
    for _ in range(max(1, trials)):
        members = _greedy_assignment([speakers[i] for i in rng.permutation(len(speakers))], sizes, targets)
        error = _assignment_error(members, sizes, targets)
        if error < best_error:
            best, best_error = members, error
    assert best is not None
    split_of_speaker = {s: name for name, group in zip(SPLITS, best) for s in group}
    return _with_splits(items, {Path(it.path): split_of_speaker[str(it.speaker)] for it in items})


def _check_speaker_lists(speakers: Mapping[str, Iterable[str]], known: set[str]) -> dict[str, str]:
    """Validate ``{split: [speakers]}`` and invert it to speaker -> split."""
    split_of: dict[str, str] = {}
    for split, names in speakers.items():
        if split not in SPLITS:
            raise SplitError(f"speakers: split {split!r} is not one of {SPLITS}")
        if isinstance(names, str):
            raise SplitError(f"speakers[{split!r}]: give a list of speaker ids, not the string {names!r}")
        for name in names:
            if name in split_of and split_of[name] != split:
                raise SplitError(f"speakers: {name!r} is listed for both {split_of[name]!r} and {split!r}")
            split_of[name] = split
    unknown = sorted(set(split_of) - known)
    if unknown:
        raise SplitError(f"speakers: {unknown} have no clips (known speakers: {sorted(known)})")
    if "train" not in split_of.values():
        raise SplitError("speakers: no training speakers given")
    return split_of


def explicit_speaker_split(items: Sequence[ManifestItem], speakers: Mapping[str, Iterable[str]],
                           val_fraction: float = 0.1, seed: int = 0,
                           drop_unlisted: bool = False) -> list[ManifestItem]:
    """Split by given speaker lists, e.g. ``{"train": [...], "test": [...]}``.

    Validation is ``val_fraction`` of the training speakers' clips, carved out per label (stratified).
    Alternatively give ``"val"`` speakers explicitly, with ``val_fraction=0``.

    Args:
        drop_unlisted: leave out clips of speakers in no list (default: refuse them, naming the speakers).
    """
    _check_unique(items)
    if not 0.0 <= val_fraction < 1.0:
        raise SplitError(f"val_fraction: {val_fraction} must be in [0, 1)")
    if "val" in speakers and val_fraction > 0:
        raise SplitError("give either 'val' speakers or val_fraction > 0, not both")
    split_of_speaker = _check_speaker_lists(speakers, set(_clips_per_speaker(items)))
    unlisted = sorted({str(it.speaker) for it in items} - set(split_of_speaker))
    if unlisted and not drop_unlisted:
        raise SplitError(f"speakers {unlisted} are in no split list: list them, or pass drop_unlisted=True")
    listed = [it for it in items if it.speaker in split_of_speaker]
    split_of = {Path(it.path): split_of_speaker[str(it.speaker)] for it in listed}
    train = [it for it in listed if split_of[Path(it.path)] == "train"]
    split_of.update(_stratified_assign(train, (1.0 - val_fraction, val_fraction, 0.0), seed, "val"))
    return _with_splits(items, split_of)


# ------------------------------------------------------------------------------------------------- outputs

@dataclass(frozen=True)
class SplitOutputs:
    """Files written by :func:`write_split_outputs`."""

    manifest: Path  # our manifest: every item with its train/val/test split
    reference_bin: Path  # reference [X_train, X_test]
    reference_test: str  # which of our splits is X_test ("val" or "test")


def reference_splits(items: Sequence[ManifestItem], by_class: bool,
                     reference_test: str = "val") -> tuple[Split, Split]:
    """``(X_train, X_test)`` for the reference format: our train split, and our ``reference_test`` split.

    Lists of paths, or ``{label: [paths]}`` when ``by_class``. See the module docstring for why X_test is
    our val split by default.
    """
    if reference_test not in REFERENCE_TEST_CHOICES:
        raise SplitError(f"reference_test: {reference_test!r} is not one of {REFERENCE_TEST_CHOICES}")
    unsplit = [it.path for it in items if it.split is None]
    if unsplit:
        raise SplitError(f"{len(unsplit)} item(s) have no split, e.g. {unsplit[0]}: split the items first")
    train = [it for it in items if it.split == "train"]
    test = [it for it in items if it.split == reference_test]
    if not train:
        raise SplitError("no items in the train split: the reference X_train would be empty")
    if not test:
        other = "test" if reference_test == "val" else "val"
        raise SplitError(f"no items in the {reference_test} split, so the reference X_test would be empty: "
                         f"give that split a share, or use reference_test={other!r}")
    return split_from_items(train, by_class), split_from_items(test, by_class)


def write_split_outputs(items: Sequence[ManifestItem], out_dir: str | os.PathLike, name: str = "dataset", *,
                        manifest_name: str = "manifest.json", by_class: bool = False,
                        reference_test: str = "val") -> SplitOutputs:

    """Write ``out_dir/manifest_name`` (JSON or CSV by suffix) and the reference ``out_dir/{name}.bin``.

    Both files are written atomically; everything is validated before either is written.

    Args:
        by_class: write ``{label: [paths]}`` splits (for the reference ``is_dict`` mode) instead of lists.
        reference_test: which of our splits becomes the reference ``X_test``: ``"val"`` (default, keeps test
            clips out of the reference trainer's model selection) or ``"test"``.
    """
    out = Path(out_dir)
    manifest = out / manifest_name
    if manifest.suffix.lower() not in (".json", ".csv"):
        raise SplitError(f"manifest_name: {manifest_name!r} must end in .json or .csv")
    train, test = reference_splits(items, by_class, reference_test)
    write_manifest(items, manifest)
    reference = write_reference_bin(train, test, out / f"{name}.bin")
    return SplitOutputs(manifest, reference, reference_test)
