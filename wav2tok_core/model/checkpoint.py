"""Model checkpoint files: format, safe reading, and upgrading files written by earlier versions.

A model checkpoint holds the model only: ``{"format": "wav2tok-model", "version": 2, "config": ModelConfig as
a dict, "state_dict": features, encoder, projection and codebook}``. Version 1 files (written before the
training objective moved out of the model) also held the M-step's teacher, the learned similarity and the
loss weights; :func:`upgrade` splits those off, so a version 1 file loads with the same weights and gives the
same tokens, and a resumed training run can still take its training state from it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

FORMAT = "wav2tok-model"
VERSION = 2
TRAINING_ONLY_KEYS = ("alpha", "beta", "use_cosine", "triplet_margin", "diversity", "diversity_per_clip", "targets")
TRAINING_ONLY_STATE = ("teacher.", "similarity.")  # state_dict prefixes of version 1 files


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint file safely (``weights_only=True``: no code runs from the file)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types for corrupt or unsafe files
        raise CheckpointError(f"{path}: cannot be read as a safe checkpoint ({type(err).__name__}: {err})") from None


def upgrade(ckpt: Any, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A model checkpoint dict in today's format, and the training state a version 1 file carried.

    Returns:
        ``(checkpoint, training)``: ``training`` is ``{}`` for version 2 files, else
        ``{"config": {loss weights...}, "state_dict": {"teacher.*", "similarity.*": tensors}}``.
    """
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{name}: not a wav2tok model checkpoint")
    version = ckpt.get("version")
    if version == VERSION:
        return ckpt, {}
    if version != 1:
        raise CheckpointError(f"{name}: checkpoint version {version!r}, this code reads 1 and {VERSION}")
    if not isinstance(ckpt.get("config"), dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{name}: version 1 checkpoint without a config and state_dict")
    config, state = dict(ckpt["config"]), ckpt["state_dict"]
    features = config.get("features")
    if isinstance(features, dict) and "pitch_repr" not in features:
        # Saved before features.pitch_repr existed: those models used the "contour" representation.
        config["features"] = {**features, "pitch_repr": "contour"}
    training_config = {k: config.pop(k) for k in TRAINING_ONLY_KEYS if k in config}
    training_state = {k: v for k, v in state.items() if k.startswith(TRAINING_ONLY_STATE)}
    model_state = {k: v for k, v in state.items() if not k.startswith(TRAINING_ONLY_STATE)}
    return ({"format": FORMAT, "version": VERSION, "config": config, "state_dict": model_state},
            {"config": training_config, "state_dict": training_state})
