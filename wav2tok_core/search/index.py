"""Query-by-example search over token strings.

A token string is a ``list[int]`` of ids in ``[0, MAX_TOKEN)`` with consecutive repeats already
collapsed. Internally each string becomes a Python ``str`` with one code point per token
(``chr(t)``; code points stay below the surrogate block), which lets rapidfuzz compare them fast.

Similarity of two strings ``a`` and ``b`` is ``1 - lev(a, b) / max(len(a), len(b))`` (1.0 for two
empty strings), where ``lev`` is the Levenshtein distance with unit costs.

Search modes of :class:`TokenIndex`:

* exhaustive (``candidates=None``): every indexed string is scored with ``rapidfuzz.process.cdist``.
* candidate (``candidates=N``): a token n-gram inverted index (``scipy.sparse`` CSR, features x items)
  gives, by one sparse product per query batch, the number of n-grams each item shares with each
  query. From that count and the two lengths the q-gram lemma gives an upper bound on the
  similarity; the ``N`` items with the highest bound (among items sharing at least one n-gram)
  plus every item whose string equals the query (hash lookup) are rescored exactly. So an exact
  duplicate of the query is never lost, whatever ``N`` is. Items sharing no n-gram (n-grams
  include start/end markers) with the query are never returned, so a query unlike everything in
  the index can get fewer than ``k`` hits, or none.

Ranking ties (equal score) are broken by insertion order, earliest first.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Sequence

import numpy as np
import scipy.sparse as sp
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from .. import runtime
from ..errors import IndexFileError
from ..runtime import atomic_write

MAX_TOKEN = 0xD800
"""Token ids must be below this (the first UTF-16 surrogate code point)."""

FORMAT = "wav2tok-token-index"
VERSION = 2  # 2: optional token times (frame runs); version 1 files are still read

_PAD = 0xFFFF  # n-gram padding symbol; never a valid token id
_ORDINAL_BITS = 15  # bits of an n-gram feature code that hold the occurrence ordinal
_CELLS_PER_CHUNK = 1 << 23  # dense query x item cells computed at once in exhaustive search


@dataclass(frozen=True)
class Hit:
    """One search result: item ``id``, similarity ``score`` in [0, 1], 1-based ``rank``."""

    id: str
    score: float
    rank: int


def encode_tokens(tokens: Sequence[int]) -> str:
    """Encode a token string as a ``str`` with code point ``t`` for token ``t``."""
    arr = np.asarray(tokens, dtype=np.int64)
    if arr.ndim != 1:
        raise ValueError(f"a token string must be 1-D, got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= MAX_TOKEN):
        raise ValueError(f"token ids must lie in [0, {MAX_TOKEN}), got {arr.min()}..{arr.max()}")
    return "".join(map(chr, arr.tolist()))


def edit_similarity_matrix(queries: Sequence[Sequence[int]], database: Sequence[Sequence[int]]) -> np.ndarray:
    """Similarities ``1 - normalised Levenshtein distance``, shape (n_queries, n_database), float64."""
    return string_similarity_matrix([encode_tokens(q) for q in queries], [encode_tokens(d) for d in database])


def string_similarity_matrix(queries: Sequence[str], choices: Sequence[str]) -> np.ndarray:
    """Dense (len(queries), len(choices)) float64 similarities ``1 - normalised Levenshtein distance`` of
    strings encoded by :func:`encode_tokens`."""
    if not queries or not choices:
        return np.zeros((len(queries), len(choices)))
    dist = process.cdist(queries, choices, scorer=Levenshtein.normalized_distance, dtype=np.float64, workers=runtime.workers())
    return 1.0 - dist


def _pairwise_similarity(queries: Sequence[str], choices: Sequence[str]) -> np.ndarray:
    """Similarities of corresponding elements, shape (len(queries),), float64."""
    if not queries:
        return np.zeros(0)
    dist = process.cpdist(queries, choices, scorer=Levenshtein.normalized_distance, dtype=np.float64, workers=runtime.workers())
    return 1.0 - dist


def _top_positions(keys: np.ndarray, n: int, labels: np.ndarray | None = None) -> np.ndarray:
    """Positions of the ``n`` largest ``keys`` (1-D), ordered by key descending, then label ascending.

    ``labels`` (same shape, distinct) break ties; by default the positions themselves.
    """
    labels = np.arange(keys.size) if labels is None else labels
    if n < keys.size:
        cut = keys.size - n
        threshold = np.partition(keys, cut)[cut]
        above = np.flatnonzero(keys > threshold)
        tied = np.flatnonzero(keys == threshold)
        tied = tied[np.argsort(labels[tied], kind="stable")[: n - above.size]]
        chosen = np.concatenate([above, tied])
    else:
        chosen = np.arange(keys.size)
    return chosen[np.lexsort((labels[chosen], -keys[chosen]))]


def _ngram_features(flat: np.ndarray, offsets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Occurrence-numbered padded n-gram codes of many token strings.

    Each string is padded with ``n - 1`` pad symbols at both ends, so a string of length L has
    ``L + n - 1`` n-grams. The k-th occurrence (k = 0, 1, ...) of n-gram g in a string gets the
    feature code ``g << 15 | k``; two strings' feature sets then intersect in exactly the multiset
    intersection of their n-grams.

    Args:
        flat: (sum L,) int token ids of all strings, concatenated.
        offsets: (n_strings + 1,) int64 start of each string in ``flat``.
        n: n-gram order, 1..3.

    Returns:
        ``(owner, code)``: both (total n-grams,) int64, ``owner`` is the string index.
    """
    lengths = np.diff(offsets)
    padded_offsets = np.concatenate([[0], np.cumsum(lengths + 2 * (n - 1))])
    padded = np.full(int(padded_offsets[-1]), _PAD, dtype=np.int64)
    owner_of_token = np.repeat(np.arange(lengths.size), lengths)
    token_position = np.arange(flat.size) - offsets[owner_of_token]
    padded[padded_offsets[owner_of_token] + (n - 1) + token_position] = flat
    gram_counts = lengths + n - 1
    gram_offsets = np.concatenate([[0], np.cumsum(gram_counts)])
    owner = np.repeat(np.arange(lengths.size), gram_counts)
    first = padded_offsets[owner] + np.arange(owner.size) - gram_offsets[owner]
    code = np.zeros(owner.size, dtype=np.int64)
    for shift in range(n):
        code = (code << 16) | padded[first + shift]
    return owner, _number_occurrences(owner, code)


