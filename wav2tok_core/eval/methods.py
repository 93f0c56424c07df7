"""Retrieval methods and their registry.

A method turns clips into per-clip representations (token strings or frame vectors) and scores queries'
representations against the database's (:class:`Method`). Each method is one class, registered under its
name(s) with :func:`register` and built by :func:`build_methods` as ``cls(name, context)`` from a
:class:`MethodContext`; its docstring says what it measures. Adding a method is one class::

    @register("my-method")
    class MyMethod(TokenMethod):  # or DTWMethod, or any class satisfying Method
        def tokenize(self, waves):  # waveforms (N_i,) at the model's rate -> token strings
            ...

after which ``EvalConfig(methods=("wav2tok", "my-method"))`` evaluates it. A class that is fitted on the
train clips sets ``needs_train = True``.

Baseline features come from :class:`FeatureExtractor` with the model's sample rate, FFT size, hop and mel
bands, so every method sees the same frames.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, TypeVar

import numpy as np
import torch

from ..audio.config import FeatureConfig
from ..audio.features import FeatureExtractor
from ..audio.io import length_batches, pad_batch
from ..audio.notes import interval_tokens, note_intervals, segment_notes
from ..errors import EvalError
from ..model.codebook import fit_codebook, fit_model_codebook
from ..model.inference import MAX_BATCH_SECONDS
from ..model.tokens import token_string
from ..model.wav2tok import Wav2Tok
from ..search.index import encode_tokens, string_similarity_matrix
from ..search.spotting import substring_similarity_matrix
from .baselines import KMeansTokenizer, dtw_score_matrix, note_alignment_scores
from .conditions import EvalClip

BASELINE_KINDS = ("mfcc", "logmel", "pitch")  # front ends of the dtw-<kind> and vq-<kind> families
PQ_GROUPS = 4  # pq-encoder: parts of the frame vector, one codebook and one string each

_REGISTRY: dict[str, type] = {}  # method name -> class, in registration order
M = TypeVar("M", bound=type)


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


# ------------------------------------------------------------------------------------------------ building blocks

class Featurizer:
    """Waveforms at ``config.sr`` -> per-clip frame features ``(T_i, F)`` float32, on length-sorted padded batches
    (at most ``batch_size`` clips and ``MAX_BATCH_SECONDS`` of padded audio each, as in model inference)."""

    def __init__(self, config: FeatureConfig, batch_size: int = 32) -> None:
        self.extractor = FeatureExtractor(config)
        self.batch_size = batch_size

    @property
    def frame_s(self) -> float:
        """Seconds per frame step."""
        return self.extractor.config.frame_s

    def __call__(self, waves: Sequence[torch.Tensor]) -> list[np.ndarray]:
        out: list[np.ndarray] = [np.zeros(0)] * len(waves)
        budget = MAX_BATCH_SECONDS * self.extractor.config.sr
        with torch.inference_mode():
            for idx in length_batches([w.numel() for w in waves], self.batch_size, budget):
                feats, frames = self.extractor(*pad_batch([waves[i].cpu() for i in idx]))  # (B, T, F), (B,)
                for i, x, t in zip(idx, feats.numpy(), frames.tolist()):
                    out[i] = np.ascontiguousarray(x[:t], dtype=np.float32)
        return out

    def note_starts(self, features: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per clip ``(T_i, F)`` features -> ``(T_i,)`` bool note starts (all False for frame-level features;
        :meth:`~wav2tok_core.audio.features.FeatureExtractor.note_starts`)."""
        return [self.extractor.note_starts(torch.from_numpy(f)[None])[0].numpy() for f in features]


def baseline_features(model_features: FeatureConfig, kind: str) -> FeatureConfig:
    """The baselines' front end: ``kind`` ("mfcc": 13 + deltas, "logmel" or "pitch") with the model's rate,
    FFT, hop and mel bands, normalised per utterance."""
    return dataclasses.replace(model_features, kind=kind, n_mfcc=13, deltas=True, normalize=True)


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


