"""Fixtures of the edge-agent suite: a real control-plane API, a real recorder simulator and a
data dir per test (see edge_support.py for the helpers they are made of)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from edge_support import EdgeEnv, edge_environment, migrated_template_db



@pytest.fixture(scope="session", autouse=True)
def _lance_imported() -> None:
    """The simulator imports Lance on its first /rpc/finish; pay that once, up front, so no
    test's first stop races the recorder timeout on a loaded machine."""
    import lance  # noqa: F401


@pytest.fixture(scope="session")
def _migrated_control_plane_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_template_db(tmp_path_factory.mktemp("edge-cp-template"))


@pytest.fixture
def edge_env(tmp_path: Path, _migrated_control_plane_db: Path) -> Iterator[EdgeEnv]:
    with edge_environment(tmp_path, _migrated_control_plane_db, "edge suite robot") as env:
        yield env
