"""Pitch features for melodies: batched YIN f0 tracking (other trackers: :mod:`wav2tok_core.audio.f0`),
key-normalised pitch, voicing, energy.

Spectral features (STFT, log-mel, MFCC) mostly describe timbre: a hummed query and an instrument
playing the same tune, a few semitones apart, look unrelated in them. What the two share is the pitch
contour up to transposition, so this front end tracks f0 with YIN (de Cheveigne & Kawahara, 2002:
cumulative-mean-normalised difference function, absolute threshold, parabolic interpolation) and, per
clip, removes the key ("key normalisation"). Three representations (``FeatureConfig.pitch_repr``):

* ``chroma`` (default): pitch class on the unit circle, rotated by the circular mean of the clip's voiced
  frames. Octave-invariant, so a tracker's octave slip changes nothing, and its key moves smoothly.
* ``contour``: semitones minus the median of the clip's voiced pitch. The median jumps from one note to
  another when a few frames change, which shifts the whole clip (the models saved before chroma use it).
* ``notes``: the track is cut into notes (:mod:`wav2tok_core.audio.notes`) and every frame carries its note's
  interval from the previous note, their duration ratio and the note's pitch class: constant through a note,
  so a token string collapses to about one token per note, and free of key and tempo.

Frames are the STFT's (``n_fft`` window centred every ``hop_length`` samples, reflected at each clip's
own ends), so a clip's features do not depend on its batch. Shapes: B clips, T frames, W = n_fft.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torchaudio.functional as AF

from .config import NOTE_REPRS, PITCH_DIMS, PITCH_REPRS
from .frames import masked_standardize
from .notes import fold_octave, note_runs

YIN_THRESHOLD = 0.15  # first dip of the normalised difference below this is the period (YIN's default)
VOICED_APERIODICITY = 0.3  # a frame is voiced when its normalised difference at the period is below this
SILENCE_DB = -30.0  # ... and its energy is within this many dB of the clip's loudest frame


def yin(frames: torch.Tensor, sr: int, f0_min: float, f0_max: float) -> tuple[torch.Tensor, torch.Tensor]:
    """f0 of every frame.

    Args:
        frames: ``(B, T, W)`` windows of audio; lags up to W / 2 are searched.

    Returns:
        f0: ``(B, T)`` Hz; aperiodicity: ``(B, T)`` the normalised difference at the chosen period
        (near 0 for clean periodic frames, near 1 for noise).
    """
    width = frames.shape[-1]
    half = width // 2
    lo, hi = max(2, int(sr / f0_max)), min(half - 2, int(sr / f0_min))
    n_lags = hi + 2  # lags 0 .. hi + 1: the candidates and a neighbour for interpolation
    # r[tau] = sum_{j < half} x_j x_{j + tau} by FFT; j + tau < width, so a width-point FFT never wraps
    spectrum = torch.fft.rfft(frames)
    r = torch.fft.irfft(torch.fft.rfft(frames[..., :half], n=width).conj() * spectrum, n=width)[..., :n_lags]
    energy = torch.nn.functional.pad((frames**2).cumsum(-1), (1, 0))  # (B, T, W + 1) prefix sums
    diff = (energy[..., half : half + 1] + energy[..., half : half + n_lags] - energy[..., :n_lags] - 2 * r)
    diff = diff.clamp(min=0)  # (B, T, n_lags): d(tau) = sum_{j < half} (x_j - x_{j + tau})^2
    lags = torch.arange(1, n_lags, device=frames.device, dtype=frames.dtype)
    cmnd = diff[..., 1:] * lags / diff[..., 1:].cumsum(-1).clamp(min=1e-12)  # d'(tau) for tau >= 1
    c = cmnd[..., lo - 1 : hi]  # (B, T, L) candidate lags lo .. hi
    below = c < YIN_THRESHOLD
    first = below.int().argmax(-1, keepdim=True)
    pos = torch.arange(c.shape[-1], device=c.device)
    after = pos >= first
    dip = after & (torch.cumprod((below | ~after).int(), -1) == 1)  # the first run below threshold
    best = torch.where(below.any(-1), torch.where(dip, c, torch.full_like(c, 2.0)).argmin(-1), c.argmin(-1))
    mid = best.clamp(1, c.shape[-1] - 2)
    y0, y1, y2 = (c.gather(-1, (mid + o)[..., None])[..., 0] for o in (-1, 0, 1))
    curve = y0 - 2 * y1 + y2
    offset = torch.where(curve.abs() > 1e-9, 0.5 * (y0 - y2) / curve, torch.zeros_like(curve)).clamp(-1, 1)
    period = mid.to(frames.dtype) + offset + lo
    return sr / period, c.gather(-1, best[..., None])[..., 0]


def _forward_fill(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``(B, T)``: each frame not in ``keep`` takes the last kept value before it; frames before the first kept
    one take the first kept value, so the track does not step at its first kept frame (all 0 when no frame
    is kept)."""
    pos = torch.arange(values.shape[1], device=values.device)[None, :].expand_as(values)
    last = torch.where(keep, pos, torch.full_like(pos, -1)).cummax(dim=1).values  # (B, T)
    first = keep.to(torch.int64).argmax(dim=1, keepdim=True).expand_as(last)  # (B, T): first kept frame
    filled = values.gather(1, torch.where(last >= 0, last, first))
    return torch.where(keep.any(dim=1, keepdim=True), filled, torch.zeros_like(filled))


