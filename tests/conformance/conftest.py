"""Fixtures of the Axon v0.4 conformance suite (``reference/AXON_V04.md`` is the judge).

Every behaviour of the reference gets two tests: ``..._sim`` (the simulator does it) and
``..._client`` (our recorder client, edge agent or data flow handles it). Peers are real: the
simulator over real HTTP on a free port, the edge suite's real control plane for agent tests.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

HERE = Path(__file__).resolve().parent
if str(HERE.parent / "edge") not in sys.path:
    sys.path.insert(0, str(HERE.parent / "edge"))

from axon_dagster.recorder.axon_http import AxonHttpRecorder  # noqa: E402
from axon_dagster.recorder.config import RecordingConfig  # noqa: E402
from axon_dagster.demo.sim import SimulatedRecorder, serve_in_thread  # noqa: E402


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The edge suite's fixtures (a real control plane + HTTP simulator per test), re-exported.
_edge = _load("edge_suite_conftest_for_conformance", HERE.parent / "edge" / "conftest.py")
_lance_imported = _edge._lance_imported
_migrated_control_plane_db = _edge._migrated_control_plane_db
edge_env = _edge.edge_env


@dataclass
class Axon:
    """A simulated Axon recorder over real HTTP."""

    url: str
    sim: SimulatedRecorder
    data_dir: Path

    def post(self, rpc: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return httpx.post(f"{self.url}{rpc}", json=body if body is not None else {}, timeout=30, **kwargs)

    def get(self, rpc: str) -> httpx.Response:
        return httpx.get(f"{self.url}{rpc}", timeout=30)

    def client(self, **kwargs: Any) -> AxonHttpRecorder:
        kwargs.setdefault("retry_attempts", 0)
        return AxonHttpRecorder(self.url, **kwargs)

    def record(self, task_id: str = "task-1", seconds: float = 0.3, **task_config: Any) -> Path:
        """config → begin → (seconds) → finish over raw HTTP; returns the .mcap path."""
        import time

        config = {"task_id": task_id, "device_id": "robot-1", "scene": "warehouse", "factory": "plant-a", **task_config}
        assert self.post("/rpc/config", {"task_config": config}).json()["success"]
        assert self.post("/rpc/begin", {"task_id": task_id}).json()["success"]
        time.sleep(seconds)
        assert self.post("/rpc/finish", {"task_id": task_id}).json()["success"]
        return self.data_dir / f"{task_id}.mcap"


@pytest.fixture
def start_axon(tmp_path: Path):
    stops: list[Callable[[], None]] = []

    def start(**options: Any) -> Axon:
        options.setdefault("finish_seconds_per_gb", 0.0)
        data_dir = tmp_path / f"axon-{len(stops)}" / "recording"
        sim = SimulatedRecorder(data_dir, "robot-1", **options)
        url, stop = serve_in_thread(recorder=sim)
        stops.append(stop)
        return Axon(url, sim, data_dir)

    yield start
    for stop in stops:
        stop()


@pytest.fixture
def axon(start_axon) -> Axon:
    return start_axon()


@pytest.fixture
def write_config(tmp_path: Path):
    def write(task_id: str = "task-1", **fields: Any) -> str:
        fields.setdefault("device_id", "robot-1")
        fields.setdefault("scene", "warehouse")
        fields.setdefault("subscene", "aisle_1")
        fields.setdefault("skills", ["pick_place"])
        return str(RecordingConfig(task_id=task_id, **fields).write(tmp_path / "configs" / f"{task_id}.yaml"))

    return write


@pytest.fixture
def callback_receiver(tmp_path: Path):
    """A real HTTP server recording every POST it receives: ``(url, received)``."""
    import json

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from axon_dagster.demo.sim import serve_app_in_thread

    received: list[dict[str, Any]] = []

    async def receive(request: Request) -> JSONResponse:
        received.append(
            {"path": request.url.path, "auth": request.headers.get("authorization", ""), "body": json.loads(await request.body())}
        )
        return JSONResponse({"ok": True})

    url, stop, _server = serve_app_in_thread(Starlette(routes=[Route("/cb/{kind}", receive, methods=["POST"])]))
    yield url, received
    stop()


def assert_taken_from_recorder(edge_env, task) -> None:
    """The agent found the recorder's ``<task_id>.mcap`` and took it into the robot's edge cache:
    the recorder's directory no longer holds it (moved, not copied), the cached file is named
    after the task and is the file Axon wrote (its bytes hash to Axon's sidecar checksum)."""
    from axon_dagster.storage.axon_recording import AxonSidecar
    from axon_dagster.storage.digest import file_sha256

    cached = Path(task.dataset_path)
    assert cached.name == f"{task.task_id}.mcap" and cached.is_file(), task.dataset_path
    assert not (edge_env.recorder.data_dir / f"{task.task_id}.mcap").exists(), "the recording was moved into the cache"
    axon = AxonSidecar.read(cached.parent / f"{task.task_id}.json")
    assert axon.task_id == task.task_id and axon.checksum_sha256 == file_sha256(cached)
