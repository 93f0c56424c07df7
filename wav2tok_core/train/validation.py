"""The validation metric early stopping follows: retrieval MRR on held-out clips.

Retrieval is what the tokens are for, so the model is judged by how well its token strings retrieve,
not by its training loss (which the E-step resets whenever the codebook moves).

- Labelled (class-grouped) data: every clip queries all others; relevant = same class.
- Unlabelled (list) data: a fixed augmented copy of every clip queries the originals; relevant = its
  own original.

The same pass reports the codebook's health on the held-out clips' frames: perplexity (effective number of
tokens), dead tokens (never chosen) and, with labels, purity (the share of frames whose token's most common
label is their own label: 1 when every token belongs to one class).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from ..audio.augment import AugmentConfig, augment
from ..eval.metrics import ranking_metrics
from ..model.tokens import token_string
from ..model.wav2tok import Wav2Tok
from ..search.index import edit_similarity_matrix
from .callbacks import usage_stats
from .data import item_generator


def codebook_health(frame_tokens: Sequence[torch.Tensor], num_tokens: int,
                    labels: Sequence[str] | None = None) -> dict[str, float]:
    """``codebook/perplexity``, ``codebook/dead_tokens`` and, with one label per clip, ``codebook/purity`` of
    the clips' frame tokens (each ``(T_i,)``)."""
    ids = torch.cat(list(frame_tokens)).numpy()
    stats = usage_stats(np.bincount(ids, minlength=num_tokens))
    health = {"codebook/perplexity": stats["perplexity"], "codebook/dead_tokens": float(stats["dead_tokens"])}
    if labels is not None:
        _, label_ids = np.unique(np.asarray(labels), return_inverse=True)
        frame_labels = np.repeat(label_ids, [len(t) for t in frame_tokens])
        joint = np.zeros((num_tokens, label_ids.max() + 1))
        np.add.at(joint, (ids, frame_labels), 1)
        health["codebook/purity"] = float(joint.max(axis=1).sum() / max(ids.size, 1))
    return health


def retrieval_scores(model: Wav2Tok, queries: Sequence[torch.Tensor], database: Sequence[torch.Tensor],
                     relevance: np.ndarray, exclude: np.ndarray | None = None,
                     labels: Sequence[str] | None = None) -> dict[str, float]:
    """Tokenize both sides, rank by edit similarity, and report the codebook's health on the database's frames
    (:func:`codebook_health`; ``labels``: the database clips'). ``relevance``/``exclude``: ``(n_queries,
    n_db)`` bool."""
    keep = model.config.keep_repeats
    d_frames, d_starts = zip(*model.frame_tokens_and_starts(list(database)))
    d_tokens = [token_string(f, keep, starts) for f, starts in zip(d_frames, d_starts)]
    q_tokens = d_tokens if queries is database else model.tokenize(list(queries))
    result = ranking_metrics(edit_similarity_matrix(q_tokens, d_tokens), relevance, exclude)
    lengths = [len(t) for t in d_tokens]
    return {"val/mrr": result.mrr, "val/hit@1": result.hit_at[1], "val/map": result.map,
            "val/tokens_per_clip": float(np.mean(lengths)),
            **codebook_health(d_frames, model.config.num_tokens, labels)}


def make_validator(clips: Sequence[torch.Tensor], labels: Sequence[str] | None,
                   augment_config: AugmentConfig | None = None, seed: int = 0) -> Callable[[Wav2Tok], dict[str, float]]:
    """Build ``model -> {"val/mrr", "val/hit@1", "val/map", "val/tokens_per_clip", "codebook/..."}`` for held-out
    ``clips`` (see :func:`retrieval_scores`)."""
    clips = list(clips)
    if labels is not None:
        lab = np.asarray(labels)
        relevance = lab[:, None] == lab[None, :]
        exclude = np.eye(len(clips), dtype=bool)
        return lambda model: retrieval_scores(model, clips, clips, relevance, exclude, labels)
    cfg = augment_config or AugmentConfig()
    queries = [augment(c, cfg, item_generator(seed, -1, i)) for i, c in enumerate(clips)]
    identity = np.eye(len(clips), dtype=bool)
    return lambda model: retrieval_scores(model, queries, clips, identity)