@dataclass
class MethodContext:
    """What a method class builds itself from: the evaluated model, the train clips ``(N_i,)`` at its rate
    (empty unless a requested method ``needs_train``), the batch size, the seed, and the baseline front ends
    shared by the methods of one evaluation."""

    model: Wav2Tok
    train_waves: Sequence[torch.Tensor] = ()
    batch_size: int = 32
    seed: int = 0
    featurizers: dict[str, Featurizer] = field(default_factory=dict)  # by feature kind

    def featurizer(self, kind: str) -> Featurizer:
        """The baseline front end of ``kind``, built on first use: only the front ends asked for are built, as
        one may not fit the model's frames (e.g. pitch with a short n_fft)."""
        if kind not in self.featurizers:
            self.featurizers[kind] = Featurizer(baseline_features(self.model.config.features, kind), self.batch_size)
        return self.featurizers[kind]


class TokenMethod:
    """Token strings ranked by edit similarity (:func:`wav2tok_core.search.index.string_similarity_matrix`).

    Subclasses define :meth:`tokenize`. A representation is the encoded string an index stores
    (:func:`~wav2tok_core.search.index.encode_tokens`), so the scoring time is what a search costs. Tokens
    are stored at 1 byte each (2 above 256 token ids, going by the model's ``num_tokens``).
    """

    unit = "tokens"
    needs_train = False

    def __init__(self, name: str, context: MethodContext) -> None:
        self.name = name
        num_tokens = context.model.config.num_tokens
        self.bytes_per_token = 1 if num_tokens <= 256 else 2 if num_tokens <= 65536 else 4

    def tokenize(self, waves: list[torch.Tensor]) -> list[list[int]]:
        """Waveforms ``(N_i,)`` at the model's rate -> one token string each."""
        raise NotImplementedError

    def encode(self, clips: Sequence[EvalClip]) -> list[str]:
        return [encode_tokens(t) for t in self.tokenize([c.wave for c in clips])] if clips else []

    def score(self, queries: Sequence[str], database: Sequence[str]) -> np.ndarray:
        return string_similarity_matrix(queries, database)

    def length(self, rep: str) -> int:
        return len(rep)

    def nbytes(self, reps: Sequence[str]) -> int:
        return sum(len(r) for r in reps) * self.bytes_per_token


class DTWMethod:
    """Exact path-normalised DTW over frame vectors, similarity ``-D / L`` (:mod:`wav2tok_core.eval.baselines`).

    Subclasses define :meth:`featurize` and may set ``metric`` to "cosine" (default "euclidean" local cost).
    Frames are stored as float32.
    """

    unit = "frames"
    metric = "euclidean"
    needs_train = False

    def __init__(self, name: str, context: MethodContext) -> None:
        self.name = name

    def featurize(self, waves: list[torch.Tensor]) -> list[np.ndarray]:
        """Waveforms ``(N_i,)`` at the model's rate -> frame vectors ``(T_i, F)`` float32."""
        raise NotImplementedError

    def encode(self, clips: Sequence[EvalClip]) -> list[np.ndarray]:
        return self.featurize([c.wave for c in clips])

    def score(self, queries: Sequence[np.ndarray], database: Sequence[np.ndarray]) -> np.ndarray:
        return dtw_score_matrix(queries, database, metric=self.metric)

    def length(self, rep: np.ndarray) -> int:
        return int(rep.shape[0])

    def nbytes(self, reps: Sequence[np.ndarray]) -> int:
        return sum(int(r.size) * 4 for r in reps)  # float32


# ------------------------------------------------------------------------------------------------ the registry

def register(*names: str) -> Callable[[M], M]:
    """Class decorator: make a method class buildable under each of ``names``.

    The class is built as ``cls(name, context)`` (:class:`MethodContext`) and must satisfy :class:`Method`;
    it sets ``needs_train = True`` when it is fitted on the train clips. A name is registered once.
    """
    if not names:
        raise EvalError("register: give the method at least one name")

    def add(cls: M) -> M:
        taken = [n for n in names if n in _REGISTRY]
        if taken:
            raise EvalError(f"register: methods {taken} are already registered (by {_REGISTRY[taken[0]].__name__})")
        _REGISTRY.update(dict.fromkeys(names, cls))
        return cls
    return add


