"""Waveform augmentations (time stretch, pitch shift, vocal-tract-length warp, noise, gain) with torchaudio.

Time stretch and pitch shift come in two renderings (``STRETCH_METHODS``): ``vocoder``, torchaudio's phase
vocoder (the training augmentation, and the reference's), and ``wsola``, waveform-similarity overlap-add
(Verhelst & Roelands, ICASSP 1993), which copies whole stretches of the waveform and so leaves a single voice's
periods intact. The phase vocoder blurs them: re-rendering a hum at rate 0.999, no tempo change at all, cost
the note baselines about as much MRR as a 0.8x stretch (README, query by humming).

The vocal-tract-length warp (``vtlp``; Jaitly & Hinton, 2013) scales the frequency axis of the spectrum, as a
shorter or longer vocal tract moves every formant, and keeps duration and timing: a warped copy of a clip is a
positive whose frames align one to one with the original's.

Every random choice comes from a ``torch.Generator`` passed in, so a data item's augmentation depends
only on (seed, epoch, index): the same in any DataLoader worker and after a resume.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
import torchaudio.functional as AF

from ..errors import ConfigError
from .io import resample

_N_FFT, _HOP = 512, 128  # phase-vocoder resolution (32 ms / 8 ms at 16 kHz)
_WSOLA_WINDOW = 512  # WSOLA frame (32 ms at 16 kHz: a few periods of any voice); output hop is half of it ...
_WSOLA_TOLERANCE = 256  # ... and each frame may move this many samples to line up with the last (>= 1 period)
STRETCH_METHODS = ("vocoder", "wsola")
_VTLP_BOUNDARY = 0.8  # the warp is linear up to this fraction of the Nyquist frequency, then bends to keep it


@dataclass
class AugmentConfig:
    """Ranges are inclusive [low, high]; each effect fires with its probability."""

    pitch_semitones: tuple[float, float] = (-6.0, 5.0)  # reference range
    stretch_rate: tuple[float, float] = (0.90, 1.49)  # reference range; rate > 1 makes the clip shorter
    noise_snr_db: tuple[float, float] = (10.0, 40.0)  # white noise at this signal-to-noise ratio
    gain_db: tuple[float, float] = (-6.0, 6.0)  # level change
    vtlp_alpha: tuple[float, float] = (0.9, 1.1)  # vocal-tract-length warp factor (>1: formants move up)
    p_pitch: float = 1.0  # probability of a pitch shift (reference: always)
    p_stretch: float = 1.0  # probability of a time stretch (reference: always)
    p_noise: float = 0.5  # probability of added noise
    p_gain: float = 0.5  # probability of a level change
    p_vtlp: float = 0.0  # probability of a vocal-tract-length warp (not in the reference: off by default)

    def __post_init__(self) -> None:
        for name in ("pitch_semitones", "stretch_rate", "noise_snr_db", "gain_db", "vtlp_alpha"):
            low, high = getattr(self, name)
            if low > high:
                raise ConfigError(f"augment.{name}: low {low} > high {high}")
            setattr(self, name, (float(low), float(high)))
        if self.stretch_rate[0] <= 0:
            raise ConfigError("augment.stretch_rate: rates must be > 0")
        if self.vtlp_alpha[0] <= 0:
            raise ConfigError("augment.vtlp_alpha: warp factors must be > 0")
        for name in ("p_pitch", "p_stretch", "p_noise", "p_gain", "p_vtlp"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"augment.{name}: must be a probability in [0, 1]")


def _stft(wave: torch.Tensor) -> torch.Tensor:
    """The phase vocoders' complex spectrum ``(N,)`` -> ``(_N_FFT // 2 + 1, frames)``: Hann window, centred frames."""
    pad_mode = "reflect" if wave.numel() > _N_FFT // 2 else "constant"  # reflect needs half a window of audio
    return torch.stft(wave, _N_FFT, _HOP, window=torch.hann_window(_N_FFT, device=wave.device), pad_mode=pad_mode,
                      return_complex=True)


def _istft(spec: torch.Tensor, length: int) -> torch.Tensor:
    """Inverse of :func:`_stft`: ``(F, frames)`` -> ``(length,)``."""
    return torch.istft(spec, _N_FFT, _HOP, window=torch.hann_window(_N_FFT, device=spec.device), length=length)


