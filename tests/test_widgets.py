"""Token inspector logic, alignment, and the figures it draws (no browser needed)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from wav2tok_core.data.reference_bin import items_from_split
from wav2tok_core.model.codebook import fit_model_codebook
from wav2tok_core.model.config import ModelConfig
from wav2tok_core.model.tokens import token_spans
from wav2tok_core.model.wav2tok import Wav2Tok
from wav2tok_core.search.index import TokenIndex
from wav2tok_core.workbench.viz import codebook_usage_curves, figure_png, token_colors, training_curves
from wav2tok_core.workbench.widgets import GAP, TokenInspector, align_tokens, inspector_widget


@pytest.fixture
def inspector(tiny_data) -> TokenInspector:
    torch.manual_seed(0)
    items = items_from_split(tiny_data["train"], "train")
    model = Wav2Tok(ModelConfig(emb_dim=16, num_tokens=8, num_layers=1))
    fit_model_codebook(model, model.load_clips([it.path for it in items]))
    index = TokenIndex()
    index.add([str(it.path) for it in items], model.tokenize([it.path for it in items]),
              [{"label": it.label} for it in items])
    return TokenInspector(model, items, index, k=3)


def test_alignment_rows_have_equal_length_and_mark_gaps() -> None:
    a, b = align_tokens([1, 2, 3, 4], [1, 3, 4, 5])
    assert len(a) == len(b)
    assert [x for x in a if x != GAP] == ["1", "2", "3", "4"] and [x for x in b if x != GAP] == ["1", "3", "4", "5"]
    assert align_tokens([7, 8], [7, 8]) == (["7", "8"], ["7", "8"])


def test_token_segments_cover_the_frames() -> None:
    assert token_spans([3, 3, 5, 5, 5, 3], 0.01) == [(3, 0.0, 0.02), (5, 0.02, pytest.approx(0.05)),
                                                        (3, pytest.approx(0.05), pytest.approx(0.06))]


def test_view_tokens_match_the_model_and_neighbours_exclude_the_clip(inspector) -> None:
    view = inspector.view(2)
    assert view.tokens == inspector.model.tokenize([view.item.path])[0]
    assert len(view.frame_tokens) >= len(view.tokens)
    assert len(view.neighbours) == 3
    assert all(n.hit.id != str(view.item.path) for n in view.neighbours)
    assert all(len(n.aligned_query) == len(n.aligned_match) for n in view.neighbours)


def test_augmentation_changes_the_audio_and_the_tokens(inspector) -> None:
    plain, stretched = inspector.view(0), inspector.view(0, stretch=0.8)
    assert stretched.wave.numel() == pytest.approx(plain.wave.numel() / 0.8, abs=2)
    assert len(stretched.frame_tokens) > len(plain.frame_tokens)
    shifted = inspector.view(0, shift=4.0)
    assert shifted.wave.numel() == plain.wave.numel() and not torch.equal(shifted.wave, plain.wave)


def test_figure_html_and_widget_render_without_a_browser(inspector) -> None:
    view = inspector.view(1, stretch=1.25, shift=-2.0)
    open_figures = plt.get_fignums()
    fig = inspector.figure(view)
    assert len(fig.axes) == 2 and plt.get_fignums() == open_figures  # outside pyplot: nothing can show it half-drawn
    assert "time stretch x1.25, pitch shift -2 semitones" in fig.axes[0].get_title()
    png = figure_png(fig)
    assert png.startswith(b"\x89PNG") and len(png) > 5_000
    html = inspector.neighbours_html(view)
    assert html.count("<tr>") == 2 * len(view.neighbours) and view.token_string in html
    assert html.count("<i>query</i>") == html.count("<i>neighbour</i>") == len(view.neighbours)
    assert html.count("<audio controls") == len(view.neighbours) and "data:audio/wav;base64," in html
    for n in view.neighbours:
        assert Path(n.hit.id).name in html
    assert "1 = identical, higher = closer" in html
    assert "<audio" not in inspector.neighbours_html(view, players=False)
    box = inspector_widget(inspector)
    assert len(box.children) == 2
    assert [c.description for c in box.children[0].children] == ["clip", "time stretch (rate)", "pitch shift (semitones)"]


def test_token_colours_of_neighbouring_ids_differ() -> None:
    colors = token_colors(200)
    assert colors.shape == (200, 4) and np.all((0 <= colors) & (colors <= 1))
    assert np.abs(np.diff(colors[:, :3], axis=0)).sum(axis=1).min() > 0.3


def test_training_curves_show_epoch_losses_when_no_step_was_logged() -> None:
    epochs = [{"kind": "epoch", "epoch": e, "step": 3 * e, "train/loss": 2.0 / e, "train/matching": 1.0 / e,
               "train/compression": 0.5, "val/mrr": 0.5 + 0.1 * e, "val/hit@1": 0.4 + 0.1 * e} for e in (1, 2, 3)]
    fig = training_curves(epochs)
    losses, validation = fig.axes
    assert {line.get_label() for line in losses.lines} == {"loss", "matching"} and "epoch" in losses.get_title()
    assert [line.get_label() for line in validation.lines] == ["val/mrr", "val/hit@1", "train/compression"]
    assert len({line.get_marker() for line in validation.lines}) == 3
    fig.canvas.draw()
    assert all(float(t).is_integer() for t in validation.get_xticks())
    plt.close(fig)


def test_codebook_usage_curves_have_whole_epoch_ticks() -> None:
    fig = codebook_usage_curves([{"epoch": 1, "perplexity": 9.0, "dead_tokens": 2}, {"epoch": 2, "perplexity": 11.5,
                                                                                   "dead_tokens": 0}], 16)
    fig.canvas.draw()
    (ax,) = fig.axes
    assert "K=16" in ax.get_title() and all(float(t).is_integer() for t in ax.get_xticks())
    plt.close(fig)
