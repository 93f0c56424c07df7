"""Tokenizing many audio files with bounded memory (unreadable files are listed with the reason, not raised),
and recordings in memory into a spotting index.

Used by the ``tokenize``, ``index``, ``search`` and ``spot`` jobs, sharded or not
(:mod:`wav2tok_core.search.shards`), and by the spotting evaluation.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from ..audio.io import Failure, iter_clips
from ..errors import ConfigError
from ..model.tokens import token_runs, token_spans
from ..model.wav2tok import Wav2Tok
from .spotting import RecordingIndex


def tokenize_files(model: Wav2Tok, paths: Sequence[Path], batch_size: int = 32, progress: bool = False,
                   chunk: int = 512, chunk_s: float = 1800.0, times: bool = False) -> tuple[dict[Path, Any],
                                                                                          list[dict[str, str]]]:
    """Token strings of every readable file; unreadable ones are listed with the reason, not raised.

    Decoded audio is held for at most ``chunk`` files or ``chunk_s`` seconds at a time, whichever comes
    first, so memory stays bounded for any number and length of files.

    Returns:
        tokens: path -> token string, or with ``times`` -> ``(token string, frames per token)``
        (:func:`wav2tok_core.model.tokens.token_runs`); failed: ``[{"path", "reason"}]``.
    """
    keep = model.config.keep_repeats
    encode = ((lambda clips: [token_runs(f, keep, starts) for f, starts in
                              model.frame_tokens_and_starts(clips, batch_size=batch_size)]) if times
              else (lambda clips: model.tokenize(clips, batch_size=batch_size)))
    if batch_size < 1:
        raise ConfigError(f"batch_size: must be >= 1, got {batch_size}")
    tokens: dict[Path, list[int]] = {}
    failed: list[dict[str, str]] = []
    clips: list[torch.Tensor] = []
    kept: list[Path] = []
    held = 0  # samples decoded and not yet tokenized
    bar = tqdm(total=len(paths), desc="tokenizing", disable=not progress)
    for i, (path, result) in enumerate(iter_clips(paths, lambda p: model.load_clips([p])[0])):
        bar.update(1)
        if isinstance(result, Failure):
            failed.append(result.to_dict())
        else:
            clips.append(result)
            kept.append(path)
            held += result.numel()
        if clips and (len(clips) == chunk or held >= chunk_s * model.config.features.sr or i == len(paths) - 1):
            tokens.update(zip(kept, encode(clips)))
            clips, kept, held = [], [], 0
    bar.close()
    return tokens, failed


def recording_index(model: Wav2Tok, recordings: Mapping[str, torch.Tensor], batch_size: int = 32) -> RecordingIndex:
    """Token strings with token times of recordings (id -> waveform ``(N,)`` at the model's rate, any length)."""
    frame_s = model.config.features.frame_s
    strings, times = {}, {}
    per_clip = model.frame_tokens_and_starts(list(recordings.values()), batch_size=batch_size)
    for rid, (frames, starts) in zip(recordings, per_clip):
        spans = token_spans(frames, frame_s, model.config.keep_repeats, starts)
        strings[rid], times[rid] = [t for t, _, _ in spans], [(start, end) for _, start, end in spans]
    return RecordingIndex.from_strings(strings, times)
