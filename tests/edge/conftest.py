"""Fixtures of the edge-agent suite: a real control-plane API, a real recorder simulator and a
data dir per test (see edge_support.py for the helpers they are made of)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Iterator

import pytest
from edge_support import ADMIN_TOKEN, ROBOT_ID, ControlPlaneServer, EdgeEnv, Recorder

from axon_dagster.api.client import ControlPlaneClient
from axon_dagster.store import upgrade


@pytest.fixture(scope="session", autouse=True)
def _lance_imported() -> None:
    """The simulator imports Lance on its first /rpc/finish; pay that once, up front, so no
    test's first stop races the recorder timeout on a loaded machine."""
    import lance  # noqa: F401


@pytest.fixture(scope="session")
def _migrated_control_plane_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("edge-cp-template") / "control-plane.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def edge_env(tmp_path: Path, _migrated_control_plane_db: Path) -> Iterator[EdgeEnv]:
    db_path = tmp_path / "control-plane.db"
    shutil.copyfile(_migrated_control_plane_db, db_path)
    control_plane = ControlPlaneServer(f"sqlite:///{db_path}")
    control_plane.start()
    admin = ControlPlaneClient(control_plane.url, token=ADMIN_TOKEN)
    token = admin.register_robot(ROBOT_ID, "edge suite robot")["token"]
    recorder = Recorder(tmp_path / "recordings")
    recorder.start()
    env = EdgeEnv(control_plane, admin, recorder, token, tmp_path / "edge")
    try:
        yield env
    finally:
        for cleanup in reversed(env._cleanup):
            try:
                cleanup()
            except Exception as exc:  # keep tearing down the rest
                print(f"cleanup failed: {exc!r}", file=sys.stderr)
        recorder.stop()
        admin.close()
        control_plane.stop()
