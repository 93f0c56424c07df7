"""Audio synthesis for the built-in melody set: a plucked instrument for targets and synthetic "humming" for queries.

A melody is a sequence of notes ``(midi_pitch, dur_s)``: ``midi_pitch`` may be fractional, ``dur_s`` is the
time from this note's onset to the next one. All renderers are vectorised over samples (phase accumulation by
``cumsum`` of the instantaneous frequency, filters via ``scipy.signal``) and return float32 mono arrays.

The hummed voice is a source-filter model:

* pitch track (semitones, per sample): the notes with per-note intonation error, portamento between notes
  (one-pole glide), an onset "scoop" from below, delayed-onset vibrato, slow random drift and a little flutter;
* source: a Rosenberg-style glottal pulse (its time derivative), plus aspiration noise gated by the glottal cycle;
* filter: cascaded two-pole formant resonators for a vowel, cross-faded per note with a consonant
  ("m"/"n"/"l") or interrupted by a stop ("d") with a short noise burst;
* level: per-note accents, slow loudness changes, a background breath-noise floor and an inhalation before the
  first note.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import signal

Notes = Sequence[tuple[float, float]]
Formants = tuple[tuple[float, float], ...]  # ((centre_hz, bandwidth_hz), ...) for cascaded resonators

# Formants of an adult male voice; each singer scales the centre frequencies by its ``formant_scale``.
VOWEL_A: Formants = ((730.0, 90.0), (1090.0, 110.0), (2440.0, 170.0), (3400.0, 250.0))
VOWEL_U: Formants = ((320.0, 70.0), (870.0, 100.0), (2240.0, 170.0), (3300.0, 250.0))
LATERAL_L: Formants = ((360.0, 80.0), (1300.0, 150.0), (2700.0, 250.0), (3400.0, 300.0))
NASAL_M: Formants = ((260.0, 80.0), (1000.0, 250.0), (2200.0, 350.0), (3300.0, 400.0))


@dataclass(frozen=True)
class Syllable:
    """How each sung note is articulated.

    ``consonant`` formants are cross-faded into the ``vowel`` at every onset over ``consonant_s`` seconds;
    ``stop`` closes the voice just before an onset and releases it with a noise burst (as in "da").
    """

    name: str
    vowel: Formants
    consonant: Formants | None  # None: no voiced consonant
    consonant_s: float  # time constant of the consonant-to-vowel transition
    stop: bool  # voiced stop ("d") at every onset
    nasal: bool  # closed-mouth hum: extra low-pass on the output


SYLLABLES: dict[str, Syllable] = {
    "mm": Syllable("mm", NASAL_M, None, 0.0, stop=False, nasal=True),
    "na": Syllable("na", VOWEL_A, NASAL_M, 0.05, stop=False, nasal=False),
    "la": Syllable("la", VOWEL_A, LATERAL_L, 0.04, stop=False, nasal=False),
    "da": Syllable("da", VOWEL_A, None, 0.0, stop=True, nasal=False),
    "doo": Syllable("doo", VOWEL_U, None, 0.0, stop=True, nasal=False),
}


@dataclass(frozen=True)
class Singer:
    """Timbre and habits of one synthetic singer."""

    name: str
    centre_midi: float  # comfortable register; tunes are moved by whole octaves to sit near it
    formant_scale: float  # vocal-tract size: >1 shorter tract (higher formants)
    open_quotient: float  # fraction of the glottal cycle the folds are open (higher = softer, breathier)
    breathiness: float  # aspiration noise relative to the voiced source
    vibrato_hz: float  # vibrato rate
    vibrato_st: float  # vibrato depth (semitones, peak)
    glide_s: float  # portamento time constant between notes
    scoop_st: float  # largest onset scoop from below (semitones)
    intonation_st: float  # standard deviation of per-note pitch error (semitones)
    drift_st: float  # scale of the slow pitch drift over a phrase (semitones)
    syllables: tuple[str, ...]  # syllables this singer uses (keys of SYLLABLES)


SINGERS: tuple[Singer, ...] = (
    Singer("singer0", 47.0, 0.92, 0.55, 0.10, 5.0, 0.25, 0.05, 0.8, 0.20, 0.35, ("mm", "da", "doo")),
    Singer("singer1", 51.0, 0.97, 0.60, 0.20, 5.5, 0.35, 0.04, 0.5, 0.25, 0.40, ("la", "na", "mm")),
    Singer("singer2", 56.0, 1.00, 0.50, 0.08, 6.0, 0.45, 0.03, 0.4, 0.15, 0.25, ("da", "la", "doo")),
    Singer("singer3", 62.0, 1.10, 0.68, 0.40, 5.2, 0.30, 0.06, 0.6, 0.25, 0.40, ("mm", "na", "la")),
    Singer("singer4", 65.0, 1.13, 0.60, 0.20, 5.8, 0.50, 0.04, 0.5, 0.20, 0.30, ("la", "doo", "da")),
    Singer("singer5", 69.0, 1.18, 0.55, 0.15, 6.3, 0.60, 0.03, 0.3, 0.15, 0.25, ("la", "da", "mm")),
    Singer("singer6", 70.0, 1.30, 0.65, 0.30, 0.0, 0.00, 0.05, 0.7, 0.40, 0.60, ("na", "la", "mm")),
    Singer("singer7", 50.0, 1.00, 0.62, 0.25, 4.5, 0.20, 0.09, 1.2, 0.50, 0.80, ("mm", "da", "na")),
)


@dataclass(frozen=True)
class Hum:
    """A rendered query: ``audio`` (N,) float32 plus what was sung."""

    audio: np.ndarray  # (N,) float32 in [-1, 1]
    sung_s: float  # duration from the first onset to the end of the last note (pads excluded)
    lead_s: float  # silence/breath before the first onset
    syllable: str


def midi_to_hz(midi: np.ndarray) -> np.ndarray:
    """Equal-tempered frequency of (fractional) MIDI pitches, any shape."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def note_lengths(durs_s: np.ndarray, sr: int) -> np.ndarray:
    """Sample counts (K,) int of notes with durations (K,), rounded on the cumulative grid so no drift builds up."""
    edges = np.round(np.concatenate([[0.0], np.cumsum(durs_s)]) * sr).astype(np.int64)
    return np.maximum(np.diff(edges), 1)


