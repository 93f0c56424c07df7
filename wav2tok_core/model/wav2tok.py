"""The wav2tok model: features -> encoder -> projection -> cosine token classifier over a codebook.

Training (``forward``) takes a batch of paired views and returns a dict of named loss terms; inference
(``tokenize``, ``frame_tokens``, ``embed``) takes paths or waveforms and returns per-clip results.
Shapes: B batch, N samples, T frames, E encoder size, D code size (E/2), K tokens, S string length.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..audio.features import FeatureExtractor, frame_mask
from ..audio.io import load_audio, pad_batch, resample, to_wave
from ..config import from_dict, to_dict
from ..errors import AudioError, CheckpointError, ConfigError
from ..runtime import atomic_write, resolve_device
from ..train.objective import (CosineSimilarity, LearnedSimilarity, ctc_likelihood, diversity_loss, matching_loss,
                               prototypes, triplet_loss)
from .config import ModelConfig
from .encoders import LSTMEncoder, TransformerEncoder
from .tokens import collapse, collapse_batch

# Inference batches hold at most this much audio (padded), so memory is bounded for any clip length.
MAX_BATCH_SECONDS = 300.0
CHECKPOINT_FORMAT = "wav2tok-model"
CHECKPOINT_VERSION = 1

Audio = Union[str, os.PathLike, np.ndarray, torch.Tensor]
View = tuple[torch.Tensor, torch.Tensor]  # (waves (B, N), lengths (B,))


def _masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``values[valid]``, or a zero that keeps the graph when nothing is valid."""
    if bool(valid.any()):
        return values[valid].mean()
    return values.sum() * 0.0


