"""Token index search, candidate stage, index files, and spotting."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import Levenshtein

from wav2tok_core.errors import IndexFileError
from wav2tok_core.search.index import (MAX_TOKEN, TokenIndex, _digest, _flatten, _json_bytes, _NgramIndex,
                                       candidate_recall, edit_similarity_matrix, encode_tokens)
from wav2tok_core.search.spotting import (RecordingIndex, find_occurrences, select_spans, span_seconds,
                                          spot_batch, substring_similarity_matrix)

token_strings = st.lists(st.integers(0, 3), min_size=0, max_size=8)


def levenshtein(a: list[int], b: list[int]) -> int:
    """Textbook O(len(a) * len(b)) edit distance."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def similarity(a: list[int], b: list[int]) -> float:
    return 1.0 - levenshtein(a, b) / max(len(a), len(b), 1)


def small_index(ngram: int = 2) -> TokenIndex:
    index = TokenIndex(ngram=ngram)
    index.add(
        ["a", "b", "c", "d", "e"],
        [[1, 2, 3, 4], [1, 2, 3, 5], [7, 8, 9], [1, 2, 3, 4], [400, 2]],
        [{"speaker": "x"}, {"speaker": "y"}, {}, {"speaker": "x"}, {"n": 5}],
    )
    return index


# ---- search -------------------------------------------------------------------------------

def test_encode_rejects_out_of_range_tokens() -> None:
    assert encode_tokens([0, 65, MAX_TOKEN - 1]) == "\x00A" + chr(MAX_TOKEN - 1)
    with pytest.raises(ValueError):
        encode_tokens([MAX_TOKEN])
    with pytest.raises(ValueError):
        encode_tokens([-1])


@settings(max_examples=50, deadline=None)
@given(st.lists(token_strings, min_size=1, max_size=4), st.lists(token_strings, min_size=1, max_size=6))
def test_similarity_matrix_matches_reference(queries: list[list[int]], database: list[list[int]]) -> None:
    expected = np.array([[similarity(q, d) for d in database] for q in queries])
    np.testing.assert_allclose(edit_similarity_matrix(queries, database), expected, atol=1e-12)


def test_exhaustive_search_ranks_and_breaks_ties_by_insertion_order() -> None:
    hits = small_index().search([[1, 2, 3, 4]], k=3)[0]
    assert [(h.id, h.rank) for h in hits] == [("a", 1), ("d", 2), ("b", 3)]
    assert [h.score for h in hits] == [1.0, 1.0, 0.75]


@pytest.mark.parametrize("candidates", [None, 1, 50])
def test_exclusion_is_honoured(candidates: int | None) -> None:
    hits = small_index().search([[1, 2, 3, 4], [7, 8, 9]], k=10, exclude_ids=[{"a", "d"}, {"c", "unknown"}], candidates=candidates)
    assert "a" not in {h.id for h in hits[0]} and "d" not in {h.id for h in hits[0]}
    assert hits[0][0].id == "b"
    assert "c" not in {h.id for h in hits[1]}


def test_k_larger_than_eligible_items_returns_fewer_hits() -> None:
    hits = small_index().search([[7, 8, 9]], k=10, exclude_ids=[{"a"}])[0]
    assert len(hits) == 4 and [h.rank for h in hits] == [1, 2, 3, 4]


def test_add_validates_ids_and_lengths() -> None:
    index = small_index()
    with pytest.raises(ValueError):
        index.add(["a"], [[1]])
    with pytest.raises(ValueError):
        index.add(["x", "x"], [[1], [2]])
    with pytest.raises(ValueError):
        index.add(["x"], [[1], [2]])
    with pytest.raises(TypeError):
        index.add([7], [[1]])  # type: ignore[list-item]
    assert len(index) == 5
    assert index.metadata("b") == {"speaker": "y"} and index.tokens("e") == [400, 2]


def test_adding_after_a_search_rebuilds_the_candidate_stage() -> None:
    index = small_index()
    assert index.search([[9, 1, 2, 3]], k=1, candidates=1)[0][0].score < 1.0
    index.add(["f"], [[9, 1, 2, 3]])
    assert index.search([[9, 1, 2, 3]], k=1, candidates=1)[0][0].id == "f"


