"""The package's one-way layers (../shared/DESIGN.md), read from the source: every import counts, lazy ones inside
functions and TYPE_CHECKING ones included, since a dependency hidden from the interpreter is still one for the
reader. Fails on an import from a higher floor, on a cycle between modules or between stages, and on a stage
without a floor, naming the modules.

Run: `python -m pytest -q tests/test_layers.py`
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Floors from the bottom up; a module may import its own stage and any stage on its floor or below.
FLOORS: dict[str, int] = {
    "names": 0,  # "did you mean": below the schema, so config and every registry share it
    "config": 1,  # pure schema
    "registry": 2, "io": 2, "ids": 2, "tracking": 2, "workdir_lock": 2,
    "text": 3, "data": 3,
    "arrange": 4, "models": 4,
    "evaluate": 5,
    "train": 6,
    "sweep": 7, "report": 7,
    "cli": 8,
}  # fmt: skip


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted name → file of every module of `package` under `root`."""
    modules = {}
    for path in (root / package).rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: Mapping[str, Path], package: str) -> set[str]:
    """The package's modules that module `name` imports anywhere in its source."""

    def resolve(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            targets.add(prefix)
            targets.update(f"{prefix}.{alias.name}" for alias in node.names)
    resolved = {resolve(t) for t in targets if t == package or t.startswith(f"{package}.")}
    return {t for t in resolved if t and t != name and t != package}


def stage_of(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_problems(root: Path, package: str, floors: Mapping[str, int]) -> list[str]:
    """Every break of the layering rules, one line each, naming the modules involved."""
    modules = module_names(root, package)
    edges = {name: imports_of(name, path, modules, package) for name, path in modules.items()}
    problems = [
        f"no floor: {name} (stage {stage_of(name)!r}); give it one in FLOORS"
        for name in sorted(modules)
        if name != package and stage_of(name) not in floors
    ]
    stage_edges: dict[str, set[str]] = {}
    for importer, imported in sorted((a, b) for a, targets in edges.items() for b in targets):
        upper, lower = stage_of(importer), stage_of(imported)
        if upper == lower or upper not in floors or lower not in floors:
            continue
        stage_edges.setdefault(upper, set()).add(lower)
        if floors[lower] > floors[upper]:
            problems.append(
                f"upward: {importer} (floor {floors[upper]}) imports {imported} (floor {floors[lower]})"
            )
    problems += [f"cycle: {' <-> '.join(component)}" for component in cycles(edges)]
    problems += [f"stage cycle: {' <-> '.join(component)}" for component in cycles(stage_edges)]
    return problems


def test_the_package_keeps_its_layers() -> None:
    problems = layer_problems(ROOT, "dynamics", FLOORS)
    assert not problems, "\n".join(problems)


def test_every_floor_names_a_real_stage() -> None:
    stages = {stage_of(name) for name in module_names(ROOT, "dynamics")} - {""}
    assert set(FLOORS) == stages


# --- the checker itself, on a package made for it -------------------------------------------------------


def _package(tmp_path: Path, files: Mapping[str, str]) -> Path:
    for relative, text in files.items():
        path = tmp_path / "pkg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


FLOORS_OF_FAKE = {"low": 0, "mid": 1, "high": 2, "peer": 1}


def test_checker_finds_lazy_and_type_checking_upward_imports(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "low.py": "def f():\n    from pkg.high import g\n",
            "mid/__init__.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import high\n",
            "mid/inner.py": "from ..low import x\nfrom . import other\n",
            "mid/other.py": "",
            "high.py": "import pkg.mid.inner\n",
        },
    )
    assert layer_problems(root, "pkg", FLOORS_OF_FAKE) == [
        "upward: pkg.low (floor 0) imports pkg.high (floor 2)",
        "upward: pkg.mid (floor 1) imports pkg.high (floor 2)",
        "cycle: pkg.high <-> pkg.low <-> pkg.mid <-> pkg.mid.inner",  # `from . import other` runs pkg.mid
        "stage cycle: high <-> low <-> mid",
    ]


def test_checker_finds_cycles_between_peers_and_stages_without_a_floor(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "mid/__init__.py": "",
            "mid/a.py": "from pkg.peer.b import y\n",
            "peer/__init__.py": "",
            "peer/b.py": "",
            "peer/c.py": "from pkg.mid import a\n",
            "stray.py": "",
        },
    )
    assert layer_problems(root, "pkg", FLOORS_OF_FAKE) == [
        "no floor: pkg.stray (stage 'stray'); give it one in FLOORS",
        "stage cycle: mid <-> peer",
    ]


@pytest.mark.parametrize("statement", ["from pkg import low", "import pkg.low as l", "from .low import x"])
def test_checker_reads_every_spelling_of_an_import(tmp_path: Path, statement: str) -> None:
    root = _package(tmp_path, {"__init__.py": "", "low.py": "", "mid.py": statement + "\n"})
    modules = module_names(root, "pkg")
    assert imports_of("pkg.mid", modules["pkg.mid"], modules, "pkg") == {"pkg.low"}
