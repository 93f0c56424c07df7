"""The package's folders are its layers: each imports only the layers below it, and no import cycles.

Every import counts, including those inside functions: a lazy import is still a dependency.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "wav2tok_core"

# Lower layers first. A module may import its own layer and the layers before it.
LAYERS = {
    "base": ("errors", "config", "runtime", "distributed"),
    "audio": ("audio",),
    "data": ("data",),
    "model": ("model",),
    "search": ("search",),
    "eval": ("eval",),
    "train": ("train",),
    "workbench": ("workbench",),
    "cli": ("cli",),
}
RANK = {top: rank for rank, tops in enumerate(LAYERS.values()) for top in tops}
# Leaks still being removed while the package is regrouped (this list only shrinks; empty when done).
KNOWN_LEAKS: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(name: str, source: str, is_package: bool = False) -> set[str]:
    """The package modules that module ``name`` imports anywhere in ``source`` (top level or in functions)."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "wav2tok_core"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").split(".")[0] == "wav2tok_core":
                source = node.module
            else:
                continue
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                found.add(candidate if candidate in MODULES else source)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imported_modules(name, path.read_text(encoding="utf-8"), path.name == "__init__.py")
         for name, path in MODULES.items()}


def layer(module: str) -> str | None:
    """The layer of ``module``; ``__main__`` entry points are command line whatever folder they sit in."""
    parts = module.split(".")
    if parts[-1] == "__main__":
        return "cli"
    return parts[1] if len(parts) > 1 else None  # None: the package root (the public API)


def test_every_module_belongs_to_a_layer() -> None:
    stray = sorted(m for m in MODULES if layer(m) is not None and layer(m) not in RANK)
    assert not stray, f"modules outside every layer (add them to LAYERS or move them): {stray}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) is not None))
def test_imports_follow_the_layer_order(module: str) -> None:
    upward = sorted(dep for dep in GRAPH[module] if (module, dep) not in KNOWN_LEAKS
                    and (layer(dep) is None or RANK[layer(dep)] > RANK[layer(module)]))
    assert not upward, f"{module} (layer {layer(module)}) imports a higher layer: {upward}"


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for dep in sorted(GRAPH[module] - {d for m, d in KNOWN_LEAKS if m == module}):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def test_the_walker_sees_imports_inside_functions() -> None:
    source = "import torch\n\ndef f():\n    from ..cli.main import main\n    from . import tokens\n    return main\n"
    assert imported_modules("wav2tok_core.model.probe", source) == {"wav2tok_core.cli.main",
                                                                    "wav2tok_core.model.tokens"}
