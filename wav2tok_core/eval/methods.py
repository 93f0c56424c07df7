"""Retrieval methods: clips -> per-clip representations (token strings or frame vectors) -> score matrices.

* ``wav2tok``: the model's token strings, ranked by edit similarity (:mod:`wav2tok_core.search.index`).
* ``raw-encoder``: the same, with an untrained model of the same config whose codebook comes from one
  E-step on the train clips: what training buys.
* ``dtw-mfcc`` / ``dtw-logmel``: exact path-normalised DTW (Euclidean local cost) over MFCC 13 + delta +
  delta-delta or log-mel frames, each normalised per utterance (mean/variance).
* ``dtw-encoder``: DTW (cosine local cost) over the trained model's own unit frame vectors, the ones its
  tokens are made from, unquantised: ``wav2tok`` minus ``dtw-encoder`` is what quantising and edit
  distance change, ``dtw-encoder`` minus ``dtw-mfcc`` what the encoder learned over its input features.
* ``dtw-pitch``: the same DTW over the YIN pitch front end (:mod:`wav2tok_core.audio.pitch`: key-normalised
  pitch, its delta, voicing, energy; in the model's ``pitch_repr``): the classic query-by-humming baseline.
* ``vq-mfcc`` / ``vq-logmel`` / ``vq-pitch``: k-means tokens + edit similarity (:class:`KMeansTokenizer`,
  K = the model's ``num_tokens``, fitted on the frames of the train clips only, never on test clips).

Baseline features come from :class:`FeatureExtractor` with the model's sample rate, FFT size, hop and mel
bands, so every method sees the same frames.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch

from ..audio.config import FeatureConfig
from ..audio.features import FeatureExtractor
from ..audio.io import pad_batch
from ..errors import EvalError
from ..model.codebook import fit_model_codebook
from ..model.wav2tok import Wav2Tok
from ..search.index import edit_similarity_matrix
from .baselines import KMeansTokenizer, dtw_score_matrix
from .conditions import EvalClip

METHODS = ("wav2tok", "raw-encoder", "dtw-mfcc", "dtw-logmel", "dtw-pitch", "dtw-encoder", "vq-mfcc", "vq-logmel",
           "vq-pitch")
TRAINED_METHODS = ("raw-encoder", "vq-mfcc", "vq-logmel", "vq-pitch")  # need the train clips


class Method(Protocol):
    """A retrieval method: clips -> per-clip representations -> a score matrix (higher = more similar)."""

    name: str
    unit: str  # what a representation is made of: "tokens" or "frames"

    def encode(self, clips: Sequence[EvalClip]) -> list[Any]:
        """One representation per clip."""

    def score(self, queries: Sequence[Any], database: Sequence[Any]) -> np.ndarray:
        """Similarities, shape (n_queries, n_database), no NaN."""

    def length(self, rep: Any) -> int:
        """Units (tokens or frames) in one representation."""

    def nbytes(self, reps: Sequence[Any]) -> int:
        """Storage of these representations in bytes."""


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """``(fn(*args), wall seconds)``: how encoding, scoring and spotting costs are measured."""
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start


class Featurizer:
    """Waveforms at ``config.sr`` -> per-clip frame features ``(T_i, F)`` float32, on length-sorted padded batches."""

    def __init__(self, config: FeatureConfig, batch_size: int = 32) -> None:
        self.extractor = FeatureExtractor(config)
        self.batch_size = batch_size

    @property
    def frame_s(self) -> float:
        """Seconds per frame step."""
        return self.extractor.config.hop_length / self.extractor.config.sr

    def __call__(self, waves: Sequence[torch.Tensor]) -> list[np.ndarray]:
        out: list[np.ndarray] = [np.zeros(0)] * len(waves)
        order = sorted(range(len(waves)), key=lambda i: waves[i].numel())
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                feats, frames = self.extractor(*pad_batch([waves[i].cpu() for i in idx]))  # (B, T, F), (B,)
                for i, x, t in zip(idx, feats.numpy(), frames.tolist()):
                    out[i] = np.ascontiguousarray(x[:t], dtype=np.float32)
        return out


def baseline_features(model_features: FeatureConfig, kind: str) -> FeatureConfig:
    """The baselines' front end: ``kind`` ("mfcc": 13 + deltas, or "logmel") with the model's rate, FFT, hop
    and mel bands, normalised per utterance."""
    return dataclasses.replace(model_features, kind=kind, n_mfcc=13, deltas=True, normalize=True)


class TokenMethod:
    """Token strings ranked by edit similarity; ``tokenize`` maps waveforms ``(N_i,)`` to token strings."""

    unit = "tokens"

    def __init__(self, name: str, tokenize: Callable[[list[torch.Tensor]], list[list[int]]], num_tokens: int) -> None:
        self.name = name
        self._tokenize = tokenize
        self.bytes_per_token = 1 if num_tokens <= 256 else 2 if num_tokens <= 65536 else 4

    def encode(self, clips: Sequence[EvalClip]) -> list[list[int]]:
        return self._tokenize([c.wave for c in clips]) if clips else []

    def score(self, queries: Sequence[list[int]], database: Sequence[list[int]]) -> np.ndarray:
        return edit_similarity_matrix(queries, database)

    def length(self, rep: list[int]) -> int:
        return len(rep)

    def nbytes(self, reps: Sequence[list[int]]) -> int:
        return sum(len(r) for r in reps) * self.bytes_per_token


class DTWMethod:
    """Exact path-normalised DTW over frame vectors (``metric``: "euclidean" or "cosine" local cost);
    similarity ``-D / L``. ``featurize`` maps waveforms ``(N_i,)`` to frame vectors ``(T_i, F)``."""

    unit = "frames"

    def __init__(self, name: str, featurize: Callable[[list[torch.Tensor]], list[np.ndarray]],
                 metric: str = "euclidean") -> None:
        self.name = name
        self._featurize = featurize
        self.metric = metric

    def encode(self, clips: Sequence[EvalClip]) -> list[np.ndarray]:
        return self._featurize([c.wave for c in clips])

    def score(self, queries: Sequence[np.ndarray], database: Sequence[np.ndarray]) -> np.ndarray:
        return dtw_score_matrix(queries, database, metric=self.metric)

    def length(self, rep: np.ndarray) -> int:
        return int(rep.shape[0])

    def nbytes(self, reps: Sequence[np.ndarray]) -> int:
        return sum(int(r.size) * 4 for r in reps)  # float32


def frame_vectors(model: Wav2Tok, waves: list[torch.Tensor], batch_size: int = 32) -> list[np.ndarray]:
    """The model's unit frame vectors before quantisation: ``(T_i, D)`` float32 per waveform."""
    return [e.numpy() for e in model.embed(waves, batch_size=batch_size)]


