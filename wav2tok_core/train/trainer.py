"""A small, resumable trainer for any objective whose forward returns a dict with ``"loss/total"``.

It owns the optimisation loop, schedule, checkpoints, early stopping and logs; model-specific steps
(wav2tok's E-step) and live plots attach through :class:`Callback`. What it trains is an
:class:`Objective`: a module wrapping the model. Checkpoints keep the model (``model.checkpoint()``,
what ``load_model`` reads) apart from the objective's training state. A run directory holds::

    {save_dir}/{name}/last.pt        every epoch (full state: resume from here)
    {save_dir}/{name}/best.pt        best validation metric so far
    {save_dir}/{name}/epoch_{N}.pt   every ``autosave`` epochs
    {save_dir}/{name}/metrics.jsonl  one JSON record per logged step and per epoch

Under ``torchrun`` the same Trainer runs DistributedDataParallel: ``batch_size`` stays the global batch
(each of N processes takes batch_size / N items of it), gradients are averaged across processes, logged
values are averaged across them, and only rank 0 evaluates, writes files and shows progress bars.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .. import distributed, runtime
from ..config import to_dict
from ..errors import CheckpointError, ConfigError
from ..model.checkpoint import read_checkpoint, upgrade
from ..model.wav2tok import model_from_checkpoint
from ..runtime import atomic_write
from .data import EpochSampler, PairDataset, collate

TRAIN_FORMAT = "wav2tok-train"
TRAIN_VERSION = 2  # 1: the objective's state (teacher, similarity) sat inside the model checkpoint


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping (reference flag names in comments where they differ)."""

    epochs: int = 100  # --EPOCHS: full passes over the (sub)dataset
    batch_size: int = 4  # global batch (reference default); under torchrun split evenly over the processes
    learning_rate: float = 2e-3  # Adam, as in the reference
    betas: tuple[float, float] = (0.9, 0.98)  # Adam betas, as in the reference
    eps: float = 1e-6  # Adam epsilon, as in the reference
    weight_decay: float = 1e-2  # Adam weight decay, as in the reference
    warmup: float = 0.08  # fraction of train_steps with linear warm-up, then linear decay to 0
    train_steps: int | None = None  # None: epochs x batches per epoch, counted from the real data
    iter_clust: int = 500  # E-step every this many steps, starting at step 0
    cluster_split: float = 1.0  # fraction of training clips (random each E-step) clustered
    patience: int = 5  # stop after this many epochs without a better validation metric (0: never)
    autosave: int = 5  # keep a numbered checkpoint every this many epochs (0: never)
    name: str = "TrialTok"  # run name: the run directory is save_dir/name
    save_dir: str = "weights"  # parent folder of run directories
    load_dir: str | None = None  # resume or warm-start from: a run name under save_dir, a run folder, or a .pt file
    load_model_epochid: int | None = None  # with load_dir: which epoch_{N}.pt to load (default: last.pt)
    epoch_start: int = 0  # epoch number to start counting from (0: from the loaded checkpoint, if any)
    device: str = "auto"  # "auto" picks CUDA when present
    seed: int = 0  # seeds weights, sampling, augmentation and dropout
    num_workers: int = 0  # DataLoader worker processes (augmentation runs there)
    threads: int | None = None  # torch, numba and rapidfuzz threads (None: one per core); see README on 2-core machines
    grad_clip: float | None = 10.0  # max gradient norm (None: no clipping); guards against CTC spikes
    max_bad_steps: int = 5  # stop after this many consecutive non-finite losses (each is skipped)
    log_every: int = 10  # write a step record every this many steps
    debug: bool = False  # tiny run: at most 2 epochs of at most 8 batches each
    progress: bool = True  # tqdm progress bars

    def __post_init__(self) -> None:
        checks = [("epochs", self.epochs >= 1), ("batch_size", self.batch_size >= 1),
                  ("learning_rate", self.learning_rate > 0), ("warmup", 0.0 <= self.warmup < 1.0),
                  ("iter_clust", self.iter_clust >= 1), ("cluster_split", 0.0 < self.cluster_split <= 1.0),
                  ("patience", self.patience >= 0), ("autosave", self.autosave >= 0),
                  ("train_steps", self.train_steps is None or self.train_steps >= 1),
                  ("epoch_start", self.epoch_start >= 0), ("num_workers", self.num_workers >= 0),
                  ("threads", self.threads is None or self.threads >= 1),
                  ("max_bad_steps", self.max_bad_steps >= 1), ("log_every", self.log_every >= 1)]
        for name, ok in checks:
            if not ok:
                raise ConfigError(f"{name}: {getattr(self, name)!r} is out of range")
        self.betas = (float(self.betas[0]), float(self.betas[1]))