def time_in_note(lengths: np.ndarray, sr: int) -> np.ndarray:
    """Seconds since the current note's onset, per sample: (sum(lengths),) float64."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return (np.arange(int(lengths.sum())) - np.repeat(starts, lengths)) / sr


def time_to_note_end(lengths: np.ndarray, sr: int) -> np.ndarray:
    """Seconds until the current note ends, per sample: (sum(lengths),) float64."""
    ends = np.cumsum(lengths)
    return (np.repeat(ends, lengths) - np.arange(int(lengths.sum()))) / sr


def _phase(f0_hz: np.ndarray, sr: int) -> np.ndarray:
    """Running phase in cycles (N,) from an instantaneous frequency track (N,)."""
    return np.cumsum(f0_hz) / sr


def render_target(notes: Notes, sr: int, tail_s: float = 0.3, n_harmonics: int = 6) -> np.ndarray:
    """Render notes with a plucked, slightly organ-like instrument.

    Each note: fast attack, exponential decay towards a sustain level (upper harmonics decay faster), a short
    release at the note's end so onsets never click. ``tail_s`` lets the last note ring on.

    Returns (N,) float32, N = round((sum(dur_s) + tail_s) * sr), peak 0.7.
    """
    pitch, durs = _as_arrays(notes)
    durs = durs.copy()
    durs[-1] += tail_s
    lengths = note_lengths(durs, sr)
    f0 = np.repeat(midi_to_hz(pitch), lengths)
    phase = 2.0 * np.pi * _phase(f0, sr)
    t_in = time_in_note(lengths, sr)
    attack = np.clip(t_in / 0.005, 0.0, 1.0)
    release = np.clip(time_to_note_end(lengths, sr) / 0.02, 0.0, 1.0)
    out = np.zeros_like(phase)
    for k in range(1, n_harmonics + 1):
        decay = 0.35 + 0.65 * np.exp(-t_in * (4.0 + 3.0 * k))
        audible = k * f0 < 0.45 * sr
        out += (k ** -1.3) * decay * audible * np.sin(k * phase)
    return _normalise(out * attack * release, 0.7)


def render_hum(notes: Notes, sr: int, singer: Singer, rng: np.random.Generator, transpose_st: float = 0.0,
               tempo: float = 1.0, duration_jitter: float = 0.08) -> Hum:
    """Render a synthetic hummed/sung version of ``notes`` (written pitch; caller supplies the total transposition).

    ``tempo`` > 1 sings faster; every note's duration is further scaled by a log-normal factor with
    sigma ``duration_jitter``. The syllable, accents, drift, noise, pads and output level are drawn from ``rng``.
    Returns a ``Hum`` whose audio is (N,) float32, N = lead + sung + trail samples (pads of 0.1-0.4 s).
    """
    pitch, durs = _as_arrays(notes)
    syllable = SYLLABLES[singer.syllables[rng.integers(len(singer.syllables))]]
    sung = durs / tempo * np.exp(rng.normal(0.0, duration_jitter, len(durs)))
    lengths = note_lengths(sung, sr)
    lead = int(rng.uniform(0.15, 0.4) * sr)
    trail = int(rng.uniform(0.1, 0.3) * sr)
    # Pads are treated as extra notes that hold the neighbouring pitch with a zero envelope.
    lengths_padded = np.concatenate([[lead], lengths, [trail]])
    semis = _pitch_track(pitch + transpose_st, lengths_padded, singer, sr, rng)
    flow_d, flow = _glottal_source(midi_to_hz(semis), singer.open_quotient, sr)
    aspiration = rng.standard_normal(len(flow)) * (0.3 + flow) * singer.breathiness
    source = flow_d / (np.abs(flow_d).max() + 1e-9) + 0.25 * aspiration
    voiced = _even_loudness(_articulate(source, syllable, singer.formant_scale, lengths_padded, sr), sr)
    envelope = _envelope(lengths_padded, syllable, sr, rng)
    out = voiced * envelope
    peak = np.abs(out).max()
    if syllable.stop:
        out += _stop_bursts(lengths_padded, sr, rng) * peak
    out += _breath_noise(len(out), lead, sr, rng) * peak
    audio = _normalise(out, rng.uniform(0.25, 0.9))
    return Hum(audio, float(lengths.sum()) / sr, lead / sr, syllable.name)


def _as_arrays(notes: Notes) -> tuple[np.ndarray, np.ndarray]:
    """Split notes into pitches (K,) and durations (K,), both float64."""
    arr = np.asarray(notes, dtype=np.float64).reshape(-1, 2)
    if len(arr) == 0 or np.any(arr[:, 1] <= 0):
        raise ValueError("need at least one note, all with positive duration")
    return arr[:, 0], arr[:, 1]


def _normalise(x: np.ndarray, peak: float) -> np.ndarray:
    """Scale (N,) to the given peak; returns float32."""
    return (x * (peak / (np.abs(x).max() + 1e-12))).astype(np.float32)


def _smooth_noise(n: int, sr: int, knot_s: float, rng: np.random.Generator) -> np.ndarray:
    """A slow random curve (n,) with unit-scale values: a random walk on knots every ``knot_s``, interpolated."""
    n_knots = int(n / (knot_s * sr)) + 2
    knots = np.cumsum(rng.normal(0.0, 1.0, n_knots)) / np.sqrt(n_knots)
    knots -= knots.mean()
    return np.interp(np.arange(n) / sr, np.arange(n_knots) * knot_s, knots)


def _one_pole(x: np.ndarray, tau_s: float, sr: int) -> np.ndarray:
    """Exponential smoothing (N,) with time constant ``tau_s``, starting from x[0] (no start-up transient)."""
    a = np.exp(-1.0 / max(tau_s * sr, 1e-6))
    y, _ = signal.lfilter([1.0 - a], [1.0, -a], x, zi=[a * x[0]])
    return y


def _pitch_track(pitch: np.ndarray, lengths: np.ndarray, singer: Singer, sr: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Per-sample sung pitch in (fractional) MIDI, (sum(lengths),), for K notes ``pitch`` (K,) and padded
    ``lengths`` (K+2,) whose first and last entries are the silent pads.
    """
    k = len(pitch)
    sung = pitch + rng.normal(0.0, singer.intonation_st, k)
    target = np.concatenate([sung[:1], sung, sung[-1:]])
    t_in = time_in_note(lengths, sr)
    scoop = np.concatenate([[0.0], singer.scoop_st * rng.uniform(0.0, 1.0, k) ** 2, [0.0]])
    steps = np.repeat(target, lengths) - np.repeat(scoop, lengths) * np.exp(-t_in / 0.07)
    glided = _one_pole(steps, singer.glide_s * rng.uniform(0.7, 1.3), sr)
    n = len(steps)
    rate = singer.vibrato_hz * (1.0 + 0.08 * _smooth_noise(n, sr, 0.5, rng))
    vib_phase = 2.0 * np.pi * _phase(rate, sr) + rng.uniform(0.0, 2.0 * np.pi)
    vibrato = singer.vibrato_st * rng.uniform(0.6, 1.2) * (1.0 - np.exp(-t_in / 0.25)) * np.sin(vib_phase)
    drift = singer.drift_st * _smooth_noise(n, sr, 0.6, rng)
    flutter = _one_pole(rng.normal(0.0, 1.0, n), 0.01, sr)
    return glided + vibrato + drift + flutter


