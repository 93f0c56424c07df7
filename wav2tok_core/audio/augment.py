"""Waveform augmentations (time stretch, pitch shift, noise, gain) with torchaudio.

Time stretch and pitch shift come in two renderings (``STRETCH_METHODS``): ``vocoder``, torchaudio's phase
vocoder (the training augmentation, and the reference's), and ``wsola``, waveform-similarity overlap-add
(Verhelst & Roelands, ICASSP 1993), which copies whole stretches of the waveform and so leaves a single voice's
periods intact. The phase vocoder blurs them: re-rendering a hum at rate 0.999, no tempo change at all, cost
the note baselines about as much MRR as a 0.8x stretch (README, query by humming).

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


@dataclass
class AugmentConfig:
    """Ranges are inclusive [low, high]; each effect fires with its probability."""

    pitch_semitones: tuple[float, float] = (-6.0, 5.0)  # reference range
    stretch_rate: tuple[float, float] = (0.90, 1.49)  # reference range; rate > 1 makes the clip shorter
    noise_snr_db: tuple[float, float] = (10.0, 40.0)  # white noise at this signal-to-noise ratio
    gain_db: tuple[float, float] = (-6.0, 6.0)  # level change
    p_pitch: float = 1.0  # probability of a pitch shift (reference: always)
    p_stretch: float = 1.0  # probability of a time stretch (reference: always)
    p_noise: float = 0.5  # probability of added noise
    p_gain: float = 0.5  # probability of a level change

    def __post_init__(self) -> None:
        for name in ("pitch_semitones", "stretch_rate", "noise_snr_db", "gain_db"):
            low, high = getattr(self, name)
            if low > high:
                raise ConfigError(f"augment.{name}: low {low} > high {high}")
            setattr(self, name, (float(low), float(high)))
        if self.stretch_rate[0] <= 0:
            raise ConfigError("augment.stretch_rate: rates must be > 0")
        for name in ("p_pitch", "p_stretch", "p_noise", "p_gain"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"augment.{name}: must be a probability in [0, 1]")


def time_stretch(wave: torch.Tensor, rate: float, method: str = "vocoder") -> torch.Tensor:
    """Change tempo, keep pitch, by ``method`` (``STRETCH_METHODS``). ``(N,)`` -> ``(round(N / rate),)``."""
    if method not in STRETCH_METHODS:
        raise ConfigError(f"stretch method {method!r} is not one of {STRETCH_METHODS}")
    if abs(rate - 1.0) < 1e-6:
        return wave
    length = max(1, round(wave.numel() / rate))
    if method == "wsola":
        return _wsola(wave, rate, length)
    window = torch.hann_window(_N_FFT, device=wave.device)
    pad_mode = "reflect" if wave.numel() > _N_FFT // 2 else "constant"  # reflect needs half a window of audio
    spec = torch.stft(wave, _N_FFT, _HOP, window=window, pad_mode=pad_mode, return_complex=True)  # (F, T)
    advance = torch.linspace(0, torch.pi * _HOP, spec.shape[0], device=wave.device)[:, None]
    stretched = AF.phase_vocoder(spec, rate, advance)
    return torch.istft(stretched, _N_FFT, _HOP, window=window, length=length)


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
    """Apply a random pitch shift, time stretch, noise and gain drawn from ``config``. ``(N,)`` -> ``(N',)``."""
    # Draw every random number up front, in a fixed order, so the stream never depends on the audio.
    draws = [(_fires(config.p_pitch, gen), _uniform(config.pitch_semitones, gen)),
             (_fires(config.p_stretch, gen), _uniform(config.stretch_rate, gen)),
             (_fires(config.p_noise, gen), _uniform(config.noise_snr_db, gen)),
             (_fires(config.p_gain, gen), _uniform(config.gain_db, gen))]
    (do_pitch, semis), (do_stretch, rate), (do_noise, snr), (do_gain, gain) = draws
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
