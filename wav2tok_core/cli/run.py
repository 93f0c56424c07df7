"""The ``run`` subcommand: the numbered notebooks, executed headlessly (:mod:`wav2tok_core.workbench.pipeline`)."""
from __future__ import annotations

import argparse
import json

from ..workbench import pipeline
from ..workbench.pipeline import CELL_TIMEOUT_S, NOTEBOOKS, run_pipeline
from ..workbench.runs import locate
from .common import add_command


def cmd_run(args: argparse.Namespace) -> int:
    timings = run_pipeline(locate(args.params), args.run_dir, args.only, cell_timeout=args.cell_timeout)
    print(json.dumps(timings))
    print(f"results in {args.run_dir}: notebooks/ (executed), figures and results JSON per notebook")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``run`` to the ``wav2tok`` command."""
    p = add_command(subparsers, "run", cmd_run, help="run the notebooks headlessly (see `wav2tok run --help`)",
                    description=pipeline.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", default="notebooks/params/default.yaml",
                   help="YAML parameters file (a relative path: under the workbench's home, else the installed copy)")
    p.add_argument("--run_dir", default="runs/default", help="where executed notebooks and results go")
    p.add_argument("--only", nargs="+", choices=NOTEBOOKS, default=list(NOTEBOOKS), help="run just these notebooks")
    p.add_argument("--cell_timeout", type=float, default=CELL_TIMEOUT_S,
                   help="seconds a notebook cell may run before the run stops as hung (default %(default)g)")
