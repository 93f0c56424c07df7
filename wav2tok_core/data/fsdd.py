"""The Free Spoken Digit Dataset (FSDD): loading a local copy, the project's standard split, and download.

FSDD (github.com/Jakobovski/free-spoken-digit-dataset, CC BY-SA 4.0) has 3000 mono 8 kHz WAV recordings,
``recordings/{digit}_{speaker}_{take}.wav``: 10 digits x 6 speakers x 50 takes. Items get label = the digit
(as a string), speaker = the name and ``meta["take"]`` = the take number.

Standard split (used across the project): train speakers jackson, nicolas, theo and lucas, minus a
validation part carved from their clips per digit; test speakers george and yweweler (never seen in
training or model selection).

Leave-one-speaker-out (:func:`leave_one_speaker_out`, splits ``loso-<speaker>``): one speaker's clips query
the other five speakers' takes 0-4; training uses the other five's other takes.

All (:func:`all_split`): every clip trains but a validation carve-out; no test part (for a model to ship).

Takes split (:func:`takes_split`, FSDD's own): takes 0-4 of every speaker are the test set, takes 5-49
train (minus the same validation carve-out). Test speakers are seen in training, on other recordings:
the easier, speaker-dependent protocol most FSDD results use.

Download
--------
:func:`download_fsdd` fetches the GitHub archive of a pinned commit. The download goes to
``ROOT/.fsdd.zip.part`` and resumes from it when interrupted (the opener is asked for the bytes from the
part file's size on); the finished file is checked against ``sha256`` and renamed to ``ROOT/.fsdd.zip``;
the recordings are extracted into a temporary folder inside ``ROOT`` and renamed to ``ROOT/recordings``;
the marker ``ROOT/.fsdd-complete.json`` is written last. Only a folder with a valid marker, or one that
holds every recording of the release (a copy made by other means, e.g. ``git clone``), counts as complete.
GitHub does not publish a checksum for its archives: with ``sha256=None`` the computed hash is printed so
you can pin it; pass it from then on.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable, Sequence

from ..errors import FsddError
from ..runtime import write_json
from .manifest import ManifestItem
from .splits import explicit_speaker_split, stratified_split

FSDD_COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"  # 2024-05-02; v1.0.10-27-g26eb9aa
FSDD_URL = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/{FSDD_COMMIT}.zip"
FSDD_SHA256: str | None = None  # GitHub archive hash not pinned yet: the first download prints it
SAMPLE_RATE = 8000
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
DIGITS = tuple(str(d) for d in range(10))
TAKES = 50
TRAIN_SPEAKERS = ("jackson", "nicolas", "theo", "lucas")
TEST_SPEAKERS = ("george", "yweweler")
TEST_TAKES = 5  # takes_split: takes 0-4 are FSDD's official test set
TRAIN_WORDS, TEST_WORDS = DIGITS[:5], DIGITS[5:]  # words_split: train on 0-4, test on the unseen 5-9

RECORDINGS = "recordings"
MARKER = ".fsdd-complete.json"
PART = ".fsdd.zip.part"
ARCHIVE = ".fsdd.zip"
STAGING_PREFIX = ".fsdd-extract-"
NAME_RE = re.compile(r"^(?P<digit>\d)_(?P<speaker>[A-Za-z]+)_(?P<take>\d+)\.wav$")

Opener = Callable[[str, int], BinaryIO]  # (url, start byte) -> stream of the resource from that byte on


# ---------------------------------------------------------------------------------------------- local copy

def _expected_names() -> set[str]:
    return {f"{d}_{s}_{t}.wav" for d in DIGITS for s in SPEAKERS for t in range(TAKES)}


def _marker_ok(root: Path) -> bool:
    """The marker parses and the recordings folder still holds the number of files it records."""
    try:
        marker = json.loads((root / MARKER).read_text(encoding="utf-8"))
        return len(list((root / RECORDINGS).glob("*.wav"))) == int(marker["n_files"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def is_complete(root: str | os.PathLike) -> bool:
    """True if ``root`` holds a finished download (marker) or every recording of the pinned release."""
    root = Path(root)
    recordings = root / RECORDINGS
    if not recordings.is_dir():
        return False
    if (root / MARKER).is_file():
        return _marker_ok(root)
    return _expected_names() <= set(os.listdir(recordings))


def _missing_message(root: Path) -> str:
    state = "is incomplete" if (root / RECORDINGS).exists() else "was not found"
    return (f"FSDD {state} at {root} (expected {root / RECORDINGS}/{{digit}}_{{speaker}}_{{take}}.wav). "
            f"Point to an existing copy, or download the official release ({FSDD_URL}) with "
            f"`wav2tok dataset fsdd --root {root} --download --out DIR` or "
            f"`wav2tok_core.data.fsdd.ensure_fsdd({str(root)!r}, download=True)`.")


def ensure_fsdd(root: str | os.PathLike, download: bool = False, *, url: str = FSDD_URL,
                sha256: str | None = FSDD_SHA256, opener: Opener | None = None) -> Path:
    """Return ``root`` if it holds a complete FSDD; otherwise download it (``download=True``) or raise.

    Raises:
        FsddError: not complete and ``download`` is False (the message says how to get it), or the
            download failed.
    """
    root = Path(root)
    if is_complete(root):
        return root
    if not download:
        raise FsddError(_missing_message(root))
    return download_fsdd(root, url=url, sha256=sha256, opener=opener)


def parse_name(path: Path) -> ManifestItem:
    """``{digit}_{speaker}_{take}.wav`` -> item (absolute path, label, speaker, meta take)."""
    match = NAME_RE.match(path.name)
    if match is None:
        raise FsddError(f"{path}: not an FSDD recording name ({{digit}}_{{speaker}}_{{take}}.wav)")
    return ManifestItem(Path(os.path.abspath(path)), label=match["digit"], speaker=match["speaker"],
                        meta={"take": int(match["take"])})


def load_fsdd(root: str | os.PathLike) -> list[ManifestItem]:
    """All recordings of a complete local FSDD as manifest items (no split), sorted by file name.

    Raises:
        FsddError: the folder is not a complete copy (see :func:`ensure_fsdd`), or a ``.wav`` file in
            ``recordings/`` does not follow the naming scheme.
    """
    root = ensure_fsdd(root)
    return [parse_name(p) for p in sorted((root / RECORDINGS).glob("*.wav"))]


def standard_split(items: Sequence[ManifestItem], val_fraction: float = 0.1, seed: int = 0) -> list[ManifestItem]:
    """The project's FSDD split: train = jackson, nicolas, theo, lucas minus ``val_fraction`` of their clips
    per digit (val); test = george, yweweler."""
    return explicit_speaker_split(items, {"train": TRAIN_SPEAKERS, "test": TEST_SPEAKERS},
                                  val_fraction=val_fraction, seed=seed)


def takes_split(items: Sequence[ManifestItem], val_fraction: float = 0.1, seed: int = 0) -> list[ManifestItem]:
    """FSDD's own split: test = takes 0 to ``TEST_TAKES - 1`` of every speaker; train = the other takes minus
    ``val_fraction`` of them per digit (val)."""
    if not 0.0 <= val_fraction < 1.0:
        raise FsddError(f"val_fraction: {val_fraction} must be in [0, 1)")
    rest = [it for it in items if it.meta["take"] >= TEST_TAKES]
    carved = stratified_split(rest, (1.0 - val_fraction, val_fraction, 0.0), seed=seed) if rest else []
    split_of = {Path(it.path): it.split for it in carved}  # train or val; the other takes are test
    return [dataclasses.replace(it, split=split_of.get(Path(it.path), "test"), meta=dict(it.meta)) for it in items]


def words_split(items: Sequence[ManifestItem], val_fraction: float = 0.1, seed: int = 0) -> list[ManifestItem]:
    """Words never trained on: the speakers of :func:`standard_split`, training (and validation) on the digits
    ``TRAIN_WORDS`` only, testing on the other digits only; the other clips are left out."""
    keep = {"train": TRAIN_WORDS, "val": TRAIN_WORDS, "test": TEST_WORDS}
    return [it for it in standard_split(items, val_fraction, seed) if it.label in keep[it.split]]


def all_split(items: Sequence[ManifestItem], val_fraction: float = 0.1, seed: int = 0) -> list[ManifestItem]:
    """Everything trains (the shipped speech model): ``val_fraction`` of each digit's clips are val, none test."""
    if not 0.0 < val_fraction < 1.0:
        raise FsddError(f"val_fraction: {val_fraction} must be in (0, 1) (the split has no test part)")
    return stratified_split(items, (1.0 - val_fraction, val_fraction, 0.0), seed=seed)


