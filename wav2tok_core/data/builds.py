"""Generated datasets (the melody set, the eSpeak NG word set) and their completion marker.

A builder writes its clips and ``manifest.json`` first and ``params.json`` last, holding the digest of the
configuration that made them; a folder is reused only when that marker matches, so an interrupted build is
never mistaken for a finished one.
"""
from __future__ import annotations

import json
from pathlib import Path

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
