"""Encoders: features ``(B, T, F)`` -> L2-normalised frame embeddings ``(B, T, E)``, with context (BiLSTM,
Transformer) or frame by frame (MLP)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..audio.frames import frame_mask


class LSTMEncoder(nn.Module):
    """Bidirectional LSTM over packed variable-length batches (E/2 units per direction)."""

    def __init__(self, input_dim: int, emb_dim: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_dim, emb_dim // 2, num_layers=num_layers, batch_first=True,
                            bidirectional=True, dropout=dropout if num_layers > 1 else 0.0)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x: ``(B, T, F)``; lengths: ``(B,)`` -> ``(B, T, E)``, zeros on padded frames."""
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])  # (B, T, E)
        return F.normalize(out, dim=-1)


class FrameEncoder(nn.Module):
    """Every frame on its own: ``num_layers`` linear layers with GELU between them (dropout after each hidden
    layer), no context, so equal input frames get equal embeddings."""

    def __init__(self, input_dim: int, emb_dim: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(num_layers):
            layers.append(nn.Linear(input_dim if i == 0 else emb_dim, emb_dim))
            if i < num_layers - 1:
                layers += [nn.GELU(), nn.Dropout(dropout)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x: ``(B, T, F)``; lengths: ``(B,)`` -> ``(B, T, E)``, zeros on padded frames."""
        mask = frame_mask(lengths.to(x.device), x.shape[1])  # (B, T)
        return F.normalize(self.net(x), dim=-1) * mask[..., None]


def sinusoidal_positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """Fixed sine/cosine position codes ``(T, E)``."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(1e4) / dim))
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe


class TransformerEncoder(nn.Module):
    """Pre-norm Transformer with sinusoidal positions and a key padding mask."""

    def __init__(self, input_dim: int, emb_dim: int, num_layers: int, dropout: float, nhead: int) -> None:
        super().__init__()
        self.inp = nn.Linear(input_dim, emb_dim)
        layer = nn.TransformerEncoderLayer(emb_dim, nhead, dim_feedforward=4 * emb_dim, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(emb_dim)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x: ``(B, T, F)``; lengths: ``(B,)`` -> ``(B, T, E)``, zeros on padded frames."""
        mask = frame_mask(lengths.to(x.device), x.shape[1])  # (B, T)
        z = self.inp(x) + sinusoidal_positions(x.shape[1], self.inp.out_features, x.device)
        z = self.norm(self.layers(z, src_key_padding_mask=~mask))
        return F.normalize(z, dim=-1) * mask[..., None]
