"""Run the numbered notebooks headlessly with papermill: the workbench's main job (``wav2tok run``).

    wav2tok run --params notebooks/params/default.yaml --run_dir runs/default

The parameters file has a ``common`` section (given to every notebook) and one section per notebook
(``01_data_split``, ...); keys are names of the notebooks' ``parameters`` cells. The file is checked
before any notebook starts. Executed notebooks go to ``{run_dir}/notebooks/``; each notebook writes its
figures and results under ``{run_dir}``. A notebook that fails stops the run with its name, and the
executed copy (with the traceback) is kept for inspection.
"""
from __future__ import annotations

import ast
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from ..config import load_config_file, typed_value
from ..errors import ConfigError, NotebookError
from ..runtime import write_json
from .runs import asset, home, resolve

CELL_TIMEOUT_S = 3600.0  # a cell that runs longer is taken to hang (the longest, training, takes ~8 min)
NOTEBOOKS = ("01_data_split", "02_train", "03_codebook_umap", "04_retrieval_eval", "05_token_inspector")
def _cell(executed: Path) -> str:
    """The last cell papermill started in an executed notebook (the one that raised or ran out of time), as
    ``cell N ('its first line')``; N counts the injected parameters cell too."""
    try:
        cells = json.loads(executed.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return "a cell"
    started = [i for i, cell in enumerate(cells) if cell.get("metadata", {}).get("papermill", {}).get("start_time")]
    if not started:
        return "a cell"
    lines = "".join(cells[started[-1]].get("source", "")).strip().splitlines()
    return f"cell {started[-1]} ({lines[0][:60]!r})" if lines else f"cell {started[-1]}"


def notebook_defaults(notebook: Path) -> dict[str, Any]:
    """The names and default values assigned in the notebook's cell tagged ``parameters``."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    source = next("".join(c["source"]) for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    defaults: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            defaults[node.target.id] = ast.literal_eval(node.value)
        elif isinstance(node, ast.Assign):
            defaults.update({t.id: ast.literal_eval(node.value) for t in node.targets if isinstance(t, ast.Name)})
    return defaults


def check_parameters(params: dict[str, Any], notebook_dir: Path | None = None,
                     where: str = "parameters file") -> None:
    """Refuse unknown sections, sections that are not mappings, and values no notebook can take (unknown
    names, wrong types), so a bad parameters file fails before the first notebook runs; errors start with
    ``where``."""
    unknown = sorted(set(params) - {"common", *NOTEBOOKS})
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {unknown}; sections are common, {', '.join(NOTEBOOKS)}")
    notebook_dir = notebook_dir or asset("notebooks")
    takers_of = {section: NOTEBOOKS if section == "common" else (section,) for section in params}
    defaults = {name: notebook_defaults(notebook_dir / f"{name}.ipynb")
                for name in sorted({n for takers in takers_of.values() for n in takers})}
    for section, values in params.items():
        if not isinstance(values or {}, dict):
            raise ConfigError(f"{where}: section {section} must be a mapping, got {type(values).__name__}")
        takers = takers_of[section]
        for key, value in (values or {}).items():
            known = [defaults[name][key] for name in takers if key in defaults[name]]
            if not known:
                raise ConfigError(f"{where}: {section}.{key} is not a parameter of "
                                  f"{'any notebook' if section == 'common' else section}")
            for default in known:
                typed_value(value, default, f"{where}: {section}.{key}")


def notebook_parameters(params: dict[str, Any], name: str, run_dir: Path, notebook: Path) -> dict[str, Any]:
    """Parameters for notebook ``name``: ``common`` values, then its own section, then ``run_dir``; a notebook
    with an ``interactive`` parameter gets False (no browser to show widgets to: building them can hang)."""
    headless = {"interactive": False} if "interactive" in notebook_defaults(notebook) else {}
    return {**(params.get("common") or {}), **(params.get(name) or {}), "run_dir": str(run_dir), **headless}


def run_pipeline(params_file: str | os.PathLike | None, run_dir: str | os.PathLike,
                 only: Sequence[str] = NOTEBOOKS, notebook_dir: Path | None = None,
                 cell_timeout: float = CELL_TIMEOUT_S, cwd: str | os.PathLike | None = None) -> dict[str, float]:
    """Execute the notebooks in order; returns seconds per notebook (also in ``timings.json``).

    Notebooks come from ``notebook_dir`` (default: the workbench's ``notebooks/``, see :func:`runs.asset`);
    a relative ``run_dir`` is taken relative to :func:`runs.home`, which is also the kernels' working folder
    unless ``cwd`` names another (the notebooks resolve their paths against :func:`runs.home` wherever they run).
    A cell that raises, or that has not finished after ``cell_timeout`` seconds, stops the run with a
    :class:`NotebookError` naming the notebook and the cell; the executed copy is kept for inspection.
    """
    if not cell_timeout > 0:
        raise ConfigError(f"cell_timeout: must be > 0 seconds, got {cell_timeout}")
    notebook_dir = notebook_dir or asset("notebooks")
    params = load_config_file(resolve(params_file)) if params_file else {}
    check_parameters(params, notebook_dir, f"parameters file {params_file}")
    run_dir = resolve(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run_dir {run_dir}: is a file, not a folder")
    import papermill as pm  # loads the Jupyter stack: only once the parameters passed

    out_dir = run_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    # The kernelspec starts "python" from PATH: make that this environment's interpreter.
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    timings: dict[str, float] = {}
    for name in only:
        start = time.perf_counter()
        print(f"[{name}] running ...", flush=True)
        executed = out_dir / f"{name}.ipynb"
        try:
            pm.execute_notebook(str(notebook_dir / f"{name}.ipynb"), str(executed),
                                parameters=notebook_parameters(params, name, run_dir, notebook_dir / f"{name}.ipynb"),
                                cwd=str(cwd or home()),
                                kernel_name="python3", progress_bar=False, execution_timeout=cell_timeout)
        except pm.PapermillExecutionError as err:
            raise NotebookError(f"notebook {name} failed in {_cell(executed)}: {err.ename}: {err.evalue} "
                                f"(the executed copy, with the traceback: {executed})") from None
        except TimeoutError:  # nbclient's CellTimeoutError
            raise NotebookError(f"notebook {name}: {_cell(executed)} did not finish within {cell_timeout:g} s "
                                f"(cell_timeout; the executed copy: {executed})") from None
        timings[name] = round(time.perf_counter() - start, 1)
        print(f"[{name}] done in {timings[name]:.0f} s", flush=True)
    write_json(run_dir / "timings.json", {**timings, "total_s": round(sum(timings.values()), 1)})
    return timings