def _glottal_source(f0_hz: np.ndarray, open_quotient: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Rosenberg glottal flow (N,) in [0, 1] and its time derivative (N,) (the excitation, lip radiation included).

    Within the open phase the flow rises as a raised cosine for 60 % of it, then falls as a quarter-cosine;
    the folds stay closed for the rest of the cycle.
    """
    cycle = _phase(f0_hz, sr) % 1.0
    rise = 0.6 * open_quotient
    flow = np.where(cycle < rise, 0.5 * (1.0 - np.cos(np.pi * cycle / rise)), 0.0)
    falling = (cycle >= rise) & (cycle < open_quotient)
    flow = np.where(falling, np.cos(0.5 * np.pi * (cycle - rise) / (open_quotient - rise)), flow)
    return np.diff(flow, prepend=flow[0]), flow


def _formant_sos(formants: Formants, scale: float, sr: int) -> np.ndarray:
    """Second-order sections (len(formants), 6) of cascaded two-pole resonators with unit gain at 0 Hz."""
    sos = []
    for centre, bandwidth in formants:
        centre = min(centre * scale, 0.45 * sr)
        r = np.exp(-np.pi * bandwidth / sr)
        a1, a2 = -2.0 * r * np.cos(2.0 * np.pi * centre / sr), r * r
        sos.append([1.0 + a1 + a2, 0.0, 0.0, 1.0, a1, a2])
    return np.asarray(sos)


def _articulate(source: np.ndarray, syllable: Syllable, formant_scale: float, lengths: np.ndarray,
                sr: int) -> np.ndarray:
    """Filter the source (N,) through the syllable's vowel, cross-fading from its consonant at each onset."""
    vowel = signal.sosfilt(_formant_sos(syllable.vowel, formant_scale, sr), source)
    if syllable.consonant is not None:
        consonant = signal.sosfilt(_formant_sos(syllable.consonant, formant_scale, sr), source)
        weight = _one_pole(np.exp(-time_in_note(lengths, sr) / syllable.consonant_s), 0.005, sr)
        vowel = weight * consonant + (1.0 - weight) * vowel
    if syllable.nasal:
        vowel = signal.sosfilt(signal.butter(2, 1200.0, fs=sr, output="sos"), vowel)
    return vowel


def _even_loudness(x: np.ndarray, sr: int, strength: float = 0.8) -> np.ndarray:
    """Partly level out (N,) audio over time, like a singer keeping a steady loudness.

    Without this, notes whose harmonics fall on a narrow formant peak come out >15 dB louder than others.
    """
    level = np.sqrt(np.maximum(_one_pole(x * x, 0.03, sr), 0.0))
    return x / (level + 1e-3 * level.max()) ** strength


def _envelope(lengths: np.ndarray, syllable: Syllable, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Amplitude (N,) for padded notes ``lengths`` (K+2,): zero on the pads, per-note accents, slow swells.

    Notes are joined legato through a dip to ``floor`` around each onset; stops close fully for ~30 ms.
    The result is smoothed over a few milliseconds so that no step in it clicks.
    """
    k = len(lengths) - 2
    t_in, t_left = time_in_note(lengths, sr), time_to_note_end(lengths, sr)
    closure = 0.03 if syllable.stop else 0.015
    floor = 0.0 if syllable.stop else rng.uniform(0.3, 0.7)
    attack = floor + (1.0 - floor) * np.clip(t_in / rng.uniform(0.02, 0.06), 0.0, 1.0)
    dip = floor + (1.0 - floor) * np.clip((t_left - closure) / 0.03, 0.0, 1.0)
    accents = np.concatenate([[0.0], 10.0 ** (rng.normal(0.0, 2.0, k) / 20.0), [0.0]])
    swell = 10.0 ** (3.0 * _smooth_noise(len(t_in), sr, 0.8, rng) / 20.0)
    return _one_pole(np.repeat(accents, lengths) * attack * dip * swell, 0.004, sr)


def _stop_bursts(lengths: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Short high-passed noise bursts (N,), peak ~0.15, at each sung onset of padded notes ``lengths`` (K+2,)."""
    t_in = time_in_note(lengths, sr)
    sung = np.repeat(np.r_[0.0, np.ones(len(lengths) - 2), 0.0], lengths)
    noise = signal.sosfilt(signal.butter(2, 2500.0, btype="high", fs=sr, output="sos"),
                           rng.standard_normal(len(t_in)))
    return 0.15 * sung * np.exp(-t_in / 0.008) * noise


def _breath_noise(n: int, lead: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Breath noise (n,): a constant low floor (30-50 dB down) plus an inhalation swelling up to the first onset."""
    noise = signal.sosfilt(signal.butter(2, [300.0, 5000.0], btype="band", fs=sr, output="sos"),
                           rng.standard_normal(n))
    noise /= np.abs(noise).max() + 1e-12
    floor = 10.0 ** (-rng.uniform(30.0, 50.0) / 20.0)
    inhale = np.zeros(n)
    inhale[:lead] = np.sin(np.pi * np.arange(lead) / max(lead, 1)) ** 2
    return noise * (floor + inhale * 10.0 ** (-rng.uniform(20.0, 35.0) / 20.0))