def leave_one_speaker_out(items: Sequence[ManifestItem], speaker: str, val_fraction: float = 0.1,
                          seed: int = 0) -> list[ManifestItem]:
    """One rotation of leave-one-speaker-out: ``speaker`` is never trained on and asks the queries.

    Test: every clip of ``speaker`` (``meta["role"] = "query"``) and takes 0 to ``TEST_TAKES - 1`` of the other
    speakers (role "target", the database); train: the other speakers' other takes, minus ``val_fraction`` of
    them per digit (val). Evaluated query-vs-targets: each query searches the five other voices' held-out takes.
    """
    if speaker not in SPEAKERS:
        raise FsddError(f"leave-one-speaker-out: {speaker!r} is not an FSDD speaker {list(SPEAKERS)}")
    others = takes_split([it for it in items if it.speaker != speaker], val_fraction, seed)
    held_out = [dataclasses.replace(it, split="test", meta={**it.meta, "role": "query"})
                for it in items if it.speaker == speaker]
    return held_out + [dataclasses.replace(it, meta={**it.meta, "role": "target"}) if it.split == "test" else it
                       for it in others]


# name -> splitter(items, val_fraction=..., seed=...)
SPLITTERS = {"speakers": standard_split, "takes": takes_split, "words": words_split, "all": all_split,
             **{f"loso-{s}": functools.partial(leave_one_speaker_out, speaker=s) for s in SPEAKERS}}