def method_names() -> tuple[str, ...]:
    """Every registered method name, built-in ones first, in registration order."""
    return tuple(_REGISTRY)


def needs_train(name: str) -> bool:
    """Whether the method registered as ``name`` is fitted on the train clips (False for unknown names)."""
    return getattr(_REGISTRY.get(name), "needs_train", False)


def build_methods(names: Sequence[str], model: Wav2Tok, train_waves: Sequence[torch.Tensor], batch_size: int = 32,
                  seed: int = 0) -> list[Method]:
    """Method objects for registered ``names``; those that need train clips are fitted on ``train_waves``."""
    fitted = [n for n in names if needs_train(n)]
    if fitted and not train_waves:
        raise EvalError(f"methods {fitted} are fitted on train clips, but there are none (check the train split)")
    unknown = [n for n in names if n not in _REGISTRY]
    if unknown:
        raise EvalError(f"unknown method {unknown[0]!r}; known methods: {list(_REGISTRY)}")
    context = MethodContext(model, train_waves, batch_size, seed)
    return [_REGISTRY[name](name, context) for name in names]


def _kind(name: str) -> str:
    """The front end a family member is named for: ``dtw-mfcc`` -> ``mfcc``."""
    return name.partition("-")[2]


# ------------------------------------------------------------------------------------------------ built-in methods
# Registration order is the order of METHODS (the command line's choices and the full results table).

@register("wav2tok")
class ModelTokens(TokenMethod):
    """``wav2tok``: the model's token strings, ranked by edit similarity."""

    def __init__(self, name: str, context: MethodContext) -> None:
        super().__init__(name, context)
        self.model, self.batch_size = context.model, context.batch_size

    def tokenize(self, waves: list[torch.Tensor]) -> list[list[int]]:
        return self.model.tokenize(waves, batch_size=self.batch_size)


@register("wav2tok-partial")
class ModelTokensPartial(ModelTokens):
    """``wav2tok-partial``: the model's token strings, each query scored by its best placement inside each
    database string (:func:`wav2tok_core.search.spotting.substring_similarity_matrix`) instead of whole-string
    edit similarity: for queries that cover part of what they should find (a hum of part of a phrase)."""

    def score(self, queries: Sequence[str], database: Sequence[str]) -> np.ndarray:
        return substring_similarity_matrix(queries, database)


@register("raw-encoder")
class RawEncoderTokens(ModelTokens):
    """``raw-encoder``: the same, with an untrained model of the same config whose codebook comes from one
    E-step on the train clips: what training buys."""

    needs_train = True

    def __init__(self, name: str, context: MethodContext) -> None:
        super().__init__(name, context)
        self.model = untrained_twin(context.model, context.train_waves, context.seed, context.batch_size)


@register("kmeans-encoder")
class EncoderKMeansTokens(ModelTokens):
    """``kmeans-encoder``: the trained model's own frames, quantised by a fresh k-means codebook (K = the model's,
    fitted on the train clips) instead of the model's: what the codebook training adds over clustering the
    same frames (and the tokens of a model trained on continuous frames only, stage I)."""

    needs_train = True

    def __init__(self, name: str, context: MethodContext) -> None:
        super().__init__(name, context)
        self.model = copy.deepcopy(context.model).eval()
        fit_model_codebook(self.model, list(context.train_waves), seed=context.seed, batch_size=context.batch_size)


@register("wav2tok-collapsed", "wav2tok-repeats")
class ModelTokenStrings(ModelTokens):
    """``wav2tok-collapsed`` / ``wav2tok-repeats``: the model's tokens as collapsed strings (one token per note
    at least, over note-level features), or with one token per frame, whatever the model's ``keep_repeats``
    says: what keeping durations in the strings changes."""

    def __init__(self, name: str, context: MethodContext) -> None:
        super().__init__(name, context)
        self.keep_repeats = name.endswith("repeats")

    def tokenize(self, waves: list[torch.Tensor]) -> list[list[int]]:
        return self.model.tokenize(waves, batch_size=self.batch_size, keep_repeats=self.keep_repeats)


