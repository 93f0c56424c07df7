"""Trainer: schedule, E-step cadence, checkpoints, early stopping, resume equivalence, bad losses."""
from __future__ import annotations

import json

import pytest
import torch

from wav2tok_core.audio.io import load_audio
from wav2tok_core.data.reference_bin import write_reference_bin
from wav2tok_core.model.config import ModelConfig
from wav2tok_core.train.callbacks import EStep
from wav2tok_core.train.data import DataConfig
from wav2tok_core.train.objective import ObjectiveConfig
from wav2tok_core.train.recipe import RunSpec, build_trainer, load_training_data
from wav2tok_core.train.trainer import Callback, TrainConfig, Trainer, warmup_then_decay
from wav2tok_core.train.validation import codebook_health

TINY = dict(emb_dim=16, num_tokens=6, num_layers=1)


def spec(tiny_data, tmp_path, **train) -> RunSpec:
    path = write_reference_bin(tiny_data["train"], tiny_data["test"], tmp_path / "bin" / "tones.bin")
    options = dict(batch_size=4, epochs=2, iter_clust=2, save_dir=str(tmp_path / "w"), progress=False)
    options.update(train)
    return RunSpec(ModelConfig(**TINY), DataConfig(is_dict=True), TrainConfig(**options), str(path))


def build(run_spec: RunSpec, callbacks=()) -> tuple[Trainer, dict]:
    """The trainer of ``run_spec`` and its data report."""
    data = load_training_data(run_spec)
    return build_trainer(run_spec, data, callbacks), data.report()


def weights(trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_schedule_warms_up_then_decays_to_zero() -> None:
    f = warmup_then_decay(4, 20)
    assert [round(f(s), 3) for s in (0, 3, 4, 12, 20)] == [0.25, 1.0, 1.0, 0.5, 0.0]


def test_train_steps_come_from_the_real_batch_count(tiny_data, tmp_path) -> None:
    trainer, report = build(spec(tiny_data, tmp_path, epochs=5))
    assert report["train_clips"] == 12 and trainer.batches_per_epoch == 3 and trainer.total_steps == 15
    trainer, _ = build(spec(tiny_data, tmp_path, epochs=5, train_steps=4))
    trainer.fit()
    assert trainer.step == 4 and trainer.epoch == 2  # train_steps ends training early


def test_loaded_data_offers_a_sample_of_training_clips(tiny_data, tmp_path) -> None:
    data = load_training_data(spec(tiny_data, tmp_path))
    train_files = [p for paths in tiny_data["train"].values() for p in paths]  # class by class
    sample = data.sample_clips(5)
    assert len(sample) == 5 and all(torch.equal(w, load_audio(p, 16000)) for w, p in zip(sample, train_files))
    assert len(data.sample_clips()) == len(data.train_clips) == 12  # asking for more gives every training clip
    assert data.val_labels == [label for label, paths in tiny_data["test"].items() for _ in paths]
    assert data.report() == {"train_clips": 12, "val_clips": 6, "failed": []}


def test_learning_rate_follows_the_schedule(tiny_data, tmp_path) -> None:
    seen: list[float] = []

    class Spy(Callback):
        def on_step_end(self, trainer, logs):
            seen.append(logs["lr"])

    trainer, _ = build(spec(tiny_data, tmp_path, learning_rate=1e-2, warmup=0.5), callbacks=[Spy()])
    trainer.fit()
    assert seen == pytest.approx([1e-2 * warmup_then_decay(3, 6)(s) for s in range(1, 7)])


def test_e_step_runs_every_iter_clust_steps_on_cluster_split(tiny_data, tmp_path) -> None:
    calls: list[tuple[int, int]] = []
    trainer, _ = build(spec(tiny_data, tmp_path, iter_clust=2, cluster_split=0.5))
    estep = next(cb for cb in trainer.callbacks if isinstance(cb, EStep))
    original = estep.on_step_start

    def spy(tr):
        before = trainer.model.codebook.clone()
        original(tr)
        if not torch.equal(before, trainer.model.codebook):
            calls.append((tr.step, len(estep.clips)))
    estep.on_step_start = spy
    trainer.fit()
    assert [s for s, _ in calls] == [0, 2, 4]
    assert estep.fraction == 0.5


def test_checkpoints_autosave_best_and_log(tiny_data, tmp_path) -> None:
    trainer, _ = build(spec(tiny_data, tmp_path, epochs=4, autosave=2, name="run1"))
    trainer.fit()
    run = tmp_path / "w" / "run1"
    assert {p.name for p in run.glob("*.pt")} == {"last.pt", "best.pt", "epoch_2.pt", "epoch_4.pt"}
    records = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3, 4]
    assert {"train/loss", "train/matching", "train/ctc_xy", "train/ctc_yx", "val/mrr"} <= set(epochs[0])
    health = {"codebook/perplexity", "codebook/dead_tokens", "codebook/purity"}
    assert health <= set(epochs[-1]) and 1 <= epochs[-1]["codebook/perplexity"] <= TINY["num_tokens"]
    assert 0 < epochs[-1]["codebook/purity"] <= 1


