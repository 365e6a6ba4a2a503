"""Shared by the architecture tests: the Python modules of ``axon_dagster/`` and ``edge/``, parsed."""

from __future__ import annotations

import ast
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