@register("pq-encoder")
class EncoderProductTokens:
    """``pq-encoder``: the trained model's frame vectors cut into ``PQ_GROUPS`` equal parts, each quantised by
    its own cosine k-means codebook (K = the model's, fitted on the train clips): one token string per part
    (repeats kept or collapsed as the model's ``keep_repeats`` says), edit similarities averaged over the parts.
    A product quantiser: how much of what one codebook loses several recover, at ``PQ_GROUPS`` times the cost."""

    unit = "tokens"
    needs_train = True

    def __init__(self, name: str, context: MethodContext) -> None:
        self.name, self.model, self.batch_size = name, context.model, context.batch_size
        frames = np.concatenate(frame_vectors(self.model, list(context.train_waves), self.batch_size))  # (N, D)
        self.parts = np.array_split(np.arange(frames.shape[1]), PQ_GROUPS)
        k = context.model.config.num_tokens
        self.codebooks = [fit_codebook(frames[:, part], k, seed=context.seed + g).numpy()  # (K, D / G) each
                          for g, part in enumerate(self.parts)]
        self.bytes_per_token = 1 if k <= 256 else 2

    def encode(self, clips: Sequence[EvalClip]) -> list[tuple[str, ...]]:
        if not clips:
            return []
        vectors = frame_vectors(self.model, [c.wave for c in clips], self.batch_size)
        frames = np.concatenate(vectors)  # (sum T_i, D): every clip's frames quantised in one product per part
        bounds = np.cumsum([len(v) for v in vectors])[:-1]
        per_part = []  # per part: (sum T_i,) token ids
        for part, codebook in zip(self.parts, self.codebooks):
            sub = frames[:, part] / np.maximum(np.linalg.norm(frames[:, part], axis=1, keepdims=True), 1e-12)
            per_part.append((sub @ codebook.T).argmax(axis=1))
        keep = self.model.config.keep_repeats
        return [tuple(encode_tokens(token_string(ids, keep)) for ids in clip_ids)
                for clip_ids in zip(*(np.split(ids, bounds) for ids in per_part))]

    def score(self, queries: Sequence[tuple[str, ...]], database: Sequence[tuple[str, ...]]) -> np.ndarray:
        return np.mean([string_similarity_matrix([q[g] for q in queries], [d[g] for d in database])
                        for g in range(len(self.parts))], axis=0)

    def length(self, rep: tuple[str, ...]) -> int:
        return sum(len(s) for s in rep)

    def nbytes(self, reps: Sequence[tuple[str, ...]]) -> int:
        return sum(self.length(r) for r in reps) * self.bytes_per_token


@register(*(f"dtw-{kind}" for kind in BASELINE_KINDS))
class FeatureDTW(DTWMethod):
    """``dtw-mfcc`` / ``dtw-logmel`` / ``dtw-pitch``: DTW (Euclidean local cost) over a baseline front end,
    normalised per utterance: MFCC 13 + delta + delta-delta, log-mel, or the YIN pitch front end
    (:mod:`wav2tok_core.audio.pitch`: key-normalised pitch, its delta, voicing, energy; in the model's
    ``pitch_repr``), the classic query-by-humming baseline."""

    def __init__(self, name: str, context: MethodContext) -> None:
        super().__init__(name, context)
        self.featurizer = context.featurizer(_kind(name))

    def featurize(self, waves: list[torch.Tensor]) -> list[np.ndarray]:
        return self.featurizer(waves)


@register("dtw-encoder")
class EncoderDTW(DTWMethod):
    """``dtw-encoder``: DTW (cosine local cost) over the trained model's own unit frame vectors, the ones its
    tokens are made from, unquantised: ``wav2tok`` minus ``dtw-encoder`` is what quantising and edit
    distance change, ``dtw-encoder`` minus ``dtw-mfcc`` what the encoder learned over its input features."""

    metric = "cosine"

    def __init__(self, name: str, context: MethodContext) -> None:
        super().__init__(name, context)
        self.model, self.batch_size = context.model, context.batch_size

    def featurize(self, waves: list[torch.Tensor]) -> list[np.ndarray]:
        return frame_vectors(self.model, waves, self.batch_size)


