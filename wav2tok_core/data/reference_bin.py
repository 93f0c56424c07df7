"""The reference code's data format, read safely, and conversion to and from our manifest items.

Reference format: ``{dataset}.bin`` is a pickle of ``[X_train, X_test]`` where each split is a list of
audio paths or a dict ``{class: [paths]}``. Pickles can run code when loaded, so they are read with
an unpickler that builds only lists, dicts, tuples, strings and numbers and refuses anything else.

That shape (:data:`Split`) stays at this edge: the rest of the package works on manifest items, so a
``.bin`` is converted to items when it is read (:func:`read_reference_items`) and items are converted
back when one is written (:func:`split_from_items`, then :func:`write_reference_bin`).
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Union

from ..errors import ConfigError, DataFormatError, UnsafePickleError
from ..runtime import atomic_write
from .manifest import ManifestItem, group_by_label, require_labels

Split = Union[list[Path], dict[str, list[Path]]]  # a list of clips, or clips grouped by class


class _PlainUnpickler(pickle.Unpickler):
    """Unpickler that cannot import anything: only built-in containers and scalars can be built."""

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        raise UnsafePickleError(f"refusing to load {module}.{name}: only lists, dicts, tuples, strings and "
                                "numbers are allowed in a data split file")


def safe_unpickle(data: bytes, name: str) -> object:
    """Unpickle ``data`` allowing only list/dict/tuple/str/int/float/bool/None."""
    try:
        return _PlainUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{name}: {err}") from None
    except Exception as err:  # truncated or not a pickle at all
        raise DataFormatError(f"{name}: not a readable pickle ({type(err).__name__}: {err})") from None


def _resolve(path: str, bases: list[Path]) -> Path:
    """Absolute paths stay; a relative one is tried against each base folder in turn."""
    if os.path.isabs(path):
        return Path(path)
    for base in bases:
        if (base / path).exists():
            return (base / path).resolve()
    return (bases[0] / path).resolve()  # reported later, by the audio loader, as missing


def _split_from(obj: object, bases: list[Path], name: str) -> Split:
    if isinstance(obj, (list, tuple)):
        if not all(isinstance(p, str) for p in obj):
            raise DataFormatError(f"{name}: a list split must hold path strings")
        return [_resolve(p, bases) for p in obj]
    if isinstance(obj, dict):
        out: dict[str, list[Path]] = {}
        for label, paths in obj.items():
            if not isinstance(paths, (list, tuple)) or not all(isinstance(p, str) for p in paths):
                raise DataFormatError(f"{name}: class {label!r} must map to a list of path strings")
            out[str(label)] = [_resolve(p, bases) for p in paths]
        return out
    raise DataFormatError(f"{name}: a split must be a list of paths or a dict {{class: [paths]}}, "
                          f"got {type(obj).__name__}")


def read_reference_bin(path: str | os.PathLike) -> tuple[Split, Split]:
    """Read ``[X_train, X_test]`` from a reference ``.bin`` file.

    Relative clip paths are tried against the working directory, the ``.bin``'s folder and that
    folder's parent (the reference keeps ``bin/`` beside the code it runs from).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: data split file does not exist")
    obj = safe_unpickle(path.read_bytes(), str(path))
    if not isinstance(obj, (list, tuple)) or len(obj) != 2:
        raise DataFormatError(f"{path}: expected [X_train, X_test], got {type(obj).__name__}"
                              f"{' of length ' + str(len(obj)) if isinstance(obj, (list, tuple)) else ''}")
    bases = [Path.cwd(), path.resolve().parent, path.resolve().parent.parent]
    return _split_from(obj[0], bases, f"{path} X_train"), _split_from(obj[1], bases, f"{path} X_test")


def write_reference_bin(train: Split, test: Split, path: str | os.PathLike) -> Path:
    """Write ``[X_train, X_test]`` (absolute path strings) as a reference ``.bin``, atomically."""
    def plain(split: Split) -> list[str] | dict[str, list[str]]:
        if isinstance(split, dict):
            return {str(k): [str(Path(p).resolve()) for p in v] for k, v in split.items()}
        return [str(Path(p).resolve()) for p in split]

    with atomic_write(path, "wb") as fh:
        pickle.dump([plain(train), plain(test)], fh, protocol=4)
    return Path(path)


def split_from_items(items: list[ManifestItem], by_class: bool) -> Split:
    """Manifest rows -> a list of paths, or a dict by label (rows without a label are refused)."""
    if not by_class:
        return [it.path for it in items]
    require_labels(items)
    return {label: [it.path for it in group] for label, group in group_by_label(items).items()}


def items_from_split(split: Split, split_name: str) -> list[ManifestItem]:
    """A reference split -> manifest rows (label = class for dict splits, None for list splits)."""
    if isinstance(split, dict):
        return [ManifestItem(Path(p), label=k, split=split_name) for k, v in split.items() for p in v]
    return [ManifestItem(Path(p), split=split_name) for p in split]


def read_reference_items(path: str | os.PathLike, is_dict: bool) -> list[ManifestItem]:
    """A reference ``.bin`` as manifest items: X_train rows get split ``"train"``, X_test rows ``"val"``
    (the set the reference trainer validates on). Dict splits label each row with its class.

    Raises:
        ConfigError: ``is_dict`` disagrees with the shape of X_train (the message names the file).
    """
    train, test = read_reference_bin(path)
    if is_dict != isinstance(train, dict):
        kind = "a dict {class: [paths]}" if isinstance(train, dict) else "a list of paths"
        raise ConfigError(f"is_dict={is_dict} but {path} holds {kind}; set --is_dict {not is_dict}")
    return items_from_split(train, "train") + items_from_split(test, "val")
