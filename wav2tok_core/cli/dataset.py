"""``wav2tok dataset ...``: build or import a dataset, split it, and write our manifest plus a reference ``.bin``.

Sub-commands::

    wav2tok dataset melodies --out DIR [--n_tunes N ...]          built-in query-by-humming set
    wav2tok dataset espeak --out DIR [--n_words N] [--voices V ...] [--seed S]
                                                                  synthetic spoken words, many eSpeak NG voices
    wav2tok dataset fsdd --root PATH [--download] [--split speakers|takes|words|loso-SPEAKER|all] --out DIR
    wav2tok dataset folder --root PATH [--speaker_regex RE] --split stratified|speaker
                           --fractions 0.8 0.1 0.1 --seed 0 --out DIR [--dict]
    wav2tok dataset summary MANIFEST [--json OUT] [--strict]

Each builder writes ``DIR/manifest.json`` (all three splits) and ``DIR/<name>.bin`` (reference
``[X_train, X_test]``; X_test is our val split unless ``--reference_test test``, see
``wav2tok_core.data.splits``) and prints the dataset summary as Markdown.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..data.folder import scan_folder
from ..data.fsdd import FSDD_SHA256, FSDD_URL, SPLITTERS, ensure_fsdd, load_fsdd
from ..data.manifest import ManifestItem, read_manifest
from ..data.reference_bin import write_reference_bin
from ..data.splits import REFERENCE_TEST_CHOICES, reference_splits, speaker_split, stratified_split, write_split_outputs
from ..data.summary import summarize
from ..errors import ConfigError
from ..runtime import write_json
from .common import add_command

MANIFEST_NAME = "manifest.json"
MELODY_OPTIONS = ("n_tunes", "queries_per_tune", "sr", "seed")  # MelodySetConfig fields settable here


def _print_summary(items: list[ManifestItem], progress: bool) -> None:
    print(summarize(items, progress=progress).to_markdown())


def _reference_and_report(manifest: Path, args: argparse.Namespace, name: str) -> int:
    """Write a built set's reference ``<name>.bin`` beside its manifest and print its summary."""
    items = read_manifest(manifest)
    train, test = reference_splits(items, args.dict, args.reference_test)
    reference = write_reference_bin(train, test, Path(args.out) / f"{name}.bin")
    print(f"wrote {manifest} and {reference}", file=sys.stderr)
    _print_summary(items, args.progress)
    return 0


def cmd_melodies(args: argparse.Namespace) -> int:
    """Build (or reuse) the melody set, then write its reference ``melodies.bin``."""
    from ..data.melodies import MelodySetConfig, build_melody_set  # imports music21 lazily

    config = MelodySetConfig(**{k: getattr(args, k) for k in MELODY_OPTIONS if getattr(args, k) is not None})
    return _reference_and_report(build_melody_set(args.out, config, progress=args.progress), args, "melodies")


def cmd_espeak(args: argparse.Namespace) -> int:
    """Build (or reuse) the eSpeak NG word set, then write its reference ``espeak.bin``."""
    from ..data.espeak import EspeakWordSetConfig, build_espeak_words

    config = EspeakWordSetConfig()
    changes: dict[str, object] = {}
    if args.n_words is not None:
        if not 1 <= args.n_words <= len(config.words):
            raise ConfigError(f"--n_words: {args.n_words} is outside 1..{len(config.words)} (the built-in words)")
        changes["words"] = config.words[:args.n_words]
    if args.voices:
        changes["voices"] = tuple(args.voices)
    if args.seed is not None:
        changes["seed"] = args.seed
    manifest = build_espeak_words(args.out, dataclasses.replace(config, **changes), progress=args.progress)
    return _reference_and_report(manifest, args, "espeak")


def cmd_fsdd(args: argparse.Namespace) -> int:
    """Check (or download) FSDD, split it (speakers or takes), write ``manifest.json`` and ``fsdd.bin``."""
    root = ensure_fsdd(args.root, download=args.download, url=args.url, sha256=args.sha256)
    items = SPLITTERS[args.split](load_fsdd(root), val_fraction=args.val_fraction, seed=args.seed)
    return _write_and_report(items, args, "fsdd")


def cmd_folder(args: argparse.Namespace) -> int:
    """Scan ``ROOT/<class>/...``, split it, write ``manifest.json`` and ``<name>.bin``."""
    items = scan_folder(args.root, speaker=args.speaker_regex)
    splitter = stratified_split if args.split == "stratified" else speaker_split
    items = splitter(items, fractions=args.fractions, seed=args.seed)
    return _write_and_report(items, args, args.name or Path(args.root).resolve().name or "dataset")


