"""Built-in query-by-humming set: real folk tunes as instrument targets, synthetic hummed queries of parts of them.

Source of the melodies
----------------------
Tunes come from *Ryan's Mammoth Collection* (William Bradbury Ryan, Boston, 1883: reels, jigs, hornpipes and
other dance tunes), as ABC encodings in the music21 corpus (``music21/corpus/ryansMammoth``: 1059 files, one tune
each), so nothing is downloaded. Licence position, from the files shipped in the installed package:

* ``music21/corpus/license.txt`` says the corpus pieces are, to the music21 authors' knowledge, out of
  copyright in the US or licensed for use, and that some repertories carry extra restrictions stated in their
  own folders. The ``ryansMammoth`` folder has no licence file or restriction (unlike ``essenFolksong``, whose
  licence allows non-commercial use only, which is why we did not use it);
* the package README (``music21-*.dist-info/METADATA``, "License Coverage") says the corpus music is believed to
  be public domain in the US, EU and Canada and the encodings are public domain or used by permission;
* the music itself was printed in 1883, so it is in the public domain.

We never copy the ABC files: at build time we read pitches and rhythms from the installed corpus and synthesise
our own audio. As the melodies are public domain and the folder carries no extra restriction, we see nothing
that limits using or sharing the generated audio; crediting Ryan's collection and the volunteer ABC
transcribers named in each file's ``Z:`` field is good manners.

What is generated
-----------------
For each tune (= class): one *target*, a phrase of a few seconds rendered by a plucked instrument at written
pitch (``synth.render_target``), and several *queries*, synthetic hummed/sung renditions of a random
contiguous part of that phrase by one of several synthetic singers (``synth.render_hum``), transposed, sung
faster or slower, with timing jitter, vibrato, drift, glides, breath noise and level changes. Tunes, not
clips, are split into train/val/test, so retrieval is tested on tunes never seen in training. Everything is
deterministic given ``MelodySetConfig`` and the installed corpus (tune ids are indices into its sorted file
list).

Output folder layout: ``clips/<tune>_target.wav`` and ``clips/<tune>_qNN.wav`` (16-bit PCM, mono),
``manifest.json`` (``wav2tok_core.manifest``), ``tune_notes.json`` (cache of notes read from the corpus) and
``params.json``, written last: it marks the folder complete for one configuration. The builder owns the
``clips`` folder: on regeneration its ``.wav`` files are deleted.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ..errors import ConfigError
from ..runtime import atomic_write, write_json
from .builds import Build
from .manifest import ManifestItem
from .synth import SINGERS, Notes, render_hum, render_target

CORPUS = "ryansMammoth"
TUNE_PREFIX = "ryans"
# Bump when a code change alters the generated audio or manifest, so existing folders are regenerated.
GENERATOR_VERSION = 1
# Bump when the note extraction changes, so the tune_notes.json cache is discarded.
EXTRACT_VERSION = 1

NOTE_CACHE_NAME = "tune_notes.json"
CLIPS_DIR = "clips"

_PHRASE_STREAM, _SINGER_STREAM, _QUERY_STREAM = 0, 1, 2  # independent random streams per tune


@dataclass
class MelodySetConfig:
    """Everything that determines the generated set; its digest keys the on-disk cache."""

    n_tunes: int = 120  # number of tunes (classes); one target phrase each
    queries_per_tune: int = 8  # hummed queries per tune
    sr: int = 16000  # sample rate of every clip (Hz)
    seed: int = 0  # picks the tunes, phrases, spans, singers and all synthesis randomness
    phrase_s: tuple[float, float] = (3.0, 5.0)  # target phrase duration range (s)
    min_phrase_notes: int = 8  # fewest notes in a target phrase
    note_s: float = 0.3  # tempo: each tune is played so that its median note lasts this long (s)
    span_fraction: tuple[float, float] = (0.5, 1.0)  # share of the phrase's notes a query sings
    transpose_st: tuple[float, float] = (-5.0, 5.0)  # random key change of a query (semitones, continuous),
    # on top of whole octaves that bring the tune into the singer's register
    tempo: tuple[float, float] = (0.8, 1.25)  # query tempo factor range (>1 = faster), drawn log-uniformly
    duration_jitter: float = 0.08  # sigma of the per-note log-normal duration factor of queries
    n_singers: int = 8  # how many of the synthetic singer presets to use (1..8)
    split_fractions: tuple[float, float, float] = (0.6, 0.1, 0.3)  # train / val / test share of tunes

    def validate(self) -> None:
        """Raise ConfigError on inconsistent settings."""
        checks = [
            (self.n_tunes >= 1, "n_tunes must be >= 1"),
            (self.queries_per_tune >= 1, "queries_per_tune must be >= 1"),
            (self.sr >= 8000, "sr must be >= 8000"),
            (0 < self.phrase_s[0] <= self.phrase_s[1], "phrase_s must be (lo, hi) with 0 < lo <= hi"),
            (self.min_phrase_notes >= 2, "min_phrase_notes must be >= 2"),
            (self.note_s > 0, "note_s must be > 0"),
            (0 < self.span_fraction[0] <= self.span_fraction[1] <= 1, "span_fraction must be in (0, 1]"),
            (self.transpose_st[0] <= self.transpose_st[1], "transpose_st must be (lo, hi)"),
            (0 < self.tempo[0] <= self.tempo[1], "tempo must be (lo, hi) with 0 < lo <= hi"),
            (self.duration_jitter >= 0, "duration_jitter must be >= 0"),
            (1 <= self.n_singers <= len(SINGERS), f"n_singers must be in 1..{len(SINGERS)}"),
            (len(self.split_fractions) == 3 and min(self.split_fractions) >= 0
             and abs(sum(self.split_fractions) - 1.0) < 1e-6, "split_fractions must be 3 shares summing to 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"MelodySetConfig: {message}")

    def digest(self) -> str:
        """Hex digest of the settings, the generator version and the music21 version (it ships the corpus)."""
        blob = json.dumps({"config": asdict(self), "generator": GENERATOR_VERSION, "music21": version("music21")},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class Tune:
    """A whole tune as a monophonic line: ``notes`` are (midi_pitch, dur_s), dur_s = onset-to-next-onset."""

    id: str  # e.g. "ryans_0123": index of the file in the sorted corpus folder
    title: str
    source: str  # corpus file name
    notes: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Phrase:
    """A contiguous run of a tune's notes."""

    start_s: float  # onset of the first note within the tune
    notes: tuple[tuple[float, float], ...]

    @property
    def dur_s(self) -> float:
        """Total duration of the notes (s)."""
        return float(sum(d for _, d in self.notes))


