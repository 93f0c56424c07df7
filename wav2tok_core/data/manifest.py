"""Our dataset manifest: one row per clip with its path, label, speaker and split.

JSON layout (``*.json``)::

    {"format": "wav2tok-manifest", "version": 1,
     "items": [{"path": "clips/a.wav", "label": "3", "speaker": "theo", "split": "train", "meta": {}}]}

CSV layout (``*.csv``): columns ``path,label,speaker,split``; empty cells mean "unknown".
Relative paths are relative to the manifest's own folder, so a manifest works from any working directory.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import DataFormatError, ManifestError
from ..runtime import atomic_write, write_json

FORMAT = "wav2tok-manifest"
VERSION = 1
SPLITS = ("train", "val", "test")


@dataclass
class ManifestItem:
    """One clip. ``path`` is absolute once read; ``meta`` holds dataset-specific extras (JSON only)."""

    path: Path
    label: str | None = None
    speaker: str | None = None
    split: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def group_by_label(items: Iterable[ManifestItem]) -> dict[str | None, list[ManifestItem]]:
    """Items by label, labels in order of first appearance and items in their order (a reference
    ``{class: [paths]}`` split read as items groups back to the same classes in the same order)."""
    groups: dict[str | None, list[ManifestItem]] = {}
    for it in items:
        groups.setdefault(it.label, []).append(it)
    return groups


def require_labels(items: Iterable[ManifestItem]) -> None:
    """Refuse items without a label: class-grouped (``is_dict``) data needs the class of every clip."""
    unlabelled = next((it for it in items if it.label is None), None)
    if unlabelled is not None:
        raise DataFormatError(f"{unlabelled.path}: has no label, but class-grouped (is_dict) data needs one")


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _item_from_row(row: dict[str, Any], root: Path, where: str) -> ManifestItem:
    path = _clean(row.get("path"))
    if path is None:
        raise ManifestError(f"{where}: row has no 'path'")
    split = _clean(row.get("split"))
    if split is not None and split not in SPLITS:
        raise ManifestError(f"{where}: split {split!r} is not one of {SPLITS}")
    meta = row.get("meta") or {}
    if not isinstance(meta, dict):
        raise ManifestError(f"{where}: 'meta' must be an object, got {type(meta).__name__}")
    resolved = Path(path) if os.path.isabs(path) else (root / path)
    return ManifestItem(Path(os.path.normpath(resolved)), _clean(row.get("label")),
                        _clean(row.get("speaker")), split, dict(meta))


def read_manifest(path: str | os.PathLike) -> list[ManifestItem]:
    """Read a JSON or CSV manifest; relative clip paths are resolved against the manifest's folder."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    root = path.resolve().parent
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ManifestError(f"{path}: not a text file ({err})") from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or "path" not in reader.fieldnames:
            raise ManifestError(f"{path}: CSV manifest needs a header with a 'path' column")
        return [_item_from_row(row, root, f"{path}:{i + 2}") for i, row in enumerate(reader)]
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise ManifestError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ManifestError(f"{path}: not a wav2tok manifest (missing \"format\": \"{FORMAT}\")")
    if doc.get("version") != VERSION:
        raise ManifestError(f"{path}: manifest version {doc.get('version')!r}, this code reads {VERSION}")
    rows = doc.get("items")
    if not isinstance(rows, list):
        raise ManifestError(f"{path}: 'items' must be a list")
    return [_item_from_row(row, root, f"{path} item {i}") for i, row in enumerate(rows)]


def _relative(p: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(p.resolve(), root)).as_posix()
    except ValueError:  # different drive on Windows
        return str(p.resolve())


def write_manifest(items: Iterable[ManifestItem], path: str | os.PathLike) -> Path:
    """Write items atomically as JSON or CSV (by suffix); paths are stored relative to the manifest."""
    path = Path(path)
    root = path.parent.resolve() if path.parent != Path("") else Path.cwd()
    items = list(items)
    if path.suffix.lower() == ".csv":
        with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "label", "speaker", "split"])
            for it in items:
                writer.writerow([_relative(it.path, root), it.label or "", it.speaker or "", it.split or ""])
        return path
    rows = [{"path": _relative(it.path, root), "label": it.label, "speaker": it.speaker,
             "split": it.split, "meta": it.meta} for it in items]

    write_json(path, {"format": FORMAT, "version": VERSION, "items": rows})
    return path
