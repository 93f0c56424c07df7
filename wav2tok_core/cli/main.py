"""The ``wav2tok`` command: training, tokenizing, search, evaluation, datasets and the notebooks as subcommands.

Every subcommand runs through one wrapper (:func:`wav2tok_core.cli.common.guarded`): an unusable input,
file or option ends in one line ``wav2tok SUBCOMMAND: error: ...`` on stderr and exit code 2. Batch jobs
never stop at a bad audio file: they skip it, report it by name with the reason (on stderr and in their
JSON output), and exit 1 only with ``--strict``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from . import dataset, evaluate, run, tokenize, train


def build_parser() -> argparse.ArgumentParser:
    """The ``wav2tok`` parser; each subcommand's ``func`` runs it through the wrapper."""
    parser = argparse.ArgumentParser(prog="wav2tok", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (train, tokenize, evaluate, dataset, run):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``wav2tok ARGV`` (default: the command line) and return its exit code."""
    parser = build_parser()
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if "flags" in args:  # train: the recipe parses its own flags
        args.flags = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args.func(args)