def time_stretch(wave: torch.Tensor, rate: float, method: str = "vocoder") -> torch.Tensor:
    """Change tempo, keep pitch, by ``method`` (``STRETCH_METHODS``). ``(N,)`` -> ``(round(N / rate),)``."""
    if method not in STRETCH_METHODS:
        raise ConfigError(f"stretch method {method!r} is not one of {STRETCH_METHODS}")
    if abs(rate - 1.0) < 1e-6:
        return wave
    length = max(1, round(wave.numel() / rate))
    if method == "wsola":
        return _wsola(wave, rate, length)
    spec = _stft(wave)  # (F, T)
    advance = torch.linspace(0, torch.pi * _HOP, spec.shape[0], device=wave.device)[:, None]
    stretched = AF.phase_vocoder(spec, rate, advance)
    return _istft(stretched, length)


def _wsola(wave: torch.Tensor, rate: float, length: int) -> torch.Tensor:
    """WSOLA time stretch ``(N,)`` -> ``(length,)``: Hann frames of ``_WSOLA_WINDOW`` samples are overlap-added
    every half window; output frame k is read near input sample ``k * hop * rate``, shifted by up to
    ``_WSOLA_TOLERANCE`` samples to where it best continues the previous frame (highest cross-correlation with
    the samples that followed that frame in the input)."""
    win, tol = _WSOLA_WINDOW, _WSOLA_TOLERANCE
    hop = win // 2
    x = wave.detach().cpu().double().numpy()
    pad = tol + win
    xp = np.pad(x, (pad, pad + int(np.ceil(length * rate)) + win))
    frames = length // hop + 2
    out = np.zeros(frames * hop + win)
    weight = np.zeros_like(out)
    window = np.hanning(win + 2)[1:-1]  # (win,) strictly positive Hann
    previous = pad  # where in xp the last frame was read
    for k in range(frames):
        nominal = pad - hop + int(round(k * hop * rate))  # output sample j is read near input sample j * rate
        if k == 0:
            start = nominal
        else:
            natural = xp[previous + hop: previous + hop + win]  # what followed the last frame in the input
            region = xp[nominal - tol: nominal + tol + win]  # (win + 2 tol,) candidate starts
            start = nominal - tol + int(np.argmax(np.correlate(region, natural, mode="valid")))
        out[k * hop: k * hop + win] += xp[start: start + win] * window
        weight[k * hop: k * hop + win] += window
        previous = start
    shifted = out[hop: hop + length] / np.maximum(weight[hop: hop + length], 1e-3)
    return torch.from_numpy(shifted).to(wave.device, wave.dtype)


def pitch_shift(wave: torch.Tensor, semitones: float, method: str = "vocoder") -> torch.Tensor:
    """Change pitch by ``semitones``, keep duration: stretch by 2^(s/12) (by ``method``), then resample back.
    ``(N,)`` -> ``(N,)``."""
    if abs(semitones) < 1e-6:
        return wave
    ratio = Fraction(2.0 ** (semitones / 12.0)).limit_denominator(64)
    longer = time_stretch(wave, 1.0 / float(ratio), method)
    shifted = resample(longer, ratio.numerator, ratio.denominator)
    return fit_length(shifted, wave.numel())


def vtlp_warp(freqs: np.ndarray, alpha: float) -> np.ndarray:
    """Where the vocal-tract-length warp moves each frequency, as a fraction of the Nyquist frequency ``(F,)``.

    ``f -> alpha f`` up to a knee, then a straight line to the Nyquist frequency, so the warp is monotone and
    maps [0, 1] onto [0, 1]; the knee sits where ``alpha f`` reaches ``_VTLP_BOUNDARY * min(alpha, 1)``.
    """
    knee = _VTLP_BOUNDARY * min(alpha, 1.0) / alpha
    upper = alpha * knee + (1.0 - alpha * knee) * (freqs - knee) / (1.0 - knee)
    return np.where(freqs <= knee, alpha * freqs, upper)


