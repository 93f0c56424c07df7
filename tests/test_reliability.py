"""Bad input gets a clear error naming the culprit; batch jobs skip and report; killed runs resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO, tone_clip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wav2tok_core.audio.io import load_audio, load_clips
from wav2tok_core.cli.main import main as cli_main
from wav2tok_core.data.reference_bin import write_reference_bin
from wav2tok_core.errors import AudioError, ConfigError
from wav2tok_core.model.codebook import fit_model_codebook
from wav2tok_core.model.config import ModelConfig
from wav2tok_core.model.wav2tok import Wav2Tok
from wav2tok_core.train.recipe import parse_args


@pytest.fixture(scope="module")
def model() -> Wav2Tok:
    torch.manual_seed(0)
    m = Wav2Tok(ModelConfig(emb_dim=16, num_tokens=8, num_layers=1))
    fit_model_codebook(m, [torch.from_numpy(tone_clip(k, 0)) for k in range(3)])
    return m


def write_wav(path, data, sr=16000, subtype=None):
    sf.write(path, data, sr, subtype=subtype)
    return path


@pytest.mark.parametrize("make,message", [
    (lambda p: p, "file does not exist"),
    (lambda p: (p.write_bytes(b""), p)[1], "file is empty"),
    (lambda p: write_wav(p, np.zeros(0, dtype="float32")), "has zero samples"),
    (lambda p: (p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt "), p)[1], "cannot be decoded"),
    (lambda p: (p.write_text("id,name\n1,not audio\n"), p)[1], "cannot be decoded"),
    (lambda p: write_wav(p, np.array([0.1, np.nan, 0.2] * 100, dtype="float32"), subtype="FLOAT"), "NaN or Inf"),
    (lambda p: write_wav(p, np.array([0.1, np.inf, 0.2] * 100, dtype="float32"), subtype="FLOAT"), "NaN or Inf"),
    (lambda p: write_wav(p, np.zeros(16000, dtype="float32")), "is silent"),
], ids=["missing", "empty-file", "zero-samples", "truncated-header", "not-audio", "nan", "inf", "silence"])
def test_bad_audio_gets_an_error_naming_the_file(tmp_path, make, message) -> None:
    path = make(tmp_path / "bad.wav")
    with pytest.raises(AudioError, match=f"bad.wav: .*({message})"):
        load_audio(path, 16000)


def test_load_clips_records_missing_and_corrupt_files_and_keeps_the_rest(tmp_path) -> None:
    good = write_wav(tmp_path / "good.wav", tone_clip(0, 0))
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    missing = tmp_path / "missing.wav"
    kept, waves, failures = load_clips([missing, good, corrupt], lambda path: load_audio(path, 16000))
    assert kept == [good] and len(waves) == 1 and torch.equal(waves[0], load_audio(good, 16000))
    assert [f.path for f in failures] == [str(missing), str(corrupt)]
    assert "missing.wav: file does not exist" in failures[0].reason and "cannot be decoded" in failures[1].reason
    assert failures[1].to_dict() == {"path": str(corrupt), "reason": failures[1].reason}
    assert json.loads(json.dumps([f.to_dict() for f in failures]))[0]["path"] == str(missing)


def test_truncated_data_still_loads_what_is_there(tmp_path) -> None:
    path = write_wav(tmp_path / "cut.wav", tone_clip(0, 0))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    wave = load_audio(path, 16000)
    assert 0 < wave.numel() < len(tone_clip(0, 0))


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
@pytest.mark.parametrize("sr", [8000, 11025, 22050, 44100, 48000])
def test_every_sample_format_and_rate_loads(tmp_path, subtype, sr, model) -> None:
    n = sr // 2
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(n) / sr)).astype("float32")
    path = write_wav(tmp_path / "x.wav", np.stack([tone, tone], axis=1), sr, subtype)  # stereo too
    wave = load_audio(path, 16000)
    assert abs(wave.numel() - 8000) <= 1 and wave.abs().max() == pytest.approx(0.5, abs=0.03)
    assert model.tokenize([path])[0]


def test_too_short_clip_is_named(model) -> None:
    with pytest.raises(AudioError, match="clip 0: 100 samples .* shorter than one frame"):
        model.tokenize([0.1 * np.random.randn(100)])


def test_long_recording_is_tokenized_in_windows_without_seams(model) -> None:
    long = torch.from_numpy(np.concatenate([tone_clip(k % 3, k) for k in range(60)]))  # ~24 s
    whole = model.frame_tokens([long], chunk_s=1000)[0]
    windows = model.frame_tokens([long], chunk_s=4.0)[0]
    assert windows.shape == whole.shape  # every frame exactly once
    assert (windows == whole).float().mean() > 0.6  # same content, up to per-window normalisation
    string = model.tokenize([long], chunk_s=4.0)[0]
    assert all(a != b for a, b in zip(string, string[1:]))  # joins collapse like the rest


def test_inference_batches_hold_bounded_audio(model, monkeypatch) -> None:
    import wav2tok_core.model.inference as model_module

    long = torch.from_numpy(np.concatenate([tone_clip(k % 3, k) for k in range(60)]))  # ~24 s
    expected = model.frame_tokens([long, long[:8000]], chunk_s=4.0)
    sizes: list[int] = []
    real_pad = model_module.pad_batch
    monkeypatch.setattr(model_module, "pad_batch", lambda waves: sizes.append(max(map(len, waves)) * len(waves))
                        or real_pad(waves))
    monkeypatch.setattr(model_module, "MAX_BATCH_SECONDS", 10.0)
    bounded = model.frame_tokens([long, long[:8000]], chunk_s=4.0)
    assert len(sizes) > 1 and max(sizes) <= 10.0 * 16000  # several batches, none over the budget
    assert all(torch.equal(a, b) for a, b in zip(bounded, expected))  # batching never changes tokens


def test_tokenize_files_decodes_a_bounded_amount_at_a_time(tmp_path, model, monkeypatch) -> None:
    from wav2tok_core.search.batch import tokenize_files

    paths = []
    for k in range(5):
        paths.append(tmp_path / f"{k}.wav")
        write_wav(paths[-1], tone_clip(k % 3, k))
    (tmp_path / "bad.wav").write_bytes(b"")
    paths.insert(2, tmp_path / "bad.wav")
    calls: list[int] = []
    real = model.tokenize
    monkeypatch.setattr(model, "tokenize", lambda clips, **kw: calls.append(len(clips)) or real(clips, **kw))
    tokens, failed = tokenize_files(model, paths, chunk_s=0.5)  # each clip lasts 0.3-0.5 s
    assert len(tokens) == 5 and [f["path"] for f in failed] == [str(tmp_path / "bad.wav")]
    assert sum(calls) == 5 and max(calls) <= 2 and len(calls) >= 3


def test_tokenize_command_skips_and_reports_bad_files(tmp_path, model, capsys) -> None:
    checkpoint = model.save(tmp_path / "m.pt")
    folder = tmp_path / "clips"
    folder.mkdir()
    write_wav(folder / "good.wav", tone_clip(1, 1))
    (folder / "broken.wav").write_bytes(b"garbage")
    write_wav(folder / "quiet.wav", np.zeros(8000, dtype="float32"))
    out = tmp_path / "tokens.json"
    assert cli_main(["tokenize", str(folder), "--model", str(checkpoint), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [os.path.basename(r["path"]) for r in result["items"]] == ["good.wav"]
    reasons = {os.path.basename(f["path"]): f["reason"] for f in result["failed"]}
    assert "cannot be decoded" in reasons["broken.wav"] and "is silent" in reasons["quiet.wav"]
    assert "broken.wav" in capsys.readouterr().err
    assert cli_main(["tokenize", str(folder), "--model", str(checkpoint), "--strict"]) == 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=0, max_size=2048))
def test_fuzz_random_bytes_never_escape_as_unhandled_errors(tmp_path, data) -> None:
    path = tmp_path / "fuzz.wav"
    path.write_bytes(data)
    try:
        wave = load_audio(path, 16000)
    except AudioError:
        return
    assert wave.ndim == 1 and torch.isfinite(wave).all()


arrays = st.one_of(
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=0, max_size=3000),
    st.integers(0, 4000).map(lambda n: np.random.default_rng(n).normal(size=n) * 10 ** np.random.default_rng(n).uniform(-8, 3)),
    st.integers(1, 3).map(lambda c: np.random.default_rng(c).normal(size=(c, 2000))),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrays, st.sampled_from([8000, 16000, 44100]))
def test_fuzz_random_arrays_give_tokens_or_a_clear_error(model, array, sr) -> None:
    try:
        tokens = model.tokenize([np.asarray(array, dtype=np.float32)], sr=sr)[0]
    except AudioError as err:
        assert str(err).startswith("clip 0:")
        return
    assert tokens and all(0 <= t < 8 for t in tokens)


@pytest.mark.parametrize("flag,value,field", [
    ("--num_tokens", "1", "num_tokens"), ("--temp", "0", "temp"), ("--temp", "-1", "temp"),
    ("--emb_dim", "7", "emb_dim"), ("--warmup", "1.5", "warmup"), ("--subdata_split", "0", "subdata_split"),
    ("--clip_duration", "0", "clip_duration"), ("--cluster_split", "2", "cluster_split"), ("--sr", "100", "sr"),
])
def test_out_of_range_config_values_are_named(flag, value, field) -> None:
    with pytest.raises(ConfigError, match=field):
        parse_args(["--dataset", "x", flag, value])


def test_unknown_config_file_key_is_named(tmp_path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("num_tokens: 10\nnum_tokenz: 5\n")
    with pytest.raises(ConfigError, match="num_tokenz"):
        parse_args(["--dataset", "x", "--config", str(path)])


def test_a_killed_training_run_resumes_without_losing_finished_epochs(tiny_data, tmp_path) -> None:
    binp = write_reference_bin(tiny_data["train"], tiny_data["test"], tmp_path / "tones.bin")
    args = [sys.executable, "-m", "wav2tok_core.train", "--dataset", str(binp), "--is_dict", "True",
            "--emb_dim", "16", "--num_tokens", "6", "--num_layers", "1", "--batch_size", "1", "--EPOCHS", "40",
            "--patience", "0", "--iter_clust", "5", "--save_dir", str(tmp_path / "w"), "--name", "r",
            "--progress", "False", "--threads", "1"]
    run = tmp_path / "w" / "r"
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    def saved_epoch() -> int:  # last.pt is replaced atomically, so it can be read while training runs
        return torch.load(run / "last.pt", weights_only=True)["epoch"] if (run / "last.pt").exists() else 0

    while saved_epoch() < 2:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "training never reached epoch 2"
        time.sleep(0.2)
    time.sleep(0.5)  # somewhere inside epoch 3
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = torch.load(run / "last.pt", weights_only=True)  # the last good checkpoint is intact
    assert saved["epoch"] >= 2
    resumed = subprocess.run(args[:args.index("--EPOCHS") + 1] + [str(saved["epoch"] + 2)]
                             + args[args.index("--EPOCHS") + 2:] + ["--load_dir", "r"],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    records = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r["epoch"] for r in records if r["kind"] == "epoch"]
    assert epochs == list(range(1, saved["epoch"] + 3))  # nothing lost, nothing duplicated
    steps = [r["step"] for r in records if r["kind"] == "epoch"]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)


def test_train_command_names_an_unusable_checkpoint(tiny_data, tmp_path, capsys) -> None:
    from wav2tok_core.cli.train import main as train_main

    data = write_reference_bin(tiny_data["train"], tiny_data["test"], tmp_path / "tones.bin")
    Wav2Tok(ModelConfig(emb_dim=32, num_tokens=6, num_layers=1)).save(tmp_path / "m32.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    common = ["--dataset", str(data), "--is_dict", "True", "--emb_dim", "16", "--num_tokens", "6", "--num_layers", "1",
              "--save_dir", str(tmp_path / "w"), "--progress", "False", "--EPOCHS", "1"]
    for bad in ("m32.pt", "list.pt"):
        assert train_main([*common, "--load_dir", str(tmp_path / bad)]) == 2
        err = capsys.readouterr().err
        assert bad in err and "Traceback" not in err


def test_malicious_bin_is_refused_in_one_line(tmp_path, capsys) -> None:
    import pickle

    from wav2tok_core.cli.train import main as train_main

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "evil.bin").write_bytes(pickle.dumps([[Payload()], []]))
    assert train_main(["--dataset", str(tmp_path / "evil.bin"), "--progress", "False"]) == 2
    assert "evil.bin" in capsys.readouterr().err and not marker.exists()


def test_tokenize_with_no_audio_or_a_bad_model_exits_2(tmp_path, model, capsys) -> None:
    model.save(tmp_path / "m.pt")
    (tmp_path / "empty").mkdir()
    assert cli_main(["tokenize", str(tmp_path / "empty"), "--model", str(tmp_path / "m.pt")]) == 2
    assert "no audio files" in capsys.readouterr().err
    sf.write(tmp_path / "a.wav", tone_clip(0, 0), 16000)
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    assert cli_main(["tokenize", str(tmp_path / "a.wav"), "--model", str(tmp_path / "bad.pt")]) == 2
    assert "bad.pt" in capsys.readouterr().err


def test_absurd_values_are_refused(model, tmp_path) -> None:
    from wav2tok_core.config import from_dict
    from wav2tok_core.errors import IndexFileError
    from wav2tok_core.search.index import TokenIndex

    with pytest.raises(AudioError, match="not audio"):
        model.tokenize([np.full(16000, 1e20, dtype=np.float32)])
    with pytest.raises(ConfigError, match="temp"):
        ModelConfig(temp=float("inf"))
    with pytest.raises(ConfigError, match="emb_dim: expected int"):
        from_dict(ModelConfig, {"emb_dim": "32"})
    with pytest.raises(ConfigError, match="use_transformer: expected bool"):
        from_dict(ModelConfig, {"use_transformer": "false"})
    assert from_dict(ModelConfig, {"temp": 1}).temp == 1.0  # an int where a float is expected is fine
    np.save(tmp_path / "plain.npy", np.zeros(3))
    with pytest.raises(IndexFileError, match="plain.npy"):
        TokenIndex.load(tmp_path / "plain.npy")


def test_missing_validation_split_is_reported(tiny_data, tmp_path, capsys) -> None:
    from wav2tok_core.cli.train import main as train_main

    data = write_reference_bin(tiny_data["train"], {}, tmp_path / "noval.bin")
    assert train_main(["--dataset", str(data), "--is_dict", "True", "--emb_dim", "16", "--num_tokens", "6",
                       "--num_layers", "1", "--save_dir", str(tmp_path / "w"), "--progress", "False",
                       "--EPOCHS", "1"]) == 0
    assert "early stopping and best.pt follow the training loss" in capsys.readouterr().err
