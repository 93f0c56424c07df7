"""Training data: clips in memory, paired-view sampling in every reference mode, batching.

A training item is a dict of 1-D waveforms ``{"anchor", "positive"[, "negative"]}`` and two scalars (``copy``,
``label``: how the positive relates to the anchor, for aligned-pair losses); ``collate`` pads
each view into ``(waves (B, N), lengths (B,))``. All randomness of item ``i`` in epoch ``e`` comes from a
generator seeded by (seed, e, i), so items are identical in any worker and after a resume.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch.utils.data import Dataset, Sampler

from ..audio.augment import AugmentConfig, augment, stretch_to_length
from ..audio.io import Failure, load_audio, load_clips, pad_batch
from ..data.manifest import ManifestItem, group_by_label, require_labels
from ..errors import ConfigError, DataFormatError


@dataclass
class DataConfig:
    """How training items are sampled (reference flag names)."""

    is_dict: bool = False  # data grouped by class: the positive is another clip of the anchor's class
    is_triplet: bool = False  # add a negative from another class (a hinge term uses it, see losses.py)
    is_single: bool = False  # the positive is always an augmented copy of the anchor, even for dict data
    apply_augmentation: bool = False  # dict data: also augment the sampled positive (list data: always)
    positive_other_speaker: bool = False  # dict data: draw the positive from another speaker of the anchor's
    #                                       class when the class has one (needs speaker ids: a manifest);
    #                                       +0.04 cross-speaker MRR on FSDD (README)
    perturbed_pairs: float = 0.0  # dict data: share of items whose positive is an augmented copy of the anchor
    #                               itself (e.g. with augment.p_vtlp, another vocal-tract length) instead of a
    #                               clip of its class; such pairs need no labels and align by the exact time map
    same_length: bool = False  # time-stretch positive/negative to the anchor's length
    clip: bool = False  # random crop of every clip to clip_duration
    clip_duration: float = 3.0  # seconds kept when clip is on
    sample_subdataset: bool = False  # a fresh random subset of anchors each epoch
    subdata_split: float = 0.1  # size of that subset as a fraction of the training set
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # ranges for augmented views

    def __post_init__(self) -> None:
        if self.is_triplet and self.is_single:
            raise ConfigError("is_triplet and is_single: choose one sampling mode")
        if self.clip_duration <= 0:
            raise ConfigError(f"clip_duration: {self.clip_duration} must be > 0 seconds")
        if not 0.0 < self.subdata_split <= 1.0:
            raise ConfigError(f"subdata_split: {self.subdata_split} must be in (0, 1]")
        if not 0.0 <= self.perturbed_pairs <= 1.0:
            raise ConfigError(f"perturbed_pairs: {self.perturbed_pairs} must be a share in [0, 1]")
        if self.perturbed_pairs > 0 and not self.is_dict:
            raise ConfigError("perturbed_pairs: list data already pairs every clip with an augmented copy; "
                              "it needs is_dict")
        if self.positive_other_speaker and not self.is_dict:
            raise ConfigError("positive_other_speaker: positives come from other clips only with is_dict")


@dataclass
class ClipStore:
    """Decoded clips in memory, at one sample rate: ``waves[i]`` ``(N,)`` is the file ``paths[i]``.
    ``failed`` lists files that could not be used."""

    paths: list[Path]
    waves: list[torch.Tensor]
    failed: list[Failure]

    @classmethod
    def load(cls, paths: Sequence[Path], sr: int, progress: bool = False) -> "ClipStore":
        """Decode ``paths`` at ``sr``, each file once; unreadable files are skipped and recorded with the reason."""
        kept, waves, failed = load_clips(list(dict.fromkeys(paths)), lambda path: load_audio(path, sr),
                                         progress=progress)
        return cls([Path(p) for p in kept], waves, failed)

    def index(self) -> dict[Path, int]:
        return {p: i for i, p in enumerate(self.paths)}


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator behind item ``index`` of ``epoch``: independent of worker and batch layout."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 1_000_003 + index) % 2**63)


class PairDataset(Dataset):
    """Anchors with a positive (and a negative in triplet mode), sampled as the reference describes.

    ``items`` are the training clips; those whose file is not in ``store`` (failed to load) are left out.
    Without ``is_dict`` the positive is an augmented copy of the anchor. With ``is_dict`` the items are
    grouped by label (classes in order of first appearance) and the positive is another clip of the same
    class (never the anchor itself; with ``positive_other_speaker``, one of another speaker, from the
    items' speakers, when the class has one), augmented when ``apply_augmentation``; a class with one clip
    uses an augmented copy when augmentation is on, and is an error otherwise. ``is_single`` keeps the
    grouping but always pairs an anchor with an augmented copy of itself; ``perturbed_pairs`` does so for
    that share of the items.
    """

    def __init__(self, items: Sequence[ManifestItem], store: ClipStore, config: DataConfig, sr: int,
                 seed: int = 0) -> None:
        self.config, self.sr, self.seed, self.epoch = config, sr, seed, 0
        self.store = store
        where = store.index()
        self.speaker_of: list[str | None] = [None] * len(store.paths)  # by clip index
        for it in items:
            if it.path in where:
                self.speaker_of[where[it.path]] = it.speaker
        if config.positive_other_speaker and not any(self.speaker_of):
            raise ConfigError("positive_other_speaker needs speaker ids: train from a manifest with a speaker column")
        if config.is_dict:
            require_labels(items)
        # Group before dropping failed files, so the class order does not depend on which files failed.
        grouped = group_by_label(items) if config.is_dict else {None: list(items)}
        slots = [(label, [where[it.path] for it in group if it.path in where]) for label, group in grouped.items()]
        self.groups = [g for _, g in slots if g]  # clip indices of each class slot
        self.labels = [label for label, g in slots if g]
        self.anchors = [(c, i) for c, g in enumerate(self.groups) for i in g]  # (class slot, clip index)
        if not self.anchors:
            raise DataFormatError("no usable training clips (empty split, or every file failed to load)")
        self.by_class = config.is_dict and not config.is_single  # positives come from the anchor's class
        singletons = [str(lab) for lab, g in zip(self.labels, self.groups) if len(g) == 1]
        if self.by_class and singletons and not config.apply_augmentation:
            raise DataFormatError(f"class(es) {singletons[:10]} have a single clip, so no positive pair exists: "
                                  "add clips, drop the class, or set apply_augmentation to pair a clip with an "
                                  "augmented copy of itself")
        if config.is_triplet and config.is_dict and len(self.groups) < 2:
            raise ConfigError("is_triplet needs at least two classes to draw negatives from")

    def anchor_clips(self) -> list[torch.Tensor]:
        """The waveform ``(N,)`` of every anchor, in anchor order (the training clips, each once per item)."""
        return [self.store.waves[i] for _, i in self.anchors]

    def set_epoch(self, epoch: int) -> None:
        """Make items of ``epoch`` differ from those of other epochs (call before iterating)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.anchors)

    def _crop(self, wave: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        keep = int(self.config.clip_duration * self.sr)
        if not self.config.clip or wave.numel() <= keep:
            return wave
        start = int(torch.randint(0, wave.numel() - keep + 1, (), generator=gen))
        return wave[start : start + keep]

    def _other(self, choices: list[int], exclude: int, gen: torch.Generator) -> int:
        """A random element of ``choices`` other than ``exclude`` (``exclude`` itself if it is alone)."""
        pool = [c for c in choices if c != exclude] or [exclude]
        return pool[int(torch.randint(len(pool), (), generator=gen))]

    def _partner(self, cls: int, clip: int, gen: torch.Generator) -> int:
        """The positive's clip for dict data: another clip of class ``cls`` (of another speaker if asked)."""
        choices = self.groups[cls]
        if self.config.positive_other_speaker:
            others = [c for c in choices if self.speaker_of[c] != self.speaker_of[clip]]
            choices = others or choices
        return self._other(choices, clip, gen)

    def _negative_clip(self, cls: int, clip: int, gen: torch.Generator) -> int:
        if len(self.groups) > 1:
            other = self._other(list(range(len(self.groups))), cls, gen)
            return self._other(self.groups[other], -1, gen)
        return self._other(self.groups[0], clip, gen)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        cfg, gen = self.config, item_generator(self.seed, self.epoch, index)
        cls, clip = self.anchors[index]
        anchor = self._crop(self.store.waves[clip], gen)
        # Drawn only when on, so runs without perturbed pairs keep their random stream.
        perturbed = cfg.perturbed_pairs > 0 and float(torch.rand((), generator=gen)) < cfg.perturbed_pairs
        partner = self._partner(cls, clip, gen) if self.by_class and not perturbed else clip
        positive = anchor if partner == clip else self._crop(self.store.waves[partner], gen)
        if partner == clip or cfg.apply_augmentation:
            positive = augment(positive, cfg.augment, gen)
        # "copy": the positive is a (time-stretched) copy of the anchor, so frames align by a linear time map;
        # "label": the anchor's class (its own clip for list data), to keep same-class frames out of negatives.
        item = {"anchor": anchor, "positive": positive, "copy": torch.tensor(partner == clip),
                "label": torch.tensor(cls if self.by_class else len(self.groups) + clip)}
        if cfg.is_triplet:
            negative = self._crop(self.store.waves[self._negative_clip(cls, clip, gen)], gen)
            if not self.by_class or cfg.apply_augmentation:
                negative = augment(negative, cfg.augment, gen)
            item["negative"] = negative
        if cfg.same_length:
            for view in ("positive", "negative"):
                if view in item:
                    item[view] = stretch_to_length(item[view], anchor.numel())
        return item


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, tuple[torch.Tensor, torch.Tensor] | torch.Tensor]:
    """List of items -> ``{view: (waves (B, N), lengths (B,))}`` for the waveform views, ``{key: (B,)}`` for the
    per-item scalars (``copy``, ``label``)."""
    return {key: pad_batch([it[key] for it in items]) if items[0][key].ndim else torch.stack([it[key] for it in items])
            for key in items[0]}


class EpochSampler(Sampler[int]):
    """Shuffled indices, re-drawn every epoch from (seed, epoch); optionally a random subset of them,
    and optionally one rank's share of them for distributed training (every rank gets equal counts)."""

    def __init__(self, n: int, seed: int = 0, fraction: float = 1.0, rank: int = 0, world_size: int = 1) -> None:
        self.n, self.seed, self.fraction, self.rank, self.world_size = n, seed, fraction, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _per_rank(self) -> int:
        return max(1, math.ceil(self.n * self.fraction)) // self.world_size

    def __len__(self) -> int:
        return self._per_rank()

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        order = torch.randperm(self.n, generator=gen)[: self._per_rank() * self.world_size]
        return iter(order[self.rank :: self.world_size].tolist())