def test_candidate_search_only_returns_items_sharing_an_ngram() -> None:
    index = small_index()
    assert index.search([[20, 21]], k=3, candidates=10) == [[]]
    assert len(index.search([[20, 21]], k=3)[0]) == 3


@settings(max_examples=60, deadline=None)
@given(st.lists(token_strings, min_size=1, max_size=12), st.data())
def test_candidate_stage_never_loses_an_exact_match(database: list[list[int]], data: st.DataObject) -> None:
    ngram = data.draw(st.sampled_from([1, 2, 3]))
    index = TokenIndex(ngram=ngram)
    index.add([str(i) for i in range(len(database))], database)
    target = data.draw(st.integers(0, len(database) - 1))
    excluded = {str(i) for i in data.draw(st.sets(st.integers(0, len(database) - 1)))} - {str(target)}
    hits = index.search([database[target]], k=3, exclude_ids=[excluded], candidates=1)[0]
    assert hits[0].score == 1.0
    assert index.tokens(hits[0].id) == database[target]
    assert not excluded & {h.id for h in hits}


@settings(max_examples=60, deadline=None)
@given(st.lists(token_strings, min_size=1, max_size=10), st.lists(token_strings, min_size=1, max_size=3), st.sampled_from([1, 2, 3]))
def test_ngram_bound_never_underestimates_similarity(database: list[list[int]], queries: list[list[int]], ngram: int) -> None:
    ngrams = _NgramIndex(*_flatten(database), ngram)
    shared = np.zeros((len(queries), len(database)), dtype=np.int64)
    for row, (found, counts) in enumerate(ngrams.shared_counts(*_flatten(queries))):
        shared[row, found] = counts
    items = np.arange(len(database))
    pad = [-1] * (ngram - 1)
    for row, query in enumerate(queries):
        grams = Counter(tuple((pad + query + pad)[i:i + ngram]) for i in range(len(query) + ngram - 1))
        for item, item_tokens in enumerate(database):
            item_grams = Counter(tuple((pad + item_tokens + pad)[i:i + ngram]) for i in range(len(item_tokens) + ngram - 1))
            assert shared[row, item] == sum((grams & item_grams).values())
        bound = ngrams.similarity_bound(len(query), items, shared[row])
        truth = np.array([similarity(query, d) for d in database])
        assert np.all(bound >= truth - 1e-12)


def test_candidate_search_scores_are_exact_and_recall_is_full_with_enough_candidates() -> None:
    rng = np.random.default_rng(0)
    database = [rng.integers(0, 6, rng.integers(3, 9)).tolist() for _ in range(200)]
    index = TokenIndex(ngram=2)
    index.add([str(i) for i in range(200)], database)
    queries = [rng.integers(0, 6, 6).tolist() for _ in range(10)]
    for query, hits in zip(queries, index.search(queries, k=5, candidates=20)):
        for hit in hits:
            assert hit.score == pytest.approx(similarity(query, index.tokens(hit.id)), abs=1e-12)
    assert candidate_recall(index, queries, k=5, candidates=200) == 1.0
    assert 0.0 <= candidate_recall(index, queries, k=5, candidates=1) <= 1.0


# ---- index files --------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path: Path) -> None:
    index = small_index(ngram=3)
    path = tmp_path / "index.npz"
    index.save(path)
    loaded = TokenIndex.load(path)
    assert loaded.ngram == 3 and loaded.ids == index.ids
    assert all(loaded.tokens(i) == index.tokens(i) and loaded.metadata(i) == index.metadata(i) for i in index.ids)
    queries = [[1, 2, 3], [400]]
    assert loaded.search(queries, k=5) == index.search(queries, k=5)
    assert loaded.search(queries, k=5, candidates=2) == index.search(queries, k=5, candidates=2)


def test_empty_index_round_trip(tmp_path: Path) -> None:
    TokenIndex().save(tmp_path / "empty.npz")
    loaded = TokenIndex.load(tmp_path / "empty.npz")
    assert len(loaded) == 0 and loaded.search([[1]], k=3) == [[]]


