"""Helpers of the edge-agent suite (fixtures live in conftest.py). Every peer is real:

- the control-plane API (FastAPI app under uvicorn on a free localhost port, SQLite in tmp),
  which can be taken down and brought back on the same port to simulate an outage;
- the recorder simulator ``axon-sim`` (Axon HTTP RPC, writes real Lance datasets), restartable on
  its port too (a recorder that crashed and came back);
- the agent itself, in a thread (``start_agent_in_thread``) or as an ``axon-edge run`` process.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
import uvicorn

from axon_dagster.api.app import create_app
from axon_dagster.client import ControlPlaneClient
from axon_dagster.demo.sim import SimulatedRecorder, serve_in_thread

ROBOT_ID = "robot-1"
ADMIN_TOKEN = "edge-suite-admin"
POLL_INTERVAL = 0.2
# Generous: the simulator writes the Lance dataset inside /rpc/finish, and CI cores are shared.
RECORDER_TIMEOUT = 30.0
REPO_ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value {last!r})")


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


class ControlPlaneServer:
    """The real control-plane API on a fixed port once started, so it can go down and come back."""

    def __init__(self, database_url: str, staging_store: Any = None, upload_settings: Any = None):
        self.database_url = database_url
        self.staging_store, self.upload_settings = staging_store, upload_settings
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        sock = _listen(self.port)
        self.port = sock.getsockname()[1]
        app = create_app(
            database_url=self.database_url, admin_token=ADMIN_TOKEN, staging_store=self.staging_store,
            upload_settings=self.upload_settings,
        )
        # Long-polls in flight are cut at once on stop, as a crashed control plane would cut them.
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False, timeout_graceful_shutdown=0.5))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("control-plane API did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = self._thread = None


@dataclass
class Recorder:
    """The simulator serving on a fixed port; ``restart()`` brings up a fresh (idle) one there."""

    data_dir: Path
    port: int = 0
    topics: Any = None
    recording_format: str = "mcap"
    sim: SimulatedRecorder | None = None
    _stop: Callable[[], None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.sim = SimulatedRecorder(self.data_dir, ROBOT_ID, topics=self.topics, recording_format=self.recording_format)
        url, self._stop = serve_in_thread(port=self.port, recorder=self.sim)
        self.port = int(url.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class EdgeEnv:
    control_plane: ControlPlaneServer
    admin: ControlPlaneClient
    recorder: Recorder
    robot_token: str
    data_dir: Path
    robot_id: str = ROBOT_ID
    _orders: int = 0
    _cleanup: list[Callable[[], None]] = field(default_factory=list)

    def dispatch_order(
        self, skills: tuple[str, ...] = ("pick",), task_count: int = 1, duration: float = 1.0, requirements: dict | None = None
    ) -> list[str]:
        """Create, plan and dispatch an order to this robot; returns its task ids."""
        self._orders += 1
        order_id = f"order{self._orders}"
        self.admin.create_order(order_id, "warehouse", list(skills), sub_scene="aisle_1", requirements=requirements)
        plan = self.admin.plan_order(
            order_id, task_count=task_count, duration_seconds=duration, topics=["/camera/image_raw", "/joint_states", "/imu"]
        )
        self.admin.dispatch_order(order_id, [self.robot_id])
        return [t["task_id"] for t in plan["tasks"]]

    def events(self, task_id: str | None = None) -> list[dict[str, Any]]:
        """Every status event the control plane received (for one task), in arrival order."""
        out, cursor = [], 0
        while True:
            page = self.admin.events_after(cursor, 500)
            out.extend(page["events"])
            if not page["events"]:
                break
            cursor = page["cursor"]
        return [e for e in out if task_id is None or e["task_id"] == task_id]

    def cloud_statuses(self, task_id: str) -> list[str]:
        return [e["status"] for e in self.events(task_id)]

    def build_agent(self, recorder: Any = None, **options: Any):
        """An agent over the real clients; ``recorder`` may wrap the real recorder client (a spy)."""
        from axon_dagster.client import EdgeSyncClient
        from axon_dagster.recorder.axon_http import AxonHttpRecorder
        from axon_edge.agent import EdgeAgent

        options.setdefault("poll_interval", POLL_INTERVAL)
        options.setdefault("retry_base_seconds", 0.1)
        options.setdefault("max_backoff_seconds", 0.5)
        return EdgeAgent(
            self.robot_id,
            EdgeSyncClient(self.control_plane.url, self.robot_token),
            recorder or AxonHttpRecorder(self.recorder.url, timeout_seconds=RECORDER_TIMEOUT),
            self.data_dir,
            **options,
        )

    def start_agent(self, recorder: Any = None, **options: Any):
        """Agent loops + HTTP surface in this process, on a free port."""
        from axon_edge.cli import start_agent_in_thread

        agent = self.build_agent(recorder, **options)
        running = start_agent_in_thread(
            self.robot_id, self.control_plane.url, self.robot_token, self.data_dir, self.recorder.url, agent=agent
        )
        self._cleanup.append(running.stop)
        return running

    def agent_process(self, port: int = 0, extra_env: dict[str, str] | None = None) -> "AgentProcess":
        process = AgentProcess(self, port, extra_env)
        self._cleanup.append(process.kill)
        return process


def migrated_template_db(directory: Path) -> Path:
    """A control-plane SQLite database migrated to head in ``directory``: copied per test, so
    migrations run once per session."""
    from axon_dagster.control_plane.persistence import upgrade

    path = directory / "control-plane.db"
    upgrade(f"sqlite:///{path}")
    return path


@contextmanager
def edge_environment(
    tmp_path: Path, migrated_db: Path, robot_name: str, *, staging_store: Any = None, upload_settings: Any = None,
    topics: Any = None,
) -> Iterator[EdgeEnv]:
    """A control plane on a copy of the migrated ``migrated_db``, one registered robot and a
    recorder simulator, all on free ports; everything registered in ``env._cleanup`` is undone
    (last first) before the servers stop. ``staging_store``/``upload_settings``: where the control
    plane stages robots' uploads (default: a local store under ``tmp_path/cloud``, 5 MiB parts)."""
    db_path = tmp_path / "control-plane.db"
    shutil.copyfile(migrated_db, db_path)
    if staging_store is None:
        from axon_dagster.storage.object_stores import LocalDirObjectStore

        staging_store = LocalDirObjectStore(tmp_path / "cloud")
    if upload_settings is None:
        from axon_dagster.settings.uploads import UploadApiSettings

        upload_settings = UploadApiSettings(object_store_url=f"file://{tmp_path / 'cloud'}", signing_key="k" * 40, part_size=5 << 20)
    control_plane = ControlPlaneServer(f"sqlite:///{db_path}", staging_store, upload_settings)
    control_plane.start()
    admin = ControlPlaneClient(control_plane.url, token=ADMIN_TOKEN)
    token = admin.register_robot(ROBOT_ID, robot_name)["token"]
    recorder = Recorder(tmp_path / "recordings", topics=topics)
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


