"""Where the workbench's files are, and where the notebooks of one run read and write.

State passes through files, never kernel memory:

    {run_dir}/01_data/manifest.json     split manifest (and {name}.bin in the reference format)
    {run_dir}/02_train/model.pt         the trained model (best validation checkpoint)
    {run_dir}/0N_*/results.json         what each notebook recorded
    {run_dir}/0N_*/*.png                its figures

The workbench's own files (``notebooks/``, ``notebooks/params/``, ``weights/``) come from the source checkout
when the package runs from one, and otherwise from ``{sys.prefix}/share/wav2tok/``, where ``pip install``
puts them (``pyproject.toml``'s data-files). Relative paths of runs and data caches resolve against
:func:`home`.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import NotFoundError

SHARE = Path(sys.prefix) / "share" / "wav2tok"  # where a pip install puts notebooks/ and weights/
SHIPPED_MODEL = "weights/wav2tok-melodies.pt"  # trained by the recipe in weights/README.md


def checkout() -> Path | None:
    """The source checkout this package runs from (editable install or ``PYTHONPATH``), if any."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "notebooks").is_dir() and (root / "pyproject.toml").is_file() else None


def home() -> Path:
    """The folder relative run and data paths resolve against: ``$WAV2TOK_HOME``, else the source checkout,
    else the current folder."""
    if os.environ.get("WAV2TOK_HOME"):
        return Path(os.environ["WAV2TOK_HOME"]).expanduser().resolve()
    return checkout() or Path.cwd()


def resolve(path: str | os.PathLike) -> Path:
    """``path`` with ``~`` expanded; a relative path is taken relative to :func:`home`."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else home() / path


def locate(path: str | os.PathLike) -> Path:
    """A file the user names (relative to :func:`home`) when it exists, else the workbench's own copy
    (:func:`asset`): ``configs/speech.yaml`` or ``notebooks/params/ci.yaml`` work from a checkout or an install."""
    found = resolve(path)
    return found if found.exists() else asset(str(path))


def asset(relative: str) -> Path:
    """A file or folder that ships with the workbench, e.g. ``"notebooks"`` or ``SHIPPED_MODEL``."""
    bases = [b for b in (home(), checkout(), SHARE) if b is not None]
    for base in dict.fromkeys(bases):
        if (base / relative).exists():
            return base / relative
    raise NotFoundError(f"{relative} not found under {', '.join(map(str, dict.fromkeys(bases)))}: run from a "
                        "wav2tok checkout, set WAV2TOK_HOME to one, or reinstall the package")


@dataclass(frozen=True)
class RunPaths:
    """Path conventions of a run directory (a relative ``run_dir`` is taken relative to :func:`home`)."""

    run_dir: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_dir", resolve(self.run_dir))

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
            return asset(SHIPPED_MODEL)
        else:
            path, hint = resolve(source), "model_source is 'run', 'shipped' or a .pt path"
        if not path.is_file():
            raise NotFoundError(f"no model at {path}: {hint}")
        return path