def test_every_flipped_byte_is_detected_or_harmless(tmp_path: Path) -> None:
    index = small_index()
    path = tmp_path / "index.npz"
    index.save(path)
    original = path.read_bytes()
    reference = index.search([[1, 2, 3]], k=5)
    for position in range(len(original)):
        corrupt = bytearray(original)
        corrupt[position] ^= 0xFF
        path.write_bytes(bytes(corrupt))
        try:
            loaded = TokenIndex.load(path)
        except IndexFileError as err:
            assert str(path) in str(err)
        else:  # zip bookkeeping such as timestamps is not payload
            assert loaded.search([[1, 2, 3]], k=5) == reference and loaded.ngram == index.ngram
            assert [loaded.metadata(i) for i in loaded.ids] == [index.metadata(i) for i in index.ids]


def rewrite_header(path: Path, **changes: object) -> None:
    with np.load(path) as npz:
        arrays = {name: npz[name] for name in npz.files}
    header = json.loads(arrays["header"].tobytes())
    header.update(changes)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


@pytest.mark.parametrize(
    ("change", "message"),
    [({"version": 99}, "version 99"), ({"format": "other"}, "not a"), ({"sha256": "0" * 64}, "checksum"), ({"ngram": 3}, "checksum")],
)
def test_bad_header_is_rejected(tmp_path: Path, change: dict, message: str) -> None:
    path = tmp_path / "index.npz"
    small_index().save(path)
    rewrite_header(path, **change)
    with pytest.raises(IndexFileError, match=message) as info:
        TokenIndex.load(path)
    assert str(path) in str(info.value)


def test_missing_or_foreign_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(IndexFileError, match="missing.npz"):
        TokenIndex.load(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(IndexFileError, match="text.npz"):
        TokenIndex.load(tmp_path / "text.npz")


def test_unserialisable_metadata_fails_and_keeps_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "index.npz"
    small_index().save(path)
    before = path.read_bytes()
    bad = TokenIndex()
    bad.add(["x"], [[1]], [{"not json": object()}])
    with pytest.raises(TypeError):
        bad.save(path)
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]


# ---- spotting -----------------------------------------------------------------------------

def test_spotting_finds_planted_substring_span_and_time() -> None:
    rng = np.random.default_rng(1)
    recording = rng.integers(10, 60, 80).tolist()
    query = [1, 2, 3, 4, 5, 6]
    recording[30:36] = query
    (match,) = find_occurrences(query, recording)
    assert (match.start, match.end, match.distance, match.score) == (30, 36, 0, 1.0)
    times = [(0.02 * i, 0.02 * i + 0.02) for i in range(len(recording))]
    assert span_seconds(times, match.start, match.end) == pytest.approx((0.60, 0.72))


def test_spotting_tolerates_an_edit_and_finds_several_occurrences() -> None:
    recording = [9, 9, 1, 2, 3, 4, 9, 9, 1, 2, 7, 4, 9, 1, 3, 4]
    matches = find_occurrences([1, 2, 3, 4], recording, max_hits=3, threshold=0.7)
    assert [(m.start, m.end, m.distance) for m in matches] == [(2, 6, 0), (8, 12, 1), (13, 16, 1)]
    assert [m.score for m in matches] == [1.0, 0.75, 0.75]


def test_spotting_ends_only_where_the_distance_dips() -> None:
    query, recording = [1, 1, 1, 1], [1, 1, 0, 1, 2, 1, 3, 2, 0, 3]
    # best distance per end 1..10: 3 2 2 1 2 2 2 3 3 4; end 8 sits beside a lower end 7, end 9 does not
    found = [(m.start, m.end, m.distance) for m in find_occurrences(query, recording, max_hits=2, threshold=0.0)]
    assert found == [(0, 4, 1), (5, 9, 3)]


def test_spotting_start_keeps_the_span_nearest_the_query_length_and_the_shorter_on_a_tie() -> None:
    query = [0, 2, 2, 1]
    # [0, 2, 1] and [0, 2, 0, 2, 1] are both one edit away; [2, 0, 2, 1], of the query's length, is two
    assert [(m.start, m.end, m.distance) for m in find_occurrences(query, [1, 1, 0, 2, 0, 2, 1])] == [(4, 7, 1)]
    # only the longer span [0, 2, 5, 2, 1] is one edit away
    assert [(m.start, m.end) for m in find_occurrences(query, [5, 0, 2, 5, 2, 1])] == [(1, 6)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=5), st.lists(st.integers(0, 3), max_size=10))
