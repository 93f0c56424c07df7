"""wav2tok's training losses: blank-free CTC likelihood, prototype matching, and the triplet term.

Shapes: B batch, T frames, K tokens, D code dimension, S token-string length.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Log-probability given to the CTC blank: impossible in practice (exp underflows to 0), yet finite, so
# the loss and its gradients stay finite.
BLANK_LOGPROB = -1.0e4


def ctc_likelihood(log_probs: torch.Tensor, input_lengths: torch.Tensor, targets: torch.Tensor,
                   target_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Blank-free CTC: -log sum over monotone segmentations of the frames into the target's tokens.

    Each target token covers a non-empty run of consecutive frames, runs in order, all frames covered.
    Targets must be collapsed (no consecutive repeats), as token strings are.

    Args:
        log_probs: ``(B, T, K)`` per-frame log posteriors over the K tokens.
        input_lengths: ``(B,)`` real frames per item.
        targets: ``(B, S)`` token ids in [0, K), padded.
        target_lengths: ``(B,)`` real string lengths.

    Returns:
        nll: ``(B,)`` negative log-likelihood (0 where skipped); valid: ``(B,)`` bool, False where the
        item was skipped because it has fewer frames than target tokens (or an empty target).
    """
    valid = (target_lengths > 0) & (input_lengths >= target_lengths)
    nll = log_probs.new_zeros(log_probs.shape[0])
    if not bool(valid.any()):
        return nll, valid
    lp = log_probs[valid]  # (V, T, K)
    blank = lp.new_full((*lp.shape[:2], 1), BLANK_LOGPROB)
    lp = torch.cat([blank, lp], dim=-1).transpose(0, 1)  # (T, V, K + 1), blank in column 0
    loss = F.ctc_loss(lp, targets[valid] + 1, input_lengths[valid], target_lengths[valid],
                      blank=0, reduction="none", zero_infinity=False)  # token k -> column k + 1
    nll = nll.masked_scatter(valid, loss.to(nll.dtype))
    return nll, valid


def prototypes(h: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor,
               num_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per item, the normalised mean of the frame vectors assigned to each token.

    Args:
        h: ``(B, T, D)`` frame vectors (both views concatenated along T).
        tokens: ``(B, T)`` frame token ids; mask: ``(B, T)`` True on real frames.

    Returns:
        protos: ``(B, K, D)`` unit vectors (zero rows where absent); present: ``(B, K)`` bool.
    """
    b, t, d = h.shape
    m = mask.to(h.dtype)
    idx = torch.where(mask, tokens, torch.zeros_like(tokens))
    sums = h.new_zeros(b, num_tokens, d).scatter_add_(1, idx[..., None].expand(b, t, d), h * m[..., None])
    counts = h.new_zeros(b, num_tokens).scatter_add_(1, idx, m)
    present = counts > 0
    protos = F.normalize(sums / counts.clamp(min=1.0)[..., None], dim=-1)
    return protos, present


class LearnedSimilarity(nn.Module):
    """score(p, e) = w . |p - e| + b, the reference's parameterised similarity.

    w starts at -1/sqrt(D): scores of unit vectors then span about as much as cosines do, so
    softmax(score / temp) is not saturated at the start (with w = -1 the matching loss begins at ~0
    and passes almost no gradient).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.full((dim,), -dim**-0.5))
        self.b = nn.Parameter(torch.zeros(()))

    def forward(self, p: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """p: ``(P, D)``, e: ``(K, D)`` -> scores ``(P, K)``."""
        return (p[:, None, :] - e[None, :, :]).abs() @ self.w + self.b


class CosineSimilarity(nn.Module):
    """score(p, e) = cos(p, e)."""

    def forward(self, p: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """p: ``(P, D)``, e: ``(K, D)`` -> scores ``(P, K)``."""
        return F.normalize(p, dim=-1) @ F.normalize(e, dim=-1).T


def matching_loss(protos: torch.Tensor, present: torch.Tensor, codebook: torch.Tensor,
                  similarity: nn.Module, temp: float) -> torch.Tensor:
    """Each present prototype must be classified as its own codeword among all K.

    Cross-entropy of softmax(similarity(p_u, e_k) / temp) against u, averaged over the prototypes of
    each item, then over items.

    Args:
        protos: ``(B, K, D)``; present: ``(B, K)``; codebook: ``(K, D)``.
    """
    item, token = present.nonzero(as_tuple=True)  # (P,), (P,)
    scores = similarity(protos[item, token], codebook) / temp  # (P, K)
    ce = F.cross_entropy(scores, token, reduction="none")  # (P,)
    per_item = present.sum(dim=1).clamp(min=1).to(ce.dtype)  # (B,)
    weights = 1.0 / per_item[item]
    return (ce * weights).sum() / present.any(dim=1).sum().clamp(min=1)


def triplet_loss(nll_pos: torch.Tensor, nll_neg: torch.Tensor, string_lengths: torch.Tensor,
                 valid: torch.Tensor, margin: float) -> torch.Tensor:
    """Hinge on per-token CTC likelihoods: the positive must explain the anchor's token string better
    than the negative does, by ``margin`` nats per token.

    Retrieval ranks clips by how well their token strings match, so the negative is used where the
    ranking is decided: ``max(0, margin + nll_pos / S - nll_neg / S)`` over items where both
    directions were computable.
    """
    if not bool(valid.any()):
        return nll_pos.new_zeros(())
    s = string_lengths[valid].to(nll_pos.dtype)
    return F.relu(margin + nll_pos[valid] / s - nll_neg[valid] / s).mean()


def diversity_loss(log_probs: torch.Tensor, mask: torch.Tensor, per_clip: bool = True) -> torch.Tensor:
    """1 - H(mean token posterior) / log K: 0 when tokens are used equally often, 1 when one token
    takes every frame. ``per_clip``: the mean posterior is taken within each clip and the entropies
    averaged over clips; otherwise one mean over all real frames of the batch.

    Not part of the paper's objective. The M-step alone has degenerate optima: every frame of a clip
    on one token satisfies both the CTC and the matching terms. Over the batch this term (like
    wav2vec 2.0's codebook diversity loss) stops all clips sharing one token; per clip it also stops
    each clip from collapsing onto a token of its own.

    Args:
        log_probs: ``(B, T, K)``; mask: ``(B, T)`` True on real frames.
    """
    m = mask[..., None].to(log_probs.dtype)  # (B, T, 1)
    probs = log_probs.exp() * m
    if per_clip:
        mean = probs.sum(dim=1) / m.sum(dim=1).clamp(min=1)  # (B, K)
    else:
        mean = (probs.sum(dim=(0, 1)) / m.sum().clamp(min=1))[None]  # (1, K)
    entropy = -(mean * mean.clamp(min=1e-12).log()).sum(dim=-1)  # (B,) or (1,)
    return 1.0 - entropy.mean() / math.log(log_probs.shape[-1])
