"""Token strings and spans: one run-length encoding behind every string, batched or not."""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wav2tok_core.model.tokens import collapse, collapse_batch, runs, token_spans, token_string

frame_lists = st.lists(st.integers(0, 4), min_size=0, max_size=40)


@settings(max_examples=200, deadline=None)
@given(frame_lists)
def test_runs_tile_the_frames_and_collapse_has_no_repeats(frames: list[int]) -> None:
    ids, starts, ends = runs(frames)
    assert list(np.repeat(ids, ends - starts)) == frames  # the runs rebuild the frames exactly
    string = collapse(frames)
    assert string == ids.tolist() and all(a != b for a, b in zip(string, string[1:]))
    spans = token_spans(frames, 0.5)
    assert [t for t, _, _ in spans] == string
    assert all(s < e for _, s, e in spans) and all(a[2] == b[1] for a, b in zip(spans, spans[1:]))


@settings(max_examples=100, deadline=None)
@given(st.lists(frame_lists.filter(len), min_size=1, max_size=5))
def test_the_batched_collapse_agrees_with_collapse(rows: list[list[int]]) -> None:
    width = max(map(len, rows))
    padded = torch.tensor([r + [9] * (width - len(r)) for r in rows])  # padding must not leak in
    strings, lengths = collapse_batch(padded, torch.tensor([len(r) for r in rows]))
    assert [s[:n].tolist() for s, n in zip(strings, lengths.tolist())] == [collapse(r) for r in rows]


def test_tensors_and_examples() -> None:
    assert collapse(torch.tensor([3, 3, 7, 7, 3])) == [3, 7, 3] and collapse([]) == []
    assert token_spans([3, 3, 5], 0.25) == [(3, 0.0, 0.5), (5, 0.5, 0.75)]


@settings(max_examples=100, deadline=None)
@given(frame_lists)
def test_kept_repeats_give_one_token_and_one_frame_span_per_frame(frames: list[int]) -> None:
    assert token_string(frames, keep_repeats=True) == frames
    assert token_string(frames) == collapse(frames)
    spans = token_spans(frames, 0.5, keep_repeats=True)
    assert [(t, s, e) for t, s, e in spans] == [(t, 0.5 * i, 0.5 * (i + 1)) for i, t in enumerate(frames)]


def test_kept_repeats_example() -> None:
    assert token_string(torch.tensor([3, 3, 7]), keep_repeats=True) == [3, 3, 7]
    assert token_spans([3, 3, 5], 0.25, keep_repeats=True) == [(3, 0.0, 0.25), (3, 0.25, 0.5), (5, 0.5, 0.75)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=40))
def test_runs_also_end_where_a_note_starts(frames: list[tuple[int, bool]]) -> None:
    tokens, starts = [t for t, _ in frames], [s for _, s in frames]
    ids, first, ends = runs(tokens, starts)
    assert first[0] == 0 and ends[-1] == len(tokens) and (first[1:] == ends[:-1]).all()  # they tile the frames
    for a, e, t in zip(first, ends, ids):
        assert set(tokens[a:e]) == {t} and not any(starts[a + 1:e])  # one token, no note start inside
    cut = {i for i in range(1, len(tokens)) if tokens[i] != tokens[i - 1] or starts[i]}
    assert set(first[1:].tolist()) == cut  # and nowhere else
    assert token_string(tokens, False, starts) == ids.tolist() == [t for t, *_ in token_spans(tokens, 1.0, False, starts)]