# ---------------------------------------------------------------------------------------------- corpus reading

def corpus_files() -> list[Path]:
    """ABC files of the collection in the installed music21 corpus, sorted by name."""
    from music21 import corpus

    folder = Path(corpus.__file__).parent / CORPUS
    files = sorted(folder.glob("*.abc"))
    if not files:
        raise FileNotFoundError(f"no ABC files in {folder}; is music21 installed with its corpus?")
    return files


def extract_line(path: Path) -> dict[str, Any] | None:
    """Read one ABC tune: {"title": str, "notes": [[midi, ioi_quarters], ...]} or None if unreadable.

    The top pitch of chords is kept; grace notes and chord symbols are dropped; tied notes are merged; a rest
    lengthens the preceding note (durations are onset-to-onset).
    """
    from music21 import converter, harmony, stream

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = converter.parse(path, format="abc", forceSource=True)
    except Exception:  # music21 raises many exception types on odd ABC; such tunes are just skipped
        return None
    if isinstance(score, stream.Opus):
        score = score.scores[0]
    part = score.parts[0] if score.parts else score
    onsets: dict[float, int] = {}
    end = 0.0
    for el in part.flatten().notes:
        length = float(el.quarterLength)
        if isinstance(el, harmony.ChordSymbol) or el.duration.isGrace or length <= 0:
            continue
        offset = float(el.offset)
        end = max(end, offset + length)
        if el.tie is not None and el.tie.type in ("stop", "continue"):
            continue
        onsets[offset] = max(onsets.get(offset, 0), max(p.midi for p in el.pitches))
    if len(onsets) < 2:
        return None
    times = sorted(onsets)
    iois = np.diff(np.append(times, end))
    title = (score.metadata.title if score.metadata is not None else None) or path.stem
    return {"title": title, "notes": [[onsets[t], float(d)] for t, d in zip(times, iois)]}


def _read_note_cache(path: Path | None) -> dict[str, Any]:
    """Cached extractions by file name (None entries: unreadable files); empty if absent or stale."""
    if path is None or not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # unreadable, not text or not JSON: extract again
        return {}
    if not isinstance(doc, dict):
        return {}
    if doc.get("extract_version") != EXTRACT_VERSION or doc.get("music21") != version("music21"):
        return {}
    return dict(doc.get("tunes", {}))


def _to_seconds(raw: list[list[float]], note_s: float) -> tuple[tuple[float, float], ...]:
    """Quarter-length notes to (midi, seconds), at the tempo that makes the median note last ``note_s``."""
    quarters = np.array([d for _, d in raw], dtype=np.float64)
    sec_per_quarter = note_s / float(np.median(quarters))
    return tuple((float(m), float(d * sec_per_quarter)) for m, d in raw)


