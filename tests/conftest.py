"""Shared fixtures. Real-data tests use the FSDD copy named by $WAV2TOK_FSDD (default: ../shared/data/fsdd)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FSDD_DIR = Path(os.environ.get("WAV2TOK_FSDD", REPO.parent / "shared" / "data" / "fsdd"))


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    """The local FSDD copy (``recordings/{digit}_{speaker}_{take}.wav``); skips when absent."""
    if not (FSDD_DIR / "recordings").is_dir():
        pytest.skip(f"FSDD not found at {FSDD_DIR} (set WAV2TOK_FSDD to a local copy to run this test)")
    return FSDD_DIR