class Wav2Tok(nn.Module):
    """wav2tok tokenizer. Build from a :class:`ModelConfig`; load with :func:`load_model`."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ModelConfig()
        self.features = FeatureExtractor(config.features)
        if config.use_transformer:
            self.encoder: nn.Module = TransformerEncoder(config.input_dim, config.emb_dim, config.num_layers,
                                                         config.dropout, config.nhead)
        else:
            self.encoder = LSTMEncoder(config.input_dim, config.emb_dim, config.num_layers, config.dropout)
        self.proj = nn.Linear(config.emb_dim, config.code_dim)
        # Set by the E-step (k-means), frozen during the M-step: a buffer, not a parameter.
        self.register_buffer("codebook", F.normalize(torch.randn(config.num_tokens, config.code_dim), dim=-1))
        self.similarity = CosineSimilarity() if config.use_cosine else LearnedSimilarity(config.code_dim)
        if config.targets == "teacher":
            # Encoder and projection as they were at the last E-step: they assign the M-step's tokens.
            self.teacher = nn.ModuleDict({"encoder": copy.deepcopy(self.encoder), "proj": copy.deepcopy(self.proj)})
            self.teacher.requires_grad_(False)

    def train(self, mode: bool = True) -> "Wav2Tok":
        super().train(mode)
        if hasattr(self, "teacher"):
            self.teacher.eval()  # the teacher never uses dropout
        return self

    def refresh_teacher(self) -> None:
        """Copy the current encoder and projection into the teacher (called by the E-step)."""
        if hasattr(self, "teacher"):
            self.teacher["encoder"].load_state_dict(self.encoder.state_dict())
            self.teacher["proj"].load_state_dict(self.proj.state_dict())

    @property
    def device(self) -> torch.device:
        return self.codebook.device

    # ----------------------------------------------------------------- core computation
    def encode(self, waves: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """waves ``(B, N)``, lengths ``(B,)`` -> unit frame vectors h ``(B, T, D)`` and frame counts ``(B,)``."""
        feats, frame_lengths = self.features(waves, lengths)  # (B, T, F)
        return self.encode_features(feats, frame_lengths), frame_lengths

    def encode_features(self, feats: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        """Features ``(B, T, F)`` -> unit frame vectors h ``(B, T, D)``, zero on padded frames."""
        z = self.encoder(feats, frame_lengths)  # (B, T, E)
        h = F.normalize(self.proj(z), dim=-1)  # (B, T, D)
        return h * frame_mask(frame_lengths, h.shape[1])[..., None]

    @torch.no_grad()
    def assign(self, feats: torch.Tensor, frame_lengths: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Frame tokens ``(B, T)`` that the M-step trains towards: the teacher's (run on the same features
        ``(B, T, F)``) or, with ``targets="online"``, the argmax of the model's own vectors ``h`` ``(B, T, D)``."""
        if not hasattr(self, "teacher"):
            return self.logits(h).argmax(dim=-1)
        z = self.teacher["encoder"](feats, frame_lengths)
        return self.logits(F.normalize(self.teacher["proj"](z), dim=-1)).argmax(dim=-1)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Unit frame vectors ``(B, T, D)`` -> token logits cos(h, e_k) / temp ``(B, T, K)``."""
        return h @ self.codebook.T / self.config.temp

    def set_codebook(self, codebook: torch.Tensor) -> None:
        """Install K codewords ``(K, D)`` (normalised here)."""
        expected = tuple(self.codebook.shape)
        if tuple(codebook.shape) != expected:
            raise ValueError(f"codebook shape {tuple(codebook.shape)} does not match the model's {expected}")
        self.codebook.copy_(F.normalize(codebook.to(self.codebook), dim=-1))

    def forward(self, batch: dict[str, View]) -> dict[str, torch.Tensor]:
        """Loss terms for a batch of paired views.

        Args:
            batch: ``{"anchor": (waves, lengths), "positive": (...), optionally "negative": (...)}``,
                waves ``(B, N)`` at ``config.features.sr``.

        Returns:
            ``{"loss/total", "loss/matching", "loss/ctc_xy", "loss/ctc_yx", "loss/diversity"
            [, "loss/triplet"], "stats/compression"}``: scalars; ``loss/total`` carries the gradient.
        """
        cfg = self.config
        f_a, n_a = self.features(*batch["anchor"])  # (B, Ta, F), computed once for student and teacher
        f_p, n_p = self.features(*batch["positive"])
        h_a, h_p = self.encode_features(f_a, n_a), self.encode_features(f_p, n_p)  # (B, T, D)
        lp_a = self.logits(h_a).log_softmax(dim=-1)  # (B, Ta, K)
        lp_p = self.logits(h_p).log_softmax(dim=-1)  # (B, Tp, K)
        tok_a, tok_p = self.assign(f_a, n_a, h_a), self.assign(f_p, n_p, h_p)  # (B, T)
        str_a, len_a = collapse_batch(tok_a, n_a)  # (B, Sa), targets are detached
        str_p, len_p = collapse_batch(tok_p, n_p)
        nll_xy, ok_xy = ctc_likelihood(lp_a, n_a, str_p, len_p)  # X -> T~'
        nll_yx, ok_yx = ctc_likelihood(lp_p, n_p, str_a, len_a)  # X' -> T~
        mask = torch.cat([frame_mask(n_a, h_a.shape[1]), frame_mask(n_p, h_p.shape[1])], dim=1)  # (B, Ta + Tp)
        protos, present = prototypes(torch.cat([h_a, h_p], dim=1), torch.cat([tok_a, tok_p], dim=1), mask,
                                     cfg.num_tokens)
        out = {
            "loss/matching": matching_loss(protos, present, self.codebook, self.similarity, cfg.temp),
            "loss/ctc_xy": _masked_mean(nll_xy, ok_xy),
            "loss/ctc_yx": _masked_mean(nll_yx, ok_yx),
            "loss/diversity": diversity_loss(torch.cat([lp_a, lp_p], dim=1), mask, cfg.diversity_per_clip),
        }
        total = (out["loss/matching"] + cfg.alpha * out["loss/ctc_xy"] + cfg.beta * out["loss/ctc_yx"]
                 + cfg.diversity * out["loss/diversity"])
        if "negative" in batch:
            h_n, n_n = self.encode(*batch["negative"])
            nll_na, ok_na = ctc_likelihood(self.logits(h_n).log_softmax(dim=-1), n_n, str_a, len_a)
            out["loss/triplet"] = triplet_loss(nll_yx, nll_na, len_a, ok_yx & ok_na, cfg.triplet_margin)
            total = total + out["loss/triplet"]
        out["loss/total"] = total
        out["stats/compression"] = (len_a.float() / n_a.float()).mean().detach()
        return out

    # ----------------------------------------------------------------- inference
    def load_clips(self, audio: Audio | Sequence[Audio], sr: int | None = None) -> list[torch.Tensor]:
        """Paths and/or waveforms -> mono waveforms ``(N_i,)`` at the model's rate.

        Arrays are taken to be at ``sr`` Hz (default: the model's rate). A single path or 1-D array
        counts as one clip. Raises :class:`AudioError` naming the clip that cannot be used.
        """
        if isinstance(audio, (str, os.PathLike)) or (hasattr(audio, "ndim") and audio.ndim == 1):
            audio = [audio]
        rate = self.config.features.sr
        clips = []
        for i, item in enumerate(audio):
            if isinstance(item, (str, os.PathLike)):
                wave, name = load_audio(item, rate), str(item)
            else:
                name = f"clip {i}"
                wave = resample(to_wave(item, name), sr or rate, rate)
            if wave.numel() < self.config.features.hop_length:
                raise AudioError(f"{name}: {wave.numel()} samples at {rate} Hz is shorter than one frame "
                                 f"({self.config.features.hop_length} samples)")
            clips.append(wave)
        return clips

    def _windows(self, clip: torch.Tensor, chunk_s: float, overlap_s: float) -> list[tuple[torch.Tensor, int, int]]:
        """Split a long clip into overlapping windows: ``(wave, first kept frame, end kept frame)``.

        Windows start on frame boundaries; each keeps its central frames (half the overlap is trimmed at
        every inner edge), so the kept frames tile the clip's frames exactly once.
        """
        hop = self.config.features.hop_length
        total = 1 + clip.numel() // hop
        chunk_f = max(2, int(chunk_s * self.config.features.sr) // hop)
        overlap_f = min(chunk_f - 1, max(0, int(overlap_s * self.config.features.sr) // hop))
        if total <= chunk_f + 1:
            return [(clip, 0, total)]
        step_f = chunk_f - overlap_f
        starts = list(range(0, total - overlap_f - 1, step_f))
        windows = []
        for j, start in enumerate(starts):
            wave = clip[start * hop : (start + chunk_f) * hop]
            frames = 1 + wave.numel() // hop
            lo = 0 if j == 0 else overlap_f // 2
            hi = frames if j == len(starts) - 1 else min(frames, step_f + overlap_f // 2)
            windows.append((wave, lo, hi))
        return windows

    def _per_frame(self, clips: list[torch.Tensor], fn, batch_size: int, chunk_s: float,
                   overlap_s: float = 2.0) -> list[torch.Tensor]:
        """Apply ``fn``: h ``(B, T, D)`` -> ``(B, T, ...)`` to every clip; returns per-clip ``(T_i, ...)`` CPU tensors.

        Clips are run in length-sorted batches of at most ``batch_size`` items and ``MAX_BATCH_SECONDS``
        of padded audio, in eval mode; clips longer than ``chunk_s`` seconds go in overlapping windows
        whose outputs are stitched, so memory is bounded for any clip length.
        """
        pieces = [(i, *w) for i, clip in enumerate(clips) for w in self._windows(clip, chunk_s, overlap_s)]
        order = sorted(range(len(pieces)), key=lambda p: pieces[p][1].numel())
        budget = MAX_BATCH_SECONDS * self.config.features.sr
        batches: list[list[int]] = []
        for p in order:  # ascending length: a batch's padded size is its newest piece's length x its count
            if not batches or len(batches[-1]) == batch_size or pieces[p][1].numel() * (len(batches[-1]) + 1) > budget:
                batches.append([])
            batches[-1].append(p)
        outputs: list[torch.Tensor | None] = [None] * len(pieces)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                for idx in batches:
                    waves, lengths = pad_batch([pieces[p][1] for p in idx])
                    h, frames = self.encode(waves.to(self.device), lengths.to(self.device))
                    for p, out in zip(idx, fn(h).cpu()):
                        outputs[p] = out[pieces[p][2] : pieces[p][3]]
        finally:
            self.train(was_training)
        per_clip: list[list[torch.Tensor]] = [[] for _ in clips]
        for (i, *_), out in zip(pieces, outputs):
            per_clip[i].append(out)
        return [torch.cat(parts) for parts in per_clip]

    def embed(self, audio: Audio | Sequence[Audio], sr: int | None = None, batch_size: int = 32,
              chunk_s: float = 60.0) -> list[torch.Tensor]:
        """Unit frame vectors per clip: list of ``(T_i, D)`` CPU tensors."""
        return self._per_frame(self.load_clips(audio, sr), lambda h: h, batch_size, chunk_s)

    def frame_tokens(self, audio: Audio | Sequence[Audio], sr: int | None = None, batch_size: int = 32,
                     chunk_s: float = 60.0) -> list[torch.Tensor]:
        """Frame-level token ids per clip (before collapsing): list of ``(T_i,)`` int64 CPU tensors."""
        return self._per_frame(self.load_clips(audio, sr), lambda h: self.logits(h).argmax(-1), batch_size, chunk_s)

    def tokenize(self, audio: Audio | Sequence[Audio], sr: int | None = None, batch_size: int = 32,
                 chunk_s: float = 60.0) -> list[list[int]]:
        """Token strings (consecutive repeats collapsed) per clip, ids in [0, K).

        Clips longer than ``chunk_s`` seconds are tokenized in overlapping windows joined frame by frame.
        """
        return [collapse(t.tolist()) for t in self.frame_tokens(audio, sr, batch_size, chunk_s)]

    # ----------------------------------------------------------------- persistence
    def checkpoint(self) -> dict[str, Any]:
        """The model as a dict of plain data and tensors (loadable with ``weights_only=True``)."""
        return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": to_dict(self.config),
                "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model and its resolved config to ``path`` atomically."""
        with atomic_write(path, "wb") as fh:
            torch.save(self.checkpoint(), fh)
        return Path(path)


def _upgraded(config: Any) -> Any:
    """A saved model config in today's terms: configs saved before ``features.pitch_repr`` existed used the
    "contour" pitch representation (the new default is "chroma")."""
    features = config.get("features") if isinstance(config, dict) else None
    if isinstance(features, dict) and "pitch_repr" not in features:
        return {**config, "features": {**features, "pitch_repr": "contour"}}
    return config


def model_from_checkpoint(ckpt: Any, name: str) -> Wav2Tok:
    """Rebuild a model from a checkpoint dict (as made by :meth:`Wav2Tok.checkpoint`)."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{name}: not a wav2tok model checkpoint")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{name}: checkpoint version {ckpt.get('version')!r}, this code reads "
                              f"{CHECKPOINT_VERSION}")
    try:
        model = Wav2Tok(from_dict(ModelConfig, _upgraded(ckpt["config"]), f"{name} config"))
        model.load_state_dict(ckpt["state_dict"])
    except (ConfigError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"{name}: config and weights do not fit ({err})") from None
    return model


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint file safely (``weights_only=True``: no code runs from the file)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types for corrupt or unsafe files
        raise CheckpointError(f"{path}: cannot be read as a safe checkpoint ({type(err).__name__}: {err})") from None


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> Wav2Tok:
    """Load a model saved by :meth:`Wav2Tok.save` (or a training checkpoint holding one), in eval mode."""
    ckpt = read_checkpoint(path)
    if isinstance(ckpt, dict) and "model" in ckpt and ckpt.get("format") != CHECKPOINT_FORMAT:
        ckpt = ckpt["model"]  # a Trainer checkpoint wraps the model checkpoint
    return model_from_checkpoint(ckpt, str(path)).to(resolve_device(device)).eval()
