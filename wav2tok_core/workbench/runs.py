"""Where the notebooks of one run read and write: state passes through files, never kernel memory.

    {run_dir}/01_data/manifest.json     split manifest (and {name}.bin in the reference format)
    {run_dir}/02_train/model.pt         the trained model (best validation checkpoint)
    {run_dir}/0N_*/results.json         what each notebook recorded
    {run_dir}/0N_*/*.png                its figures
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIPPED_MODEL = REPO / "weights" / "wav2tok-melodies.pt"  # trained by the recipe in weights/README.md


@dataclass(frozen=True)
class RunPaths:
    """Path conventions of a run directory."""

    run_dir: Path

    def stage(self, name: str) -> Path:
        """The folder of one notebook's outputs (created)."""
        path = Path(self.run_dir) / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def manifest(self) -> Path:
        return Path(self.run_dir) / "01_data" / "manifest.json"

    @property
    def trained_model(self) -> Path:
        return Path(self.run_dir) / "02_train" / "model.pt"

    def model(self, source: str) -> Path:
        """The model notebooks 03-05 use: ``"run"`` (this run's 02_train), ``"shipped"`` (weights/), or a path."""
        if source == "run":
            path = self.trained_model
            hint = "run 02_train first, or set model_source='shipped'"
        elif source == "shipped":
            path, hint = SHIPPED_MODEL, "the shipped checkpoint is missing from weights/"
        else:
            path, hint = Path(os.path.expanduser(source)), "model_source is 'run', 'shipped' or a .pt path"
        if not path.is_file():
            raise FileNotFoundError(f"no model at {path}: {hint}")
        return path