class AgentProcess:
    """``axon-edge run`` as a real OS process, configured through its environment variables."""

    def __init__(self, env: EdgeEnv, port: int = 0, extra_env: dict[str, str] | None = None):
        if port == 0:
            with _listen(0) as sock:
                port = sock.getsockname()[1]
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = env.data_dir.parent / f"agent-{port}-{time.monotonic_ns()}.log"
        environ = {
            **os.environ,
            "AXON_ROBOT_ID": env.robot_id,
            "AXON_CONTROL_PLANE_URL": env.control_plane.url,
            "AXON_ROBOT_TOKEN": env.robot_token,
            "AXON_EDGE_DATA_DIR": str(env.data_dir),
            "AXON_RECORDER_URL": env.recorder.url,
            "AXON_EDGE_PORT": str(port),
            **(extra_env or {}),
        }
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "axon_edge.cli", "run", "--host", "127.0.0.1", "--debug-routes", "--poll-interval", str(POLL_INTERVAL)],
            env=environ,
            cwd=REPO_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(self._healthy, timeout=20, what=f"axon-edge process on port {port}")
        except AssertionError:
            self.kill()
            raise AssertionError(f"agent did not come up; log:\n{self.log()}") from None

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"agent exited with {self.proc.returncode}; log:\n{self.log()}")
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a robot loses power or the OOM killer strikes."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()

    def terminate(self, timeout: float = 15) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._log.close()
        return code


class RecorderSpy:
    """Wraps the real recorder client, forwarding every call and counting it: proves that a
    duplicate teleop press never reaches the recorder."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.calls: dict[str, int] = {}

    def _call(self, name: str, *args: Any) -> Any:
        self.calls[name] = self.calls.get(name, 0) + 1
        return getattr(self.inner, name)(*args)

    def start_recording(self, config_path: str) -> Any:
        return self._call("start_recording", config_path)

    def stop_recording(self) -> Any:
        return self._call("stop_recording")

    def get_status(self) -> Any:
        return self.inner.get_status()  # polled by the loops: not counted

    def update_config(self, config_path: str) -> Any:
        return self._call("update_config", config_path)

    def close(self) -> None:
        self.inner.close()
