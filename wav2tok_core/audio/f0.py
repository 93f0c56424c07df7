"""f0 trackers for the pitch front end (``FeatureConfig.f0``): the built-in YIN, or a neural tracker.

* ``yin``: :func:`wav2tok_core.audio.pitch.yin` on the STFT's frames; a frame is periodic when its
  normalised difference at the period is below ``VOICED_APERIODICITY``.
* ``crepe``: CREPE (Kim et al., 2018), its tiny model, through ``torchcrepe`` (MIT; weights inside the
  wheel), Viterbi-smoothed; periodic when the network's confidence is at least ``NEURAL_VOICED``.
* ``pesto``: PESTO (Riou et al., 2023), its MIR-1K model, through ``pesto-pitch`` (weights inside the wheel,
  LGPL-3.0); periodic when its confidence is at least ``NEURAL_VOICED``.

The neural trackers are an optional extra (``pip install .[pitch]``) and are imported only when chosen.
Both run on the clips' device (CPU or CUDA) and give one estimate per hop, centred like the STFT's frames;
their outputs are cut or padded (last value repeated) to the STFT's frame count. Shapes: B clips, N samples,
T frames.
"""
from __future__ import annotations

import functools

import torch

from .config import NEURAL_F0_PACKAGES
from .pitch import VOICED_APERIODICITY, yin

NEURAL_VOICED = 0.5  # crepe / pesto: a frame is periodic when the tracker's confidence reaches this
CREPE_MODEL = "tiny"  # the full model is about 10x slower on a CPU
PESTO_MODEL = "mir-1k_g7"


def _fit_frames(x: torch.Tensor, t: int) -> torch.Tensor:
    """``(B, T')`` -> ``(B, t)``: cut, or pad by repeating the last frame."""
    if x.shape[1] >= t:
        return x[:, :t]
    return torch.cat([x, x[:, -1:].expand(-1, t - x.shape[1])], dim=1)


def _crepe(waves: torch.Tensor, lengths: torch.Tensor, sr: int, hop: int, f0_min: float, f0_max: float,
           t: int) -> tuple[torch.Tensor, torch.Tensor]:
    import torchcrepe

    f0s, confidences = [], []
    for wave, n in zip(waves, lengths.tolist()):  # torchcrepe takes one clip at a time
        f0, confidence = torchcrepe.predict(wave[None, :n], sr, hop, f0_min, f0_max, model=CREPE_MODEL,
                                            return_periodicity=True, batch_size=512, device=waves.device)
        f0s.append(_fit_frames(f0, t))
        confidences.append(_fit_frames(confidence, t))
    return torch.cat(f0s), torch.cat(confidences)


@functools.lru_cache(maxsize=4)
def _pesto_model(step_ms: float, sr: int, device: str) -> torch.nn.Module:
    import pesto

    return pesto.load_model(PESTO_MODEL, step_size=step_ms, sampling_rate=sr).to(device).eval()


def _pesto(waves: torch.Tensor, sr: int, hop: int, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    model = _pesto_model(1000.0 * hop / sr, sr, str(waves.device))
    with torch.inference_mode():
        f0, confidence, *_ = model(waves, sr=sr, convert_to_freq=True, return_activations=False)
    return _fit_frames(f0.reshape(len(waves), -1), t), _fit_frames(confidence.reshape(len(waves), -1), t)


def track_f0(tracker: str, frames: torch.Tensor, waves: torch.Tensor, lengths: torch.Tensor, sr: int, hop: int,
             f0_min: float, f0_max: float) -> tuple[torch.Tensor, torch.Tensor]:
    """f0 ``(B, T)`` in Hz and whether each frame is periodic ``(B, T)`` bool.

    Args:
        frames: ``(B, T, W)`` the STFT's frames (YIN reads them); waves: ``(B, N)`` the clips, zero-padded,
            with ``lengths`` ``(B,)`` real samples (the neural trackers read them).
    """
    t = frames.shape[1]
    if tracker == "yin":
        f0, aperiodicity = yin(frames, sr, f0_min, f0_max)
        return f0, aperiodicity < VOICED_APERIODICITY
    if tracker not in NEURAL_F0_PACKAGES:
        raise ValueError(f"unknown f0 tracker {tracker!r}")
    if tracker == "crepe":
        f0, confidence = _crepe(waves, lengths, sr, hop, f0_min, f0_max, t)
    else:
        f0, confidence = _pesto(waves, sr, hop, t)
    f0 = f0.to(frames.dtype).clamp(min=f0_min, max=f0_max)  # pesto is not bounded by the search range
    return f0, confidence >= NEURAL_VOICED
