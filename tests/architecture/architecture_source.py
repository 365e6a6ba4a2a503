"""Shared by the architecture tests: the Python modules of ``axon_dagster/`` and ``edge/``, parsed,
and the graph of which module imports which (how imports are counted: test_import_cycles.py)."""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# (directory holding the top-level package, package name)
PACKAGE_ROOTS = ((REPO, "axon_dagster"), (REPO / "edge", "axon_edge"))


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. axon_dagster.settings.environ
    path: Path
    is_package: bool  # an __init__.py
    tree: ast.Module

    @property
    def relpath(self) -> str:
        return str(self.path.relative_to(REPO))


@lru_cache(maxsize=None)
def modules() -> tuple[Module, ...]:
    found = []
    for root, package in PACKAGE_ROOTS:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            found.append(Module(name, path, is_package, ast.parse(path.read_text(encoding="utf-8"), str(path))))
    return tuple(found)


def _imports(tree: ast.Module):
    """Every import statement in the module: module level, in functions, under TYPE_CHECKING."""
    return (node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom)))


def _resolve(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def import_graph(mods: tuple[Module, ...]) -> dict[str, dict[str, int]]:
    """{importer: {imported: line}} over the given modules only."""
    known = {m.name for m in mods}
    graph: dict[str, dict[str, int]] = defaultdict(dict)
    for m in mods:
        graph[m.name]
        for stmt in _imports(m.tree):
            targets: list[str] = []
            if isinstance(stmt, ast.Import):
                targets = [a.name for a in stmt.names]
            elif isinstance(stmt, ast.ImportFrom):
                base = _resolve(m, stmt)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in stmt.names]
            for target in targets:
                while target and target not in known:  # `import a.b.c` of a non-module: its module
                    target = target.rpartition(".")[0]
                if target and target != m.name:
                    graph[m.name].setdefault(target, stmt.lineno)
    return graph