def test_spotting_distance_is_the_best_over_all_spans(query: list[int], recording: list[int]) -> None:
    best = min(levenshtein(query, recording[s:e]) for s in range(len(recording) + 1) for e in range(s + 1, len(recording) + 1)) if recording else len(query)
    matches = find_occurrences(query, recording)
    if best == len(query) and not matches:
        return  # only an empty span reaches the trivial distance
    (match,) = matches
    assert match.distance == best == levenshtein(query, recording[match.start:match.end])


def test_spot_batch_threshold_and_times() -> None:
    recordings = {"r1": [5, 5, 1, 2, 3, 5], "r2": [6, 6, 6, 6], "r3": [1, 2, 8, 5]}
    times = {rid: [(0.1 * i, 0.1 * i + 0.1) for i in range(len(t))] for rid, t in recordings.items()}
    detections = spot_batch({"q": [1, 2, 3]}, recordings, threshold=0.6, token_times=times)
    assert [(d.recording_id, d.start, d.end) for d in detections] == [("r1", 2, 5), ("r3", 0, 3)]
    assert detections[0].score == 1.0 and detections[1].score == pytest.approx(2 / 3)
    assert (detections[0].start_s, detections[0].end_s) == pytest.approx((0.2, 0.5))
    assert detections[0].scored_span(seconds=True).end == pytest.approx(0.5)
    with pytest.raises(ValueError):
        spot_batch({"q": [1]}, {"r": [1, 2]}, token_times={"r": [(0.0, 0.1)]})


def brute_force_occurrences(query: list[int], recording: list[int], max_hits: int, threshold: float) -> list[tuple]:
    """The search by its definition: for every end, the least distance over every start; the ends where it is no
    greater than at either neighbouring end, with the span reaching it nearest the query's length (the shorter
    on a tie); then the greedy choice of spans."""
    m, n = len(query), len(recording)
    best, start = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    for j in range(1, n + 1):
        cost = {s: Levenshtein.distance(query, recording[s:j]) for s in range(j + 1)}
        best[j - 1] = min(cost.values())
        start[j - 1] = min((s for s in cost if cost[s] == best[j - 1]), key=lambda s: (abs(j - s - m), j - s))
    padded = np.concatenate([[m + 1], best, [m + 1]])
    ends = np.flatnonzero((best <= padded[:-2]) & (best <= padded[2:]))  # positions of ends 1..n
    chosen = np.empty(max_hits, dtype=np.int64)
    select_spans(best[ends], start[ends], ends + 1, m, chosen)
    rows = [(int(best[ends[c]]), int(start[ends[c]]), int(ends[c]) + 1) for c in chosen if c >= 0]
    return [(s, e, d) for d, s, e in rows if 1 - d / m >= threshold]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=8), st.lists(st.integers(0, 4), max_size=40),
       st.integers(1, 4), st.sampled_from([0.0, 0.3, 0.5, 0.75, 1.0]))
def test_spotting_equals_its_definition(query, recording, max_hits, threshold) -> None:
    found = [(m.start, m.end, m.distance) for m in find_occurrences(query, recording, max_hits, threshold)]
    assert found == brute_force_occurrences(query, recording, max_hits, threshold)


@settings(max_examples=40, deadline=None)
@given(st.integers(60, 200), st.integers(0, 400), st.integers(0, 2**31))
def test_spotting_with_queries_longer_than_a_machine_word(m: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    query = rng.integers(0, 4, m).tolist()
    recording = rng.integers(0, 5, n).tolist()
    if n > m:  # plant a lightly edited copy
        at = int(rng.integers(0, n - m + 1))
        recording[at:at + m] = [t if rng.random() > 0.1 else 4 for t in query]
    found = [(x.start, x.end, x.distance) for x in find_occurrences(query, recording, 2, 0.4)]
    assert found == brute_force_occurrences(query, recording, 2, 0.4)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31))
