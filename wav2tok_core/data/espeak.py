"""Synthetic spoken words in many voices, made with eSpeak NG: extra (same word, other voice) training pairs.

The synthesiser
---------------
eSpeak NG (github.com/espeak-ng/espeak-ng, GPL-3.0-or-later) is a small formant synthesiser. The PyPI wheel
``espeakng-loader`` (our optional extra: ``pip install .[speech-synth]``) ships ``libespeak-ng.so`` and its
``espeak-ng-data`` folder but no Python synthesis API, so :class:`_Engine` binds the few C functions we need
from ``speak_lib.h`` with ctypes. The library is process-global state: one engine per process, initialised on
first use, every call under :data:`_LOCK`.

A *voice* is ``<language>[+<variant>]``, e.g. ``en+m3`` or ``en-us+f2``: the language sets the accent
(``espeak-ng-data/lang``), the variant the speaker (``espeak-ng-data/voices/!v``: ``m1``-``m8``, ``f1``-``f5``,
``croak``, ``whisper``, ...). eSpeak NG silently ignores an unknown variant, so :func:`synthesize` checks it.

What is generated
-----------------
Every word of :class:`EspeakWordSetConfig` spoken once by every voice, at a speaking rate, pitch and pitch
range drawn per clip from a random stream keyed by (seed, word, voice); trimmed of leading and trailing
silence and resampled to ``sr`` (8 kHz by default, FSDD's rate). Label = the word, speaker = the voice.
Words, not clips, are split into train and val, so val words are unseen in training and still spoken by
every voice.

Reproducibility: eSpeak NG keeps state from one utterance to the next (e.g. the phase of its pitch flutter), so
speaking the same word twice in one process gives slightly different waveforms. :func:`build_espeak_words`
therefore renders every clip in a fresh worker process (``python -m wav2tok_core.data.espeak``) in a fixed
order, and :func:`synthesize` seeds eSpeak's noise generator (the breath of variants such as ``f2``; eSpeak
seeds it from the clock) from its arguments: a build is byte-for-byte reproducible for one configuration and
one ``espeakng-loader`` version.

Output folder layout: ``audio/<word>/<voice>.wav`` (16-bit PCM, mono), ``manifest.json``
(``wav2tok_core.data.manifest``) and ``params.json``, written last: it marks the folder complete for one
configuration. The builder owns the ``.wav`` files under ``audio``: on regeneration they are deleted.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import threading
import zlib
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from ..errors import ConfigError, Wav2TokError
from ..runtime import atomic_write
from .builds import Build
from .manifest import ManifestItem
from .splits import allocate

# Bump when a code change alters the generated audio or manifest, so existing folders are regenerated.
GENERATOR_VERSION = 1
AUDIO_DIR = "audio"
INSTALL_HINT = "pip install .[speech-synth] (the espeakng-loader wheel)"
WORKER_SECONDS_PER_CLIP = 0.5  # the worker's time limit per clip, beyond 2 minutes of start-up (~1 ms is usual)

RATE_LIMITS_WPM = (80, 450)  # eSpeak NG's speaking rates (words per minute)
PITCH_LIMITS = (0, 100)  # pitch and pitch range: 50 = the voice's own, 0 = lowest / monotone
TRIM_FLOOR_DB = -40.0  # trim_silence: quieter than this relative to the peak counts as silence
TRIM_MARGIN_S = 0.03  # trim_silence: silence kept before the first and after the last loud sample

DEFAULT_WORDS: tuple[str, ...] = tuple("""
    cat apple house river jump yellow doctor bread window thunder
    dog banana chair mountain swim purple teacher milk garden rainbow
    fish orange table forest sing silver farmer cheese kitchen winter
    bird lemon door island walk happy baby egg pillow summer
    horse tomato roof ocean sleep angry mother rice blanket autumn
    mouse potato floor desert drink funny father soup mirror morning
    cow carrot wall valley think simple sister cake pocket evening
    pig pepper desk lake play bright brother salt bottle yesterday
    duck butter bed hill push quiet family juice basket tomorrow
    frog sugar lamp stone pull gentle people coffee button music
    rabbit honey clock rock climb black children water candle picture
    monkey dinner book sand throw white pencil breakfast ladder letter
    tiger bus pen grass catch brown paper story hammer question
    lion train cup snow laugh pink answer problem money market
    zebra boat spoon cloud smile green city village country hospital
    turtle ship knife star cry red library computer telephone camera
    spider bike fork moon yes gold radio video umbrella guitar
    dragon truck plate storm stop big piano violin balloon chocolate
    elephant street bowl leaf help small sandwich pizza medicine machine
    giraffe bridge box tree please hot engine rocket planet jacket