def load_tunes(n: int, seed: int, *, note_s: float = 0.3, phrase_s: tuple[float, float] = (3.0, 5.0),
               min_notes: int = 8, cache_file: Path | None = None) -> list[Tune]:
    """Pick ``n`` tunes in a seeded random order, keeping only those that contain a usable phrase.

    Files are parsed lazily (about 35 ms each) and the extracted notes are cached in ``cache_file`` (JSON)
    if given. Raises ValueError if the collection has fewer than ``n`` usable tunes.
    """
    files = corpus_files()
    cache = _read_note_cache(cache_file)
    dirty = False
    tunes: list[Tune] = []
    for index in np.random.default_rng(seed).permutation(len(files)):
        if len(tunes) == n:
            break
        path = files[index]
        if path.name not in cache:
            cache[path.name] = extract_line(path)
            dirty = True
        entry = cache[path.name]
        if entry is None:
            continue
        notes = _to_seconds(entry["notes"], note_s)
        if phrase_starts(notes, phrase_s, min_notes):
            tunes.append(Tune(f"{TUNE_PREFIX}_{index:04d}", entry["title"], path.name, notes))
    if dirty and cache_file is not None:
        write_json(cache_file, {"extract_version": EXTRACT_VERSION, "music21": version("music21"), "tunes": cache})
    if len(tunes) < n:
        raise ConfigError(f"n_tunes: {n} asked, but only {len(tunes)} tunes of {CORPUS} fit phrase_s={phrase_s}, "
                          f"min_notes={min_notes}")
    return tunes


# ----------------------------------------------------------------------------------------- phrases and spans

def _phrase_ends(onsets: np.ndarray, start: int, phrase_s: tuple[float, float], min_notes: int) -> np.ndarray:
    """Valid exclusive end indices for a phrase starting at note ``start``; ``onsets`` (K+1,) includes the end."""
    ends = np.arange(start + min_notes, len(onsets))
    lengths = onsets[ends] - onsets[start]
    return ends[(lengths >= phrase_s[0]) & (lengths <= phrase_s[1])]


def phrase_starts(notes: Notes, phrase_s: tuple[float, float], min_notes: int) -> list[int]:
    """Note indices at which a phrase of ``min_notes``+ notes lasting within ``phrase_s`` can start."""
    onsets = np.concatenate([[0.0], np.cumsum([d for _, d in notes])])
    return [i for i in range(len(notes)) if len(_phrase_ends(onsets, i, phrase_s, min_notes))]


def cut_phrase(tune: Tune, rng: np.random.Generator, phrase_s: tuple[float, float], min_notes: int) -> Phrase:
    """A random phrase of the tune: random valid start, then a random valid length."""
    onsets = np.concatenate([[0.0], np.cumsum([d for _, d in tune.notes])])
    starts = phrase_starts(tune.notes, phrase_s, min_notes)
    if not starts:
        raise ValueError(f"{tune.id} has no phrase within {phrase_s} s with >= {min_notes} notes")
    start = int(rng.choice(starts))
    end = int(rng.choice(_phrase_ends(onsets, start, phrase_s, min_notes)))
    return Phrase(float(onsets[start]), tune.notes[start:end])


def pick_span(n_notes: int, rng: np.random.Generator, fraction: tuple[float, float]) -> tuple[int, int]:
    """A random contiguous [first, stop) run covering ``fraction`` of ``n_notes`` notes (at least 2 notes)."""
    count = int(np.clip(np.ceil(rng.uniform(*fraction) * n_notes), min(2, n_notes), n_notes))
    first = int(rng.integers(0, n_notes - count + 1))
    return first, first + count


def assign_splits(n: int, fractions: tuple[float, float, float]) -> list[str]:
    """Split labels for ``n`` tunes in order: train first, then val, then test.

    A split with a positive share gets at least one tune while there are enough tunes (train is filled last).
    """
    _, val_share, test_share = fractions
    n_test = min(n, max(int(test_share > 0), round(test_share * n)))
    n_val = min(n - n_test, max(int(val_share > 0), round(val_share * n)))
    n_train = n - n_val - n_test
    return ["train"] * n_train + ["val"] * n_val + ["test"] * n_test


# ------------------------------------------------------------------------------------------------- rendering

def _rng(seed: int, tune: Tune, stream: int) -> np.random.Generator:
    """Independent generator for one tune and purpose: results do not depend on generation order."""
    return np.random.default_rng([seed, int(tune.id.rsplit("_", 1)[1]), stream])