def test_codebook_health_hand_case() -> None:
    # clip a (label x): tokens 0 0 1; clip b (label y): tokens 1 1; token 2 of 3 is never used
    frames = [torch.tensor([0, 0, 1]), torch.tensor([1, 1])]
    health = codebook_health(frames, 3, labels=["x", "y"])
    # token 0: 2 frames, all x; token 1: 3 frames, 2 of y -> purity (2 + 2) / 5
    assert health["codebook/purity"] == pytest.approx(4 / 5) and health["codebook/dead_tokens"] == 1
    counts = torch.tensor([2.0, 3.0])
    assert health["codebook/perplexity"] == pytest.approx(float(torch.exp(-(counts / 5 * (counts / 5).log()).sum())))
    assert "codebook/purity" not in codebook_health(frames, 3)


def test_patience_stops_when_the_metric_stalls(tiny_data, tmp_path) -> None:
    trainer, _ = build(spec(tiny_data, tmp_path, epochs=10, patience=2))
    trainer.evaluate = lambda model: {"val/mrr": 0.5}  # never improves after the first epoch
    trainer.fit()
    assert trainer.epoch == 3


class Interrupt(Callback):
    """Stops the run after the checkpoint of epoch 1 is written, like a kill between epochs."""

    def on_epoch_end(self, trainer, logs):
        raise KeyboardInterrupt


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tiny_data, tmp_path) -> None:
    full, _ = build(spec(tiny_data, tmp_path / "a", epochs=3, name="full"))
    full.fit()
    first, _ = build(spec(tiny_data, tmp_path / "b", epochs=3, name="part"), callbacks=[Interrupt()])
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    resumed, _ = build(spec(tiny_data, tmp_path / "b", epochs=3, name="part", load_dir="part"))
    assert resumed.step == first.step and resumed.epoch == 1
    resumed.fit()
    assert resumed.step == full.step
    a, b = weights(full), weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # codebook included
    assert [r["val/mrr"] for r in resumed.history] == [r["val/mrr"] for r in full.history]


def test_load_model_epochid_and_epoch_start(tiny_data, tmp_path) -> None:
    first, _ = build(spec(tiny_data, tmp_path, epochs=2, autosave=1, name="r"))
    first.fit()
    again, _ = build(spec(tiny_data, tmp_path, name="r2", load_dir="r", load_model_epochid=1))
    assert again.epoch == 1 and again.step == first.batches_per_epoch
    renumbered, _ = build(spec(tiny_data, tmp_path, name="r3", load_dir=str(tmp_path / "w" / "r"),
                                       epoch_start=5, epochs=6))
    assert renumbered.epoch == 5
    with pytest.raises(FileNotFoundError, match="epoch_7.pt"):
        build(spec(tiny_data, tmp_path, load_dir="r", load_model_epochid=7))


