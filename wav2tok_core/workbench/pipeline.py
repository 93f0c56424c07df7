"""Run the numbered notebooks headlessly with papermill: the workbench's main job.

    python -m wav2tok_core.pipeline --params notebooks/params/default.yaml --run_dir runs/default

The parameters file has a ``common`` section (given to every notebook) and one section per notebook
(``01_data_split``, ...). Executed notebooks go to ``{run_dir}/notebooks/``; each notebook writes its
figures and results under ``{run_dir}``. A notebook that fails stops the run with its name, and the
executed copy (with the traceback) is kept for inspection.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from ..config import load_config_file
from ..errors import ConfigError
from ..runtime import write_json
from .runs import asset, home, resolve

NOTEBOOKS = ("01_data_split", "02_train", "03_codebook_umap", "04_retrieval_eval", "05_token_inspector")


def notebook_parameters(params: dict[str, Any], name: str, run_dir: Path) -> dict[str, Any]:
    """Parameters for notebook ``name``: ``common`` values, then its own section, then ``run_dir``."""
    unknown = sorted(set(params) - {"common", *NOTEBOOKS})
    if unknown:
        raise ConfigError(f"parameters file: unknown section(s) {unknown}; sections are common, {', '.join(NOTEBOOKS)}")
    return {**(params.get("common") or {}), **(params.get(name) or {}), "run_dir": str(run_dir)}


def run_pipeline(params_file: str | os.PathLike | None, run_dir: str | os.PathLike,
                 only: Sequence[str] = NOTEBOOKS, notebook_dir: Path | None = None) -> dict[str, float]:
    """Execute the notebooks in order; returns seconds per notebook (also in ``timings.json``).

    Notebooks come from ``notebook_dir`` (default: the workbench's ``notebooks/``, see :func:`runs.asset`);
    a relative ``run_dir`` is taken relative to :func:`runs.home`, which is also the kernels' working folder.
    """
    import papermill as pm

    notebook_dir = notebook_dir or asset("notebooks")
    params = load_config_file(resolve(params_file)) if params_file else {}
    run_dir = resolve(run_dir)
    out_dir = run_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    # The kernelspec starts "python" from PATH: make that this environment's interpreter.
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    timings: dict[str, float] = {}
    for name in only:
        start = time.perf_counter()
        print(f"[{name}] running ...", flush=True)
        pm.execute_notebook(str(notebook_dir / f"{name}.ipynb"), str(out_dir / f"{name}.ipynb"),
                            parameters=notebook_parameters(params, name, run_dir), cwd=str(home()),
                            kernel_name="python3", progress_bar=False)
        timings[name] = round(time.perf_counter() - start, 1)
        print(f"[{name}] done in {timings[name]:.0f} s", flush=True)
    write_json(run_dir / "timings.json", {**timings, "total_s": round(sum(timings.values()), 1)})
    return timings


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="wav2tok run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", default="notebooks/params/default.yaml",
                   help="YAML parameters file (relative paths: under the workbench's home, else the installed copy)")
    p.add_argument("--run_dir", default="runs/default", help="where executed notebooks and results go")
    p.add_argument("--only", nargs="+", choices=NOTEBOOKS, default=list(NOTEBOOKS), help="run just these notebooks")
    args = p.parse_args(argv)
    params = args.params if resolve(args.params).is_file() else asset(args.params)
    timings = run_pipeline(params, args.run_dir, args.only)
    print(json.dumps(timings))
    print(f"results in {args.run_dir}: notebooks/ (executed), figures and results JSON per notebook")
    return 0


if __name__ == "__main__":
    sys.exit(main())
