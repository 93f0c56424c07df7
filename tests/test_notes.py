"""Notes from pitch tracks and the note-alignment baseline (notes-align)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wav2tok_core.audio.config import FeatureConfig
from wav2tok_core.audio.features import FeatureExtractor
from wav2tok_core.audio.notes import NoteConfig, interval_tokens, note_intervals, segment_notes
from wav2tok_core.eval.baselines import NOTE_GAP, KMeansTokenizer, note_alignment_scores
from wav2tok_core.eval.methods import Featurizer
from wav2tok_core.model.config import ModelConfig
from wav2tok_core.model.tokens import collapse, token_string
from wav2tok_core.model.wav2tok import Wav2Tok
from wav2tok_core.search.batch import recording_index

FRAME_S = 0.016


def track(*notes: tuple[float, int], rest: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A pitch track of ``(midi, frames)`` notes, each followed by ``rest`` unvoiced frames."""
    midi = np.concatenate([np.r_[np.full(n, p), np.zeros(rest)] for p, n in notes])
    voiced = np.concatenate([np.r_[np.ones(n, bool), np.zeros(rest, bool)] for _, n in notes])
    return midi, voiced


def test_notes_split_at_pitch_changes_and_rests() -> None:
    midi, voiced = track((60, 20), (62, 15), rest=0)
    midi = np.r_[midi, np.zeros(5), np.full(25, 67.0)]
    voiced = np.r_[voiced, np.zeros(5, bool), np.ones(25, bool)]
    midi[22] += 1.5  # a one-frame wobble inside the second note is not a note
    notes = segment_notes(midi, voiced, FRAME_S)
    np.testing.assert_allclose(notes, [[0.0, 0.32, 60], [0.32, 0.24, 62], [0.64, 0.40, 67]], atol=1e-9)
    np.testing.assert_allclose(note_intervals(notes), [[2, np.log2(0.24 / 0.32)], [5, np.log2(0.40 / 0.24)]],
                               rtol=1e-6)


def test_short_notes_are_dropped_and_empty_tracks_give_a_row() -> None:
    midi, voiced = track((60, 20), (70, 3), (64, 20), rest=2)
    notes = segment_notes(midi, voiced, FRAME_S, NoteConfig(min_note_s=0.08))
    assert notes[:, 2].tolist() == [60, 64]
    assert np.isnan(note_intervals(segment_notes(np.zeros(10), np.zeros(10, bool), FRAME_S))).all()
    assert note_intervals(notes[:1]).tolist() == [[0.0, 0.0]]


def test_a_glide_that_lingers_between_two_notes_is_not_a_note() -> None:
    midi = np.r_[np.full(20, 60.0), np.full(6, 63.5), np.full(20, 67.0)]  # 96 ms on the way up, as in a slowed hum
    notes = segment_notes(midi, np.ones(midi.size, bool), FRAME_S)
    assert notes[:, 2].tolist() == [60, 67]
    held = np.r_[np.full(20, 60.0), np.full(7, 63.5), np.full(20, 67.0)]  # 112 ms: a note
    assert segment_notes(held, np.ones(held.size, bool), FRAME_S)[:, 2].tolist() == [60, 63.5, 67]


def test_note_alignment_ignores_key_and_tempo_and_finds_a_partial_query() -> None:
    tune = np.array([[2, 0], [2, 0], [1, 0], [-3, 1], [5, -1], [-2, 0], [-2, 1]], dtype=np.float32)
    other = np.array([[-1, 0], [4, 1], [0, -1], [7, 0], [-5, 0], [3, 1]], dtype=np.float32)
    part = tune[2:6]  # a hum of the middle of the tune: intervals and duration ratios are key and tempo free
    scores = note_alignment_scores([part, tune], [other, tune])
    assert scores[0, 1] == 0.0 and scores[1, 1] == 0.0 and (scores[:, 0] < -0.2).all()
    one_skipped = np.delete(tune, 3, axis=0)  # the hum misses a note: one gap in the tune
    assert note_alignment_scores([one_skipped], [tune])[0, 0] == pytest.approx(-NOTE_GAP / len(one_skipped))