class Objective(Protocol):
    """What the trainer trains: an ``nn.Module`` whose ``forward(batch)`` returns named loss terms including
    ``"loss/total"``, wrapping ``model`` (which has ``checkpoint()`` and ``config``)."""

    model: torch.nn.Module

    def __call__(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]: ...
    def training_state(self) -> dict[str, Any]: ...
    def load_training_state(self, state: dict[str, Any]) -> None: ...


class Callback:
    """Hooks into the loop; override what you need. ``trainer`` gives access to model, step, epoch."""

    def on_train_start(self, trainer: "Trainer") -> None: ...
    def on_step_start(self, trainer: "Trainer") -> None: ...
    def on_step_end(self, trainer: "Trainer", logs: dict[str, float]) -> None: ...
    def on_eval_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None: ...
    def on_epoch_end(self, trainer: "Trainer", logs: dict[str, float]) -> None: ...
    def on_train_end(self, trainer: "Trainer") -> None: ...


def warmup_then_decay(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """LR multiplier: linear 0 -> 1 over ``warmup_steps``, then linear 1 -> 0 at ``total_steps``."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
    return factor


def resolve_load_path(config: TrainConfig) -> Path:
    """Where ``load_dir`` / ``load_model_epochid`` point: a file, a run folder, or a run name."""
    target = Path(config.load_dir)
    if target.is_file():
        return target
    run = target if target.is_dir() else Path(config.save_dir) / config.load_dir
    path = run / (f"epoch_{config.load_model_epochid}.pt" if config.load_model_epochid is not None else "last.pt")
    if not path.is_file():
        raise FileNotFoundError(f"load_dir={config.load_dir!r}: no checkpoint at {path}")
    return path


class EarlyStopping:
    """Tracks the monitored metric; ``update`` returns True when the value is a new best."""

    def __init__(self, mode: str, patience: int) -> None:
        self.mode, self.patience = mode, patience
        self.best: float | None = None
        self.bad_epochs = 0

    def update(self, value: float) -> bool:
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if better:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        return better

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience


class Trainer:
    """Train ``objective`` (and so its ``model``) on ``dataset`` (a :class:`PairDataset`).

    Args:
        evaluate: ``model -> {"val/...": float}`` run after every epoch (e.g. validation MRR), or None.
        monitor: the metric early stopping and ``best.pt`` follow, and "max" or "min". Without
            ``evaluate`` the epoch's mean training loss is monitored.
    """

    def __init__(self, objective: Objective, dataset: PairDataset, config: TrainConfig,
                 evaluate: Callable[[torch.nn.Module], dict[str, float]] | None = None,
                 monitor: tuple[str, str] = ("val/mrr", "max"), callbacks: Sequence[Callback] = ()) -> None:
        self.config, self.dataset, self.evaluate = config, dataset, evaluate
        self.callbacks = list(callbacks)
        self.dist, self.device = distributed.setup(config.device)
        if config.batch_size % self.dist.world_size:
            raise ConfigError(f"batch_size: {config.batch_size} does not split evenly over "
                              f"{self.dist.world_size} processes")
        self.rank_batch_size = config.batch_size // self.dist.world_size
        runtime.configure(threads=config.threads)
        self.objective = objective.to(self.device)
        self.model = objective.model
        # What the training step calls: the objective itself, or its DDP wrapper (which averages gradients).
        self.net: torch.nn.Module = self.objective
        if self.dist.enabled:
            torch.manual_seed(config.seed * 1_000_003 + self.dist.rank)  # independent dropout per process
            gpus = [self.device] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.objective, device_ids=gpus)
        self.monitor = monitor if evaluate is not None else ("train/loss", "min")
        self.run_dir = Path(config.save_dir) / config.name
        self.sampler = EpochSampler(len(dataset), seed=config.seed,
                                    fraction=dataset.config.subdata_split if dataset.config.sample_subdataset else 1.0,
                                    rank=self.dist.rank, world_size=self.dist.world_size)
        self.batches_per_epoch = math.ceil(len(self.sampler) / self.rank_batch_size)
        if config.debug:
            self.batches_per_epoch = min(self.batches_per_epoch, 8)
        self.epochs = min(config.epochs, 2) if config.debug else config.epochs
        self.total_steps = config.train_steps or self.epochs * self.batches_per_epoch
        params = [p for p in self.objective.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=config.learning_rate, betas=config.betas, eps=config.eps,
                                          weight_decay=config.weight_decay)
        warm = max(1, int(config.warmup * self.total_steps))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_then_decay(warm, self.total_steps))
        self.step, self.epoch = 0, 0  # optimizer steps taken; epochs completed
        self.stopper = EarlyStopping(self.monitor[1], config.patience)
        self.bad_steps = 0
        self.history: list[dict[str, Any]] = []  # epoch records, also in metrics.jsonl
        self.step_records: list[dict[str, Any]] = []  # logged step records, also in metrics.jsonl
        if config.load_dir:
            self.load_checkpoint(resolve_load_path(config))
        if config.epoch_start:
            self.epoch = config.epoch_start

    def reset_early_stopping(self) -> None:
        """Forget the best metric so far (a callback whose earlier epochs do not count calls this)."""
        self.stopper = EarlyStopping(self.monitor[1], self.config.patience)

    # ----------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        """Everything a resume needs; ``rng`` holds one state per process (index = rank)."""
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"format": TRAIN_FORMAT, "version": TRAIN_VERSION, "model": self.model.checkpoint(),
                "objective": self.objective.training_state(), "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "step": self.step, "epoch": self.epoch, "best": self.stopper.best,
                "bad_epochs": self.stopper.bad_epochs, "rng": distributed.all_gather_objects(rng),
                "train_config": to_dict(self.config)}

    def save_checkpoint(self, path: Path) -> None:
        """Write the state atomically (rank 0; every rank must call it, as it gathers RNG states)."""
        state = self.state()
        if self.dist.is_main:
            with atomic_write(path, "wb") as fh:
                torch.save(state, fh)

    def load_checkpoint(self, path: Path) -> None:
        """Restore from a training checkpoint (full resume) or a bare model file (weights only: fine-tuning,
        with any loss weights, dropout or temp)."""
        ckpt = read_checkpoint(path)
        if not isinstance(ckpt, dict):
            raise CheckpointError(f"{path}: not a wav2tok checkpoint (holds a {type(ckpt).__name__})")
        full = ckpt.get("format") == TRAIN_FORMAT
        if full and ckpt.get("version") not in (1, TRAIN_VERSION):
            raise CheckpointError(f"{path}: training checkpoint version {ckpt.get('version')!r}, this code reads "
                                  f"1 and {TRAIN_VERSION}")
        model_ckpt, split_off = upgrade(ckpt["model"] if full else ckpt, str(path))
        loaded = model_from_checkpoint(model_ckpt, str(path))
        if not self.model.config.fits_weights_of(loaded.config):
            raise CheckpointError(f"{path}: checkpoint was trained with a different model config:\n"
                                  f"  checkpoint: {loaded.config}\n  this run:   {self.model.config}")
        self.model.load_state_dict(loaded.state_dict())
        if not full:
            return
        try:
            self.objective.load_training_state(ckpt.get("objective") or split_off)
        except CheckpointError as err:
            raise CheckpointError(f"{path}: {err}") from None
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.step, self.epoch = ckpt["step"], ckpt["epoch"]
        self.stopper.best, self.stopper.bad_epochs = ckpt["best"], ckpt["bad_epochs"]
        states = ckpt["rng"]
        rng = states[self.dist.rank] if len(states) == self.dist.world_size else states[0]
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self._truncate_log()

    # ----------------------------------------------------------------- logging
    @property
    def log_path(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    def _log(self, record: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def _truncate_log(self) -> None:
        """After a resume, drop log records written after the checkpoint (they will be redone)."""
        if not self.log_path.is_file():
            return
        records = [json.loads(ln) for ln in self.log_path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        keep = [r for r in records if r.get("step", 0) <= self.step]
        self.history = [r for r in keep if r.get("kind") == "epoch"]
        self.step_records = [r for r in keep if r.get("kind") == "step"]
        if self.dist.is_main:
            with atomic_write(self.log_path, "w", encoding="utf-8") as fh:
                fh.write("".join(json.dumps(r) + "\n" for r in keep))

    # ----------------------------------------------------------------- loop
    def _loader(self) -> DataLoader:
        self.sampler.set_epoch(self.epoch)
        self.dataset.set_epoch(self.epoch)
        return DataLoader(self.dataset, batch_size=self.rank_batch_size, sampler=self.sampler,
                          collate_fn=collate, num_workers=self.config.num_workers)

    def _train_step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float] | None:
        """One optimizer step; None when the loss was not finite (on any process) and the step skipped."""
        batch = {k: tuple(t.to(self.device) for t in v) if isinstance(v, tuple) else v.to(self.device)
                 for k, v in batch.items()}
        out = self.net(batch)
        loss = out["loss/total"]
        self.optimizer.zero_grad(set_to_none=True)
        if not distributed.all_true(bool(torch.isfinite(loss)), self.device):
            self.bad_steps += 1
            self._log({"kind": "skipped", "step": self.step, "epoch": self.epoch, "reason": "non-finite loss"})
            if self.bad_steps >= self.config.max_bad_steps:
                raise FloatingPointError(f"{self.bad_steps} consecutive non-finite losses at step {self.step}: "
                                         "lower learning_rate or temp, or check the data for silent/corrupt clips")
            return None
        self.bad_steps = 0
        loss.backward()
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.objective.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return distributed.mean_over_ranks({k: float(v.detach()) for k, v in out.items()}, self.device)

    def _run_epoch(self, bar: tqdm) -> dict[str, float]:
        """One pass over the training batches; ``bar`` counts the steps of the whole run."""
        sums: dict[str, float] = {}
        count, start = 0, time.perf_counter()
        for i, batch in enumerate(self._loader()):
            if i >= self.batches_per_epoch or self.step >= self.total_steps:
                break
            for cb in self.callbacks:
                cb.on_step_start(self)
            self.objective.train()
            logs = self._train_step(batch)
            if logs is None:
                continue
            self.step += 1
            bar.update(1)
            count += 1
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v
            logs["lr"] = self.scheduler.get_last_lr()[0]
            if self.step % self.config.log_every == 0:
                record = {"kind": "step", "step": self.step, "epoch": self.epoch + 1, **logs}
                self.step_records.append(record)
                self._log(record)
            bar.set_postfix(epoch=f"{self.epoch + 1}/{self.epochs}", loss=f"{logs['loss/total']:.3f}")
            for cb in self.callbacks:
                cb.on_step_end(self, logs)
        # "loss/total" -> "train/loss", "loss/matching" -> "train/matching", "stats/x" -> "train/x"
        means = {"train/" + ("loss" if k == "loss/total" else k.split("/", 1)[-1]): v / max(count, 1)
                 for k, v in sums.items()}
        means.setdefault("train/loss", float("nan"))
        means["time/epoch_s"] = time.perf_counter() - start
        return means

    def fit(self) -> list[dict[str, Any]]:
        """Train until ``epochs``, early stopping, or ``train_steps``; returns the epoch records."""
        for cb in self.callbacks:
            cb.on_train_start(self)
        # One bar for the whole run (kept when done): per-epoch bars that vanish leave empty slots in notebooks.
        bar = tqdm(total=self.total_steps, initial=self.step, desc="training",
                   disable=not (self.config.progress and self.dist.is_main))
        while self.epoch < self.epochs and self.step < self.total_steps:
            logs = self._run_epoch(bar)
            self.epoch += 1
            if self.evaluate is not None:
                start = time.perf_counter()
                metrics = distributed.broadcast_object(self.evaluate(self.model) if self.dist.is_main else None)
                logs.update(metrics, **{"time/eval_s": time.perf_counter() - start})
                for cb in self.callbacks:
                    cb.on_eval_end(self, metrics)
            improved = self.stopper.update(logs[self.monitor[0]])
            record = {"kind": "epoch", "step": self.step, "epoch": self.epoch, **logs}
            self.history.append(record)
            self._log(record)
            self.save_checkpoint(self.run_dir / "last.pt")
            if improved:
                self.save_checkpoint(self.run_dir / "best.pt")
            if self.config.autosave and self.epoch % self.config.autosave == 0:
                self.save_checkpoint(self.run_dir / f"epoch_{self.epoch}.pt")
            for cb in self.callbacks:
                cb.on_epoch_end(self, logs)
            if self.stopper.should_stop:
                break
        bar.close()
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self.history
