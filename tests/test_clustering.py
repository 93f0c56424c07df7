"""E-step: spherical k-means codebook, warm start, empty clusters."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wav2tok_core.model.codebook import fit_codebook


def blobs(k: int, d: int, n_per: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    x = np.repeat(centers, n_per, axis=0) + 0.05 * rng.normal(size=(k * n_per, d))
    return x, centers


@pytest.mark.parametrize("minibatch_above", [10**9, 100], ids=["kmeans", "minibatch"])
def test_recovers_unit_centroids(minibatch_above: int) -> None:
    x, centers = blobs(6, 8, 50)
    cb = fit_codebook(x, 6, seed=0, minibatch_above=minibatch_above).numpy()
    assert np.allclose(np.linalg.norm(cb, axis=1), 1.0, atol=1e-5)
    assert (cb @ centers.T).max(axis=0).min() > 0.98  # every true centre found


def test_warm_start_keeps_token_ids_stable() -> None:
    x, centers = blobs(5, 8, 40)
    cb = fit_codebook(x * 3.0, 5, init=torch.tensor(centers), seed=1).numpy()  # scale must not matter
    assert np.array_equal((cb @ centers.T).argmax(axis=1), np.arange(5))


def test_empty_clusters_are_reseeded() -> None:
    x, centers = blobs(4, 6, 30)
    init = np.concatenate([centers[:3], -centers[:1]])  # codeword 3 starts far from all data
    cb = fit_codebook(x, 4, init=init, seed=0).numpy()
    counts = np.bincount((x @ cb.T).argmax(axis=1), minlength=4)
    assert (counts > 0).all()


def test_too_few_frames_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least num_tokens=10"):
        fit_codebook(np.random.randn(5, 4), 10)
