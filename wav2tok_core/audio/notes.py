"""Notes from an f0 track: the note-level representation of a melody (the ``notes-align`` baseline).

A hummed query and a played tune agree in their notes' intervals and relative durations, not in their
frames. :func:`segment_notes` turns a pitch track (MIDI numbers per frame, with voicing) into notes:
a voiced run is one note until its (median-smoothed) pitch stays more than ``split_semitones`` away from
the note's median pitch so far for ``split_frames`` frames, which starts the next note; notes shorter than
``min_note_s`` are dropped. :func:`note_intervals` gives what alignment compares: each note's interval from
the previous note (semitones) and the log2 ratio of its duration to the previous one's, so key and tempo
do not matter. :func:`interval_tokens` rounds the intervals to semitones: a fixed, untrained tokenizer
(``notes-tokens``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import median_filter


@dataclass(frozen=True)
class NoteConfig:
    """How a pitch track is cut into notes."""

    min_note_s: float = 0.10  # shorter notes are dropped (onset glitches, glides between notes); chosen on the
    #                           built-in melodies' training tunes: 0.08 let slowed hums' glides through as notes
    split_semitones: float = 0.7  # a new note starts when the pitch leaves the note's median by more than this ...
    split_frames: int = 3  # ... for this many frames in a row
    smooth_frames: int = 3  # median filter over the voiced pitch first


def note_runs(midi: np.ndarray, voiced: np.ndarray, frame_s: float, config: NoteConfig = NoteConfig()) -> np.ndarray:
    """Notes of a pitch track as frame runs.

    Args:
        midi: ``(T,)`` pitch in semitones (MIDI numbers) per frame; voiced: ``(T,)`` bool.
        frame_s: seconds per frame.

    Returns:
        ``(n, 3)`` float64: first frame, end frame (exclusive) and median pitch (semitones) of each note, in
        time order.
    """
    pitch = np.where(voiced, median_filter(np.asarray(midi, dtype=np.float64), size=config.smooth_frames), np.nan)
    runs: list[tuple[int, int, float]] = []  # (first frame, end frame, median pitch) of each note
    start, members, pending = None, [], []  # the open note's first frame and pitches; frames away from it
    for t, p in enumerate(pitch):
        if np.isnan(p):  # unvoiced: the open note ends
            if start is not None:
                runs.append((start, t, float(np.median(members + pending))))
            start, members, pending = None, [], []
        elif start is None:
            start, members = t, [p]
        elif abs(p - np.median(members)) > config.split_semitones:
            pending.append(p)
            if len(pending) == config.split_frames:  # the pitch moved on: a new note from where it left
                split = t - len(pending) + 1
                runs.append((start, split, float(np.median(members))))
                start, members, pending = split, pending, []
        else:  # back at the note's pitch: a wobble, not a new note
            members += pending + [p]
            pending = []
    if start is not None:
        runs.append((start, pitch.size, float(np.median(members + pending))))
    kept = [run for run in runs if (run[1] - run[0]) * frame_s >= config.min_note_s]
    return np.array(kept, dtype=np.float64).reshape(-1, 3)


def segment_notes(midi: np.ndarray, voiced: np.ndarray, frame_s: float,
                  config: NoteConfig = NoteConfig()) -> np.ndarray:
    """Notes of a pitch track (arguments as :func:`note_runs`) -> ``(n, 3)`` float64: onset (s), duration (s)
    and median pitch (semitones) of each note, in time order."""
    runs = note_runs(midi, voiced, frame_s, config)
    return np.stack([runs[:, 0] * frame_s, (runs[:, 1] - runs[:, 0]) * frame_s, runs[:, 2]], axis=1)


def note_intervals(notes: np.ndarray) -> np.ndarray:
    """``(n, 3)`` notes -> ``(max(n - 1, 1), 2)`` float32: interval from the previous note (semitones) and log2
    duration ratio to it; a single note gives one row of zeros, no note one row of NaN (matches nothing)."""
    if len(notes) < 2:
        return np.full((1, 2), 0.0 if len(notes) else np.nan, dtype=np.float32)
    return np.stack([np.diff(notes[:, 2]), np.diff(np.log2(notes[:, 1]))], axis=1).astype(np.float32)


def fold_octave(semitones: np.ndarray) -> np.ndarray:
    """Intervals folded into [-6, 6) semitones: an octave slip of the tracker changes nothing."""
    return np.remainder(semitones + 6, 12) - 6


def interval_tokens(notes: np.ndarray) -> list[int]:
    """``(n, 3)`` notes -> ``n - 1`` tokens in 0-11: each note's interval from the previous note, folded into an
    octave (:func:`fold_octave`) and rounded to the nearest semitone, + 6 (a rounded +6 is -6's token)."""
    steps = np.round(fold_octave(np.diff(notes[:, 2]))).astype(np.int64)
    return np.remainder(steps + 6, 12).tolist()
