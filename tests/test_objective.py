"""Aligned-pair training: frame alignment of the two views, the aligned contrastive term, and stage I."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from wav2tok_core.audio.augment import time_stretch
from wav2tok_core.data.reference_bin import write_reference_bin
from wav2tok_core.errors import CheckpointError, ConfigError
from wav2tok_core.model.config import ModelConfig
from wav2tok_core.model.wav2tok import Wav2Tok
from wav2tok_core.train.objective import ObjectiveConfig, Wav2TokObjective, aligned_contrastive, linear_partners
from wav2tok_core.train.recipe import build_trainer, load_training_data, parse_args


def brute_force_contrastive(h_q, n_q, h_k, n_k, partner, labels, temp, label_free) -> float:
    """The aligned InfoNCE written frame by frame."""
    losses = []
    for b in range(len(n_q)):
        for t in range(int(n_q[b])):
            target = (b, int(partner[b, t]))
            candidates = [target] + [(c, u) for c in range(len(n_k)) for u in range(int(n_k[c]))
                                     if c != b and (label_free or labels[c] != labels[b])]
            scores = torch.stack([h_q[b, t] @ h_k[c, u] / temp for c, u in candidates])
            losses.append(-(scores[0] - torch.logsumexp(scores, 0)))
    return float(torch.stack(losses).mean())


@pytest.mark.parametrize("label_free", [True, False])
def test_aligned_contrastive_matches_brute_force(label_free: bool) -> None:
    g = torch.Generator().manual_seed(0)
    h_q = F.normalize(torch.randn(3, 5, 4, generator=g), dim=-1)
    h_k = F.normalize(torch.randn(3, 6, 4, generator=g), dim=-1)
    n_q, n_k = torch.tensor([5, 3, 4]), torch.tensor([6, 2, 5])
    partner = torch.stack([torch.randint(0, int(n), (5,), generator=g) for n in n_k])
    labels = torch.tensor([0, 1, 0])  # clips 0 and 2 share a label
    got = aligned_contrastive(h_q, n_q, h_k, n_k, partner, labels, 0.2, label_free)
    assert float(got) == pytest.approx(brute_force_contrastive(h_q, n_q, h_k, n_k, partner, labels, 0.2, label_free),
                                       rel=1e-5)


def test_the_loss_is_low_when_aligned_frames_agree_and_high_when_shuffled() -> None:
    g = torch.Generator().manual_seed(1)
    h = F.normalize(torch.randn(4, 8, 16, generator=g), dim=-1)
    n = torch.full((4,), 8)
    same = torch.arange(8).expand(4, 8)
    aligned = aligned_contrastive(h, n, h, n, same, torch.arange(4), 0.05)
    shuffled = aligned_contrastive(h, n, h.flip(1), n, same, torch.arange(4), 0.05)
    assert float(aligned) < 0.1 < math.log(8) < float(shuffled) + 1.0


def test_linear_partners_are_the_exact_map_of_a_stretched_copy() -> None:
    partners = linear_partners(torch.tensor([11, 5, 1]), torch.tensor([21, 5, 3]), 11)
    assert partners[0].tolist() == list(range(0, 21, 2))  # twice as long: frame t -> 2t
    assert partners[1, :5].tolist() == [0, 1, 2, 3, 4] and partners[2, 0] == 0
    assert int(partners.max()) <= 20 and int(partners.min()) >= 0


def tone(seconds: float, sr: int = 16000) -> torch.Tensor:
    t = torch.arange(int(seconds * sr)) / sr
    f0 = 200 + 400 * t / seconds  # a rising sweep, so frames of different times differ
    return 0.3 * torch.sin(2 * math.pi * torch.cumsum(f0, 0) / sr)


@pytest.mark.parametrize("align_on", ["features", "encoder"])
def test_dtw_alignment_of_a_stretched_recording_follows_the_stretch(align_on: str) -> None:
    model = Wav2Tok(ModelConfig(emb_dim=16, num_tokens=4, num_layers=1))
    objective = Wav2TokObjective(model, ObjectiveConfig(contrastive=1.0, align_on=align_on))
    wave = tone(1.0)
    stretched = time_stretch(wave, 0.5)  # twice as long
    f_a, n_a = model.features(wave[None], torch.tensor([wave.numel()]))
    f_p, n_p = model.features(stretched[None], torch.tensor([stretched.numel()]))
    views = [(f, n, model.encode_features(f, n)) for f, n in ((f_a, n_a), (f_p, n_p))]
    a_to_p, _ = objective.align(*views, copy=torch.tensor([False]))
    exact, _ = objective.align(*views, copy=torch.tensor([True]))
    error = (a_to_p[0, : n_a[0]] - exact[0, : n_a[0]]).abs().float()
    if align_on == "features":  # the input frames of a sweep pin the alignment down
        assert float(error.mean()) < 3.0, error
    assert int(a_to_p.max()) < int(n_p[0]) and torch.all(a_to_p[0, 1 : n_a[0]] >= a_to_p[0, : n_a[0] - 1])


def test_bad_options_are_refused_by_name() -> None:
    for bad in (dict(negatives="some"), dict(align="linear"), dict(align_on="mfcc"), dict(stage1_epochs=-1),
                dict(contrastive=-0.1), dict(contrastive_temp=0.0)):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            ObjectiveConfig(**bad)


def built(tiny_data, tmp_path, *flags: str):
    data = write_reference_bin(tiny_data["train"], tiny_data["test"], tmp_path / "bin" / "tones.bin")
    argv = ["--dataset", str(data), "--is_dict", "True", "--emb_dim", "16", "--num_tokens", "6", "--num_layers", "1",
            "--save_dir", str(tmp_path / "w"), "--progress", "False", "--batch_size", "4", *flags]
    spec = parse_args(argv)
    return build_trainer(spec, load_training_data(spec))


def test_stage_one_trains_frames_alone_then_em_starts_with_an_e_step(tiny_data, tmp_path) -> None:
    trainer = built(tiny_data, tmp_path, "--stage1_epochs", "1", "--EPOCHS", "2", "--iter_clust", "100",
                    "--contrastive", "0.5")
    codebooks = []

    class Watch:
        def on_train_start(self, t): ...
        def on_step_start(self, t): codebooks.append((t.step, t.objective.stage, t.model.codebook.clone()))
        def on_step_end(self, t, logs): ...
        def on_eval_end(self, t, m): ...
        def on_epoch_end(self, t, logs): ...
        def on_train_end(self, t): ...

    trainer.callbacks.append(Watch())
    trainer.fit()
    first, second = trainer.history
    assert set(k for k in first if k.startswith("train/")) == {"train/loss", "train/contrastive"}
    assert {"train/matching", "train/ctc_xy", "train/contrastive"} <= set(second)
    per_epoch = trainer.batches_per_epoch
    stage1 = [c for s, stage, c in codebooks if s < per_epoch]
    assert all(stage == 1 for s, stage, _ in codebooks if s < per_epoch)
    assert all(stage == 2 for s, stage, _ in codebooks if s >= per_epoch)
    assert all(torch.equal(c, stage1[0]) for c in stage1)  # no E-step during stage I
    e_step_at = [s for s, _, c in codebooks if not torch.equal(c, stage1[0])]
    assert e_step_at and e_step_at[0] == per_epoch  # the E-step ran at the first stage-II step (before Watch)


def test_label_free_and_other_label_negatives_both_train(tiny_data, tmp_path) -> None:
    for negatives in ("label-free", "other-labels"):
        trainer = built(tiny_data, tmp_path / negatives, "--stage1_epochs", "1", "--EPOCHS", "1",
                        "--negatives", negatives, "--align", "diagonal")
        trainer.fit()
        assert math.isfinite(trainer.history[-1]["train/contrastive"])


@pytest.mark.parametrize("soft", [False, True])
def test_aligned_token_loss_matches_brute_force(soft: bool) -> None:
    from wav2tok_core.train.objective import aligned_token_loss

    g = torch.Generator().manual_seed(3)
    logits_q, logits_k = torch.randn(2, 4, 5, generator=g), torch.randn(2, 6, 5, generator=g)
    n_q = torch.tensor([4, 2])
    partner = torch.tensor([[0, 2, 2, 5], [1, 3, 0, 0]])
    tokens_k = torch.randint(0, 5, (2, 6), generator=g)
    expected = []
    for b in range(2):
        for t in range(int(n_q[b])):
            log_q = (logits_q[b, t] / 0.5).log_softmax(-1)
            k = int(partner[b, t])
            if soft:
                expected.append(-((logits_k[b, k] / 0.5).softmax(-1) * log_q).sum())
            else:
                expected.append(-log_q[tokens_k[b, k]])
    got = aligned_token_loss(logits_q, n_q, partner, logits_k, tokens_k, 0.5, soft)
    assert float(got) == pytest.approx(float(torch.stack(expected).mean()), rel=1e-6)


def test_token_prediction_trains_in_the_em_stage(tiny_data, tmp_path) -> None:
    trainer = built(tiny_data, tmp_path, "--EPOCHS", "1", "--token_prediction", "0.5", "--token_prediction_soft",
                    "True", "--align", "diagonal")
    trainer.fit()
    assert math.isfinite(trainer.history[-1]["train/token_prediction"])


def test_correspondence_loss_predicts_the_partners_features() -> None:
    from torch import nn

    from wav2tok_core.train.objective import correspondence_loss

    g = torch.Generator().manual_seed(5)
    h_q, feats_k = torch.randn(2, 3, 4, generator=g), torch.randn(2, 5, 6, generator=g)
    n_q, partner = torch.tensor([3, 2]), torch.tensor([[4, 0, 2], [1, 1, 0]])
    decoder = nn.Linear(4, 6)
    expected = torch.stack([((decoder(h_q[b, t]) - feats_k[b, partner[b, t]]) ** 2).mean()
                            for b in range(2) for t in range(int(n_q[b]))]).mean()
    got = correspondence_loss(h_q, n_q, partner, feats_k, decoder).detach()
    assert float(got) == pytest.approx(float(expected.detach()), rel=1e-5)


def test_the_reconstruction_term_trains_in_both_stages_and_its_decoder_is_training_state(tiny_data, tmp_path) -> None:
    trainer = built(tiny_data, tmp_path, "--stage1_epochs", "1", "--EPOCHS", "2", "--reconstruction", "0.5")
    trainer.fit()
    assert all(math.isfinite(r["train/reconstruction"]) for r in trainer.history)
    state = trainer.objective.training_state()["state_dict"]
    assert any(k.startswith("decoder.") for k in state)
    assert not any(k.startswith("decoder.") for k in trainer.model.checkpoint()["state_dict"])


def test_one_stage_one_checkpoint_serves_several_em_stage_runs(tiny_data, tmp_path) -> None:
    """Stage I saved at its last epoch (``--autosave``) is resumed by EM-stage runs with other EM-stage terms:
    each starts from the stage-I weights, in the EM stage; one with the original flags ends where the original
    run ended. A run that adds a training-only module (the reconstruction decoder) is refused in one line."""
    flags = ("--stage1_epochs", "1", "--EPOCHS", "2", "--iter_clust", "100")
    original = built(tiny_data, tmp_path, *flags, "--name", "full", "--autosave", "1")
    original.fit()
    stage_one = tmp_path / "w" / "full" / "epoch_1.pt"
    stage_one_weights = torch.load(stage_one, weights_only=False)["model"]["state_dict"]

    def reuse(name: str, *extra: str):
        return built(tiny_data, tmp_path, *flags, "--name", name, "--load_dir", str(stage_one), *extra)

    same = reuse("same")
    variant = reuse("token_prediction", "--token_prediction", "0.5")
    for run in (same, variant):
        assert run.step == run.batches_per_epoch and run.epoch == 1
        assert all(torch.equal(v, stage_one_weights[k]) for k, v in run.model.state_dict().items())
        run.fit()
        assert len(run.history) == 1 and "train/matching" in run.history[0]
    assert "train/token_prediction" in variant.history[0]
    final = original.model.state_dict()
    assert all(torch.equal(v, final[k]) for k, v in same.model.state_dict().items())
    assert not all(torch.equal(v, final[k]) for k, v in variant.model.state_dict().items())
    with pytest.raises(CheckpointError, match=r"epoch_1.pt: its training state differs in \['decoder'\]"):
        reuse("reconstruction", "--reconstruction", "0.5")