def median_key(midi: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
    """``(B,)`` the contour's key: median pitch (semitones) of each clip's voiced frames, NaN if none."""
    return torch.where(voiced, midi, torch.full_like(midi, float("nan"))).nanmedian(dim=1).values


def circular_key(midi: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
    """``(B,)`` chroma's key: the angle (radians) of the circular mean of the voiced frames' pitch classes,
    each at angle 2 pi midi / 12."""
    angle = 2 * math.pi * midi / 12
    weight = voiced.to(midi.dtype)
    return torch.atan2((torch.sin(angle) * weight).sum(1), (torch.cos(angle) * weight).sum(1))


def _key_relative_contour(midi: torch.Tensor, voiced: torch.Tensor, normalize: bool) -> torch.Tensor:
    """``(B, T)`` pitch in semitones, minus the median of the clip's voiced frames when ``normalize``."""
    if normalize:
        midi = midi - torch.nan_to_num(median_key(midi, voiced), nan=0.0)[:, None]
    return _forward_fill(midi, voiced)


def _key_relative_chroma(midi: torch.Tensor, voiced: torch.Tensor, normalize: bool) -> torch.Tensor:
    """``(B, T, 2)`` pitch class as a point on the unit circle (cos, sin of 2 pi midi / 12), rotated so that
    the circular mean of the clip's voiced frames (its key) lies at angle 0 when ``normalize``."""
    angle = 2 * math.pi * midi / 12
    if normalize:
        angle = angle - circular_key(midi, voiced)[:, None]
    return torch.stack([_forward_fill(torch.cos(angle), voiced), _forward_fill(torch.sin(angle), voiced)], -1)


def _note_frames(midi: np.ndarray, voiced: np.ndarray, frame_s: float, normalize: bool,
                 channels: int = 4) -> np.ndarray:
    """One clip's pitch track ``(T,)`` MIDI and voicing -> ``(T, channels)``: the first ``channels`` columns of
    the ``notes`` representation (``intervals`` keeps the first). Each frame takes the values of the last note
    that started at or before it (the first note before any), all 0 when no note is found. Per note: interval
    from the previous note folded into [-6, 6) semitones, divided by 6 (an octave slip of the tracker changes
    nothing); log2 of its duration over the previous note's, clipped to [-2, 2] (0 for the first note); its
    pitch class as (cos, sin), relative to the duration-weighted circular mean of the clip's notes when
    ``normalize``."""
    runs = note_runs(midi, voiced, frame_s)  # (n, 3): first frame, end frame, median pitch
    out = np.zeros((midi.size, channels), dtype=np.float32)
    if not len(runs):
        return out
    pitch, duration = runs[:, 2], runs[:, 1] - runs[:, 0]
    interval = fold_octave(np.diff(pitch, prepend=pitch[0]))
    ratio = np.clip(np.diff(np.log2(duration), prepend=np.log2(duration[0])), -2, 2)
    angle = 2 * np.pi * pitch / 12
    if normalize:
        angle = angle - np.arctan2((np.sin(angle) * duration).sum(), (np.cos(angle) * duration).sum())
    per_note = np.stack([interval / 6, ratio, np.cos(angle), np.sin(angle)], axis=1)  # (n, 4)
    note_of_frame = np.searchsorted(runs[:, 0], np.arange(midi.size), side="right") - 1
    return per_note[np.maximum(note_of_frame, 0), :channels].astype(np.float32)


def _unwrapped(pitch: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` pitch with every frame-to-frame step folded into [-6, 6) semitones: octave jumps vanish."""
    step = torch.diff(pitch, dim=1, prepend=pitch[:, :1])
    return (torch.remainder(step + 6, 12) - 6).cumsum(1)


def pitch_features(frames: torch.Tensor, mask: torch.Tensor, f0: torch.Tensor, periodic: torch.Tensor,
                   normalize: bool, representation: str, frame_s: float) -> torch.Tensor:
    """Frames ``(B, T, W)``, real-frame mask ``(B, T)``, each frame's f0 ``(B, T)`` Hz and whether it is periodic
    ``(B, T)`` (:func:`wav2tok_core.audio.f0.track_f0`) -> features ``(B, T, F)``, zero on padding. A frame is
    voiced when it is periodic and its energy is within ``SILENCE_DB`` of the clip's loudest frame.

    ``representation="contour"`` (F = 4): pitch in semitones (MIDI numbers, or relative to the clip's
    median voiced pitch when ``normalize``), held through unvoiced frames; its delta; voicing (1 voiced,
    0 not); log energy.

    ``representation="chroma"`` (F = 5): pitch class relative to the clip's key as (cos, sin), held through
    unvoiced frames; the delta of the pitch with octave jumps folded away (semitones per frame); voicing;
    log energy. It is octave-invariant, and its key (a circular mean) moves smoothly when a few frames
    change, where the median jumps from one note to another: on the built-in melodies, re-synthesising a
    query (phase vocoder) moved the median key by more than a quarter tone in 26 % of clips and the
    circular key in 7.5 % (``benchmarks/pitch_stability.py``).

    ``representation="notes"`` (F = 4, no energy): the track cut into notes (``frame_s``, seconds per frame,
    sets the shortest note), each frame holding its note's interval, duration ratio and pitch class
    (:func:`_note_frames`).

    ``representation="intervals"`` (F = 1): the ``notes`` interval alone. On the built-in melodies the
    key-relative pitch class and the duration ratio split the same interval into many tokens, and a hum
    covering part of a phrase moves its key (README, Results).

    With ``normalize``, log energy is standardised over the clip's frames, as other features are.
    """
    if representation not in PITCH_REPRS:
        raise ValueError(f"pitch representation {representation!r} is not one of {PITCH_REPRS}")
    power = frames.pow(2).mean(-1)  # (B, T)
    loudest = torch.where(mask, power, torch.zeros_like(power)).amax(dim=1, keepdim=True)
    voiced = mask & periodic & (power > loudest * 10 ** (SILENCE_DB / 10))
    midi = 69.0 + 12.0 * torch.log2(f0 / 440.0)
    if representation in NOTE_REPRS:
        notes = [_note_frames(m, v, frame_s, normalize, PITCH_DIMS[representation])
                 for m, v in zip(midi.cpu().numpy(), voiced.cpu().numpy())]
        return torch.from_numpy(np.stack(notes)).to(frames.device, frames.dtype) * mask[..., None]
    if representation == "contour":
        pitch = _key_relative_contour(midi, voiced, normalize)
        delta_of = pitch
        pitch_channels = pitch[..., None]  # (B, T, 1)
    else:
        pitch_channels = _key_relative_chroma(midi, voiced, normalize)  # (B, T, 2)
        delta_of = _unwrapped(_forward_fill(midi, voiced))
    delta = AF.compute_deltas(delta_of[:, None, :])[:, 0] * mask
    log_energy = torch.log(power + 1e-10)
    if normalize:
        log_energy = masked_standardize(log_energy[..., None], mask)[..., 0]
    rest = torch.stack([delta, voiced.to(midi.dtype), log_energy], dim=-1)  # (B, T, 3)
    return torch.cat([pitch_channels, rest], dim=-1) * mask[..., None]