""".split())  # 200 common words, 1-4 syllables, no homophones among them (checked on eSpeak's phonemes)

DEFAULT_VOICES: tuple[str, ...] = (
    "en+m1", "en+f1", "en-us+m2", "en-us+f2", "en-gb-scotland+m3", "en-gb-scotland+f3",
    "en-gb-x-rp+m4", "en-gb-x-rp+f4", "en-us-nyc+m5", "en-us-nyc+f5", "en-029+m7", "en-gb-x-gbclan+m6",
)  # 6 male and 6 female variants over 7 English accents

_WORD_RE = re.compile(r"[a-z]+(?:['-][a-z]+)*")
_VOICE_RE = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*(?:\+[A-Za-z0-9_]+)?")
_SPLIT_STREAM = 0  # random stream of the word split (clip streams are keyed by word and voice)


class EspeakUnavailableError(Wav2TokError, ImportError):
    """The optional ``espeakng-loader`` package is not installed."""


class EspeakError(Wav2TokError, RuntimeError):
    """libespeak-ng failed to start or to synthesise; the message says what it was asked."""


# ------------------------------------------------------------------------------------ the C API (ctypes)

_AUDIO_OUTPUT_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: espeak_Synth returns when all audio went to the callback
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of calling exit() when the data folder is unusable
_POS_CHARACTER = 1  # espeak_POSITION_TYPE
_CHARS_AUTO = 0  # text encoding: UTF-8, falling back to 8-bit
_RATE, _PITCH, _RANGE = 1, 3, 4  # espeak_PARAMETER
_EE_OK = 0  # espeak_ERROR
# int callback(short *wav, int numsamples, espeak_EVENT *events); return 0 to go on, 1 to abort
_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def _loader() -> ModuleType:
    """The ``espeakng_loader`` module (imported lazily: it is an optional extra)."""
    try:
        import espeakng_loader
    except ImportError:
        raise EspeakUnavailableError(f"eSpeak NG is not installed: {INSTALL_HINT}") from None
    return espeakng_loader


def _declare(lib: ctypes.CDLL) -> None:
    """Give ctypes the signatures of the functions we call."""
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_Synchronize.argtypes = []
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = None


class _Engine:
    """libespeak-ng, loaded and initialised in this process. Not thread-safe: callers hold :data:`_LOCK`."""

    def __init__(self) -> None:
        loader = _loader()
        self.data_path = Path(loader.get_data_path())
        self.lib = ctypes.CDLL(loader.get_library_path())
        _declare(self.lib)
        self.sample_rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, os.fsencode(self.data_path),
                                                      _INITIALIZE_DONT_EXIT)
        if self.sample_rate <= 0:
            raise EspeakError(f"libespeak-ng failed to initialise with the data in {self.data_path}")
        self._chunks: list[np.ndarray] = []
        self._callback = _SynthCallback(self._collect)  # kept alive here: the library only holds its address
        self.lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: Any, n_samples: int, events: int | None) -> int:
        """The synthesis callback: copy each block of int16 samples (the buffer is reused after we return)."""
        if wav and n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n_samples,)).copy())
        return 0

    def set_voice(self, voice: str) -> None:
        """Select ``<language>[+<variant>]``; ConfigError naming the voice if either part is unknown."""
        _, _, variant = voice.partition("+")
        known_variant = not variant or (self.data_path / "voices" / "!v" / variant).is_file()
        if not (_VOICE_RE.fullmatch(voice) and known_variant
                and self.lib.espeak_SetVoiceByName(voice.encode()) == _EE_OK):
            raise ConfigError(f"eSpeak voice {voice!r} is unknown: use <language>[+<variant>], e.g. 'en+m3' or "
                              f"'en-us+f2' (variants are the files in {self.data_path / 'voices' / '!v'})")

    def speak(self, text: str, voice: str, params: dict[int, int]) -> np.ndarray:
        """(N,) int16 samples of ``text`` in ``voice`` with eSpeak ``params`` ({espeak_PARAMETER: value})."""
        self.set_voice(voice)
        for param, value in params.items():
            if self.lib.espeak_SetParameter(param, value, 0) != _EE_OK:
                raise EspeakError(f"libespeak-ng refused parameter {param} = {value}")
        data = text.encode("utf-8")
        # breath noise comes from libespeak-ng's own generator, seeded from the clock at start: seed it here
        self.lib.espeak_ng_SetRandSeed(zlib.crc32(repr((text, voice, sorted(params.items()))).encode()))
        self._chunks = []
        status = self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_AUTO, None, None)
        self.lib.espeak_Synchronize()
        if status != _EE_OK:
            raise EspeakError(f"libespeak-ng failed (status {status}) to speak {text!r} with voice {voice!r}")
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


_LOCK = threading.Lock()
_ENGINE: _Engine | None = None


def _engine() -> _Engine:
    """This process's engine, started on first use. Call with :data:`_LOCK` held."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine()
    return _ENGINE


