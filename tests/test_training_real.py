"""A tiny model trained for a few dozen steps on real recordings learns something measurable."""
from __future__ import annotations

import numpy as np
import torch
from rapidfuzz.distance import Levenshtein

from wav2tok_core.audio.io import load_audio
from wav2tok_core.data.reference_bin import items_from_split
from wav2tok_core.model.config import ModelConfig
from wav2tok_core.model.wav2tok import Wav2Tok
from wav2tok_core.search.index import encode_tokens
from wav2tok_core.train.callbacks import EStep
from wav2tok_core.train.data import ClipStore, DataConfig, PairDataset
from wav2tok_core.train.objective import ObjectiveConfig, Wav2TokObjective
from wav2tok_core.train.trainer import Callback, TrainConfig, Trainer


def paired_distance(model: Wav2Tok, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Mean normalised edit distance between the token strings of the two clips of each pair."""
    a = model.tokenize([x for x, _ in pairs])
    b = model.tokenize([y for _, y in pairs])
    return float(np.mean([Levenshtein.normalized_distance(encode_tokens(s), encode_tokens(t)) for s, t in zip(a, b)]))


class Record(Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_step_end(self, trainer, logs) -> None:
        self.losses.append(logs["loss/total"])


def test_training_lowers_the_loss_and_brings_paired_strings_closer(fsdd_dir, tmp_path) -> None:
    torch.manual_seed(0)
    # a handful of real clips: 4 digits x 4 takes of one speaker; pairs = two takes of one digit
    split = {d: [fsdd_dir / "recordings" / f"{d}_jackson_{t}.wav" for t in range(4)] for d in "0369"}
    items = items_from_split(split, "train")
    store = ClipStore.load([it.path for it in items], 16000)
    dataset = PairDataset(items, store, DataConfig(is_dict=True), 16000, seed=0)
    model = Wav2Tok(ModelConfig(emb_dim=64, num_tokens=12, num_layers=1))
    objective = Wav2TokObjective(model, ObjectiveConfig(alpha=0.1, beta=0.1))
    config = TrainConfig(epochs=12, batch_size=4, iter_clust=100, learning_rate=3e-3, warmup=0.1,
                         save_dir=str(tmp_path), progress=False, patience=0)
    estep = EStep([store.waves[i] for _, i in dataset.anchors], every=config.iter_clust)
    record = Record()
    trainer = Trainer(objective, dataset, config, callbacks=[estep, record])
    pairs = [(load_audio(ps[0], 16000), load_audio(ps[1], 16000)) for ps in split.values()]
    pairs += [(load_audio(ps[2], 16000), load_audio(ps[3], 16000)) for ps in split.values()]
    estep.on_step_start(trainer)  # the step-0 E-step, so "before" uses a fitted codebook
    before = paired_distance(model, pairs)
    trainer.fit()
    after = paired_distance(model, pairs)
    print(f"paired distance {before:.3f} -> {after:.3f}; loss {np.mean(record.losses[:6]):.2f} -> {np.mean(record.losses[-6:]):.2f}")
    assert trainer.step == 48
    first, last = np.mean(record.losses[:6]), np.mean(record.losses[-6:])
    assert last < 0.8 * first, (first, last)
    assert after < before - 0.05, (before, after)
