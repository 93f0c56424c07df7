"""Synthetic spotting data: labelled clips concatenated, with short silences, into long recordings.

Each recording holds ``per_recording`` clips of *distinct* labels, so a query (a clip of some label) occurs
at most once per recording and a single best placement per recording can reach full recall. Clips are
drawn at random (with replacement across recordings); the ground-truth spans are in seconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from ..audio.io import load_audio, load_clips
from .manifest import ManifestItem


class TrueSpan(NamedTuple):
    """A ground-truth occurrence of ``query_id`` in ``recording_id`` over ``[start, end)``."""

    query_id: str
    recording_id: str
    start: float
    end: float


@dataclass(frozen=True)
class Segment:
    """Where a clip sits in a recording: ``[start_s, end_s)``."""

    recording_id: str
    start_s: float
    end_s: float
    label: str
    path: str


@dataclass
class SpottingSet:
    """Recordings (id -> waveform ``(N,)`` float32 at ``sr``), the clips placed in them, and skipped items."""

    sr: int
    recordings: dict[str, np.ndarray]
    segments: list[Segment]
    skipped: list[dict[str, str]] = field(default_factory=list)  # [{"path", "reason"}]

    def truths(self, query_labels: Mapping[str, str]) -> list[TrueSpan]:
        """Ground truth for queries (query id -> label): every segment of a query's label is an occurrence of it."""
        return [TrueSpan(qid, seg.recording_id, seg.start_s, seg.end_s)
                for qid, label in query_labels.items() for seg in self.segments if seg.label == label]


def make_spotting_set(
    items: Sequence[ManifestItem],
    n_recordings: int,
    per_recording: int,
    seed: int = 0,
    sr: int = 16000,
    gap_s: tuple[float, float] = (0.2, 0.6),
) -> SpottingSet:
    """Build ``n_recordings`` recordings ``rec000, rec001, ...`` from labelled ``items``.

    Every recording is: silence, clip, silence, clip, ..., silence, with silences drawn uniformly from
    ``gap_s`` seconds and ``per_recording`` clips of distinct labels. Every item is read first;
    unreadable ones and items without a label are skipped and listed.

    Raises:
        ValueError: fewer usable labels than ``per_recording``, or non-positive counts.
    """
    if n_recordings < 1 or per_recording < 1:
        raise ValueError("n_recordings and per_recording must be >= 1")
    if not 0 <= gap_s[0] <= gap_s[1]:
        raise ValueError(f"gap_s must be (low, high) with 0 <= low <= high, got {gap_s}")
    skipped = [{"path": str(it.path), "reason": f"{it.path}: has no label"} for it in items if it.label is None]
    kept, waves, failures = load_clips([it for it in items if it.label is not None],
                                       lambda item: load_audio(item.path, sr), lambda item: str(item.path))
    skipped += [f.to_dict() for f in failures]
    by_label: dict[str, list[tuple[ManifestItem, np.ndarray]]] = {}
    for item, wave in zip(kept, waves):
        by_label.setdefault(item.label, []).append((item, wave.numpy()))
    labels = sorted(by_label)
    if len(labels) < per_recording:
        raise ValueError(f"{per_recording} clips of distinct labels per recording, but only {len(labels)} usable "
                         "labels")
    rng = np.random.default_rng(seed)
    recordings, segments = {}, []
    for r in range(n_recordings):
        rid = f"rec{r:03d}"
        parts, offset = [], 0
        for label in rng.choice(labels, per_recording, replace=False):
            item, wave = by_label[label][rng.integers(len(by_label[label]))]
            gap = np.zeros(round(rng.uniform(*gap_s) * sr), dtype=np.float32)
            parts += [gap, wave]
            offset += gap.size
            segments.append(Segment(rid, offset / sr, (offset + wave.size) / sr, str(label), str(item.path)))
            offset += wave.size
        parts.append(np.zeros(round(rng.uniform(*gap_s) * sr), dtype=np.float32))
        recordings[rid] = np.concatenate(parts).astype(np.float32)
    return SpottingSet(sr, recordings, segments, skipped)
