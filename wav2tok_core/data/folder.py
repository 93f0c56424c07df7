"""Bring-your-own data: a folder of class folders, ``ROOT/<class>/**/*.wav|flac|ogg``, as manifest items.

Every immediate sub-folder of ``ROOT`` is a class (its name is the label); audio files anywhere inside
it belong to that class. Files whose suffix is not an audio suffix (``wav2tok_core.audio.AUDIO_SUFFIXES``)
are ignored, and so are hidden files and folders (names starting with ``.``, e.g. macOS ``._x.wav``
resource forks). Speaker ids can be read from file names with a regular expression or a function.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Union

from ..audio.io import AUDIO_SUFFIXES
from ..errors import FolderDatasetError
from .manifest import ManifestItem

SpeakerFn = Callable[[Path], Union[str, None]]
SpeakerPattern = Union[str, re.Pattern[str], SpeakerFn, None]


def _visible(path: Path, top: Path) -> bool:
    """True if no part of ``path`` below ``top`` is hidden (starts with a dot)."""
    return not any(part.startswith(".") for part in path.relative_to(top).parts)


def _audio_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Visible audio files anywhere inside ``folder``, sorted by path."""
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in suffixes and p.is_file() and _visible(p, folder))


def speaker_reader(pattern: SpeakerPattern) -> SpeakerFn | None:
    """Turn a regex (string or compiled) or a callable into ``Path -> speaker | None``.

    A regex is searched in the file name (not the folder path); the speaker is its named group
    ``speaker`` if it has one, else its first group. A file name it does not match gets no speaker.
    """
    if pattern is None or callable(pattern):
        return pattern
    try:
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    except re.error as err:
        raise FolderDatasetError(f"speaker regex {pattern!r} is not a valid regular expression ({err})") from None
    if regex.groups == 0:
        raise FolderDatasetError(f"speaker regex {regex.pattern!r} needs a group: a named group (?P<speaker>...) "
                                 "or a first (...) group that captures the speaker id")
    group: int | str = "speaker" if "speaker" in regex.groupindex else 1

    def read(path: Path) -> str | None:
        match = regex.search(path.name)
        return (match.group(group) or None) if match else None

    return read


def scan_folder(root: str | os.PathLike, speaker: SpeakerPattern = None,
                suffixes: tuple[str, ...] = AUDIO_SUFFIXES) -> list[ManifestItem]:
    """Manifest items (absolute path, label = class folder name, speaker, no split) for ``ROOT/<class>/...``.

    Args:
        root: folder holding one sub-folder per class.
        speaker: regex with a ``speaker`` group (or a first group) matched against each file name, or a
            callable ``Path -> str | None``; None leaves speakers unknown.
        suffixes: lower-case file suffixes counted as audio.

    Raises:
        FolderDatasetError: ``root`` is missing or not a folder, or holds no class folder with audio in it
            (audio files lying directly in ``root`` are named in the message, as they have no class).
    """
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise FolderDatasetError(f"{root}: dataset folder does not exist or is not a folder")
    read_speaker = speaker_reader(speaker)
    items: list[ManifestItem] = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in _audio_files(class_dir, suffixes):
            items.append(ManifestItem(path, label=class_dir.name,
                                      speaker=read_speaker(path) if read_speaker else None))

    if not items:
        loose = sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
        hint = (f"; found {len(loose)} audio file(s) directly in it (e.g. {loose[0]}), which have no class: "
                "move them into class folders") if loose else ""
        raise FolderDatasetError(f"{root}: no audio files found in class folders; expected the layout "
                                 f"{root}/<class>/<file>{'|'.join(suffixes)}{hint}")
    return items
