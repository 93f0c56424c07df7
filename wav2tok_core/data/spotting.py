"""Spotting data: labelled clips concatenated, with short silences, into long recordings.

Two builders, both with ground-truth spans in seconds:

* :func:`make_spotting_set`: ``n_recordings`` recordings, each of ``per_recording`` clips of *distinct*
  labels drawn at random (with replacement across recordings), so a query occurs at most once per recording.
* :func:`make_spotting_task`: the spoken-term-detection protocol of ``wav2tok evaluate --task spotting``.
  Per speaker, ``queries_per_label`` clips of each label become queries and are never placed in a
  recording; the speaker's other clips, shuffled, make recordings of ``clips_per_recording`` clips each
  (labels repeat), optionally with white noise at ``noise_snr_db``. A query searches the recordings of the
  other speakers (``query_speakers="other"``, cross-speaker), of its own speaker (``"same"``), or all. Items
  with a ``meta["role"]`` keep it: ``"query"`` clips are only ever queries (the built-in melody set's hums),
  ``"target"`` clips only ever go into recordings (its played tunes).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from ..audio.io import load_audio, load_clips
from ..errors import ConfigError
from .manifest import ManifestItem

QUERY_SPEAKERS = ("other", "same", "all")


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


def _load_labelled(items: Sequence[ManifestItem], sr: int) -> tuple[list[tuple[ManifestItem, np.ndarray]],
                                                                   list[dict[str, str]]]:
    """Read every labelled item at ``sr``: the ``(item, wave (N,))`` pairs in input order, and the skipped items
    (unreadable, or without a label) as ``{"path", "reason"}``."""
    skipped = [{"path": str(it.path), "reason": f"{it.path}: has no label"} for it in items if it.label is None]
    kept, waves, failures = load_clips([it for it in items if it.label is not None],
                                       lambda item: load_audio(item.path, sr), lambda item: str(item.path))
    return [(item, wave.numpy()) for item, wave in zip(kept, waves)], skipped + [f.to_dict() for f in failures]


def _assemble(rid: str, clips: Sequence[tuple[ManifestItem, np.ndarray]], rng: np.random.Generator, sr: int,
              gap_s: tuple[float, float]) -> tuple[np.ndarray, list[Segment]]:
    """One recording: silence, clip, silence, clip, ..., silence (silences uniform in ``gap_s`` seconds);
    its waveform ``(N,)`` float32 and where each clip sits."""
    parts, segments, offset = [], [], 0
    for item, wave in clips:
        gap = np.zeros(round(rng.uniform(*gap_s) * sr), dtype=np.float32)
        parts += [gap, wave]
        offset += gap.size
        segments.append(Segment(rid, offset / sr, (offset + wave.size) / sr, str(item.label), str(item.path)))
        offset += wave.size
    parts.append(np.zeros(round(rng.uniform(*gap_s) * sr), dtype=np.float32))
    return np.concatenate(parts).astype(np.float32), segments


def _check_gaps(gap_s: tuple[float, float]) -> None:
    if not 0 <= gap_s[0] <= gap_s[1]:
        raise ConfigError(f"gap_s must be (low, high) with 0 <= low <= high, got {gap_s}")


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
    _check_gaps(gap_s)
    loaded, skipped = _load_labelled(items, sr)
    by_label: dict[str, list[tuple[ManifestItem, np.ndarray]]] = {}
    for item, wave in loaded:
        by_label.setdefault(str(item.label), []).append((item, wave))
    labels = sorted(by_label)
    if len(labels) < per_recording:
        raise ValueError(f"{per_recording} clips of distinct labels per recording, but only {len(labels)} usable "
                         "labels")
    rng = np.random.default_rng(seed)
    recordings, segments = {}, []
    for r in range(n_recordings):
        rid = f"rec{r:03d}"
        clips = [by_label[label][rng.integers(len(by_label[label]))]
                 for label in rng.choice(labels, per_recording, replace=False)]
        recordings[rid], placed = _assemble(rid, clips, rng, sr, gap_s)
        segments += placed
    return SpottingSet(sr, recordings, segments, skipped)


@dataclass(frozen=True)
class SpottingTaskConfig:
    """How :func:`make_spotting_task` builds spoken-term-detection data from a labelled split."""

    clips_per_recording: int = 10
    queries_per_label: int = 2  # per speaker and label; query clips are never placed in a recording
    gap_s: tuple[float, float] = (0.2, 0.6)  # silence before, between and after clips, uniform in seconds
    noise_snr_db: float | None = None  # white noise at this signal-to-noise ratio over the clips; None = none
    query_speakers: str = "other"  # a query searches recordings of: other speakers, the same speaker, or all
    seed: int = 0

    def __post_init__(self) -> None:
        if self.clips_per_recording < 1 or self.queries_per_label < 1:
            raise ConfigError("clips_per_recording and queries_per_label must be >= 1")
        if self.query_speakers not in QUERY_SPEAKERS:
            raise ConfigError(f"query_speakers must be one of {QUERY_SPEAKERS}, got {self.query_speakers!r}")
        _check_gaps(self.gap_s)


@dataclass
class SpottingTask:
    """Queries (id -> clip path), the recordings they are searched in, and which recordings each searches."""

    recordings: SpottingSet
    queries: dict[str, Path]
    query_labels: dict[str, str]
    searched: dict[str, list[str]]  # query id -> recording ids it is searched in
    speakers: dict[str, str | None]  # query and recording ids -> speaker

    def truths(self) -> list[TrueSpan]:
        """Every occurrence of a query's label in a recording the query is searched in."""
        return [t for t in self.recordings.truths(self.query_labels) if t.recording_id in self.searched[t.query_id]]

    def searched_seconds(self) -> dict[str, float]:
        """Query id -> seconds of audio it is searched in."""
        duration = {rid: wave.size / self.recordings.sr for rid, wave in self.recordings.recordings.items()}
        return {qid: sum(duration[rid] for rid in rids) for qid, rids in self.searched.items()}