def test_notes_from_a_synthetic_melody() -> None:
    sr, hop = 16000, 256
    pitches = [60, 64, 67, 64]
    f0 = np.repeat(440 * 2 ** ((np.array(pitches) - 69) / 12), sr // 4)  # 4 notes of 0.25 s, legato
    wave = torch.tensor(0.3 * np.sin(2 * np.pi * np.cumsum(f0) / sr), dtype=torch.float32)
    config = FeatureConfig(kind="pitch", sr=sr, hop_length=hop, pitch_repr="contour", normalize=False)
    feats = FeatureExtractor(config)(wave[None], torch.tensor([wave.numel()]))[0][0].numpy()
    notes = segment_notes(feats[:, 0], feats[:, 2] == 1, hop / sr)
    assert np.round(notes[:, 2]).tolist() == pitches
    np.testing.assert_allclose(notes[1:, 0], [0.25, 0.5, 0.75], atol=0.05)


def note_representation(pitches: list[float], note_s: float, sr: int = 16000,
                        representation: str = "notes") -> np.ndarray:
    """The ``notes`` (or another) pitch features of a legato sine melody, one row per run of equal frames (one per
    note)."""
    extractor = FeatureExtractor(FeatureConfig(kind="pitch", sr=sr, pitch_repr=representation))
    wave = legato(pitches, note_s, sr)
    feats = extractor(wave[None], torch.tensor([wave.numel()]))[0]
    starts = extractor.note_starts(feats)[0].numpy()
    starts[0] = True
    return feats[0].numpy()[starts]


def legato(pitches: list[float], note_s: float, sr: int = 16000) -> torch.Tensor:
    """A sine melody ``(N,)``: each MIDI pitch held ``note_s`` seconds, no gaps."""
    f0 = np.repeat(440 * 2 ** ((np.array(pitches) - 69) / 12), int(sr * note_s))
    return torch.tensor(0.3 * np.sin(2 * np.pi * np.cumsum(f0) / sr), dtype=torch.float32)


@pytest.mark.parametrize("representation", ["notes", "intervals"])
def test_note_starts_mark_every_note_of_note_level_features_only(representation: str) -> None:
    tune = [60, 62, 64, 66, 65]  # three equal steps in a row: the features still change at each note
    wave = legato(tune, 0.25)
    note_level = FeatureExtractor(FeatureConfig(kind="pitch", pitch_repr=representation))
    starts = note_level.note_starts(note_level(wave[None], torch.tensor([wave.numel()]))[0])[0]
    assert int(starts.sum()) == len(tune) - 1  # the first note starts at frame 0, where every run starts
    for frame_level in (FeatureConfig(kind="pitch", pitch_repr="chroma"), FeatureConfig()):
        extractor = FeatureExtractor(frame_level)
        assert not extractor.note_starts(extractor(wave[None], torch.tensor([wave.numel()]))[0]).any()


def test_a_note_level_model_has_one_token_per_note_in_every_string_and_span() -> None:
    """An MLP over intervals gives equal steps equal tokens; its strings still keep one token per note (the
    spotting index's spans too), where collapsing equal tokens would merge them."""
    tune = [60, 62, 64, 66, 65]
    wave = legato(tune, 0.25)
    model = Wav2Tok(ModelConfig(features=FeatureConfig(kind="pitch", pitch_repr="intervals"), use_context=False,
                                emb_dim=16, num_tokens=12))
    string = model.tokenize([wave])[0]
    frames, starts = model.frame_tokens_and_starts([wave])[0]
    assert len(string) == len(tune) and len(collapse(frames)) < len(tune)  # +2 +2 +2: the same token
    assert string == token_string(frames, False, starts)
    index = recording_index(model, {"r": wave})
    assert index.tokens.tolist() == string and index.starts_s.size == len(tune)
    assert np.diff(index.starts_s).min() > 0.2  # each token spans one note (0.25 s), none a single frame


def test_note_features_hold_per_note_and_ignore_key_and_tempo() -> None:
    tune = [60, 64, 67, 64, 62]
    notes = note_representation(tune, 0.25)
    assert len(notes) == len(tune)  # constant through each note: one distinct row per note
    np.testing.assert_allclose(notes[1:, 0] * 6, np.diff(tune), atol=0.1)  # interval from the previous note
    np.testing.assert_allclose(notes[1:-1, 1], 0.0, atol=0.1)  # equal durations (the clip's end cuts the last)
    np.testing.assert_allclose(np.hypot(notes[:, 2], notes[:, 3]), 1.0, atol=1e-5)  # pitch class on the circle
    moved = note_representation([p + 3 for p in tune], 0.4)  # another key, slower
    np.testing.assert_allclose(moved[:, [0, 2, 3]], notes[:, [0, 2, 3]], atol=0.05)


def test_interval_features_are_the_note_features_interval_column() -> None:
    tune = [60, 64, 67, 64, 62]
    intervals = note_representation(tune, 0.25, representation="intervals")
    assert intervals.shape == (len(tune), 1)
    np.testing.assert_array_equal(intervals[:, 0], note_representation(tune, 0.25)[:, 0])


def test_note_intervals_fold_octave_slips_and_silence_gives_zeros() -> None:
    slipped = note_representation([60, 64, 55, 60], 0.25)  # 64 -> 55 is 67's octave slip: -9 folds to +3
    np.testing.assert_allclose(slipped[1:, 0] * 6, [4, 3, 5], atol=0.1)
    silence = FeatureExtractor(FeatureConfig(kind="pitch", pitch_repr="notes"))
    feats = silence(torch.zeros(1, 8000), torch.tensor([8000]))
    assert feats[0].shape[-1] == 4 and not feats[0].any()


def test_interval_tokens_round_fold_and_ignore_key() -> None:
    notes = np.array([[0, 0.2, 60.2], [0.2, 0.2, 64.1], [0.4, 0.3, 55.0], [0.7, 0.2, 60.0]])  # +3.9, -9.1, +5
    assert interval_tokens(notes) == [4 + 6, 3 + 6, 5 + 6]  # -9.1 is an octave slip of +2.9
    moved = notes + np.array([0, 0, 7.0])
    assert interval_tokens(moved) == interval_tokens(notes)
    assert interval_tokens(notes[:1]) == [] and interval_tokens(np.zeros((0, 3))) == []


def test_k_means_tokens_over_note_level_features_have_one_token_per_note() -> None:
    """The ``vq-pitch`` baseline cuts its strings like the model: +2 +2 +2 stay three tokens."""
    tune = [60, 62, 64, 66, 65]
    featurizer = Featurizer(FeatureConfig(kind="pitch", pitch_repr="intervals"))
    features = featurizer([legato(tune, 0.25)])
    kmeans = KMeansTokenizer(3).fit(features)
    assert len(kmeans.tokenize(features, featurizer.note_starts(features))[0]) == len(tune)
    assert len(kmeans.tokenize(features)[0]) < len(tune)