def vtlp(wave: torch.Tensor, alpha: float) -> torch.Tensor:
    """Warp the spectrum's frequency axis by ``alpha`` (:func:`vtlp_warp`), keep duration. ``(N,)`` -> ``(N,)``.

    A phase vocoder that moves frequencies instead of time: every output bin takes the magnitude of the input
    spectrum at the frequency the warp maps onto it. Phases are locked to the spectral peaks (Laroche & Dolson,
    1999): a peak advances from frame to frame by its warped instantaneous frequency, and the bins around it
    keep their input phase offset from it, so the partials' overlapping frames add up coherently.
    """
    if abs(alpha - 1.0) < 1e-6:
        return wave
    spec = _stft(wave)  # (F, T)
    bins, frames = spec.shape
    nu = np.linspace(0.0, 1.0, bins)  # bin frequency, fraction of Nyquist
    per_hop = np.pi * _HOP  # phase advance per hop of a frequency of 1 (Nyquist), in radians
    centre = np.where(np.arange(bins) % 2 == 0, 1.0, -1.0)[:, None]  # phase reference: the frame's centre
    x = spec.detach().cpu().numpy().astype(np.complex128) * centre  # a partial's lobe now has one phase
    phase = np.angle(x)  # (F, T)
    drift = np.diff(phase, axis=1, prepend=phase[:, :1]) - per_hop * nu[:, None]
    inst = nu[:, None] + (np.mod(drift + np.pi, 2 * np.pi) - np.pi) / per_hop  # (F, T) instantaneous frequency
    source = np.interp(nu, vtlp_warp(nu, alpha), nu) * (bins - 1)  # (F,) fractional input bin of each output bin
    low = np.minimum(np.floor(source).astype(np.int64), bins - 2)
    share = np.clip(source - low, 0.0, 1.0)[:, None]  # (F, 1)
    magnitude = np.abs(x[low]) * (1 - share) + np.abs(x[low + 1]) * share  # (F, T)
    nearest = np.where(share[:, 0] < 0.5, low, low + 1)  # (F,)
    in_phase, advance = phase[nearest], per_hop * vtlp_warp(np.clip(inst[nearest], 0.0, 1.0), alpha)  # (F, T)
    out_phase = np.empty_like(in_phase)
    out_phase[:, 0] = in_phase[:, 0]
    k = np.arange(bins)
    for t in range(1, frames):
        m = magnitude[:, t]
        peak = np.flatnonzero((m >= np.r_[0.0, m[:-1]]) & (m >= np.r_[m[1:], 0.0]))  # local maxima
        at = np.searchsorted(peak, k)  # each bin's owner: the nearer of the peaks below and above it
        below, above = peak[np.clip(at - 1, 0, len(peak) - 1)], peak[np.clip(at, 0, len(peak) - 1)]
        owner = np.where(np.abs(above - k) < np.abs(k - below), above, below)
        locked = out_phase[owner, t - 1] + advance[owner, t]
        out_phase[:, t] = locked + in_phase[:, t] - in_phase[owner, t]
    warped = torch.from_numpy(magnitude * np.exp(1j * out_phase) * centre).to(spec.device, spec.dtype)
    return _istft(warped, wave.numel()).to(wave.dtype)


def fit_length(wave: torch.Tensor, length: int) -> torch.Tensor:
    """Crop or zero-pad ``(N,)`` to ``(length,)``."""
    if wave.numel() >= length:
        return wave[:length]
    return torch.nn.functional.pad(wave, (0, length - wave.numel()))


def stretch_to_length(wave: torch.Tensor, length: int) -> torch.Tensor:
    """Time-stretch ``(N,)`` so it lasts ``length`` samples (pitch unchanged)."""
    return fit_length(time_stretch(wave, wave.numel() / length), length)


def _uniform(bounds: tuple[float, float], gen: torch.Generator) -> float:
    low, high = bounds
    return low + (high - low) * float(torch.rand((), generator=gen))


def _fires(p: float, gen: torch.Generator) -> bool:
    return float(torch.rand((), generator=gen)) < p


def augment(wave: torch.Tensor, config: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Apply a random vocal-tract-length warp, pitch shift, time stretch, noise and gain drawn from ``config``.
    ``(N,)`` -> ``(N',)``."""
    # Draw every random number up front, in a fixed order, so the stream never depends on the audio.
    draws = [(_fires(config.p_pitch, gen), _uniform(config.pitch_semitones, gen)),
             (_fires(config.p_stretch, gen), _uniform(config.stretch_rate, gen)),
             (_fires(config.p_noise, gen), _uniform(config.noise_snr_db, gen)),
             (_fires(config.p_gain, gen), _uniform(config.gain_db, gen))]
    (do_pitch, semis), (do_stretch, rate), (do_noise, snr), (do_gain, gain) = draws
    if config.p_vtlp > 0:  # drawn last and only when on, so configs without it keep their random stream
        do_vtlp, alpha = _fires(config.p_vtlp, gen), _uniform(config.vtlp_alpha, gen)
        if do_vtlp:
            wave = vtlp(wave, alpha)
    if do_pitch:
        wave = pitch_shift(wave, semis)
    if do_stretch:
        wave = time_stretch(wave, rate)
    if do_noise:
        power = wave.pow(2).mean().clamp(min=1e-10)
        noise = torch.randn(wave.shape, generator=gen)
        wave = wave + noise * (power / 10 ** (snr / 10)).sqrt()
    if do_gain:
        wave = wave * 10 ** (gain / 20)
    return wave