def _write_wav(path: Path, audio: np.ndarray, sr: int) -> None:
    """Write (N,) float audio as 16-bit PCM mono WAV, atomically."""
    with atomic_write(path, "wb") as fh:
        sf.write(fh, audio, sr, format="WAV", subtype="PCM_16")


def _render_tune(tune: Tune, split: str, cfg: MelodySetConfig, clips: Path) -> list[ManifestItem]:
    """Write the target and the queries of one tune; return their manifest items (target first)."""
    phrase = cut_phrase(tune, _rng(cfg.seed, tune, _PHRASE_STREAM), cfg.phrase_s, cfg.min_phrase_notes)
    target_path = clips / f"{tune.id}_target.wav"
    _write_wav(target_path, render_target(phrase.notes, cfg.sr), cfg.sr)
    items = [ManifestItem(target_path, tune.id, "instrument", split, {
        "role": "target", "tune_title": tune.title, "source": f"{CORPUS}/{tune.source}", "transpose": 0.0,
        "tempo": 1.0, "start_s": 0.0, "dur_s": round(phrase.dur_s, 4), "singer": "instrument",
        "phrase_start_s": round(phrase.start_s, 4), "n_notes": len(phrase.notes)})]
    order = _rng(cfg.seed, tune, _SINGER_STREAM).permutation(cfg.n_singers)
    for q in range(cfg.queries_per_tune):
        singer = SINGERS[order[q % cfg.n_singers]]
        rng = _rng(cfg.seed, tune, _QUERY_STREAM + q)
        first, stop = pick_span(len(phrase.notes), rng, cfg.span_fraction)
        span = phrase.notes[first:stop]
        key_shift = rng.uniform(*cfg.transpose_st)
        octave = 12 * int(round((singer.centre_midi - np.median([m for m, _ in span]) - key_shift) / 12))
        tempo = float(np.exp(rng.uniform(*np.log(cfg.tempo))))
        hum = render_hum(span, cfg.sr, singer, rng, transpose_st=key_shift + octave, tempo=tempo,
                         duration_jitter=cfg.duration_jitter)
        path = clips / f"{tune.id}_q{q:02d}.wav"
        _write_wav(path, hum.audio, cfg.sr)
        items.append(ManifestItem(path, tune.id, singer.name, split, {
            "role": "query", "tune_title": tune.title, "source": f"{CORPUS}/{tune.source}",
            "transpose": round(key_shift + octave, 4), "key_shift": round(key_shift, 4), "octave_shift": octave,
            "tempo": round(tempo, 4), "start_s": round(sum(d for _, d in phrase.notes[:first]), 4),
            "dur_s": round(sum(d for _, d in span), 4), "singer": singer.name, "syllable": hum.syllable,
            "lead_s": round(hum.lead_s, 4), "sung_s": round(hum.sung_s, 4), "n_notes": len(span)}))
    return items


# ------------------------------------------------------------------------------------------------- the build

def build_melody_set(out_dir: str | os.PathLike, config: MelodySetConfig | None = None,
                     progress: bool = False) -> Path:
    """Generate the melody set into ``out_dir`` (or reuse it) and return the path of its ``manifest.json``.

    A folder whose ``params.json`` matches ``config`` is returned at once. Otherwise the completion marker is
    removed first, old clips are deleted, everything is regenerated and ``params.json`` is written last, so an
    interrupted build is never mistaken for a complete one. ``progress`` prints a line per 10 % to stderr.
    """
    cfg = config if config is not None else MelodySetConfig()
    build = Build.of(out_dir, cfg)
    if build.done():
        return build.manifest
    build.start()
    out = build.out
    clips = out / CLIPS_DIR
    clips.mkdir(parents=True, exist_ok=True)
    for old in [*clips.glob("*.wav"), *clips.glob(".*.tmp")]:  # clips and leftovers of killed writes
        old.unlink()
    tunes = load_tunes(cfg.n_tunes, cfg.seed, note_s=cfg.note_s, phrase_s=cfg.phrase_s,
                       min_notes=cfg.min_phrase_notes, cache_file=out / NOTE_CACHE_NAME)
    items: list[ManifestItem] = []
    for i, (tune, split) in enumerate(zip(tunes, assign_splits(len(tunes), cfg.split_fractions))):
        items += _render_tune(tune, split, cfg, clips)
        if progress and (i + 1) % max(1, len(tunes) // 10) == 0:
            print(f"melodies: {i + 1}/{len(tunes)} tunes", file=sys.stderr, flush=True)
    return build.finish(items, generator_version=GENERATOR_VERSION, config=asdict(cfg), n_clips=len(items))
