"""The validation metric early stopping follows: retrieval MRR on held-out clips.

Retrieval is what the tokens are for, so the model is judged by how well its token strings retrieve,
not by its training loss (which the E-step resets whenever the codebook moves).

- Labelled (class-grouped) data: every clip queries all others; relevant = same class.
- Unlabelled (list) data: a fixed augmented copy of every clip queries the originals; relevant = its
  own original.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from ..audio.augment import AugmentConfig, augment
from ..eval.metrics import ranking_metrics
from ..model.wav2tok import Wav2Tok
from ..search.index import edit_similarity_matrix
from .data import item_generator


def retrieval_scores(model: Wav2Tok, queries: Sequence[torch.Tensor], database: Sequence[torch.Tensor],
                     relevance: np.ndarray, exclude: np.ndarray | None = None) -> dict[str, float]:
    """Tokenize both sides, rank by edit similarity; ``relevance``/``exclude``: ``(n_queries, n_db)`` bool."""
    q_tokens = model.tokenize(list(queries))
    d_tokens = q_tokens if queries is database else model.tokenize(list(database))
    result = ranking_metrics(edit_similarity_matrix(q_tokens, d_tokens), relevance, exclude)
    lengths = [len(t) for t in d_tokens]
    return {"val/mrr": result.mrr, "val/hit@1": result.hit_at[1], "val/map": result.map,
            "val/tokens_per_clip": float(np.mean(lengths))}


def make_validator(clips: Sequence[torch.Tensor], labels: Sequence[str] | None,
                   augment_config: AugmentConfig | None = None, seed: int = 0) -> Callable[[Wav2Tok], dict[str, float]]:
    """Build ``model -> {"val/mrr", "val/hit@1", "val/map", "val/tokens_per_clip"}`` for held-out ``clips``."""
    clips = list(clips)
    if labels is not None:
        lab = np.asarray(labels)
        relevance = lab[:, None] == lab[None, :]
        exclude = np.eye(len(clips), dtype=bool)
        return lambda model: retrieval_scores(model, clips, clips, relevance, exclude)
    cfg = augment_config or AugmentConfig()
    queries = [augment(c, cfg, item_generator(seed, -1, i)) for i, c in enumerate(clips)]
    identity = np.eye(len(clips), dtype=bool)
    return lambda model: retrieval_scores(model, queries, clips, identity)