@register("dtw-codewords")
class CodewordDTW(EncoderDTW):
    """``dtw-codewords``: the same DTW over each frame's codeword (the unit vector of the token it gets) instead
    of the frame: ``dtw-encoder`` minus ``dtw-codewords`` is what quantising costs, ``dtw-codewords`` minus
    ``wav2tok`` what ranking token strings by edit similarity costs on top of it."""

    def featurize(self, waves: list[torch.Tensor]) -> list[np.ndarray]:
        codebook = self.model.codebook.detach().cpu().numpy()  # (K, D) unit rows
        return [np.ascontiguousarray(codebook[(frames @ codebook.T).argmax(axis=1)]) for frames in super().featurize(waves)]


class NoteTracker:
    """Waveforms -> each clip's notes ``(n, 3)`` (:func:`segment_notes`), through the pitch front end with the
    model's rate, hop and f0 tracker (MIDI pitch, not key-normalised)."""

    def __init__(self, context: MethodContext) -> None:
        features = dataclasses.replace(context.model.config.features, kind="pitch", pitch_repr="contour",
                                       normalize=False)
        self.featurizer = Featurizer(features, context.batch_size)

    def __call__(self, waves: list[torch.Tensor]) -> list[np.ndarray]:
        frame_s = self.featurizer.frame_s
        return [segment_notes(f[:, 0], f[:, 2] == 1, frame_s) for f in self.featurizer(waves)]


@register("notes-align")
class NoteAlignment(DTWMethod):
    """``notes-align``: the note-level query-by-humming baseline. Each clip's notes (:class:`NoteTracker`) as
    intervals and duration ratios; a query's are aligned whole against any stretch of each database clip's
    (:func:`note_alignment_scores`): transposition and tempo do not matter, and a hum may cover part of a tune."""

    unit = "notes"

    def __init__(self, name: str, context: MethodContext) -> None:
        super().__init__(name, context)
        self.notes = NoteTracker(context)

    def featurize(self, waves: list[torch.Tensor]) -> list[np.ndarray]:
        return [note_intervals(n) for n in self.notes(waves)]

    def score(self, queries: Sequence[np.ndarray], database: Sequence[np.ndarray]) -> np.ndarray:
        return note_alignment_scores(queries, database)


@register("notes-tokens")
class NoteIntervalTokens(TokenMethod):
    """``notes-tokens``: a fixed tokenizer of the same notes, no training: each note's interval from the previous
    one, folded into an octave and rounded to a semitone (12 tokens, :func:`interval_tokens`), ranked by edit
    similarity like wav2tok's strings. What a learned tokenizer over notes has to beat."""

    def __init__(self, name: str, context: MethodContext) -> None:
        super().__init__(name, context)
        self.notes = NoteTracker(context)

    def tokenize(self, waves: list[torch.Tensor]) -> list[list[int]]:
        return [interval_tokens(n) for n in self.notes(waves)]


@register(*(f"vq-{kind}" for kind in BASELINE_KINDS))
class FeatureKMeansTokens(TokenMethod):
    """``vq-mfcc`` / ``vq-logmel`` / ``vq-pitch``: k-means tokens of a baseline front end + edit similarity
    (:class:`KMeansTokenizer`, K = the model's ``num_tokens``, fitted on the frames of the train clips only,
    never on test clips). Over note-level pitch features a string has one token per note, as the model's has."""

    needs_train = True

    def __init__(self, name: str, context: MethodContext) -> None:
        super().__init__(name, context)
        self.featurizer = context.featurizer(_kind(name))
        train = self.featurizer(context.train_waves)
        self.kmeans = KMeansTokenizer(context.model.config.num_tokens, seed=context.seed).fit(train)

    def tokenize(self, waves: list[torch.Tensor]) -> list[list[int]]:
        features = self.featurizer(waves)
        return self.kmeans.tokenize(features, self.featurizer.note_starts(features))


METHODS = method_names()  # the built-in methods; method_names() also lists those registered later
TRAINED_METHODS = tuple(name for name in METHODS if needs_train(name))  # fitted on the train clips
