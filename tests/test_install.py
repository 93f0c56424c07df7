"""The package works installed from a wheel, away from the source checkout: notebooks, parameters and the
shipped model come with it, and ``wav2tok run`` executes the notebooks."""
from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from conftest import REPO


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding a wheel of this checkout (no dependencies: it sees this environment's)."""
    root = tmp_path_factory.mktemp("install")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO),
                    "-w", str(root / "wheel")], check=True, capture_output=True, timeout=600)
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    wheel = next((root / "wheel").glob("*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, timeout=600)
    return env_dir


def run_installed(env_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "WAV2TOK_HOME")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run([str(env_dir / "bin" / "python"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


def test_the_installed_package_finds_its_notebooks_and_model_outside_a_checkout(installed, tmp_path) -> None:
    code = ("import wav2tok_core, json; from wav2tok_core.workbench.runs import SHIPPED_MODEL, asset, checkout;"
            "print(json.dumps([wav2tok_core.__file__, str(checkout()), str(asset('notebooks/02_train.ipynb')),"
            " str(asset(SHIPPED_MODEL))]))")
    proc = run_installed(installed, "-c", code, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    package, found_checkout, notebook, model = json.loads(proc.stdout)
    assert str(installed) in package and found_checkout == "None"
    assert notebook.startswith(str(installed / "share" / "wav2tok")) and Path(notebook).is_file()
    assert model.startswith(str(installed / "share" / "wav2tok")) and Path(model).is_file()


def test_wav2tok_run_executes_a_notebook_from_the_installed_package(installed, tmp_path) -> None:
    proc = run_installed(installed, "-m", "wav2tok_core.cli", "run", "--params", "notebooks/params/ci.yaml",
                         "--run_dir", "run", "--only", "01_data_split", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "01_data" / "results.json").read_text())
    assert results["summary"]["n_items"] > 0