def untrained_twin(model: Wav2Tok, train_waves: Sequence[torch.Tensor], seed: int = 0, batch_size: int = 32) -> Wav2Tok:
    """A freshly initialised model with ``model``'s config, codebook from one E-step on ``train_waves``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        twin = Wav2Tok(model.config)
    twin = twin.to(model.device).eval()
    fit_model_codebook(twin, list(train_waves), seed=seed, batch_size=batch_size)
    return twin


def build_methods(names: Sequence[str], model: Wav2Tok, train_waves: Sequence[torch.Tensor], batch_size: int = 32,
                  seed: int = 0) -> list[Method]:
    """Method objects for ``names`` (see :data:`METHODS`); the trained baselines are fitted on ``train_waves``."""
    missing = [n for n in names if n in TRAINED_METHODS]
    if missing and not train_waves:
        raise EvalError(f"methods {missing} are fitted on train clips, but there are none (check the train split)")
    k = model.config.num_tokens
    featurizers: dict[str, Featurizer] = {}  # by feature kind, built for the methods asked only (a front end
    #                                          may not fit the model's frames, e.g. pitch with a short n_fft)

    def featurizer(kind: str) -> Featurizer:
        if kind not in featurizers:
            featurizers[kind] = Featurizer(baseline_features(model.config.features, kind), batch_size)
        return featurizers[kind]

    methods: list[Method] = []
    for name in names:
        if name in ("wav2tok", "raw-encoder"):
            tokenizer = model if name == "wav2tok" else untrained_twin(model, train_waves, seed, batch_size)
            methods.append(TokenMethod(name, lambda w, t=tokenizer: t.tokenize(w, batch_size=batch_size), k))
        elif name == "dtw-encoder":
            methods.append(DTWMethod(name, functools.partial(frame_vectors, model, batch_size=batch_size), "cosine"))
        elif name.startswith("dtw-"):
            methods.append(DTWMethod(name, featurizer(name[4:])))
        elif name.startswith("vq-"):
            featurize = featurizer(name[3:])
            kmeans = KMeansTokenizer(k, seed=seed).fit(featurize(train_waves))
            methods.append(TokenMethod(name, lambda w, f=featurize, km=kmeans: km.tokenize(f(w)), k))
        else:
            raise EvalError(f"unknown method {name!r}; known methods: {list(METHODS)}")
    return methods
