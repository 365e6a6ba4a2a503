"""The README's code-layout table matches the tree: every path it names exists, and every package
of ``axon_dagster/`` (and the edge agent) has a row."""

from __future__ import annotations

import re

from architecture_source import REPO

TABLE_START = "Code layout"


def layout_table() -> list[tuple[str, list[str]]]:
    """(first cell, the backticked paths in it) for each row of the layout table."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(TABLE_START)
    rows = []
    for line in text[start:].splitlines()[1:]:
        if rows and not line.startswith("|"):
            break
        if line.startswith("|") and not line.startswith("| ---") and not line.startswith("| folder"):
            first = line.split("|")[1]
            rows.append((first.strip(), re.findall(r"`([^`]+)`", first)))
    return rows


def test_every_path_in_the_layout_table_exists():
    rows = layout_table()
    assert len(rows) >= 10, f"the README's layout table was not found after {TABLE_START!r}"
    missing = [path for _, paths in rows for path in paths if not (REPO / path).exists()]
    assert not missing, f"README layout table names paths that do not exist: {missing}"


def test_every_package_has_a_row():
    named = {path.rstrip("/") for _, paths in layout_table() for path in paths}
    packages = {
        f"axon_dagster/{p.name}" for p in (REPO / "axon_dagster").iterdir() if (p / "__init__.py").is_file()
    } | {"edge/axon_edge"}
    missing = sorted(packages - named)
    assert not missing, f"packages with no row in the README's layout table: {missing}"
