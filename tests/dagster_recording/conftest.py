"""Fixtures for the Dagster recording surface: the HTTP simulator as the peer, real Dagster runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import dagster as dg
import pytest

from axon_dagster.defs.recording import RecordingPolicyResource
from axon_dagster.defs.resources import RecorderResource
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
def resources_for(policy):
    """The resources a recording run needs, pointed at ``peer``."""

    def make(peer_or_url: Peer | str, **recorder_fields: Any) -> dict[str, Any]:
        url = peer_or_url if isinstance(peer_or_url, str) else peer_or_url.url
        recorder_fields.setdefault("timeout_seconds", 30.0)
        recorder_fields.setdefault("retry_attempts", 0)
        return {"recorder": RecorderResource(url=url, **recorder_fields), "recording_policy": policy}

    return make


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