def test_resume_refuses_a_checkpoint_of_another_config(tiny_data, tmp_path) -> None:
    first, _ = build(spec(tiny_data, tmp_path, epochs=1, name="r"))
    first.fit()
    other = spec(tiny_data, tmp_path, load_dir="r")
    other.model = ModelConfig(emb_dim=16, num_tokens=7, num_layers=1)
    with pytest.raises(ValueError, match="different model config|do not fit"):
        build(other)


def test_non_finite_losses_are_skipped_then_stop(tiny_data, tmp_path) -> None:
    trainer, _ = build(spec(tiny_data, tmp_path, max_bad_steps=3))
    real_forward = trainer.objective.forward
    trainer.objective.forward = lambda batch: {**real_forward(batch), "loss/total": torch.tensor(float("nan"))}
    with pytest.raises(FloatingPointError, match="3 consecutive non-finite losses"):
        trainer.fit()
    log = (tmp_path / "w" / "TrialTok" / "metrics.jsonl").read_text()
    assert log.count('"skipped"') == 3


def test_debug_limits_the_run(tiny_data, tmp_path) -> None:
    trainer, _ = build(spec(tiny_data, tmp_path, epochs=50, batch_size=1, debug=True))
    trainer.fit()
    assert trainer.epoch == 2 and trainer.step == 16


def test_device_auto_picks_what_is_available(tiny_data, tmp_path) -> None:
    trainer, _ = build(spec(tiny_data, tmp_path, device="auto"))
    assert trainer.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_same_seed_gives_the_same_trained_weights(tiny_data, tmp_path) -> None:
    runs = []
    for name in ("a", "b"):
        trainer, _ = build(spec(tiny_data, tmp_path / name, epochs=2, seed=5))
        trainer.fit()
        runs.append(weights(trainer))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    other, _ = build(spec(tiny_data, tmp_path / "c", epochs=2, seed=6))
    other.fit()
    assert not torch.equal(weights(other)["proj.weight"], runs[0]["proj.weight"])


def test_a_model_file_fine_tunes_with_other_loss_weights_and_dropout(tiny_data, tmp_path) -> None:
    """The model file holds no loss weights and dropout only shapes training, so neither blocks fine-tuning."""
    base, _ = build(spec(tiny_data, tmp_path, epochs=1, name="base"))
    base.fit()
    shipped = base.model.save(tmp_path / "shipped.pt")
    tune = spec(tiny_data, tmp_path, epochs=1, name="tuned", load_dir=str(shipped))
    tune.model = ModelConfig(**{**TINY, "dropout": 0.5})
    tune.objective = ObjectiveConfig(alpha=0.3, beta=0.2, use_cosine=True)
    tuned, _ = build(tune)
    start = weights(tuned)
    assert all(torch.equal(start[k], v) for k, v in weights(base).items())  # starts from the file's weights
    assert tuned.model.config.dropout == 0.5 and tuned.objective.config.alpha == 0.3
    tuned.fit()
    assert tuned.step > 0 and not torch.equal(weights(tuned)["proj.weight"], start["proj.weight"])


def test_training_checkpoints_keep_the_objective_apart_from_the_model(tiny_data, tmp_path) -> None:
    trainer, _ = build(spec(tiny_data, tmp_path, epochs=1))
    trainer.fit()
    ckpt = torch.load(tmp_path / "w" / "TrialTok" / "last.pt", weights_only=True)
    assert ckpt["version"] == 2 and ckpt["model"]["version"] == 2
    assert not [k for k in ckpt["model"]["state_dict"] if k.startswith(("teacher.", "similarity."))]
    assert {k.split(".")[0] for k in ckpt["objective"]["state_dict"]} == {"teacher", "similarity"}
    assert ckpt["objective"]["config"]["alpha"] == 0.01
