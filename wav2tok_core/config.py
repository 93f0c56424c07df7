"""Typed configurations: building dataclass configs from mappings and files, with every value checked.

The configs themselves live with what they configure: ``FeatureConfig`` in :mod:`wav2tok_core.audio.config`,
``ModelConfig`` in :mod:`wav2tok_core.model.config`, ``TrainConfig`` in :mod:`wav2tok_core.train.trainer`.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from .errors import ConfigError

C = TypeVar("C")


def require(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: {message}")


def from_dict(cls: type[C], values: Mapping[str, Any], where: str = "config") -> C:
    """Build dataclass ``cls`` from a mapping, refusing unknown keys by name.

    Nested dataclass fields accept nested mappings.
    """
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys: {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        default = known[name].default_factory if known[name].default_factory is not dataclasses.MISSING else None
        nested = type(default()) if default is not None else None
        if nested is not None and dataclasses.is_dataclass(nested) and isinstance(value, Mapping):
            value = from_dict(nested, value, f"{where}.{name}")
        kwargs[name] = typed_value(value, known[name].default, f"{where}.{name}")
    return cls(**kwargs)


def typed_value(value: Any, default: Any, name: str) -> Any:
    """``value`` checked against the type of ``default`` (ints pass as floats, lists as tuples); ``name`` is
    what an error names.

    Defaults that are None or a dataclass are not checked here.
    """
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and (isinstance(default, float) or isinstance(value, int))
        value = float(value) if ok and isinstance(default, float) else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, tuple):
        ok = isinstance(value, (list, tuple))
        value = tuple(value) if ok else value
    else:
        ok = True
    if not ok:
        raise ConfigError(f"{name}: expected {type(default).__name__}, got {value!r}")
    return value


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict (YAML is a superset of JSON)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path}: not valid YAML/JSON ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: top level must be a mapping, got {type(data).__name__}")
    return data


def to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain nested dicts (safe for ``torch.load(weights_only=True)``)."""
    return dataclasses.asdict(config)
