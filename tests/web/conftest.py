"""Fixtures of the browser suites: a real control-plane API, a real recorder simulator, a real
edge agent (HTTP on a free port) and one headless Chromium per test module."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

# The edge suite's helpers (real servers on free ports) are reused, not copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "edge"))

from edge_support import EdgeEnv, edge_environment, migrated_template_db  # noqa: E402


from browser import chromium_context  # noqa: E402


@pytest.fixture(scope="module")
def browser_context() -> Iterator[object]:
    with chromium_context() as context:
        yield context


@pytest.fixture
def page(browser_context) -> Iterator[object]:
    page = browser_context.new_page()
    try:
        yield page
    finally:
        page.close()


@pytest.fixture(scope="session")
def _migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_template_db(tmp_path_factory.mktemp("web-cp-template"))


@pytest.fixture
def edge_env(tmp_path: Path, _migrated_db: Path) -> Iterator[EdgeEnv]:
    with edge_environment(tmp_path, _migrated_db, "web suite robot") as env:
        yield env
