"""The first thing to check about a dataset: counts per class, speaker and split, durations, unreadable files.

Every file's header is read with ``soundfile.info``; a file is decoded only when its header does not give a
usable length. A file that cannot be read is listed with the reason, never silently dropped, and never
stops the summary. Counts are over all manifest items; durations are over the readable ones.
"""
from __future__ import annotations

import os
import re
import statistics
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import soundfile as sf
from tqdm.auto import tqdm

from ..errors import AudioError
from .manifest import SPLITS, ManifestItem

NONE = "(none)"  # key for a missing label, speaker or split
ALL = "all"  # key of the whole-dataset duration statistics
_UNKNOWN_FRAMES = 2**62  # libsndfile reports a huge count when a header does not give the length


@dataclass(frozen=True)
class Unreadable:
    """A file that could not be read, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class DurationStats:
    """Clip durations (seconds) of one split, or of the whole dataset."""

    n: int
    min_s: float
    median_s: float
    mean_s: float
    max_s: float
    total_s: float

    @classmethod
    def of(cls, durations: Sequence[float]) -> "DurationStats":
        """Statistics of a non-empty list of durations."""
        return cls(len(durations), min(durations), statistics.median(durations), statistics.fmean(durations),
                   max(durations), float(sum(durations)))


@dataclass
class DatasetSummary:
    """Counts, durations and unreadable files of a list of manifest items. ``durations`` is keyed by split
    name and ``"all"``; missing labels, speakers or splits are counted under ``"(none)"``."""

    n_items: int
    per_class: dict[str, int]
    per_speaker: dict[str, int]
    per_split: dict[str, int]
    class_by_split: dict[str, dict[str, int]]  # class -> split -> clips
    speaker_by_split: dict[str, dict[str, int]]  # speaker -> split -> clips
    durations: dict[str, DurationStats]
    sample_rates: dict[str, int]  # sample rate in Hz (as text) -> readable clips
    unreadable: list[Unreadable]

    @property
    def total_hours(self) -> float:
        """Hours of readable audio."""
        stats = self.durations.get(ALL)
        return stats.total_s / 3600.0 if stats else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (adds ``total_hours`` and ``n_unreadable``)."""
        doc = asdict(self)
        doc["total_hours"] = self.total_hours
        doc["n_unreadable"] = len(self.unreadable)
        return doc

    def to_markdown(self) -> str:
        """Human-readable report: overview, per-split table, class x split, speaker x split, unreadable files."""
        rates = ", ".join(f"{sr} Hz ({n})" for sr, n in self.sample_rates.items()) or "none readable"
        lines = ["## Dataset summary", "",
                 f"{self.n_items} clips ({self.n_items - len(self.unreadable)} readable, {len(self.unreadable)} "
                 f"unreadable), {len(self.per_class)} classes, {len(self.per_speaker)} speakers, "
                 f"{self.total_hours:.3f} h of audio; sample rates: {rates}.", ""]
        lines += ["### Splits", "", *self._split_table(), ""]
        lines += ["### Clips per class and split", "", *_cross_table("class", self.class_by_split, self._splits()), ""]
        lines += ["### Clips per speaker and split", "",
                  *_cross_table("speaker", self.speaker_by_split, self._splits()), ""]
        lines += [f"### Unreadable files ({len(self.unreadable)})", ""]
        lines += [f"- `{u.path}`: {u.reason}" for u in self.unreadable] or ["none"]
        return "\n".join(lines) + "\n"

    def _splits(self) -> list[str]:
        return list(self.per_split)

    def _split_table(self) -> list[str]:
        rows = ["| split | clips | classes | speakers | min s | median s | mean s | max s | hours |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for split in [*self._splits(), ALL]:
            clips = self.n_items if split == ALL else self.per_split[split]
            classes = _present(self.class_by_split, split)
            speakers = _present(self.speaker_by_split, split)
            stats = self.durations.get(split)
            timing = (f"{stats.min_s:.2f} | {stats.median_s:.2f} | {stats.mean_s:.2f} | {stats.max_s:.2f} | "
                      f"{stats.total_s / 3600:.3f}") if stats else "- | - | - | - | 0"
            rows.append(f"| {split} | {clips} | {classes} | {speakers} | {timing} |")
        return rows


def _present(table: dict[str, dict[str, int]], split: str) -> int:
    """How many rows of ``table`` have clips in ``split`` (any split for ``"all"``)."""
    return sum(1 for counts in table.values() if (sum(counts.values()) if split == ALL else counts.get(split, 0)))


def _cross_table(name: str, table: dict[str, dict[str, int]], splits: list[str]) -> list[str]:
    rows = [f"| {name} | {' | '.join(splits)} | total |", "|---|" + "---:|" * (len(splits) + 1)]
    for key, counts in table.items():
        cells = " | ".join(str(counts.get(s, 0)) for s in splits)
        rows.append(f"| {key} | {cells} | {sum(counts.values())} |")
    return rows


def natural_key(text: str) -> list[Any]:
    """Sort key that orders embedded numbers by value ("2" before "10")."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part]


def probe_audio(path: str | os.PathLike) -> tuple[float, int]:
    """Duration (s) and sample rate of an audio file from its header; decoded only if the header has no length.

    Raises:
        AudioError: missing, empty, undecodable, or zero-length file (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: {'is a folder, not an audio file' if path.is_dir() else 'file does not exist'}")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes)")
    try:
        info = sf.info(str(path))
        frames = info.frames
        if not 0 < frames < _UNKNOWN_FRAMES:
            frames = len(sf.read(str(path), dtype="float32", always_2d=True)[0])
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(f"{path}: cannot be read as audio ({err})") from None
    if frames == 0:
        raise AudioError(f"{path}: has zero samples")
    return frames / info.samplerate, int(info.samplerate)


def _probe_reason(path: Path) -> tuple[float, int] | str:
    """``probe_audio`` result, or the reason the file is unusable (any error: one bad file never stops us)."""
    try:
        return probe_audio(path)
    except AudioError as err:
        return str(err)
    except Exception as err:  # noqa: BLE001 - batch job: report unexpected errors per file and go on
        return f"{path}: {type(err).__name__}: {err}"


def _sorted_counts(counter: Counter) -> dict[str, int]:
    return {k: counter[k] for k in sorted(counter, key=natural_key)}


def _cross(pairs: list[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """(row, split) pairs -> {row: {split: count}}, rows in natural order."""
    table: dict[str, Counter] = {}
    for row, split in pairs:
        table.setdefault(row, Counter())[split] += 1
    return {row: dict(table[row]) for row in sorted(table, key=natural_key)}


def _split_order(names: set[str]) -> list[str]:
    return [s for s in SPLITS if s in names] + sorted(names - set(SPLITS))


def summarize(items: Sequence[ManifestItem], progress: bool = False) -> DatasetSummary:
    """Summary of ``items``: counts, duration statistics per split, sample rates, unreadable files."""
    labels = [it.label or NONE for it in items]
    speakers = [it.speaker or NONE for it in items]
    splits = [it.split or NONE for it in items]
    by_split: dict[str, list[float]] = {}
    rates: Counter = Counter()
    unreadable: list[Unreadable] = []
    for it, split in tqdm(list(zip(items, splits)), desc="reading headers", disable=not progress):
        result = _probe_reason(Path(it.path))
        if isinstance(result, str):
            unreadable.append(Unreadable(str(it.path), result))
            continue
        by_split.setdefault(split, []).append(result[0])
        rates[str(result[1])] += 1
    order = _split_order(set(splits))
    durations = {s: DurationStats.of(by_split[s]) for s in order if s in by_split}
    if by_split:
        durations[ALL] = DurationStats.of([d for s in order for d in by_split.get(s, [])])
    split_counts = Counter(splits)
    return DatasetSummary(
        n_items=len(items), per_class=_sorted_counts(Counter(labels)), per_speaker=_sorted_counts(Counter(speakers)),
        per_split={s: split_counts[s] for s in order}, class_by_split=_cross(list(zip(labels, splits))),
        speaker_by_split=_cross(list(zip(speakers, splits))), durations=durations,
        sample_rates=_sorted_counts(rates), unreadable=unreadable)
