"""Which package may import which: the table in docs/architecture.md, enforced.

Every import between two packages of ``axon_dagster/`` (and the edge agent, ``axon_edge``) must be
an arrow of :data:`MAY_IMPORT`; anything else fails naming file:line. Imports are counted as in
``architecture_source.import_graph`` (module level, in functions, under TYPE_CHECKING: a deferred import is a
dependency all the same). What each package may import from *outside* the project (no framework in
``domain``; no Dagster, Ray or Daft on the robot) is checked where it is cheap to check by loading
the modules: tests/domain/test_purity.py and tests/edge/test_imports.py.
"""

from __future__ import annotations

from architecture_source import import_graph, modules

# package -> the packages it may import (besides itself). "entry points" are the top-level modules
# axon_dagster.cli, accounts_cli, datasets_cli; "axon_dagster" is the package's own __init__.
MAY_IMPORT: dict[str, set[str]] = {
    "domain": set(),
    "settings": set(),
    "web": set(),
    "recorder": {"domain", "settings"},
    "storage": {"domain", "settings"},
    "ingest": {"domain", "settings", "storage"},
    "inspection": {"domain", "settings", "storage", "ingest"},
    "control_plane": {"domain", "settings", "storage"},  # storage: the staging store of robots' uploads
    "client": {"domain", "settings"},
    "api": {"domain", "settings", "control_plane", "storage", "web"},  # storage: signed part URLs
    "services": {"domain", "settings", "storage", "ingest", "inspection"},
    "observability": {"domain", "settings"},
    "defs": {"domain", "settings", "recorder", "storage", "inspection", "client", "services", "observability",
             "api"},  # api: the review rate plot (rendering only)
    "entry points": {"domain", "settings", "control_plane", "client", "api", "inspection", "storage"},
    "axon_edge": {"domain", "settings", "recorder", "storage", "client", "api", "web"},  # api: the ASGI middleware only
    "demo": {"domain", "settings", "recorder", "storage", "ingest", "inspection", "control_plane", "client", "api",
             "services", "defs", "observability", "web", "axon_edge", "axon_dagster"},  # the top: nothing imports it
    "axon_dagster": set(),
}
ENTRY_POINTS = {"cli", "accounts_cli", "datasets_cli"}


def package_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "axon_edge":
        return "axon_edge"
    if len(parts) == 1:
        return "axon_dagster"
    return "entry points" if parts[1] in ENTRY_POINTS else parts[1]


def test_every_package_is_in_the_table():
    unknown = sorted({package_of(m.name) for m in modules()} - set(MAY_IMPORT))
    assert not unknown, f"packages missing from MAY_IMPORT (and docs/architecture.md): {unknown}"


def test_packages_import_only_what_the_layering_allows():
    mods = modules()
    paths = {m.name: m.relpath for m in mods}
    graph = import_graph(mods)
    wrong = [
        f"{paths[a]}:{line}: {package_of(a)} imports {b} ({package_of(b)})"
        for a, targets in sorted(graph.items())
        for b, line in sorted(targets.items())
        if package_of(a) != package_of(b) and package_of(b) not in MAY_IMPORT.get(package_of(a), set())
    ]
    assert not wrong, "imports across the layers of docs/architecture.md:\n  " + "\n  ".join(wrong)