# ------------------------------------------------------------------------------------------------ download

def urlopen_from(url: str, start: int = 0, timeout: float = 60.0) -> BinaryIO:
    """Open ``url`` for reading from byte ``start`` on (HTTP Range request when ``start > 0``).

    A server (or a ``file://`` URL) that ignores the range sends the whole resource: the first ``start``
    bytes are then read and discarded. A range past the end (HTTP 416) yields an empty stream.
    """
    try:
        request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    except ValueError as err:  # not a URL at all
        raise FsddError(f"cannot download {url!r}: {err}") from None
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - user-chosen dataset URL
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:
            return io.BytesIO()
        raise
    if start and response.getcode() != 206:
        _skip(response, start)
    return response


def _skip(stream: BinaryIO, count: int) -> None:
    while count > 0:
        chunk = stream.read(min(count, 1 << 20))
        if not chunk:
            return
        count -= len(chunk)


def _fetch(url: str, part: Path, opener: Opener, chunk_size: int) -> None:
    """Append the rest of ``url`` to ``part`` (resuming from its size), flushing every chunk."""
    start = part.stat().st_size if part.exists() else 0
    stream = opener(url, start)
    try:
        with open(part, "ab") as fh:
            while chunk := stream.read(chunk_size):
                fh.write(chunk)
                fh.flush()
            os.fsync(fh.fileno())
    finally:
        stream.close()


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(part: Path, sha256: str | None) -> str:
    """Check the finished download's hash when one is pinned (a mismatch deletes it) and return it."""
    actual = file_sha256(part)
    if sha256 is not None and actual != sha256.lower():
        part.unlink()
        raise FsddError(f"{part}: checksum mismatch (expected sha256 {sha256}, got {actual}); the download was "
                        "deleted: check the URL and the pinned hash, then run again")
    return actual