def _write_and_report(items: list[ManifestItem], args: argparse.Namespace, name: str) -> int:
    outputs = write_split_outputs(items, args.out, name, manifest_name=MANIFEST_NAME, by_class=args.dict,
                                  reference_test=args.reference_test)
    print(f"wrote {outputs.manifest} and {outputs.reference_bin} (X_test = {outputs.reference_test} split)",
          file=sys.stderr)
    _print_summary(items, args.progress)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    """Print the summary of a manifest; exit 1 with ``--strict`` when files are unreadable."""
    summary = summarize(read_manifest(args.manifest), progress=args.progress)
    print(summary.to_markdown())
    if args.json:
        write_json(args.json, summary.to_dict())
    if summary.unreadable:
        print(f"{len(summary.unreadable)} unreadable file(s) in {args.manifest} (listed above)", file=sys.stderr)
    return 1 if summary.unreadable and args.strict else 0


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder for manifest.json and the reference .bin")
    p.add_argument("--dict", action="store_true",
                   help="write the .bin splits as {label: [paths]} (reference is_dict mode) instead of lists")
    p.add_argument("--reference_test", choices=REFERENCE_TEST_CHOICES, default="val",
                   help="which split becomes the reference X_test (default val: keeps test out of model selection)")
    p.add_argument("--progress", action="store_true", help="show progress")


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``dataset`` command (with its sub-commands) to a ``wav2tok`` sub-parser collection."""
    parser = subparsers.add_parser("dataset", help="build, import, split and summarise datasets",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="dataset_command", required=True)

    p = add_command(sub, "melodies", cmd_melodies, group="dataset", help="the built-in query-by-humming melody set")
    p.add_argument("--n_tunes", type=int, help="tunes (classes); default: MelodySetConfig's")
    p.add_argument("--queries_per_tune", type=int, help="hummed queries per tune; default: MelodySetConfig's")
    p.add_argument("--sr", type=int, help="sample rate of the clips (Hz); default: MelodySetConfig's")
    p.add_argument("--seed", type=int, help="seed of tune choice and synthesis; default: MelodySetConfig's")
    _add_output_options(p)

    p = add_command(sub, "espeak", cmd_espeak, group="dataset",
                    help="synthetic spoken English words, each in many eSpeak NG voices (pip install .[speech-synth])")
    p.add_argument("--n_words", type=int, help="use the first N of the 200 built-in words; default: all")
    p.add_argument("--voices", nargs="+", metavar="VOICE",
                   help="eSpeak voices <language>[+<variant>], e.g. en+m3 en-us+f2; default: 12 built-in ones")
    p.add_argument("--seed", type=int, help="seed of the val words and the per-clip rate and pitch; default: 0")
    _add_output_options(p)

    p = add_command(sub, "fsdd", cmd_fsdd, group="dataset",
                    help="Free Spoken Digit Dataset (speaker-disjoint, FSDD's own take split, unseen words, or "
                         "leave-one-speaker-out)")
    p.add_argument("--split", choices=sorted(SPLITTERS), default="speakers",
                   help="speakers: the project's standard, test speakers unseen (default); takes: FSDD's own, "
                        "takes 0-4 of every speaker are test; words: the speakers split, training on digits 0-4 "
                        "and testing on the unseen digits 5-9; loso-SPEAKER: leave that speaker out, its clips "
                        "query the other five's takes 0-4; all: everything trains (val carved out), no test")
    p.add_argument("--root", required=True, help="local FSDD folder (holding recordings/)")
    p.add_argument("--download", action="store_true", help="download the official release into --root if absent")
    p.add_argument("--url", default=FSDD_URL, help="archive to download (default: pinned GitHub commit)")
    p.add_argument("--sha256", default=FSDD_SHA256,
                   help="expected SHA-256 of the archive (default: the pinned one; if none is pinned, print it)")
    p.add_argument("--val_fraction", type=float, default=0.1, help="share of the training clips for val")
    p.add_argument("--seed", type=int, default=0, help="seed of the validation carve-out")
    _add_output_options(p)

    p = add_command(sub, "folder", cmd_folder, group="dataset", help="your own data: ROOT/<class>/*.wav|flac|ogg")
    p.add_argument("--root", required=True, help="folder with one sub-folder per class")
    p.add_argument("--speaker_regex", default=None,
                   help="regex on file names with a (?P<speaker>...) or first group giving the speaker id "
                        "(write --speaker_regex=RE if RE starts with '-')")
    p.add_argument("--split", choices=("stratified", "speaker"), default="stratified",
                   help="stratified by class, or speaker-disjoint (needs --speaker_regex)")
    p.add_argument("--fractions", type=float, nargs=3, default=[0.8, 0.1, 0.1],
                   metavar=("TRAIN", "VAL", "TEST"), help="shares of the splits (sum 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split")
    p.add_argument("--name", default=None, help="name of the .bin (default: the root folder's name)")
    _add_output_options(p)

    p = add_command(sub, "summary", cmd_summary, group="dataset",
                    help="counts, durations and unreadable files of a manifest")
    p.add_argument("manifest", help="manifest (.json or .csv)")
    p.add_argument("--json", default=None, help="also write the summary as JSON here")
    p.add_argument("--strict", action="store_true", help="exit 1 when any file is unreadable")
    p.add_argument("--progress", action="store_true", help="show progress")
    return parser
