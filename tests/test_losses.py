"""Losses against direct computation on tiny inputs."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from wav2tok_core.train.objective import (CosineSimilarity, LearnedSimilarity, ctc_likelihood, diversity_loss,
                                          matching_loss, prototypes, triplet_loss)


def brute_force_nll(log_probs: torch.Tensor, target: list[int]) -> float:
    """-log sum over all ways to cut T frames into len(target) non-empty ordered runs."""
    t, s = log_probs.shape[0], len(target)
    total = 0.0
    for cuts in itertools.combinations(range(1, t), s - 1):
        bounds = (0, *cuts, t)
        logp = sum(log_probs[f, target[j]].item() for j in range(s) for f in range(bounds[j], bounds[j + 1]))
        total += math.exp(logp)
    return -math.log(total)


@pytest.mark.parametrize("seed", range(6))
def test_ctc_matches_brute_force_enumeration(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    k, t_max = 5, 7
    lengths = torch.tensor([7, 5, 4])
    targets = [[0, 3, 1], [4, 0, 2, 0], [1, 4, 0, 3]]  # includes token 0: the reference's off-by-one victim
    log_probs = torch.randn(3, t_max, k, generator=g, dtype=torch.float64).log_softmax(-1)
    padded = torch.tensor([tg + [0] * (4 - len(tg)) for tg in targets])
    nll, valid = ctc_likelihood(log_probs, lengths, padded, torch.tensor([len(tg) for tg in targets]))
    assert valid.tolist() == [True, True, True]
    for i, tg in enumerate(targets):
        assert nll[i].item() == pytest.approx(brute_force_nll(log_probs[i, : lengths[i]], tg), rel=1e-6)


def test_ctc_skips_inputs_shorter_than_target_and_stays_finite() -> None:
    log_probs = torch.randn(2, 3, 4).log_softmax(-1).requires_grad_()
    targets = torch.tensor([[0, 1, 2, 3], [2, 1, 0, 0]])
    nll, valid = ctc_likelihood(log_probs, torch.tensor([3, 3]), targets, torch.tensor([4, 2]))
    assert valid.tolist() == [False, True]
    assert nll[0].item() == 0.0
    nll.sum().backward()
    assert torch.isfinite(log_probs.grad).all()


def test_ctc_single_frame_per_token_is_product_of_posteriors() -> None:
    log_probs = torch.randn(1, 3, 4, dtype=torch.float64).log_softmax(-1)
    nll, _ = ctc_likelihood(log_probs, torch.tensor([3]), torch.tensor([[2, 0, 3]]), torch.tensor([3]))
    assert nll.item() == pytest.approx(-(log_probs[0, 0, 2] + log_probs[0, 1, 0] + log_probs[0, 2, 3]).item())


def test_prototypes_are_normalised_means_including_single_frames() -> None:
    h = torch.randn(2, 5, 3)
    tokens = torch.tensor([[1, 1, 0, 2, 2], [3, 3, 3, 1, 0]])
    mask = torch.tensor([[True] * 5, [True, True, True, True, False]])
    protos, present = prototypes(h, tokens, mask, num_tokens=4)
    assert present.tolist() == [[True, True, True, False], [False, True, False, True]]
    for b in range(2):
        for u in range(4):
            if present[b, u]:
                sel = (tokens[b] == u) & mask[b]
                expected = F.normalize(h[b, sel].mean(0), dim=0)
                assert torch.allclose(protos[b, u], expected, atol=1e-6)
                assert protos[b, u].norm().item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("similarity", [LearnedSimilarity(3), CosineSimilarity()], ids=["learned", "cosine"])
def test_matching_loss_equals_direct_cross_entropy(similarity) -> None:
    torch.manual_seed(0)
    codebook = F.normalize(torch.randn(4, 3), dim=-1)
    protos = F.normalize(torch.randn(2, 4, 3), dim=-1)
    present = torch.tensor([[True, False, True, True], [False, True, False, False]])
    temp = 0.1
    per_item = []
    for b in range(2):
        ces = []
        for u in range(4):
            if present[b, u]:
                p = protos[b, u]
                if isinstance(similarity, LearnedSimilarity):
                    scores = torch.stack([(p - e).abs() @ similarity.w + similarity.b for e in codebook])
                else:
                    scores = torch.stack([F.cosine_similarity(p, e, dim=0) for e in codebook])
                ces.append(-(scores / temp).log_softmax(0)[u])
        per_item.append(torch.stack(ces).mean())
    expected = torch.stack(per_item).mean()
    got = matching_loss(protos, present, codebook, similarity, temp)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_triplet_loss_is_a_hinge_on_per_token_likelihoods() -> None:
    nll_pos, nll_neg = torch.tensor([2.0, 6.0, 1.0]), torch.tensor([8.0, 6.0, 9.0])
    lengths, valid = torch.tensor([2, 3, 1]), torch.tensor([True, True, False])
    got = triplet_loss(nll_pos, nll_neg, lengths, valid, margin=0.5)
    expected = (max(0.0, 0.5 + 1.0 - 4.0) + max(0.0, 0.5 + 2.0 - 2.0)) / 2
    assert got.item() == pytest.approx(expected)


def test_diversity_is_zero_for_uniform_usage_and_one_for_collapse() -> None:
    k = 4
    mask = torch.tensor([[True, True, True, True, False]])
    uniform = torch.eye(k).log().clamp(min=-1e4)  # frame t puts all mass on token t
    frames = torch.cat([uniform, torch.zeros(1, k)], dim=0)[None]  # (1, 5, K); padded frame ignored
    for per_clip in (True, False):
        assert diversity_loss(frames.log_softmax(-1), mask, per_clip).item() == pytest.approx(0.0, abs=1e-4)
    collapsed = torch.full((1, 5, k), -1e4)
    collapsed[..., 2] = 0.0
    assert diversity_loss(collapsed.log_softmax(-1), mask).item() == pytest.approx(1.0, abs=1e-4)


def test_per_clip_diversity_sees_clips_that_each_use_one_token() -> None:
    one_each = torch.full((2, 3, 4), -1e4)
    one_each[0, :, 0] = 0.0  # clip 0: token 0 only
    one_each[1, :, 1] = 0.0  # clip 1: token 1 only
    mask = torch.ones(2, 3, dtype=torch.bool)
    assert diversity_loss(one_each, mask, per_clip=True).item() == pytest.approx(1.0, abs=1e-4)
    assert diversity_loss(one_each, mask, per_clip=False).item() == pytest.approx(0.5, abs=1e-4)
