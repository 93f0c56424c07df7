"""The wav2tok tokenizer: features -> encoder -> projection -> cosine token classifier over a codebook.

The model holds what tokenizing needs and nothing else; the training objective (losses, teacher, learned
similarity, loss weights) wraps it in :mod:`wav2tok_core.train.objective`. Inference on paths or
waveforms (``tokenize``, ``frame_tokens``, ``embed``) comes from :class:`~wav2tok_core.model.inference.Inference`.
Shapes: B batch, N samples, T frames, E encoder size, D code size (E/2), K tokens.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..audio.features import FeatureExtractor
from ..audio.frames import frame_mask
from ..config import from_dict, to_dict
from ..errors import CheckpointError, ConfigError
from ..runtime import atomic_write, resolve_device
from .checkpoint import FORMAT, VERSION, read_checkpoint, upgrade
from .config import ModelConfig
from .encoders import FrameEncoder, LSTMEncoder, TransformerEncoder
from .inference import Inference


class Wav2Tok(Inference, nn.Module):
    """wav2tok tokenizer. Build from a :class:`ModelConfig`; load with :func:`load_model`."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ModelConfig()
        self.features = FeatureExtractor(config.features)
        if not config.use_context:
            self.encoder: nn.Module = FrameEncoder(config.input_dim, config.emb_dim, config.num_layers, config.dropout)
        elif config.use_transformer:
            self.encoder = TransformerEncoder(config.input_dim, config.emb_dim, config.num_layers, config.dropout,
                                              config.nhead)
        else:
            self.encoder = LSTMEncoder(config.input_dim, config.emb_dim, config.num_layers, config.dropout)
        self.proj = nn.Linear(config.emb_dim, config.proj_dim)
        # Set by k-means (the E-step), frozen during the M-step: a buffer, not a parameter.
        self.register_buffer("codebook", F.normalize(torch.randn(config.num_tokens, config.code_dim), dim=-1))

    @property
    def device(self) -> torch.device:
        return self.codebook.device

    def encode(self, waves: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """waves ``(B, N)``, lengths ``(B,)`` -> unit frame vectors h ``(B, T, D)`` and frame counts ``(B,)``."""
        feats, frame_lengths = self.features(waves, lengths)  # (B, T, F)
        return self.encode_features(feats, frame_lengths), frame_lengths

    def encode_features(self, feats: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        """Features ``(B, T, F)`` -> unit frame vectors h ``(B, T, D)``, zero on padded frames."""
        h = self.project(self.encoder(feats, frame_lengths), feats)  # (B, T, D)
        return h * frame_mask(frame_lengths, h.shape[1])[..., None]

    def project(self, z: torch.Tensor, feats: torch.Tensor, proj: nn.Module | None = None) -> torch.Tensor:
        """Encoder outputs ``(B, T, E)`` -> unit frame vectors ``(B, T, D)`` through ``proj`` (default: the
        model's projection; the training teacher passes its frozen copy).

        With ``input_skip`` w > 0, h = unit([unit(proj(z)), w * unit(features)]) (D = proj_dim + F): the cosine
        of two frames is then (cos of the learned parts + w^2 cos of the features) / (1 + w^2).
        """
        h = F.normalize((proj or self.proj)(z), dim=-1)  # (B, T, proj_dim)
        if self.config.input_skip > 0:
            h = F.normalize(torch.cat([h, self.config.input_skip * F.normalize(feats, dim=-1)], dim=-1), dim=-1)
        return h

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Unit frame vectors ``(B, T, D)`` -> token logits cos(h, e_k) / temp ``(B, T, K)``."""
        return h @ self.codebook.T / self.config.temp

    def set_codebook(self, codebook: torch.Tensor) -> None:
        """Install K codewords ``(K, D)`` (normalised here)."""
        expected = tuple(self.codebook.shape)
        if tuple(codebook.shape) != expected:
            raise ValueError(f"codebook shape {tuple(codebook.shape)} does not match the model's {expected}")
        self.codebook.copy_(F.normalize(codebook.to(self.codebook), dim=-1))

    def checkpoint(self) -> dict[str, Any]:
        """The model as a dict of plain data and tensors (loadable with ``weights_only=True``)."""
        return {"format": FORMAT, "version": VERSION, "config": to_dict(self.config),
                "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model and its resolved config to ``path`` atomically."""
        with atomic_write(path, "wb") as fh:
            torch.save(self.checkpoint(), fh)
        return Path(path)


def model_from_checkpoint(ckpt: Any, name: str) -> Wav2Tok:
    """Rebuild a model from a model checkpoint dict (version 1 or 2, see :mod:`.checkpoint`)."""
    ckpt, _ = upgrade(ckpt, name)
    try:
        model = Wav2Tok(from_dict(ModelConfig, ckpt["config"], f"{name} config"))
        model.load_state_dict(ckpt["state_dict"])
    except (ConfigError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"{name}: config and weights do not fit ({err})") from None
    return model


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> Wav2Tok:
    """Load a model saved by :meth:`Wav2Tok.save` (or a training checkpoint holding one), in eval mode."""
    ckpt = read_checkpoint(path)
    if isinstance(ckpt, dict) and "model" in ckpt and ckpt.get("format") != FORMAT:
        ckpt = ckpt["model"]  # a training checkpoint wraps the model checkpoint
    return model_from_checkpoint(ckpt, str(path)).to(resolve_device(device)).eval()