def _download_archive(root: Path, url: str, sha256: str | None, opener: Opener,
                      chunk_size: int) -> tuple[Path, str]:
    """The verified archive ``root/.fsdd.zip`` and its hash (reused if an earlier run finished downloading it)."""
    archive, part = root / ARCHIVE, root / PART
    if archive.is_file():
        digest = file_sha256(archive)
        if sha256 is None or digest == sha256.lower():
            return archive, digest
        archive.unlink()
    try:
        _fetch(url, part, opener, chunk_size)
    except (OSError, http.client.HTTPException) as err:
        kept = part.stat().st_size if part.exists() else 0
        raise FsddError(f"download of {url} failed with {kept} bytes saved ({type(err).__name__}: {err}); "
                        f"run again to resume from {part}") from err
    digest = _verify(part, sha256)
    os.replace(part, archive)
    return archive, digest


def _recording_members(zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """Recordings in the archive by file name: members ``<top>/recordings/<name>.wav`` with an FSDD name."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():
        parts = info.filename.split("/")
        if len(parts) == 3 and parts[1] == RECORDINGS and NAME_RE.match(parts[2]) and not info.is_dir():
            members[parts[2]] = info
    if not members:
        raise FsddError("it holds no <top>/recordings/{digit}_{speaker}_{take}.wav files")
    return members


def _extract_recordings(archive: Path, root: Path) -> int:
    """Extract the recordings into a temporary folder in ``root``, then rename it to ``root/recordings``.

    Staging folders left by a killed earlier run are removed first.
    """
    for stale in root.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                members = _recording_members(zf)
                (staging / RECORDINGS).mkdir()
                for name, info in members.items():  # names only: member paths never leave the folder
                    with zf.open(info) as src, open(staging / RECORDINGS / name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        except (zipfile.BadZipFile, FsddError) as err:
            archive.unlink()
            raise FsddError(f"{archive}: unusable archive ({err}); it was deleted: check the URL and "
                            "run again") from None
        os.replace(staging / RECORDINGS, root / RECORDINGS)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return len(members)


def download_fsdd(root: str | os.PathLike, *, url: str = FSDD_URL, sha256: str | None = FSDD_SHA256,
                  opener: Opener | None = None, chunk_size: int = 1 << 20) -> Path:

    """Download, verify and extract FSDD into ``root`` (so that ``root/recordings`` exists); return ``root``.

    Args:
        url: the archive (default: the GitHub archive of the pinned commit ``FSDD_COMMIT``).
        sha256: expected hex SHA-256 of the archive; None prints the computed one so you can pin it.
        opener: ``(url, start) -> binary stream`` of the resource from byte ``start`` on; default
            :func:`urlopen_from` (HTTP Range; also reads ``file://`` URLs). Tests pass a fake one.
        chunk_size: bytes per read while downloading.

    Raises:
        FsddError: interrupted download (run again to resume), checksum mismatch (nothing is kept), a
            corrupt archive, or an incomplete ``recordings`` folder already in ``root`` (checked first).
    """
    root = Path(root)
    if is_complete(root):
        return root
    if (root / RECORDINGS).exists():
        raise FsddError(f"{root / RECORDINGS} exists but {root} is not a complete FSDD (an interrupted copy?): "
                        "delete that folder and run again")
    root.mkdir(parents=True, exist_ok=True)
    archive, digest = _download_archive(root, url, sha256, opener or urlopen_from, chunk_size)
    n_files = _extract_recordings(archive, root)
    if sha256 is None:  # printed once the archive proved usable, so the hash is worth pinning
        print(f"FSDD archive sha256 = {digest} (not pinned: pass sha256={digest!r} / --sha256 {digest} "
              "to verify future downloads)", file=sys.stderr)
    write_json(root / MARKER, {"url": url, "sha256": digest, "n_files": n_files})
    archive.unlink()
    return root