# ------------------------------------------------------------------------------------------- synthesis

def _check_range(name: str, value: int, limits: tuple[int, int]) -> None:
    if not limits[0] <= value <= limits[1]:
        raise ConfigError(f"{name}: {value} is outside {limits[0]}..{limits[1]}")


def trim_silence(wave: np.ndarray, sr: int, floor_db: float = TRIM_FLOOR_DB,
                 margin_s: float = TRIM_MARGIN_S) -> np.ndarray:
    """(N,) audio cut to its first..last sample above ``floor_db`` relative to the peak, keeping ``margin_s``
    of audio on each side. All-zero audio becomes empty."""
    magnitude = np.abs(wave)
    peak = float(magnitude.max()) if wave.size else 0.0
    if peak == 0.0:
        return wave[:0]
    loud = np.flatnonzero(magnitude >= peak * 10.0 ** (floor_db / 20.0))
    margin = round(margin_s * sr)
    return wave[max(0, loud[0] - margin): loud[-1] + 1 + margin]


def synthesize(text: str, voice: str, rate_wpm: int = 175, pitch: int = 50,
               pitch_range: int = 50) -> tuple[np.ndarray, int]:
    """Speak ``text`` with eSpeak NG: ((N,) float32 mono in [-1, 1], sample rate), silence trimmed.

    Args:
        voice: ``<language>[+<variant>]``, e.g. ``"en+m3"``, ``"en-us+f2"``; ConfigError if unknown.
        rate_wpm: speaking rate, 80..450 words per minute (eSpeak's default 175).
        pitch: 0..100, 50 = the voice's own pitch.
        pitch_range: intonation range 0..100 (0 = monotone, 50 = the voice's own).

    The sample rate is libespeak-ng's (22050 Hz). Two calls with the same arguments give nearly, not exactly,
    the same waveform (see the module docstring). Raises EspeakUnavailableError without ``espeakng-loader``.
    """
    _check_range("rate_wpm", rate_wpm, RATE_LIMITS_WPM)
    _check_range("pitch", pitch, PITCH_LIMITS)
    _check_range("pitch_range", pitch_range, PITCH_LIMITS)
    with _LOCK:
        engine = _engine()
        pcm = engine.speak(text, voice, {_RATE: rate_wpm, _PITCH: pitch, _RANGE: pitch_range})
        sr = engine.sample_rate
    wave = trim_silence(pcm.astype(np.float32) / 32768.0, sr)
    if wave.size == 0:
        raise EspeakError(f"eSpeak NG produced no sound for {text!r} with voice {voice!r}")
    return wave, sr


def check_voices(voices: tuple[str, ...]) -> None:
    """ConfigError naming the first voice eSpeak NG does not know (nothing is synthesised)."""
    with _LOCK:
        engine = _engine()
        for voice in voices:
            engine.set_voice(voice)