def _add_noise(wave: np.ndarray, segments: Sequence[Segment], snr_db: float, rng: np.random.Generator,
               sr: int) -> np.ndarray:
    """``wave`` plus white Gaussian noise whose power is the clips' mean power divided by ``10 ** (snr_db / 10)``."""
    speech = np.concatenate([wave[round(s.start_s * sr):round(s.end_s * sr)] for s in segments])
    power = float(np.mean(speech.astype(np.float64) ** 2))
    noise = rng.standard_normal(wave.size) * np.sqrt(power / 10 ** (snr_db / 10))
    return (wave + noise).astype(np.float32)


def make_spotting_task(items: Sequence[ManifestItem], config: SpottingTaskConfig = SpottingTaskConfig(),
                       sr: int = 16000) -> SpottingTask:
    """Spoken-term-detection data from labelled clips (see the module docstring).

    Recording ids are ``<speaker>-<k>`` (``rec-<k>`` when items carry no speaker); query ids are the clip
    paths. Unreadable and unlabelled items are skipped and listed in ``task.recordings.skipped``.

    Raises:
        ConfigError: no query has a recording to search (e.g. cross-speaker with a single speaker).
    """
    loaded, skipped = _load_labelled(items, sr)
    rng = np.random.default_rng(config.seed)
    noise_rng = np.random.default_rng((config.seed, 1))  # its own stream: noise does not move the clips
    by_speaker: dict[str | None, list[tuple[ManifestItem, np.ndarray]]] = {}
    for item, wave in loaded:
        by_speaker.setdefault(item.speaker, []).append((item, wave))
    queries, labels, speakers, recordings, segments = {}, {}, {}, {}, []
    for speaker in sorted(by_speaker, key=str):
        clips = [by_speaker[speaker][i] for i in rng.permutation(len(by_speaker[speaker]))]
        taken: dict[str, int] = {}
        pool = []
        for item, wave in clips:
            role = item.meta.get("role")
            if role != "target" and taken.get(str(item.label), 0) < config.queries_per_label:
                taken[str(item.label)] = taken.get(str(item.label), 0) + 1
                qid = str(item.path)
                queries[qid], labels[qid], speakers[qid] = item.path, str(item.label), speaker
            elif role != "query":
                pool.append((item, wave))
        for k in range(0, len(pool), config.clips_per_recording):
            rid = f"{speaker if speaker is not None else 'rec'}-{k // config.clips_per_recording:03d}"
            wave, placed = _assemble(rid, pool[k:k + config.clips_per_recording], rng, sr, config.gap_s)
            if config.noise_snr_db is not None:
                wave = _add_noise(wave, placed, config.noise_snr_db, noise_rng, sr)
            recordings[rid], speakers[rid] = wave, speaker
            segments += placed
    searched = {qid: [rid for rid in recordings if _searches(config.query_speakers, speakers[qid], speakers[rid])]
                for qid in queries}
    if not any(searched.values()):
        raise ConfigError(f"no query has a recording to search (query_speakers={config.query_speakers!r}, "
                          f"{len(by_speaker)} speaker(s), {len(recordings)} recording(s))")
    return SpottingTask(SpottingSet(sr, recordings, segments, skipped), queries, labels, searched, speakers)


def _searches(rule: str, query_speaker: str | None, recording_speaker: str | None) -> bool:
    """Whether a query of ``query_speaker`` is searched in a recording of ``recording_speaker`` under ``rule``."""
    if rule == "all":
        return True
    same = query_speaker is not None and query_speaker == recording_speaker
    return same if rule == "same" else not same and query_speaker is not None and recording_speaker is not None
