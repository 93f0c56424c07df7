"""The codebook's k-means: spherical k-means over the encoder's frame vectors sets the codewords.

Frame vectors live on the unit sphere and tokens are assigned by cosine, so k-means runs on the
normalised vectors and the centroids are normalised: that is spherical k-means up to the centroid
normalisation inside each Lloyd step. A previous codebook warm-starts the fit, so token ids stay stable
from one E-step to the next.

In a distributed run every process embeds its share of the chosen clips, the frames are gathered,
rank 0 clusters them and broadcasts the codebook: every process ends with the same codebook.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from sklearn.cluster import KMeans, MiniBatchKMeans

from .. import distributed
from ..errors import ConfigError

# Above this many frames the E-step uses MiniBatchKMeans (memory and time grow linearly, not per pass).
MINIBATCH_ABOVE = 200_000


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _reseed_empty(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Move codewords that own no frame onto the frames worst served by their current codeword."""
    sims = x @ centroids.T  # (N, K)
    labels = sims.argmax(axis=1)
    counts = np.bincount(labels, minlength=len(centroids))
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        worst = np.argsort(sims[np.arange(len(x)), labels])[: len(empty)]
        centroids = centroids.copy()
        centroids[empty[: len(worst)]] = x[worst]
    return centroids


def fit_codebook(frames: np.ndarray | torch.Tensor, num_tokens: int, init: np.ndarray | torch.Tensor | None = None,
                 seed: int = 0, minibatch_above: int = MINIBATCH_ABOVE) -> torch.Tensor:
    """Cluster frame vectors into ``num_tokens`` unit codewords.

    Args:
        frames: ``(N, D)`` frame vectors (normalised here).
        init: ``(K, D)`` previous codebook for a warm start, or None for k-means++.

    Returns:
        codebook: ``(K, D)`` float32 unit vectors; every codeword owns at least one frame when N >= K.
    """
    x = _normalize(np.asarray(frames.detach().cpu() if torch.is_tensor(frames) else frames, dtype=np.float64))
    if len(x) < num_tokens:
        raise ConfigError(f"E-step needs at least num_tokens={num_tokens} frames, got {len(x)}: "
                         "use more (or longer) clips, a larger cluster_split, or fewer tokens")
    start = "k-means++" if init is None else _normalize(np.asarray(init.cpu() if torch.is_tensor(init) else init,
                                                                   dtype=np.float64))
    if len(x) > minibatch_above:
        km = MiniBatchKMeans(num_tokens, init=start, n_init=1, batch_size=4096, random_state=seed)
    else:
        km = KMeans(num_tokens, init=start, n_init=1, random_state=seed)
    centroids = _reseed_empty(x, _normalize(km.fit(x).cluster_centers_))
    return torch.from_numpy(_normalize(centroids)).float()


def collect_frames(model, clips: Sequence[torch.Tensor], batch_size: int = 32) -> torch.Tensor:
    """Frame vectors of ``clips`` (waveforms at the model's rate) in eval mode, without gradients: ``(N, D)``.

    In a distributed run each process embeds every world_size-th clip and the result holds all ranks' frames.
    """
    ctx = distributed.context()
    mine = list(clips)[ctx.rank :: ctx.world_size]
    if mine:
        frames = torch.cat(model.embed(mine, batch_size=batch_size), dim=0)
    else:
        frames = torch.empty(0, model.config.code_dim)
    return torch.cat(distributed.all_gather_objects(frames), dim=0)


def fit_model_codebook(model, clips: Sequence[torch.Tensor], seed: int = 0, batch_size: int = 32) -> torch.Tensor:
    """Cluster the frames of ``clips`` and install the codebook in ``model`` (warm-started from its current
    one). Every process of a distributed run ends with rank 0's codebook. Returns the codebook ``(K, D)``."""
    frames = collect_frames(model, clips, batch_size)
    codebook = model.codebook.detach().clone()
    if distributed.context().is_main:
        codebook = fit_codebook(frames, model.config.num_tokens, init=model.codebook, seed=seed).to(codebook)
    model.set_codebook(distributed.broadcast_(codebook))
    return model.codebook.detach().cpu()
