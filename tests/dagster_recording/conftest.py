"""Fixtures for the Dagster recording surface: a real control-plane API (uvicorn over HTTP, SQLite)
with a registered robot, the robot's side played through its own API client, real Dagster runs; the
HTTP simulator writes recordings for the lance_dataset asset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import dagster as dg
import pytest

from axon_dagster.defs.recording import RecordingPolicyResource
from axon_dagster.recorder import RecordingConfig
from axon_dagster.demo.sim import SimulatedRecorder, serve_in_thread


@dataclass
class Peer:
    url: str
    recorder: SimulatedRecorder
    stop: Callable[[], None]

    @property
    def data_dir(self) -> Path:
        return self.recorder.data_dir


@pytest.fixture(scope="session", autouse=True)
def _lance_loaded():
    # The first dataset written in a process imports lance (seconds on a busy machine); pay it once
    # here so that no recorder call in a test waits for it.
    import lance  # noqa: F401


@pytest.fixture
def start_peer(tmp_path):
    """``start_peer(faults=None)``: a simulated recorder over real HTTP on a free port."""
    stops: list[Callable[[], None]] = []

    def start(faults: dict | None = None, robot_id: str = "robot-1") -> Peer:
        # the recording jobs report Lance datasets: a Lance-era peer
        recorder = SimulatedRecorder(tmp_path / f"sim-{len(stops)}", robot_id, faults=faults, recording_format="lance")
        url, stop = serve_in_thread(recorder=recorder)
        stops.append(stop)
        return Peer(url, recorder, stop)

    yield start
    for stop in stops:
        stop()


@pytest.fixture
def peer(start_peer) -> Peer:
    return start_peer()


@pytest.fixture
def policy(tmp_path) -> RecordingPolicyResource:
    return RecordingPolicyResource(config_dir=str(tmp_path / "recording-configs"))


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., str]:
    def write(task_id: str = "task-1", *, path: Path | None = None, **fields: Any) -> str:
        fields.setdefault("device_id", "robot-1")
        fields.setdefault("order_id", "order-1")
        fields.setdefault("scene", "warehouse")
        fields.setdefault("subscene", "aisle_1")
        fields.setdefault("skills", ["pick_place"])
        target = path or tmp_path / "configs" / f"{task_id}.yaml"
        return str(RecordingConfig(task_id=task_id, **fields).write(target))

    return write


@pytest.fixture(scope="session")
def instance():
    """One ephemeral instance for the session (runs here end before the next test starts); a
    test that leaves a run in progress makes its own."""
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@dataclass
class ControlPlane:
    url: str
    admin: Any  # ControlPlaneClient
    robot: Any  # EdgeSyncClient of robot-1
    resources: dict[str, Any]


@pytest.fixture
def cp(tmp_path, policy) -> ControlPlane:
    from axon_dagster.api.app import create_app
    from axon_dagster.client import ControlPlaneClient, EdgeSyncClient
    from axon_dagster.api.server import ApiThread
    from axon_dagster.defs.resources import ControlPlaneResource
    from axon_dagster.control_plane.persistence import upgrade

    url = f"sqlite:///{tmp_path / 'cp.db'}"
    upgrade(url)
    server = ApiThread(create_app(url)).start()
    admin = ControlPlaneClient(server.url)
    token = admin.register_robot("robot-1")["token"]
    admin.register_robot("robot-2")
    robot = EdgeSyncClient(server.url, token)
    try:
        yield ControlPlane(server.url, admin, robot, {"control_plane": ControlPlaneResource(url=server.url), "recording_policy": policy})
    finally:
        robot.close()
        admin.close()
        server.stop()