def test_many_queries_at_once_match_each_query_alone(seed: int) -> None:
    """Queries of one word run side by side in groups of LANES, longer ones alone: 37 mixed queries in one call
    find what each finds by itself."""
    rng = np.random.default_rng(seed)
    recordings = {f"r{i}": rng.integers(0, 6, int(rng.integers(0, 300))).tolist() for i in range(3)}
    queries = {f"q{i}": rng.integers(0, 5, int(rng.choice([rng.integers(1, 64), rng.integers(65, 140)]))).tolist()
               for i in range(37)}
    together = RecordingIndex.from_strings(recordings).spot(queries, threshold=0.3, max_hits=3)
    alone = [(qid, rid, m.start, m.end, m.score) for qid, q in queries.items() for rid, text in recordings.items()
             for m in find_occurrences(q, text, max_hits=3, threshold=0.3)]
    assert sorted((d.query_id, d.recording_id, d.start, d.end, d.score) for d in together) == sorted(alone)


def test_recording_index_subset_keeps_the_asked_recordings_in_order() -> None:
    recordings = {"a": [1, 2], "b": [], "c": [3, 4, 5]}
    times = {rid: [(float(i), i + 0.5) for i in range(len(t))] for rid, t in recordings.items()}
    part = RecordingIndex.from_strings(recordings, times).subset(["c", "b", "a"])
    assert part.ids == ["c", "b", "a"] and part.tokens.tolist() == [3, 4, 5, 1, 2]
    assert part.offsets.tolist() == [0, 3, 3, 5] and part.starts_s.tolist() == [0.0, 1.0, 2.0, 0.0, 1.0]
    assert RecordingIndex.from_strings(recordings).subset([]).tokens.size == 0


def test_recording_index_reads_token_times_from_an_index_file(tmp_path) -> None:
    index = TokenIndex(frame_s=0.01)
    index.add(["a", "b"], [[5, 1, 2, 3, 5], [1, 2, 3]], [{"label": "x"}, {}], runs=[[10, 3, 2, 4, 1], [1, 1, 1]])
    index.save(tmp_path / "rec.npz")
    recordings = RecordingIndex.load(tmp_path / "rec.npz")
    assert recordings.ids == ["a", "b"] and recordings.metadata[0] == {"label": "x"}
    detections = recordings.spot({"q": [1, 2, 3]}, threshold=1.0)
    assert [(d.recording_id, d.start, d.end) for d in detections] == [("a", 1, 4), ("b", 0, 3)]
    assert (detections[0].start_s, detections[0].end_s) == pytest.approx((0.10, 0.19))  # frames 10 to 19
    assert (detections[1].start_s, detections[1].end_s) == pytest.approx((0.0, 0.03))
    assert TokenIndex.load(tmp_path / "rec.npz").tokens("a") == [5, 1, 2, 3, 5]


def test_token_times_are_checked(tmp_path) -> None:
    with pytest.raises(ValueError, match="exactly when"):
        TokenIndex().add(["a"], [[1]], runs=[[1]])
    with pytest.raises(ValueError, match="one frame count per token"):
        TokenIndex(frame_s=0.01).add(["a"], [[1, 2]], runs=[[1]])
    with pytest.raises(ValueError, match="at least one frame"):
        TokenIndex(frame_s=0.01).add(["a"], [[1]], runs=[[0]])
    plain = TokenIndex()
    plain.add(["a"], [[1, 2]])
    plain.save(tmp_path / "plain.npz")
    with pytest.raises(IndexFileError, match="no token times"):
        RecordingIndex.load(tmp_path / "plain.npz")


def test_version_1_index_files_are_still_read(tmp_path) -> None:
    payload = {"tokens": np.array([1, 2, 3], dtype=np.int32), "offsets": np.array([0, 1, 3], dtype=np.int64),
               "ids": _json_bytes(["a", "b"]), "metadata": _json_bytes([{}, {"label": "x"}])}
    header = {"format": "wav2tok-token-index", "version": 1, "ngram": 2, "count": 2}
    header["sha256"] = _digest(header, payload)
    np.savez(tmp_path / "v1.npz", header=_json_bytes(header), **payload)
    index = TokenIndex.load(tmp_path / "v1.npz")
    assert index.tokens("b") == [2, 3] and index.metadata("b") == {"label": "x"} and index.frame_s is None


def test_substring_similarity_scores_the_best_placement() -> None:
    queries = [encode_tokens([1, 2, 3]), encode_tokens([])]
    scores = substring_similarity_matrix(queries, [encode_tokens([7, 1, 2, 3, 9]), encode_tokens([1, 2]), ""])
    np.testing.assert_allclose(scores, [[1.0, 2 / 3, 0.0], [0.0, 0.0, 0.0]])
