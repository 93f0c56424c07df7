"""What every ``wav2tok`` subcommand shares: the wrapper that runs it, shared options and input handling.

:func:`guarded` is the one place where a subcommand's errors become exit codes; every subcommand (and
``python -m wav2tok_core.train``) runs through it.
"""
from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Callable, Sequence

from .. import distributed, runtime
from ..audio.io import AUDIO_SUFFIXES
from ..data.manifest import read_manifest
from ..errors import Wav2TokError

Command = Callable[[argparse.Namespace], int]
# Operating-system errors about a path the user gave: mostly outputs (a folder where a file goes, a read-only
# target). Inputs are checked where they are read and raise a Wav2TokError (training's --load_dir still
# raises FileNotFoundError).
FILE_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def error_line(err: BaseException) -> str:
    """``err`` as one line: messages may quote multi-line library errors (YAML, torch.load)."""
    text = f"{err.filename}: {err.strerror}" if isinstance(err, OSError) and err.filename else str(err)
    return " ".join(text.split())


def guarded(name: str, command: Command) -> Command:
    """Wrap subcommand ``name`` (e.g. ``"index"``, ``"dataset folder"``) for the command line.

    The wrapper applies ``args.threads`` (when the subcommand has the option) through
    :func:`runtime.configure`, runs ``command`` and returns its exit code. A :class:`Wav2TokError`, or one of
    :data:`FILE_ERRORS`, becomes the single line ``wav2tok NAME: error: MESSAGE`` on stderr and exit code 2;
    any other exception is a bug and propagates with its traceback. A process group joined under torchrun
    is left either way.
    """
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            runtime.configure(threads=getattr(args, "threads", None))
            return command(args)
        except (Wav2TokError, *FILE_ERRORS) as err:
            print(f"wav2tok {name}: error: {error_line(err)}", file=sys.stderr)
            return 2
        finally:
            distributed.cleanup()
    return run


def add_command(subparsers: argparse._SubParsersAction, name: str, command: Command, *,
                group: str = "", **kwargs) -> argparse.ArgumentParser:
    """Add subcommand ``name`` (under ``group``, e.g. ``dataset``) that runs ``command`` through :func:`guarded`."""
    parser = subparsers.add_parser(name, **kwargs)
    parser.set_defaults(func=guarded(f"{group} {name}".strip(), command))
    return parser


def add_threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, help="torch, numba and rapidfuzz worker threads (default: one per core)")


def add_shard_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shard", type=int, help="tokenize only block SHARD (from 0) of --num-shards; restartable")
    p.add_argument("--num-shards", "--num_shards", dest="num_shards", type=int,
                   help="number of blocks; parts merge into --out when all are done (torchrun: one per rank)")


def add_job_options(p: argparse.ArgumentParser) -> None:
    """Options of the jobs that run a model over audio files."""
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    p.add_argument("--batch_size", type=int, default=32, help="clips per inference batch")
    p.add_argument("--strict", action="store_true", help="exit 1 when any input file was skipped")
    p.add_argument("--progress", action="store_true", help="show progress bars")


def expand_inputs(inputs: Sequence[str]) -> list[Path]:
    """Audio paths from arguments: files, folders (searched recursively) and manifests (.json/.csv)."""
    paths: list[Path] = []
    for text in inputs:
        path = Path(text)
        if path.suffix.lower() in (".json", ".csv"):
            paths += [item.path for item in read_manifest(path)]
        elif path.is_dir():
            paths += sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
        else:
            paths.append(path)
    return paths


def report_failures(failed: list[dict[str, str]], total: int) -> None:
    """List the skipped input files with their reasons on stderr."""
    if failed:
        print(f"skipped {len(failed)} of {total} file(s):", file=sys.stderr)
        for f in failed:
            print(f"  {f['reason']}", file=sys.stderr)