def resample(wave: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """(N,) float32 audio at ``sr`` -> (M,) float32 at ``target_sr`` (polyphase filter), clipped to [-1, 1]."""
    if sr == target_sr:
        return wave
    g = math.gcd(sr, target_sr)
    out = resample_poly(wave.astype(np.float64), target_sr // g, sr // g)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------------------------------- the word set

@dataclass(frozen=True)
class EspeakWordSetConfig:
    """Everything that determines the generated set; its digest keys the on-disk cache."""

    words: tuple[str, ...] = DEFAULT_WORDS  # the classes: lower-case words (letters, inner ' or -)
    voices: tuple[str, ...] = DEFAULT_VOICES  # the speakers: eSpeak voices <language>[+<variant>]
    rates_wpm: tuple[int, int] = (130, 200)  # speaking rate drawn per clip (words per minute, inclusive)
    pitches: tuple[int, int] = (30, 70)  # eSpeak pitch drawn per clip (0..100, 50 = the voice's own)
    pitch_ranges: tuple[int, int] = (30, 80)  # eSpeak intonation range drawn per clip (0..100, 0 = monotone)
    sr: int = 8000  # sample rate of the clips (Hz); 8000 matches FSDD
    seed: int = 0  # picks the val words and every clip's rate, pitch and range
    val_fraction: float = 0.1  # share of the words (with all their voices) in the val split

    def validate(self) -> None:
        """Raise ConfigError on inconsistent settings (voices are checked by the build, which loads eSpeak)."""
        bad_word = next((w for w in self.words if not _WORD_RE.fullmatch(w)), None)
        bad_voice = next((v for v in self.voices if not _VOICE_RE.fullmatch(v)), None)
        checks = [
            (len(self.words) >= 1, "words must not be empty"),
            (bad_word is None, f"word {bad_word!r} must be lower-case letters (inner ' or - allowed)"),
            (len(set(self.words)) == len(self.words), "words must be distinct"),
            (len(self.voices) >= 1, "voices must not be empty"),
            (bad_voice is None, f"voice {bad_voice!r} must look like <language>[+<variant>], e.g. 'en+m3'"),
            (len(set(self.voices)) == len(self.voices), "voices must be distinct"),
            (_within(self.rates_wpm, RATE_LIMITS_WPM), f"rates_wpm must be (lo, hi) within {RATE_LIMITS_WPM}"),
            (_within(self.pitches, PITCH_LIMITS), f"pitches must be (lo, hi) within {PITCH_LIMITS}"),
            (_within(self.pitch_ranges, PITCH_LIMITS), f"pitch_ranges must be (lo, hi) within {PITCH_LIMITS}"),
            (self.sr >= 8000, "sr must be >= 8000"),
            (self.seed >= 0, "seed must be >= 0"),
            (0.0 <= self.val_fraction < 1.0, "val_fraction must be in [0, 1)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"EspeakWordSetConfig: {message}")

    def digest(self) -> str:
        """Hex digest of the settings, the generator version and the espeakng-loader version (it ships eSpeak)."""
        blob = json.dumps({"config": asdict(self), "generator": GENERATOR_VERSION, "espeak": _loader_version()},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def _within(bounds: tuple[int, int], limits: tuple[int, int]) -> bool:
    return len(bounds) == 2 and limits[0] <= bounds[0] <= bounds[1] <= limits[1]


def _loader_version() -> str:
    _loader()  # the one-line install hint if it is missing
    return metadata.version("espeakng-loader")


def word_splits(words: tuple[str, ...], val_fraction: float, seed: int) -> dict[str, str]:
    """Word -> "train" or "val": ``val_fraction`` of the words (at least one if positive and there are two
    or more words) go to val, chosen by ``seed`` independently of the words' order."""
    n_val = allocate(len(words), (1.0 - val_fraction, val_fraction, 0.0))[1]
    shuffled = np.random.default_rng([seed, _SPLIT_STREAM]).permutation(sorted(words))
    val = set(shuffled[:n_val].tolist())
    return {w: "val" if w in val else "train" for w in words}


def clip_settings(cfg: EspeakWordSetConfig, word: str, voice: str) -> dict[str, int]:
    """Rate, pitch and pitch range of one clip, from a random stream keyed by (seed, word, voice)."""
    rng = np.random.default_rng([cfg.seed, zlib.crc32(word.encode()), zlib.crc32(voice.encode())])

    def draw(bounds: tuple[int, int]) -> int:
        return int(rng.integers(bounds[0], bounds[1] + 1))  # bounds inclusive

    return {"rate_wpm": draw(cfg.rates_wpm), "pitch": draw(cfg.pitches), "pitch_range": draw(cfg.pitch_ranges)}


def _write_wav(path: Path, audio: np.ndarray, sr: int) -> None:
    """Write (N,) float audio as 16-bit PCM mono WAV, atomically."""
    with atomic_write(path, "wb") as fh:
        sf.write(fh, audio, sr, format="WAV", subtype="PCM_16")


def _render_clip(word: str, voice: str, split: str, cfg: EspeakWordSetConfig, audio_dir: Path) -> ManifestItem:
    """Synthesise, trim, resample and write one clip; return its manifest item."""
    settings = clip_settings(cfg, word, voice)
    wave, native_sr = synthesize(word, voice, **settings)
    wave = resample(wave, native_sr, cfg.sr)
    path = audio_dir / word / f"{voice}.wav"
    _write_wav(path, wave, cfg.sr)
    return ManifestItem(path, word, voice, split, {**settings, "dur_s": round(len(wave) / cfg.sr, 4)})


def _render_all(cfg: EspeakWordSetConfig, audio_dir: Path, progress: bool) -> list[ManifestItem]:
    """Every clip, word by word in config order (run in a fresh process: see the module docstring)."""
    splits = word_splits(cfg.words, cfg.val_fraction, cfg.seed)
    items: list[ManifestItem] = []
    for i, word in enumerate(cfg.words):
        items += [_render_clip(word, voice, splits[word], cfg, audio_dir) for voice in cfg.voices]
        if progress and (i + 1) % max(1, len(cfg.words) // 10) == 0:
            print(f"espeak: {i + 1}/{len(cfg.words)} words", file=sys.stderr, flush=True)
    return items


def _config_from_dict(doc: dict[str, Any]) -> EspeakWordSetConfig:
    """Inverse of ``asdict`` (JSON turns the tuples into lists)."""
    return EspeakWordSetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in doc.items()})


def _render_in_fresh_process(cfg: EspeakWordSetConfig, audio_dir: Path, progress: bool) -> list[ManifestItem]:
    """:func:`_render_all` in a new Python process (:func:`_worker_main`), whose eSpeak NG starts afresh.

    The request goes to the worker's stdin and the items come back on its stdout as JSON; its stderr (progress,
    or the traceback of a crash) is ours.
    """
    request = json.dumps({"config": asdict(cfg), "audio_dir": str(audio_dir), "progress": progress})
    package_root = str(Path(__file__).resolve().parents[2])  # so the worker imports this very package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    timeout_s = 120 + WORKER_SECONDS_PER_CLIP * len(cfg.words) * len(cfg.voices)
    try:
        done = subprocess.run([sys.executable, "-m", __name__], input=request, stdout=subprocess.PIPE, text=True,
                              env=env, check=False, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise EspeakError(f"the eSpeak NG worker process did not finish within {timeout_s:.0f} s") from None
    try:
        reply = json.loads(done.stdout)
    except ValueError:
        raise EspeakError(f"the eSpeak NG worker process failed (exit code {done.returncode}); "
                          "its error is printed above") from None
    if "error" in reply:
        raise EspeakError(reply["error"])
    return [ManifestItem(Path(r["path"]), r["label"], r["speaker"], r["split"], r["meta"]) for r in reply["items"]]


def _worker_main() -> None:
    """Entry point of the worker process: JSON request on stdin, JSON items (or a one-line error) on stdout."""
    request = json.load(sys.stdin)
    try:
        items = _render_all(_config_from_dict(request["config"]), Path(request["audio_dir"]), request["progress"])
    except (Wav2TokError, OSError) as err:
        json.dump({"error": str(err)}, sys.stdout)
        return
    json.dump({"items": [{"path": str(it.path), "label": it.label, "speaker": it.speaker, "split": it.split,
                          "meta": it.meta} for it in items]}, sys.stdout)


def _clear_audio(audio_dir: Path) -> None:
    """Delete the clips of an earlier build (and leftovers of killed writes), then empty word folders."""
    if not audio_dir.is_dir():
        return
    for old in [*audio_dir.glob("*/*.wav"), *audio_dir.glob("*/.*.tmp")]:
        old.unlink()
    for folder in audio_dir.iterdir():
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def build_espeak_words(out_dir: str | os.PathLike, config: EspeakWordSetConfig | None = None,
                       progress: bool = False) -> Path:
    """Generate the word set into ``out_dir`` (or reuse it) and return the path of its ``manifest.json``.

    A folder whose ``params.json`` matches ``config`` (and the installed eSpeak NG) is returned at once.
    Otherwise the voices are checked, the completion marker and old clips are deleted, every clip is
    rendered in a fresh worker process and ``params.json`` is written last, so an interrupted build is never
    mistaken for a complete one. ``progress`` prints a line per 10 % of the words to stderr.
    """
    cfg = config if config is not None else EspeakWordSetConfig()
    build = Build.of(out_dir, cfg)
    if build.done():
        return build.manifest
    check_voices(cfg.voices)
    build.start()
    audio_dir = build.out / AUDIO_DIR
    _clear_audio(audio_dir)
    items = _render_in_fresh_process(cfg, audio_dir.resolve(), progress)
    return build.finish(items, generator_version=GENERATOR_VERSION, espeakng_loader=_loader_version(),
                        config=asdict(cfg), n_clips=len(items))


if __name__ == "__main__":
    _worker_main()
