"""Cross-speaker token consistency: do two speakers saying the same word get the same tokens?

MRR says whether retrieval works; this diagnostic says whether a change helped the token strings or only
the frames underneath them. Pairs of clips by different speakers are drawn, half with the same label and
half with different labels, and for each pair:

* ``aligned_agreement``: the share of frames whose token equals the token of the frame DTW aligns them with
  (alignment over the baseline MFCC frames, so every model is aligned the same way);
* ``bigram_jaccard``: the Jaccard index of the two token strings' bigram sets;
* ``edit_distance``: the normalised edit distance of the two token strings.

A tokenizer that names words consistently scores high agreement and Jaccard and low distance on same-label
pairs, and is far from that on different-label pairs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from rapidfuzz.distance import Levenshtein

from ..model.tokens import collapse
from ..model.wav2tok import Wav2Tok
from ..search.index import encode_tokens
from .baselines import dtw_partners
from .conditions import EvalClip
from .methods import Featurizer, baseline_features

MEASURES = ("aligned_agreement", "bigram_jaccard", "edit_distance")


@dataclass(frozen=True)
class Consistency:
    """Means of each measure over same-label and different-label cross-speaker pairs."""

    same_label: dict[str, float]
    different_label: dict[str, float]
    n_pairs: int  # of each kind

    def to_dict(self) -> dict[str, object]:
        return {"same_label": self.same_label, "different_label": self.different_label, "n_pairs": self.n_pairs}


def _pairs(clips: Sequence[EvalClip], same: bool, count: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Up to ``count`` distinct pairs of clips by different speakers, with equal (``same``) or different labels."""
    candidates = [(i, j) for i in range(len(clips)) for j in range(i + 1, len(clips))
                  if clips[i].item.speaker != clips[j].item.speaker
                  and (clips[i].item.label == clips[j].item.label) == same]
    chosen = rng.permutation(len(candidates))[:count]
    return [candidates[k] for k in sorted(chosen)]


def _bigrams(string: list[int]) -> set[tuple[int, int]]:
    return set(zip(string, string[1:]))


def _measures(pairs: list[tuple[int, int]], frames: list[np.ndarray], features: list[np.ndarray]) -> dict[str, float]:
    if not pairs:
        return {m: float("nan") for m in MEASURES}
    a_to_b, _ = dtw_partners([features[i] for i, _ in pairs], [features[j] for _, j in pairs])
    agreement, jaccard, distance = [], [], []
    for (i, j), partners in zip(pairs, a_to_b):
        n = min(len(frames[i]), len(partners))  # the model's and the MFCC front end's frames coincide; guard anyway
        agreement.append(float(np.mean(frames[i][:n] == frames[j][np.minimum(partners[:n], len(frames[j]) - 1)])))
        a, b = collapse(frames[i]), collapse(frames[j])
        union = _bigrams(a) | _bigrams(b)
        jaccard.append(len(_bigrams(a) & _bigrams(b)) / len(union) if union else 1.0)
        distance.append(Levenshtein.normalized_distance(encode_tokens(a), encode_tokens(b)))
    return {"aligned_agreement": float(np.mean(agreement)), "bigram_jaccard": float(np.mean(jaccard)),
            "edit_distance": float(np.mean(distance))}


def token_consistency(model: Wav2Tok, clips: Sequence[EvalClip], max_pairs: int = 1000, seed: int = 0,
                      batch_size: int = 32) -> Consistency | None:
    """The diagnostic over ``clips`` (waveforms at the model's rate, with label and speaker), or None when
    there are no cross-speaker pairs of the same label (no speakers, one speaker, or no labels)."""
    usable = [c for c in clips if c.item.speaker is not None and c.item.label is not None]
    rng = np.random.default_rng(seed)
    same = _pairs(usable, True, max_pairs, rng)
    if not same:
        return None
    different = _pairs(usable, False, len(same), rng)
    waves = [c.wave for c in usable]
    frames = [t.numpy() for t in model.frame_tokens(waves, batch_size=batch_size)]
    features = Featurizer(baseline_features(model.config.features, "mfcc"), batch_size)(waves)
    return Consistency(_measures(same, frames, features), _measures(different, frames, features), len(same))
