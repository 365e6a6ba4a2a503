"""Fixtures for the recorder room: real simulators over real HTTP on free localhost ports."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from axon_dagster.recorder import AxonHttpRecorder, RecordingConfig
from axon_dagster.demo.sim import SimulatedRecorder, serve_app_in_thread, serve_in_thread


@dataclass
class RunningSim:
    url: str
    recorder: SimulatedRecorder
    data_dir: Path
    stop: Callable[[], None]

    def client(self, **kwargs: Any) -> AxonHttpRecorder:
        kwargs.setdefault("timeout_seconds", 5.0)
        kwargs.setdefault("retry_attempts", 0)
        return AxonHttpRecorder(self.url, **kwargs)


@pytest.fixture
def start_sim(tmp_path: Path):
    """Start simulators (each on its own free port); all are stopped at teardown."""
    stops: list[Callable[[], None]] = []

    def start(robot_id: str = "robot-1", faults: dict | None = None, **options: Any) -> RunningSim:
        data_dir = tmp_path / f"sim-{robot_id}-{len(stops)}"
        recorder = SimulatedRecorder(data_dir, robot_id, faults=faults, **options)
        url, stop = serve_in_thread(recorder=recorder)
        stops.append(stop)
        return RunningSim(url, recorder, data_dir, stop)

    yield start
    for stop in stops:
        stop()


class _CurrentRecorderApp:
    """ASGI app forwarding to the current test's simulator: one real server for the session
    (starting and stopping uvicorn costs ~0.3 s), a fresh recorder for every test."""

    def __init__(self) -> None:
        self.target: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.target(scope, receive, send)


@pytest.fixture(scope="session")
def _shared_sim_server():
    forward = _CurrentRecorderApp()
    url, stop, _server = serve_app_in_thread(forward)
    yield url, forward
    stop()


@pytest.fixture
def sim(_shared_sim_server, tmp_path: Path, request) -> RunningSim:
    """A fresh simulated recorder ("robot-1", MCAP) on the session's server; parametrize
    indirectly with a dict of SimulatedRecorder options (``recording_format="lance"``, ...).
    Tests that crash the server (fault die_after_seconds) use ``start_sim`` for a server of their own."""
    url, forward = _shared_sim_server
    options = getattr(request, "param", None) or {}
    recorder = SimulatedRecorder(tmp_path / "sim-data", "robot-1", finish_seconds_per_gb=0, **options)
    forward.target = recorder.app
    yield RunningSim(url, recorder, tmp_path / "sim-data", stop=lambda: None)
    forward.target = None


@pytest.fixture
def client(sim: RunningSim):
    with sim.client() as c:
        yield c


@pytest.fixture
def client_for():
    """``client_for(sim, **kwargs)``: an AxonHttpRecorder for that simulator, closed at teardown."""
    clients: list[AxonHttpRecorder] = []

    def make(sim: RunningSim, **kwargs: Any) -> AxonHttpRecorder:
        clients.append(sim.client(**kwargs))
        return clients[-1]

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a task's recording config file and return its path (a str, as callers pass it)."""

    def write(task_id: str = "task-1", **fields: Any) -> str:
        fields.setdefault("device_id", "robot-1")
        fields.setdefault("order_id", "order-1")
        fields.setdefault("batch_id", "batch-1")
        fields.setdefault("scene", "warehouse")
        fields.setdefault("subscene", "aisle_1")
        fields.setdefault("skills", ["pick_place"])
        config = RecordingConfig(task_id=task_id, **fields)
        return str(config.write(tmp_path / "configs" / f"{task_id}.yaml"))

    return write


@pytest.fixture
def serve_app():
    """Serve a throw-away ASGI app (a misbehaving peer, a callback receiver) on a free port."""
    stops: list[Callable[[], None]] = []

    def serve(app: Any, **kwargs: Any) -> str:
        url, stop, _server = serve_app_in_thread(app, **kwargs)
        stops.append(stop)
        return url

    yield serve
    for stop in stops:
        stop()


class CountingTransport(httpx.BaseTransport):
    """httpx's real transport, counting the requests it is asked to send (attempts, retries)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.attempts = 0
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.attempts += 1
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def counting_transport():
    transport = CountingTransport()
    yield transport
    transport.close()


def _wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@pytest.fixture
def wait_for():
    """``wait_for(predicate, timeout=5)``: poll until truthy (returns the value) or fail the test."""
    return _wait_for
