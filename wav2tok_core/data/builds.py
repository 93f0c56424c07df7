"""Generated datasets (the melody set, the eSpeak NG word set) and their completion marker.

A builder writes its clips and ``manifest.json`` first and ``params.json`` last, holding the digest of the
configuration that made them; a folder is reused only when that marker matches, so an interrupted build is
never mistaken for a finished one.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

from ..runtime import write_json
from .manifest import ManifestItem, write_manifest

MANIFEST_NAME = "manifest.json"
PARAMS_NAME = "params.json"  # the completion marker, written last


def is_complete(out: Path, digest: str) -> bool:
    """True if ``out`` holds a finished build for the configuration with this digest."""
    marker = out / PARAMS_NAME
    if not (marker.is_file() and (out / MANIFEST_NAME).is_file()):
        return False
    try:
        doc = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # unreadable, not text or not JSON: not a finished build
        return False
    return isinstance(doc, dict) and doc.get("digest") == digest


class BuildConfig(Protocol):
    """What a generated set's configuration offers: a check and a digest of everything that shapes the set."""

    def validate(self) -> None: ...

    def digest(self) -> str: ...


@dataclass(frozen=True)
class Build:
    """One build of a generated set into ``out``, for the configuration with ``digest``."""

    out: Path
    digest: str

    @classmethod
    def of(cls, out_dir: str | os.PathLike, config: BuildConfig) -> "Build":
        """The build of ``config`` (checked first) into ``out_dir``."""
        config.validate()
        return cls(Path(out_dir), config.digest())

    @property
    def manifest(self) -> Path:
        return self.out / MANIFEST_NAME

    def done(self) -> bool:
        """Whether ``out`` already holds this build (:func:`is_complete`)."""
        return is_complete(self.out, self.digest)

    def start(self) -> None:
        """Remove the completion marker before anything is rewritten."""
        (self.out / PARAMS_NAME).unlink(missing_ok=True)

    def finish(self, items: Sequence[ManifestItem], **params: Any) -> Path:
        """Write the manifest, then the completion marker (the digest and ``params``) last; return the manifest."""
        write_manifest(items, self.manifest)
        write_json(self.out / PARAMS_NAME, {"digest": self.digest, **params})
        return self.manifest
