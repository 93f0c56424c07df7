"""The ``train`` subcommand: the reference training command line of :mod:`wav2tok_core.train.recipe`.

``wav2tok train FLAGS`` and ``python -m wav2tok_core.train FLAGS`` are one command (:func:`main`); the
flags keep the reference names and are parsed by the recipe, which also reads them from ``--config`` files.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..train.recipe import parse_args, run
from .common import add_command, guarded


def cmd_train(args: argparse.Namespace) -> int:
    """Train as ``args.flags`` (the recipe's flags, unparsed) say; print where the run went."""
    trainer = run(parse_args(args.flags))  # the trainer applies --threads (a recipe flag or --config key)
    if not trainer.dist.is_main:
        return 0
    last = trainer.history[-1] if trainer.history else {}
    print(f"trained {trainer.epoch} epochs, {trainer.step} steps; run folder {trainer.run_dir}; "
          f"last epoch: " + ", ".join(f"{k}={v:.4g}" for k, v in last.items() if isinstance(v, float)))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train``; :func:`wav2tok_core.cli.main.main` hands it the arguments it does not know as ``flags``."""
    p = add_command(subparsers, "train", cmd_train, add_help=False,
                    help="train a model (reference flags; see `wav2tok train --help`)")
    p.set_defaults(flags=[])


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m wav2tok_core.train``: ``wav2tok train`` with the flags ``argv`` (default: the command line)."""
    flags = list(sys.argv[1:] if argv is None else argv)
    return guarded("train", cmd_train)(argparse.Namespace(flags=flags))
