"""wav2tok's training objective: the M-step's loss terms around a :class:`Wav2Tok` model.

:class:`Wav2TokObjective` owns everything that exists only for training: the loss weights
(:class:`ObjectiveConfig`), the teacher (a frozen copy of the encoder taken at each E-step, which assigns the
tokens the M-step trains towards) and the learned similarity of the matching loss. Its ``forward`` returns
named loss terms; the trainer only needs ``"loss/total"``. The loss functions below are the terms.
Shapes: B batch, T frames, K tokens, D code dimension, S token-string length.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..audio.frames import frame_mask
from ..config import require, to_dict
from ..errors import CheckpointError
from ..eval.baselines import dtw_partners
from ..model.tokens import collapse_batch
from ..model.wav2tok import Wav2Tok

NEGATIVES = ("label-free", "other-labels")
ALIGNMENTS = ("dtw", "diagonal")
ALIGN_ON = ("features", "encoder")

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


def aligned_contrastive(h_q: torch.Tensor, n_q: torch.Tensor, h_k: torch.Tensor, n_k: torch.Tensor,
                        partner: torch.Tensor, labels: torch.Tensor, temp: float, label_free: bool = True) -> torch.Tensor:
    """Frame-level InfoNCE between aligned views: every query frame must pick its aligned key frame.

    Query frame ``(b, t)``'s positive is key frame ``(b, partner[b, t])``; its negatives are the key frames of
    the batch's other clips (with ``label_free=False``, only of clips whose label differs from ``labels[b]``).
    The other frames of its own key clip are neither. Mean cross-entropy over the real query frames.

    Args:
        h_q: ``(B, Tq, D)`` unit query frames, ``n_q`` ``(B,)`` real counts; h_k ``(B, Tk, D)``, n_k ``(B,)``;
        partner: ``(B, Tq)`` key frame index of every query frame; labels: ``(B,)`` class ids.
    """
    b, tq = partner.shape
    mask_q, mask_k = frame_mask(n_q, tq), frame_mask(n_k, h_k.shape[1])
    q, k = h_q[mask_q], h_k[mask_k]  # (Nq, D), (Nk, D)
    rows = torch.arange(b, device=h_q.device)
    owner_q, owner_k = rows[:, None].expand_as(mask_q)[mask_q], rows[:, None].expand_as(mask_k)[mask_k]  # (Nq,), (Nk,)
    target = (torch.cumsum(n_k, 0) - n_k)[owner_q] + partner[mask_q]  # (Nq,) flat index of the aligned frame
    excluded = owner_k[None, :] == owner_q[:, None]  # (Nq, Nk)
    if not label_free:
        excluded |= labels[owner_k][None, :] == labels[owner_q][:, None]
    excluded[torch.arange(len(target), device=h_q.device), target] = False
    logits = (q @ k.T / temp).masked_fill(excluded, float("-inf"))  # (Nq, Nk)
    return F.cross_entropy(logits, target)


def aligned_token_loss(logits_q: torch.Tensor, n_q: torch.Tensor, partner: torch.Tensor, logits_k: torch.Tensor,
                       tokens_k: torch.Tensor, temp: float, soft: bool) -> torch.Tensor:
    """Each query frame predicts the token of its aligned key frame: cross-entropy of ``softmax(logits_q / temp)``
    against the partner's token (``soft=False``) or against the partner's detached posterior
    ``softmax(logits_k / temp)`` (``soft=True``). Mean over real query frames.

    Args:
        logits_q: ``(B, Tq, K)`` cosine logits ``cos(h, e)`` of the query view (not yet divided by a temperature);
        n_q: ``(B,)``; partner: ``(B, Tq)`` key frame per query frame; logits_k: ``(B, Tk, K)``;
        tokens_k: ``(B, Tk)`` the key frames' tokens (the M-step's targets).
    """
    mask = frame_mask(n_q, partner.shape[1])  # (B, Tq)
    log_q = (logits_q / temp).log_softmax(dim=-1)[mask]  # (N, K)
    if soft:
        aligned = torch.gather(logits_k, 1, partner[..., None].expand(-1, -1, logits_k.shape[-1]))  # (B, Tq, K)
        target = (aligned[mask].detach() / temp).softmax(dim=-1)  # (N, K)
        return -(target * log_q).sum(dim=-1).mean()
    return F.nll_loss(log_q, torch.gather(tokens_k, 1, partner)[mask])


def correspondence_loss(h_q: torch.Tensor, n_q: torch.Tensor, partner: torch.Tensor, feats_k: torch.Tensor,
                        decoder: nn.Module) -> torch.Tensor:
    """The correspondence autoencoder's term: from each query frame, predict the input features of its aligned
    frame in the other view (mean squared error over real query frames; the features are per-utterance
    normalised, so the scale is about 1).

    Args:
        h_q: ``(B, Tq, D)``; n_q: ``(B,)``; partner: ``(B, Tq)``; feats_k: ``(B, Tk, F)`` the other view's
        input features; decoder: ``(.., D) -> (.., F)``.
    """
    mask = frame_mask(n_q, partner.shape[1])
    target = torch.gather(feats_k, 1, partner[..., None].expand(-1, -1, feats_k.shape[-1]))  # (B, Tq, F)
    return F.mse_loss(decoder(h_q[mask]), target[mask].detach())


def linear_partners(n_q: torch.Tensor, n_k: torch.Tensor, tq: int) -> torch.Tensor:
    """The straight time map: query frame t of clip b -> key frame round(t (n_k - 1) / (n_q - 1)). ``(B, Tq)``,
    exact for a time-stretched copy, the diagonal path otherwise."""
    t = torch.arange(tq, device=n_q.device, dtype=torch.float64)[None, :]  # (1, Tq)
    scale = (n_k - 1).double() / (n_q - 1).clamp(min=1).double()  # (B,)
    return torch.minimum((t * scale[:, None]).round().long(), (n_k - 1)[:, None]).clamp(min=0)


@dataclass
class ObjectiveConfig:
    """The M-step's loss: L = L_m + alpha * L_ctc(X -> T~') + beta * L_ctc(X' -> T~) [+ triplet + diversity]."""

    alpha: float = 0.01  # weight of the CTC likelihood term X -> tokens(X') (reference README; 0.1 collapses)
    beta: float = 0.01  # weight of the CTC likelihood term X' -> tokens(X)
    use_cosine: bool = False  # matching loss scores prototypes by cosine instead of learned similarity
    triplet_margin: float = 1.0  # triplet mode: hinge margin, in nats per token (see triplet_loss)
    diversity: float = 0.0  # weight of a codebook-usage entropy term (not in the paper; off by default): an
    #                         alternative guard against collapse for targets="online" (see README)
    diversity_per_clip: bool = True  # entropy of each clip's token usage (True) or of the whole batch's
    targets: str = "teacher"  # who assigns tokens in the M-step: "teacher" (a frozen copy of the model
    #                           taken at each E-step, as in EM) or "online" (the model being trained, as in
    #                           the reference code); see README for the measured difference
    stage1_epochs: int = 0  # stage I: train the frames with the aligned contrastive term alone (no codebook,
    #                         no E-step) for this many epochs, then k-means and the EM stage (0: no stage I)
    contrastive: float = 0.0  # weight of the aligned contrastive term in the EM stage (0: off)
    contrastive_temp: float = 0.1  # temperature of the aligned contrastive term
    negatives: str = "label-free"  # contrastive negatives: frames of every other clip of the batch
    #                                ("label-free") or only of clips of other labels ("other-labels")
    align: str = "dtw"  # frames of two different recordings pair up by "dtw" or by the "diagonal" path (a
    #                     positive that is a stretched copy of the anchor always uses its exact time map)
    align_on: str = "features"  # what DTW compares: the input "features" or the current "encoder" frames
    token_prediction: float = 0.0  # weight of aligned token prediction in the EM stage: each frame predicts
    #                                its aligned partner's token, both directions (0: off)
    token_prediction_temp: float = 0.1  # temperature of the predicting (and, when soft, the target) posterior
    token_prediction_soft: bool = False  # target: the partner's posterior (True) or its M-step token (False)
    reconstruction: float = 0.0  # weight of the correspondence term in both stages: each frame predicts its
    #                              aligned partner's input features through a linear decoder (0: off)

    @property
    def uses_alignment(self) -> bool:
        """Whether batches need aligned frames (stage I or the contrastive term)."""
        return self.stage1_epochs > 0 or self.contrastive > 0 or self.token_prediction > 0 or self.reconstruction > 0

    def __post_init__(self) -> None:
        require(self.alpha >= 0 and self.beta >= 0, "alpha/beta", "must be >= 0")
        require(self.triplet_margin >= 0, "triplet_margin", "must be >= 0")
        require(self.diversity >= 0, "diversity", "must be >= 0")
        require(self.targets in ("teacher", "online"), "targets", f"{self.targets!r} is not 'teacher' or 'online'")
        require(self.stage1_epochs >= 0, "stage1_epochs", "must be >= 0")
        require(self.contrastive >= 0, "contrastive", "must be >= 0")
        require(math.isfinite(self.contrastive_temp) and self.contrastive_temp > 0, "contrastive_temp", "must be > 0")
        require(self.negatives in NEGATIVES, "negatives", f"{self.negatives!r} is not one of {NEGATIVES}")
        require(self.align in ALIGNMENTS, "align", f"{self.align!r} is not one of {ALIGNMENTS}")
        require(self.align_on in ALIGN_ON, "align_on", f"{self.align_on!r} is not one of {ALIGN_ON}")
        require(self.token_prediction >= 0, "token_prediction", "must be >= 0")
        require(self.reconstruction >= 0, "reconstruction", "must be >= 0")
        require(math.isfinite(self.token_prediction_temp) and self.token_prediction_temp > 0, "token_prediction_temp",
                "must be > 0")


View = tuple[torch.Tensor, torch.Tensor]  # (waves (B, N), lengths (B,))


def _masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``values[valid]``, or a zero that keeps the graph when nothing is valid."""
    if bool(valid.any()):
        return values[valid].mean()
    return values.sum() * 0.0


class Wav2TokObjective(nn.Module):
    """The wav2tok M-step loss around ``model``; ``forward(batch)`` returns a dict of named loss terms.

    Parameters it trains: the model's and the learned similarity's. The teacher never trains: the E-step
    copies the model into it (:meth:`refresh_teacher`).
    """

    def __init__(self, model: Wav2Tok, config: ObjectiveConfig | None = None) -> None:
        super().__init__()
        self.model = model
        self.config = config = config or ObjectiveConfig()
        code_dim = model.config.code_dim
        self.similarity = CosineSimilarity() if config.use_cosine else LearnedSimilarity(code_dim)
        if config.targets == "teacher":
            # Encoder and projection as they were at the last E-step: they assign the M-step's tokens.
            self.teacher = nn.ModuleDict({"encoder": copy.deepcopy(model.encoder), "proj": copy.deepcopy(model.proj)})
            self.teacher.requires_grad_(False).eval()  # never trained, never uses dropout
        self.stage = 2 if config.stage1_epochs == 0 else 1  # set by the Stages callback as training goes
        if config.reconstruction > 0:
            # Frames -> the input features of their aligned partner (training only, like the teacher).
            self.decoder = nn.Linear(code_dim, model.config.input_dim)

    def train(self, mode: bool = True) -> "Wav2TokObjective":
        super().train(mode)
        if hasattr(self, "teacher"):
            self.teacher.eval()  # the teacher never uses dropout
        return self

    def refresh_teacher(self) -> None:
        """Copy the model's current encoder and projection into the teacher (called by the E-step)."""
        if hasattr(self, "teacher"):
            self.teacher["encoder"].load_state_dict(self.model.encoder.state_dict())
            self.teacher["proj"].load_state_dict(self.model.proj.state_dict())

    @torch.no_grad()
    def assign(self, feats: torch.Tensor, frame_lengths: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Frame tokens ``(B, T)`` that the M-step trains towards: the teacher's (run on the same features
        ``(B, T, F)``) or, with ``targets="online"``, the argmax of the model's own vectors ``h`` ``(B, T, D)``."""
        if not hasattr(self, "teacher"):
            return self.model.logits(h).argmax(dim=-1)
        z = self.teacher["encoder"](feats, frame_lengths)
        return self.model.logits(self.model.project(z, feats, self.teacher["proj"])).argmax(dim=-1)

    def forward(self, batch: dict[str, View]) -> dict[str, torch.Tensor]:
        """Loss terms for a batch of paired views.

        Args:
            batch: ``{"anchor": (waves, lengths), "positive": (...), optionally "negative": (...)}``,
                waves ``(B, N)`` at the model's sample rate, and ``"copy"``, ``"label"`` ``(B,)`` (see
                :mod:`wav2tok_core.train.data`; needed by the aligned terms only).

        Returns:
            Scalars; ``loss/total`` carries the gradient. EM stage: ``{"loss/total", "loss/matching",
            "loss/ctc_xy", "loss/ctc_yx", "loss/diversity" [, "loss/triplet", "loss/contrastive",
            "loss/token_prediction", "loss/reconstruction"], "stats/compression"}``, the bracketed terms when
            enabled. Stage I: ``{"loss/total", "loss/contrastive" [, "loss/reconstruction"]}``.
        """
        cfg, model = self.config, self.model
        f_a, n_a = model.features(*batch["anchor"])  # (B, Ta, F), computed once for student and teacher
        f_p, n_p = model.features(*batch["positive"])
        h_a, h_p = model.encode_features(f_a, n_a), model.encode_features(f_p, n_p)  # (B, T, D)
        if self.stage == 1:
            a_to_p, p_to_a = self.align((f_a, n_a, h_a), (f_p, n_p, h_p), batch["copy"])
            out = {"loss/contrastive": self.contrastive(batch, (n_a, h_a, a_to_p), (n_p, h_p, p_to_a))}
            total = out["loss/contrastive"]
            if cfg.reconstruction > 0:
                out["loss/reconstruction"] = self.reconstruction((n_a, h_a, a_to_p, f_a), (n_p, h_p, p_to_a, f_p))
                total = total + cfg.reconstruction * out["loss/reconstruction"]
            return {"loss/total": total, **out}
        lp_a = model.logits(h_a).log_softmax(dim=-1)  # (B, Ta, K)
        lp_p = model.logits(h_p).log_softmax(dim=-1)  # (B, Tp, K)
        tok_a, tok_p = self.assign(f_a, n_a, h_a), self.assign(f_p, n_p, h_p)  # (B, T)
        str_a, len_a = collapse_batch(tok_a, n_a)  # (B, Sa), targets are detached
        str_p, len_p = collapse_batch(tok_p, n_p)
        nll_xy, ok_xy = ctc_likelihood(lp_a, n_a, str_p, len_p)  # X -> T~'
        nll_yx, ok_yx = ctc_likelihood(lp_p, n_p, str_a, len_a)  # X' -> T~
        mask = torch.cat([frame_mask(n_a, h_a.shape[1]), frame_mask(n_p, h_p.shape[1])], dim=1)  # (B, Ta + Tp)
        protos, present = prototypes(torch.cat([h_a, h_p], dim=1), torch.cat([tok_a, tok_p], dim=1), mask,
                                     model.config.num_tokens)
        out = {
            "loss/matching": matching_loss(protos, present, model.codebook, self.similarity, model.config.temp),
            "loss/ctc_xy": _masked_mean(nll_xy, ok_xy),
            "loss/ctc_yx": _masked_mean(nll_yx, ok_yx),
            "loss/diversity": diversity_loss(torch.cat([lp_a, lp_p], dim=1), mask, cfg.diversity_per_clip),
        }
        total = (out["loss/matching"] + cfg.alpha * out["loss/ctc_xy"] + cfg.beta * out["loss/ctc_yx"]
                 + cfg.diversity * out["loss/diversity"])
        if "negative" in batch:
            h_n, n_n = model.encode(*batch["negative"])
            nll_na, ok_na = ctc_likelihood(model.logits(h_n).log_softmax(dim=-1), n_n, str_a, len_a)
            out["loss/triplet"] = triplet_loss(nll_yx, nll_na, len_a, ok_yx & ok_na, cfg.triplet_margin)
            total = total + out["loss/triplet"]
        if cfg.contrastive > 0 or cfg.token_prediction > 0 or cfg.reconstruction > 0:
            a_to_p, p_to_a = self.align((f_a, n_a, h_a), (f_p, n_p, h_p), batch["copy"])
        if cfg.reconstruction > 0:
            out["loss/reconstruction"] = self.reconstruction((n_a, h_a, a_to_p, f_a), (n_p, h_p, p_to_a, f_p))
            total = total + cfg.reconstruction * out["loss/reconstruction"]
        if cfg.contrastive > 0:
            out["loss/contrastive"] = self.contrastive(batch, (n_a, h_a, a_to_p), (n_p, h_p, p_to_a))
            total = total + cfg.contrastive * out["loss/contrastive"]
        if cfg.token_prediction > 0:
            cos_a, cos_p = h_a @ model.codebook.T, h_p @ model.codebook.T  # (B, T, K)
            temp, soft = cfg.token_prediction_temp, cfg.token_prediction_soft
            out["loss/token_prediction"] = (aligned_token_loss(cos_a, n_a, a_to_p, cos_p, tok_p, temp, soft)
                                            + aligned_token_loss(cos_p, n_p, p_to_a, cos_a, tok_a, temp, soft)) / 2
            total = total + cfg.token_prediction * out["loss/token_prediction"]
        out["loss/total"] = total
        out["stats/compression"] = (len_a.float() / n_a.float()).mean().detach()
        return out

    @torch.no_grad()
    def align(self, anchor: tuple[torch.Tensor, ...], positive: tuple[torch.Tensor, ...],
              copy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Partner frames of the two views: ``(a_to_p (B, Ta), p_to_a (B, Tp))`` frame indices.

        ``anchor`` and ``positive`` are ``(features (B, T, F), frame counts (B,), unit frames (B, T, D))``.
        Pairs whose positive is a stretched ``copy`` ``(B,)`` of the anchor take the exact (linear) time map;
        the others the diagonal path or DTW over the input features or the encoder frames (``align``, ``align_on``).
        """
        (f_a, n_a, h_a), (f_p, n_p, h_p) = anchor, positive
        a_to_p, p_to_a = linear_partners(n_a, n_p, f_a.shape[1]), linear_partners(n_p, n_a, f_p.shape[1])
        warped = [b for b in range(len(copy)) if not bool(copy[b])] if self.config.align == "dtw" else []
        if warped:
            on_features = self.config.align_on == "features"
            x_a, x_p = (f_a, f_p) if on_features else (h_a, h_p)
            seq_a = [x_a[b, : n_a[b]].detach().cpu().double().numpy() for b in warped]
            seq_p = [x_p[b, : n_p[b]].detach().cpu().double().numpy() for b in warped]
            to_p, to_a = dtw_partners(seq_a, seq_p, "euclidean" if on_features else "cosine")
            for b, ap, pa in zip(warped, to_p, to_a):
                a_to_p[b, : len(ap)] = torch.from_numpy(ap).to(a_to_p)
                p_to_a[b, : len(pa)] = torch.from_numpy(pa).to(p_to_a)
        return a_to_p, p_to_a

    def contrastive(self, batch: dict[str, Any], anchor: tuple[torch.Tensor, ...],
                    positive: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The aligned contrastive term in both directions (anchor -> positive and back), averaged; each view is
        ``(frame counts (B,), unit frames (B, T, D), partner frames in the other view (B, T))``."""
        cfg = self.config
        (n_a, h_a, a_to_p), (n_p, h_p, p_to_a) = anchor, positive
        label_free = cfg.negatives == "label-free"
        forward = aligned_contrastive(h_a, n_a, h_p, n_p, a_to_p, batch["label"], cfg.contrastive_temp, label_free)
        backward = aligned_contrastive(h_p, n_p, h_a, n_a, p_to_a, batch["label"], cfg.contrastive_temp, label_free)
        return (forward + backward) / 2

    def reconstruction(self, anchor: tuple[torch.Tensor, ...], positive: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The correspondence term in both directions, averaged; each view is ``(frame counts (B,), unit frames
        (B, T, D), partner frames in the other view (B, T), input features (B, T, F))``."""
        (n_a, h_a, a_to_p, f_a), (n_p, h_p, p_to_a, f_p) = anchor, positive
        return (correspondence_loss(h_a, n_a, a_to_p, f_p, self.decoder)
                + correspondence_loss(h_p, n_p, p_to_a, f_a, self.decoder)) / 2

    def training_state(self) -> dict[str, Any]:
        """What training needs beyond the model: the config and the teacher's and similarity's tensors."""
        state = {k: v.detach().cpu() for k, v in self.state_dict().items() if not k.startswith("model.")}
        return {"config": to_dict(self.config), "state_dict": state}

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Restore the teacher, similarity and decoder saved by :meth:`training_state` (or split off a version 1
        model checkpoint); the model's own weights are loaded separately.

        Raises:
            CheckpointError: the saved state holds other training-only modules than this objective (it was
                trained with another ``targets``, ``use_cosine`` or ``reconstruction``).
        """
        saved = {**self.model.state_dict(prefix="model."), **state["state_dict"]}
        own = self.state_dict()
        differ = sorted({key.split(".")[0] for key in own.keys() ^ saved.keys()})
        if differ:
            raise CheckpointError(f"its training state differs in {differ} (trained with other --targets, "
                                  "--use_cosine or --reconstruction): resume with the same ones, or warm-start "
                                  "from the model weights alone (best.pt)")
        self.load_state_dict(saved)