def _number_occurrences(owner: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Append to each n-gram ``code`` its occurrence ordinal within its owner string."""
    order = np.lexsort((code, owner))
    sorted_owner, sorted_code = owner[order], code[order]
    new_run = np.ones(order.size, dtype=bool)
    new_run[1:] = (sorted_owner[1:] != sorted_owner[:-1]) | (sorted_code[1:] != sorted_code[:-1])
    run_start = np.maximum.accumulate(np.where(new_run, np.arange(order.size), 0))
    ordinal = np.arange(order.size) - run_start
    if ordinal.size and ordinal.max() >= 1 << _ORDINAL_BITS:
        raise ValueError(f"an n-gram occurs more than {1 << _ORDINAL_BITS} times in one token string")
    features = np.empty(order.size, dtype=np.int64)
    features[order] = (sorted_code << _ORDINAL_BITS) | ordinal
    return features


def _flatten(tokens: Sequence[Sequence[int]], limit: int | None = MAX_TOKEN) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate integer sequences (token strings, or frame runs with ``limit=None``): (flat int32 values,
    (n + 1,) int64 offsets). Token ids must lie in ``[0, limit)``."""
    lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = np.fromiter((t for seq in tokens for t in seq), dtype=np.int64, count=int(offsets[-1]))
    if limit is not None and flat.size and (flat.min() < 0 or flat.max() >= limit):
        raise ValueError(f"token ids must lie in [0, {limit}), got {flat.min()}..{flat.max()}")
    return flat.astype(np.int32), offsets


class _NgramIndex:
    """Inverted index of padded, occurrence-numbered n-grams: a (features x items) CSR 0/1 matrix."""

    def __init__(self, flat: np.ndarray, offsets: np.ndarray, n: int) -> None:
        self.n = n
        self.lengths = np.diff(offsets)
        owner, code = _ngram_features(flat.astype(np.int64), offsets, n)
        self.vocabulary, column = np.unique(code, return_inverse=True)
        ones = np.ones(owner.size, dtype=np.int32)
        shape = (self.vocabulary.size, self.lengths.size)
        self.postings = sp.csr_matrix((ones, (column, owner)), shape=shape)

    def nbytes(self) -> int:
        """Bytes held by the index arrays."""
        p = self.postings
        return self.vocabulary.nbytes + self.lengths.nbytes + p.data.nbytes + p.indices.nbytes + p.indptr.nbytes

    def shared_counts(self, flat: np.ndarray, offsets: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query: (items sharing at least one n-gram with it, ascending; their shared n-gram counts).

        Counts are multiset intersection sizes. Each query's posting lists are concatenated and counted
        with one ``bincount`` (cheaper than a sparse product when most items share some n-gram).
        """
        owner, code = _ngram_features(flat.astype(np.int64), offsets, self.n)
        column = np.searchsorted(self.vocabulary, code)
        known = column < self.vocabulary.size
        known[known] = self.vocabulary[column[known]] == code[known]
        owner, column = owner[known], column[known]  # owner is ascending
        bounds = np.searchsorted(owner, np.arange(offsets.size))
        starts, ends = self.postings.indptr[:-1], self.postings.indptr[1:]
        result = []
        for q in range(offsets.size - 1):
            features = column[bounds[q]:bounds[q + 1]]
            hits = [self.postings.indices[starts[f]:ends[f]] for f in features]
            counts = np.bincount(np.concatenate(hits), minlength=self.lengths.size) if hits else np.zeros(0, np.int64)
            items = np.flatnonzero(counts)
            result.append((items, counts[items]))
        return result

    def similarity_bound(self, query_length: int, items: np.ndarray, shared: np.ndarray) -> np.ndarray:
        """Upper bound on the similarity of a query to ``items`` given their shared n-gram counts.

        q-gram lemma: one edit changes at most ``n`` padded n-grams, so
        ``lev >= ceil((max(L_q, L_x) + n - 1 - shared) / n)``; also ``lev >= |L_q - L_x|``.
        """
        item_lengths = self.lengths[items]
        longest = np.maximum(item_lengths, query_length)
        by_grams = -((shared - (longest + self.n - 1)) // self.n)
        lower = np.maximum(by_grams, np.abs(item_lengths - query_length))
        return 1.0 - lower / np.maximum(longest, 1)


class TokenIndex:
    """A searchable collection of token strings with string ids and optional JSON metadata.

    An index made with ``frame_s`` also holds each token's time: with every item, the number of frames each
    of its tokens covers (its frame run; 1 for strings that keep repeats), frames being ``frame_s`` seconds.
    Spotting in long recordings (:class:`wav2tok_core.search.spotting.RecordingIndex`) needs these.
    """

    def __init__(self, ngram: int = 2, frame_s: float | None = None) -> None:
        """``ngram``: n-gram order (1..3) of the candidate stage's inverted index; ``frame_s``: seconds per
        frame when the index holds token times."""
        if ngram not in (1, 2, 3):
            raise ValueError(f"ngram must be 1, 2 or 3, got {ngram}")
        if frame_s is not None and not frame_s > 0:
            raise ValueError(f"frame_s must be > 0, got {frame_s}")
        self.ngram = ngram
        self.frame_s = frame_s
        self._run_chunks: list[np.ndarray] = []
        self._ids: list[str] = []
        self._position: dict[str, int] = {}
        self._strings: list[str] = []
        self._metadata: list[dict[str, Any]] = []
        self._by_string: dict[str, list[int]] = {}
        self._token_chunks: list[np.ndarray] = []
        self._length_chunks: list[np.ndarray] = []
        self._ngrams: _NgramIndex | None = None
        self._string_array: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> list[str]:
        """Item ids in insertion order (a copy)."""
        return list(self._ids)

    def metadata(self, item_id: str) -> dict[str, Any]:
        """The metadata dict stored with ``item_id``."""
        return self._metadata[self._position[item_id]]

    def tokens(self, item_id: str) -> list[int]:
        """The token string stored under ``item_id``."""
        return [ord(c) for c in self._strings[self._position[item_id]]]

    def add(self, ids: Sequence[str], tokens: Sequence[Sequence[int]], metadata: Sequence[dict[str, Any]] | None = None,
            runs: Sequence[Sequence[int]] | None = None) -> None:
        """Append items. Ids must be new and unique; ``metadata`` (one dict per item) must be JSON-serialisable to
        save; ``runs`` (per item, frames per token, each >= 1) is required exactly when the index has ``frame_s``."""
        if len(ids) != len(tokens) or (metadata is not None and len(metadata) != len(ids)):
            raise ValueError("ids, tokens and metadata must have the same length")
        if (runs is None) != (self.frame_s is None):
            raise ValueError("token runs must be given exactly when the index has frame_s")
        if runs is not None:
            run_flat, run_offsets = _flatten(runs, limit=None)
            if len(runs) != len(ids) or not np.array_equal(np.diff(run_offsets), [len(t) for t in tokens]):
                raise ValueError("runs must hold one frame count per token of each item")
            if run_flat.size and run_flat.min() < 1:
                raise ValueError("a token covers at least one frame")
        if not all(isinstance(i, str) for i in ids):
            raise TypeError("item ids must be str")
        fresh = set(ids)
        if len(fresh) != len(ids) or not fresh.isdisjoint(self._position):
            raise ValueError("item ids must be unique and not already in the index")
        flat, offsets = _flatten(tokens)
        strings = ["".join(map(chr, seq)) for seq in tokens]
        start = len(self._ids)
        for position, (item_id, string) in enumerate(zip(ids, strings), start):
            self._position[item_id] = position
            self._by_string.setdefault(string, []).append(position)
        self._ids.extend(ids)
        self._strings.extend(strings)
        self._metadata.extend(dict(m) for m in (metadata if metadata is not None else [{}] * len(ids)))
        self._token_chunks.append(flat)
        self._length_chunks.append(np.diff(offsets))
        if runs is not None:
            self._run_chunks.append(run_flat)
        self._ngrams = None
        self._string_array = None

    def _flat_tokens(self) -> tuple[np.ndarray, np.ndarray]:
        """All indexed tokens as (flat int32, offsets int64)."""
        flat = np.concatenate(self._token_chunks) if self._token_chunks else np.zeros(0, np.int32)
        lengths = np.concatenate(self._length_chunks) if self._length_chunks else np.zeros(0, np.int64)
        return flat, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)

    def build(self) -> None:
        """Build the n-gram candidate index now (otherwise built on the first candidate search)."""
        if self._ngrams is None:
            self._ngrams = _NgramIndex(*self._flat_tokens(), self.ngram)
            self._string_array = np.array(self._strings, dtype=object)

    def nbytes(self) -> int:
        """Bytes of the array data of the candidate index plus the token arrays (not Python objects)."""
        self.build()
        assert self._ngrams is not None
        return self._ngrams.nbytes() + sum(a.nbytes for a in self._token_chunks + self._length_chunks)

    def _excluded_positions(self, exclude_ids: Sequence[Collection[str]] | None, n_queries: int) -> list[np.ndarray]:
        """Per query, sorted positions of the excluded ids that are in the index."""
        if exclude_ids is None:
            return [np.zeros(0, np.int64)] * n_queries
        if len(exclude_ids) != n_queries:
            raise ValueError("exclude_ids needs one collection per query")
        return [np.unique(np.fromiter((self._position[i] for i in ex if i in self._position), dtype=np.int64)) for ex in exclude_ids]

    def search(
        self,
        queries: Sequence[Sequence[int]],
        k: int = 10,
        exclude_ids: Sequence[Collection[str]] | None = None,
        candidates: int | None = None,
    ) -> list[list[Hit]]:
        """Top-``k`` items per query, best first.

        Args:
            queries: n_queries token strings.
            k: hits per query (fewer if fewer items are eligible).
            exclude_ids: optional, per query, ids never to return (e.g. the query itself); ids not
                in the index are ignored.
            candidates: ``None`` for exhaustive search; otherwise the number of n-gram candidates
                rescored per query (exact duplicates of the query are always rescored too).

        Returns:
            n_queries lists of :class:`Hit`.
        """
        if k < 1:
            raise ValueError("k must be >= 1")
        encoded = [encode_tokens(q) for q in queries]
        excluded = self._excluded_positions(exclude_ids, len(queries))
        if not self._ids:
            return [[] for _ in queries]
        if candidates is None:
            return self._search_exhaustive(encoded, k, excluded)
        if candidates < 1:
            raise ValueError("candidates must be >= 1 (or None for exhaustive search)")
        return self._search_candidates(queries, encoded, k, excluded, candidates)

    def _hits(self, positions: np.ndarray, scores: np.ndarray) -> list[Hit]:
        """Hits for already ordered item positions, dropping excluded ones (score -inf)."""
        keep = np.isfinite(scores)
        return [Hit(self._ids[p], float(s), r) for r, (p, s) in enumerate(zip(positions[keep].tolist(), scores[keep].tolist()), 1)]

    def _search_exhaustive(self, encoded: list[str], k: int, excluded: list[np.ndarray]) -> list[list[Hit]]:
        """Score every item with cdist, in query chunks bounded by ``_CELLS_PER_CHUNK``."""
        chunk = max(1, _CELLS_PER_CHUNK // len(self._strings))
        results: list[list[Hit]] = []
        for begin in range(0, len(encoded), chunk):
            scores = string_similarity_matrix(encoded[begin:begin + chunk], self._strings)
            for row, ex in zip(scores, excluded[begin:begin + chunk]):
                row[ex] = -np.inf
                top = _top_positions(row, k)
                results.append(self._hits(top, row[top]))
        return results

    def _search_candidates(
        self, queries: Sequence[Sequence[int]], encoded: list[str], k: int, excluded: list[np.ndarray], n_candidates: int
    ) -> list[list[Hit]]:
        """Pick candidates by the n-gram similarity bound, then rescore them exactly in one cpdist call."""
        self.build()
        assert self._ngrams is not None and self._string_array is not None
        flat, offsets = _flatten(queries)
        chosen: list[np.ndarray] = []
        for row, (string, (items, counts)) in enumerate(zip(encoded, self._ngrams.shared_counts(flat, offsets))):
            keys = self._candidate_keys(len(string), items, counts)
            keys[np.isin(items, excluded[row], assume_unique=True)] = -np.inf
            best = _top_positions(keys, n_candidates, labels=items)
            top = items[best[np.isfinite(keys[best])]]
            exact = np.setdiff1d(np.asarray(self._by_string.get(string, []), dtype=np.int64), excluded[row])
            chosen.append(np.union1d(top, exact))
        counts_per_query = [c.size for c in chosen]
        all_items = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
        repeated_queries = np.repeat(np.array(encoded, dtype=object), counts_per_query).tolist()
        scores = _pairwise_similarity(repeated_queries, self._string_array[all_items].tolist())
        results: list[list[Hit]] = []
        for items, row_scores in zip(chosen, np.split(scores, np.cumsum(counts_per_query)[:-1])):
            top = _top_positions(row_scores, k)
            results.append(self._hits(items[top], row_scores[top]))
        return results

    def _candidate_keys(self, query_length: int, items: np.ndarray, shared: np.ndarray) -> np.ndarray:
        """Candidate ranking key: the similarity bound, ties broken by the shared n-gram fraction.

        Distinct bounds are fractions with denominators <= L_max, so they differ by at least
        1 / L_max**2; the tie-break term is kept below half of that.
        """
        assert self._ngrams is not None
        bound = self._ngrams.similarity_bound(query_length, items, shared)
        longest = max(query_length, int(self._ngrams.lengths.max(initial=0)), 1)
        grams = np.maximum(self._ngrams.lengths[items], query_length) + self.ngram
        return bound + (0.5 / longest**2) * (shared / grams)

    def save(self, path: str | os.PathLike) -> None:
        """Write the index to ``path`` atomically.

        Layout: an ``.npz`` (no pickle) with arrays ``header`` (JSON: format, version, ngram, count,
        frame_s, sha256), ``tokens`` (int32), ``offsets`` (int64), ``ids`` and ``metadata`` (JSON as uint8),
        and with ``frame_s`` ``runs`` (int32, frames per token). The SHA-256 covers the other header fields and
        every array.
        """
        flat, offsets = self._flat_tokens()
        payload = {
            "tokens": flat,
            "offsets": offsets,
            "ids": _json_bytes(self._ids),
            "metadata": _json_bytes(self._metadata),
        }
        if self.frame_s is not None:
            payload["runs"] = np.concatenate(self._run_chunks) if self._run_chunks else np.zeros(0, np.int32)
        header: dict[str, Any] = {"format": FORMAT, "version": VERSION, "ngram": self.ngram, "count": len(self),
                                  "frame_s": self.frame_s}
        header["sha256"] = _digest(header, payload)
        with atomic_write(path, "wb") as fh:
            np.savez(fh, header=_json_bytes(header), **payload)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TokenIndex":
        """Read an index written by :meth:`save`; raise :class:`IndexFileError` naming ``path`` on any problem."""
        contents = read_index_file(path)
        try:
            index = cls(ngram=contents.header["ngram"], frame_s=contents.frame_s)
            bounds = contents.offsets.tolist()
            tokens = contents.tokens.tolist()
            per_item = lambda flat: [flat[bounds[i]:bounds[i + 1]] for i in range(len(contents.ids))]  # noqa: E731
            runs = None if contents.runs is None else per_item(contents.runs.tolist())
            index.add(contents.ids, per_item(tokens), contents.metadata, runs)
        except (ValueError, TypeError) as err:
            raise IndexFileError(f"{path}: invalid content ({err})") from err
        return index


def _json_bytes(obj: Any) -> np.ndarray:
    """``obj`` as UTF-8 JSON in a uint8 array."""
    return np.frombuffer(json.dumps(obj).encode("utf-8"), dtype=np.uint8)


def _json_value(array: np.ndarray) -> Any:
    """Inverse of :func:`_json_bytes`."""
    return json.loads(array.tobytes().decode("utf-8"))


def _digest(header: dict[str, Any], payload: dict[str, np.ndarray]) -> str:
    """SHA-256 over the header fields except ``sha256``, then each array's name, dtype, shape and bytes (sorted by name)."""
    digest = hashlib.sha256()
    digest.update(json.dumps({key: value for key, value in header.items() if key != "sha256"}, sort_keys=True).encode())
    for name in sorted(payload):
        array = np.ascontiguousarray(payload[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class IndexContents:
    """An index file's checked arrays: ``tokens`` (int32) and ``offsets`` ((count + 1,) int64) of all items,
    ``runs`` (int32, frames per token) when the file holds token times, and ids, metadata and header."""

    header: dict[str, Any]
    ids: list[str]
    metadata: list[dict[str, Any]]
    tokens: np.ndarray
    offsets: np.ndarray
    runs: np.ndarray | None

    @property
    def frame_s(self) -> float | None:
        """Seconds per frame, when the file holds token times."""
        return self.header.get("frame_s")


def read_index_file(path: str | os.PathLike) -> IndexContents:
    """Load an index file and check its format, version, checksum and consistency; raise :class:`IndexFileError`
    naming ``path`` on any problem."""
    path = Path(path)
    names = ("tokens", "offsets", "ids", "metadata")
    try:
        with np.load(path, allow_pickle=False) as npz:
            header = _json_value(npz["header"])
            payload = {name: npz[name] for name in names}
            if "runs" in npz.files:
                payload["runs"] = npz["runs"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError, RuntimeError, struct.error,
            zipfile.BadZipFile) as err:  # TypeError/AttributeError: a plain .npy array instead of an .npz archive

        # RuntimeError: zipfile's "encrypted" and NotImplementedError for a damaged version field
        raise IndexFileError(f"{path}: not a readable token index file ({err})") from err
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise IndexFileError(f"{path}: not a {FORMAT} file")
    if header.get("version") not in (1, VERSION):
        raise IndexFileError(f"{path}: unsupported version {header.get('version')!r} (this code reads versions 1 "
                             f"to {VERSION})")
    if header.get("sha256") != _digest(header, payload):
        raise IndexFileError(f"{path}: checksum mismatch, the file is corrupt")
    tokens, offsets, runs = payload["tokens"], payload["offsets"], payload.get("runs")
    try:
        ids, metadata = _json_value(payload["ids"]), _json_value(payload["metadata"])
        if not len(ids) == len(metadata) == header.get("count") == offsets.size - 1 or offsets[-1] != tokens.size:
            raise ValueError("inconsistent item counts")
        if np.any(np.diff(offsets) < 0) or offsets[0] != 0:
            raise ValueError("bad offsets")
        if (runs is None) != (header.get("frame_s") is None) or (runs is not None and runs.shape != tokens.shape):
            raise ValueError("token times do not match the tokens")
    except (ValueError, TypeError) as err:
        raise IndexFileError(f"{path}: invalid content ({err})") from err
    return IndexContents(header, ids, metadata, tokens, offsets, runs)


def candidate_recall(index: TokenIndex, queries: Sequence[Sequence[int]], k: int = 10, candidates: int = 200) -> float:
    """Mean recall@k of candidate search against exhaustive search.

    Items with equal scores are interchangeable: per query, recall is the size of the multiset
    intersection of the two top-k *score* lists divided by the exhaustive list's length (queries
    with no eligible item are skipped). Candidate scores are exact, so this counts how many of the
    true top-k the candidate stage reproduced.
    """
    exhaustive = index.search(queries, k=k)
    approximate = index.search(queries, k=k, candidates=candidates)
    recalls = []
    for truth, found in zip(exhaustive, approximate):
        if truth:
            common = Counter(h.score for h in truth) & Counter(h.score for h in found)
            recalls.append(sum(common.values()) / len(truth))
    return float(np.mean(recalls)) if recalls else float("nan")
