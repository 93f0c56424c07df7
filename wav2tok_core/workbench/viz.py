"""Figures for the notebooks: every function returns a matplotlib Figure and never calls ``show``.

:func:`tokens_over_spectrogram`, which the interactive inspector redraws from widget callbacks, builds its
figure outside pyplot: a figure pyplot does not know of cannot be shown and closed half-drawn by the inline
backend's end-of-execution hook, which ipykernel may run on another thread. Show such a figure with
``display(fig)``, or as PNG bytes (:func:`figure_png`).

Shapes: T frames, K tokens, D code size.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import hsv_to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from ..audio.config import FeatureConfig
from ..audio.features import FeatureExtractor
from ..model.tokens import token_spans


LABELLED_CODEWORDS = 40  # embedding_map numbers the codewords up to this many


def save(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG (folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """``fig`` rendered completely as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def token_colors(num_tokens: int) -> np.ndarray:
    """An RGBA colour per token id ``(K, 4)``: hues step by the golden ratio and saturation and brightness
    alternate, so neighbouring ids (which often follow each other in a string) never look alike."""
    k = np.arange(num_tokens)
    hsv = np.stack([(k * 0.618034) % 1.0, 0.55 + 0.35 * (k % 2), 0.95 - 0.25 * ((k // 2) % 2)], axis=1)
    return np.concatenate([hsv_to_rgb(hsv), np.ones((num_tokens, 1))], axis=1)


def duration_histogram(durations: Mapping[str, Sequence[float]]) -> Figure:
    """Clip durations (seconds) per split, overlaid."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    values = [v for vs in durations.values() for v in vs]
    bins = np.linspace(0, max(values) if values else 1, 30)
    for name, vs in durations.items():
        ax.hist(vs, bins=bins, alpha=0.6, label=f"{name} ({len(vs)})")
    ax.set(xlabel="duration (s)", ylabel="clips", title="Clip durations by split")
    ax.legend()
    return fig


def spectrogram(wave: torch.Tensor, sr: int, ax: plt.Axes | None = None, title: str = "") -> plt.Axes:
    """Log-mel spectrogram of one clip ``(N,)`` on ``ax`` (time in seconds)."""
    cfg = FeatureConfig(kind="logmel", sr=sr, n_fft=512, hop_length=128, normalize=False)
    feats, _ = FeatureExtractor(cfg)(wave[None], torch.tensor([wave.numel()]))
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 2.5))
    ax.imshow(feats[0].T.numpy(), origin="lower", aspect="auto", cmap="magma",
              extent=(0, wave.numel() / sr, 0, cfg.n_mels))
    ax.set(xlabel="time (s)", ylabel="mel band", title=title)
    return ax


def spectrogram_grid(waves: Sequence[torch.Tensor], titles: Sequence[str], sr: int) -> Figure:
    """Spectrograms of a few clips, one row each."""
    fig, axes = plt.subplots(len(waves), 1, figsize=(7, 2.2 * len(waves)), squeeze=False)
    for ax, wave, title in zip(axes[:, 0], waves, titles):
        spectrogram(wave, sr, ax, title)
    fig.tight_layout()
    return fig


def tokens_over_spectrogram(wave: torch.Tensor, sr: int, frame_tokens: Sequence[int], hop_s: float,
                            num_tokens: int, title: str = "", note_starts: Sequence[bool] | None = None) -> Figure:
    """Spectrogram with a coloured band of token segments below it (runs of a token, cut at ``note_starts``
    too when given: :func:`~wav2tok_core.model.tokens.runs`); segments wide enough to read carry their token
    id, and thin white lines mark where each segment starts on the spectrogram. Built outside pyplot (see the
    module docstring)."""
    fig = Figure(figsize=(9, 3.6))
    ax, band = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [4, 1]})
    spectrogram(wave, sr, ax, title)
    ax.set_xlabel("")
    duration = wave.numel() / sr
    colors = token_colors(num_tokens)
    for token, start, end in token_spans(frame_tokens, hop_s, starts=note_starts):
        band.axvspan(start, min(end, duration), color=colors[token], alpha=0.9)
        if end - start >= 0.03 * duration:
            band.text((start + end) / 2, 0.5, str(token), ha="center", va="center", fontsize=7)
        ax.axvline(start, color="white", lw=0.4, alpha=0.5)
    band.set(yticks=[], xlabel="time (s)", ylabel="tokens", xlim=(0, duration))
    fig.tight_layout()
    return fig


def spotting_figure(wave: torch.Tensor | np.ndarray, sr: int, truths: Sequence[tuple[float, float]],
                    detections: Sequence[tuple[float, float, float]], title: str = "") -> Figure:
    """A recording's waveform ``(N,)`` with the true spans of a query (green, above) and the detections
    ``(start_s, end_s, score)`` (orange, below, labelled by score). Built outside pyplot."""
    samples = np.asarray(wave, dtype=np.float32).reshape(-1)
    fig = Figure(figsize=(10, 2.8))
    ax = fig.subplots()
    ax.plot(np.arange(samples.size) / sr, samples, color="0.45", lw=0.5)
    top = float(np.abs(samples).max(initial=0.0)) or 1.0
    for start, end in truths:
        ax.axvspan(start, end, ymin=0.55, ymax=1.0, color="tab:green", alpha=0.3, lw=0)
    for start, end, score in detections:
        ax.axvspan(start, end, ymin=0.0, ymax=0.45, color="tab:orange", alpha=0.45, lw=0)
        ax.text((start + end) / 2, -0.95 * top, f"{score:.2f}", ha="center", va="bottom", fontsize=7)
    ax.set(xlim=(0, samples.size / sr), ylim=(-top, top), yticks=[], xlabel="time (s)", title=title)
    ax.legend(handles=[Patch(color="tab:green", alpha=0.3, label="true occurrence"),
                       Patch(color="tab:orange", alpha=0.45, label="detection (score)")],
              loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    return fig


def training_curves(history: Sequence[Mapping[str, Any]]) -> Figure:
    """Every logged loss term per step (per epoch when the run was too short to log steps), and the
    validation metrics per epoch."""
    steps = [r for r in history if r.get("kind") == "step"]
    epochs = [r for r in history if r.get("kind") == "epoch"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    if steps:
        records, x, prefix, per = steps, "step", "loss/", "step"
    else:  # fewer steps than log_every: the epoch means ("train/loss", "train/matching", ...) instead
        records, x, prefix, per = epochs, "epoch", "train/", "epoch (mean)"
    terms = sorted({k for r in records for k in r if k.startswith(prefix) and k != "train/compression"})
    for term in terms:
        points = [(r[x], r[term]) for r in records if term in r and r[term] > 0]
        if points:
            axes[0].plot(*zip(*points), marker="o" if x == "epoch" else None, label=term.split("/", 1)[1])
    axes[0].set(xlabel=x, ylabel="loss", yscale="log", title=f"Training loss terms per {per}")
    if axes[0].lines:
        axes[0].legend(fontsize=8)
    styles = {"val/mrr": ("o", "-"), "val/hit@1": ("s", "--"), "train/compression": ("^", ":")}
    for key, (marker, line) in styles.items():  # MRR >= hit@1 always: distinct markers and lines keep both visible
        pts = [(r["epoch"], r[key]) for r in epochs if key in r]
        if pts:
            axes[1].plot(*zip(*pts), marker=marker, linestyle=line, markerfacecolor="none", label=key)
    axes[1].set(xlabel="epoch", ylim=(0, 1.02), title="Validation retrieval and compression")
    for ax in axes[1:] if x == "step" else axes:  # epochs are whole numbers
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if axes[1].lines:
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def codebook_usage_curves(history: Sequence[Mapping[str, Any]], num_tokens: int) -> Figure:
    """Perplexity and dead tokens per epoch (records with "epoch", "perplexity", "dead_tokens")."""
    fig, ax = plt.subplots(figsize=(6, 3))
    epochs = [u["epoch"] for u in history]
    ax.plot(epochs, [u["perplexity"] for u in history], marker="o", label="perplexity")
    ax.plot(epochs, [u["dead_tokens"] for u in history], marker="s", label="dead tokens")
    ax.set(xlabel="epoch", title=f"Codebook usage over training (K={num_tokens})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    return fig


def usage_histogram(counts: np.ndarray, title: str = "Token usage") -> Figure:
    """Frames per token ``(K,)``, sorted, with perplexity and dead-token count in the title."""
    probs = counts / max(counts.sum(), 1)
    nz = probs[probs > 0]
    perplexity = float(np.exp(-(nz * np.log(nz)).sum())) if len(nz) else 0.0
    dead = int((counts == 0).sum())
    fig, ax = plt.subplots(figsize=(8, 3))
    order = np.argsort(-counts)
    ax.bar(np.arange(len(counts)), counts[order], color=token_colors(len(counts))[order])
    ax.set(xlabel="token (sorted by use)", ylabel="frames",
           title=f"{title}: perplexity {perplexity:.1f} of {len(counts)}, {dead} dead")
    return fig


def embedding_map(points: np.ndarray, colors_by: np.ndarray, title: str, codebook: np.ndarray | None = None,
                  categorical_labels: Sequence[str] | None = None) -> Figure:
    """2-D scatter of embedded frames ``(N, 2)``, coloured by ``colors_by`` (ints), with codewords ``(K, 2)``
    (numbered when there are at most ``LABELLED_CODEWORDS``; more labels would only overlap)."""
    fig, ax = plt.subplots(figsize=(7, 6))
    if categorical_labels is None:
        palette = token_colors(int(colors_by.max()) + 1)
        ax.scatter(points[:, 0], points[:, 1], s=3, c=palette[colors_by], alpha=0.6, linewidths=0)
    else:
        cmap = plt.get_cmap("tab10" if len(categorical_labels) <= 10 else "tab20")
        for i, name in enumerate(categorical_labels):
            sel = colors_by == i
            ax.scatter(points[sel, 0], points[sel, 1], s=3, color=cmap(i % cmap.N), alpha=0.6, label=name,
                       linewidths=0)
        ax.legend(markerscale=4, fontsize=7, loc="best", ncol=2)
    if codebook is not None:
        ax.scatter(codebook[:, 0], codebook[:, 1], marker="*", s=90, c="black", label="codewords")
        for k, (x, y) in enumerate(codebook if len(codebook) <= LABELLED_CODEWORDS else []):
            ax.annotate(str(k), (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
    ax.set(title=title, xticks=[], yticks=[])
    return fig


def results_bars(table: Mapping[str, Mapping[str, float]], metric: str = "MRR") -> Figure:
    """Grouped bars: ``table[method][condition] -> value``."""
    methods = list(table)
    conditions = sorted({c for row in table.values() for c in row})
    fig, ax = plt.subplots(figsize=(8, 3.4))
    width = 0.8 / max(len(conditions), 1)
    for j, cond in enumerate(conditions):
        ax.bar(np.arange(len(methods)) + j * width, [table[m].get(cond, np.nan) for m in methods], width, label=cond)
    ax.set_xticks(np.arange(len(methods)) + 0.4 - width / 2, methods, rotation=15)
    ax.set(ylabel=metric, ylim=(0, 1), title=f"{metric} by method and query condition")
    ax.legend(fontsize=8)
    return fig


def rank_histogram(first_ranks: Mapping[str, Sequence[int]], max_rank: int = 20) -> Figure:
    """Distribution of the rank of the first relevant item, per method; ranks past ``max_rank`` (pass at most
    the database size) are counted at ``max_rank``."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    bins = np.arange(1, max_rank + 2) - 0.5
    for name, ranks in first_ranks.items():
        ax.hist(np.minimum(ranks, max_rank), bins=bins, histtype="step", lw=1.6, label=name, density=True)
    ax.set(xlabel=f"rank of first relevant item ({max_rank} = {max_rank} or worse)", ylabel="fraction of queries",
           title="Where the first correct answer lands")
    ax.legend(fontsize=8)
    return fig
