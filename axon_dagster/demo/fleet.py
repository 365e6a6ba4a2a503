"""A simulated fleet on one machine: the control-plane API and, per robot, a recorder simulator and
an edge agent — each its own process, talking over HTTP on localhost exactly as in production.

Used by `axon-dagster demo`, `axon-dagster dev` and the end-to-end tests.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from axon_dagster.storage.recording import RECORDING_FORMATS

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen | None = None, timeout: float = 60.0, log_path: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log_path.read_text()[-3000:] if log_path and log_path.exists() else ""
            raise RuntimeError(f"{url}: process exited with {process.returncode} before it was healthy\n{tail}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not healthy after {timeout:.0f}s")


FLEET_TRANSPORTS = ("http", "ros1", "ros2")


@contextmanager
def stop_on_signals(signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGHUP)):
    """Within: SIGTERM / SIGHUP end this process as Ctrl-C does (``KeyboardInterrupt`` in the main
    thread), so every ``with SimulatedFleet(...)`` on the way out stops its processes. Their default
    action would end us on the spot and leave the fleet running: its processes are in sessions of
    their own. A second signal while stopping is ignored (the fleet's stop has its own deadline)."""
    received: list[int] = []

    def interrupt(signum: int, _frame: object) -> None:
        if received:
            log.warning("%s again while stopping; still stopping", signal.Signals(signum).name)
            return
        received.append(signum)
        log.warning("%s received: stopping", signal.Signals(signum).name)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass(frozen=True)
class ExternalRecorder:
    """A recorder that is already running (a real Axon on a robot on the bench, or any peer):
    ``ROBOT_ID=URL,DATA_DIR`` — its HTTP RPC address and the directory it writes recordings to."""

    robot_id: str
    url: str
    data_dir: Path

    @classmethod
    def parse(cls, spec: str) -> "ExternalRecorder":
        from axon_dagster.domain import InvalidIdError, validate_id

        robot_id, sep, rest = spec.partition("=")
        url, comma, data_dir = rest.partition(",")
        if not sep or not comma or not robot_id or not url or not data_dir:
            raise ValueError(f"external recorder {spec!r}: expected ROBOT_ID=URL,DATA_DIR (e.g. robot-1=http://10.0.0.5:8080,/tmp/axon/recording)")
        try:
            validate_id(robot_id, "robot_id")
        except InvalidIdError as exc:
            raise ValueError(f"external recorder {spec!r}: {exc}") from None
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"external recorder {spec!r}: the URL must start with http:// or https://, got {url!r}")
        return cls(robot_id=robot_id, url=url.rstrip("/"), data_dir=Path(data_dir).expanduser().resolve())


def wait_for_log_line(text: str, process: subprocess.Popen, log_path: Path, timeout: float = 90.0) -> None:
    """Wait until ``text`` appears in a child's log (how the ROS 1 simulator says it is ready)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log_path.read_text(errors="replace") if log_path.exists() else ""
        if text in content:
            return
        if process.poll() is not None:
            raise RuntimeError(f"{log_path.name}: process exited with {process.returncode} before it was ready\n{content[-3000:]}")
        time.sleep(0.2)
    raise TimeoutError(f"{log_path.name}: {text!r} not seen after {timeout:.0f}s")


def wait_recorder(url: str, timeout: float = 10.0) -> dict:
    """Check that an already-running recorder answers Axon's ``/health``; a clear error if not."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/health", timeout=2.0)
            if response.status_code == 200:
                return response.json()
            last = f"HTTP {response.status_code}"
        except (httpx.HTTPError, ValueError) as exc:
            last = str(exc) or type(exc).__name__
        time.sleep(0.3)
    raise RuntimeError(f"external recorder {url} does not answer GET /health ({last}); start it first")


@dataclass
class RobotProcesses:
    robot_id: str
    token: str
    recorder_url: str  # "" with the ros1/ros2 transports
    edge_url: str
    data_dir: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    recorder_namespace: str = ""  # ROS namespace of the recorder's services (ros1/ros2)
    recordings_dir: Path | None = None  # where its recorder writes


@dataclass
class SimulatedFleet:
    """Start with ``with SimulatedFleet(workdir, robots=2) as fleet: ...``."""

    workdir: Path
    robots: int = 2
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    control_plane_port: int | None = None
    sim_faults: dict[str, str] = field(default_factory=dict)  # robot_id -> faults JSON
    # How agents reach their recorders: "http" (Axon HTTP RPC), "ros1" (a real rosmaster, each
    # robot's recorder serving ROS 1 services under robot_N/axon) or "ros2" (each recorder an rclpy
    # node serving ROS 2 services under robot_N/axon, on loopback in a domain of the fleet's own).
    transport: str = "http"
    # What the simulators write: "mcap" (Axon v0.4) or "lance" (the Lance-era layout).
    recording_format: str = "mcap"
    # Recorders already running (no simulator is started for them; ``robots`` is then ignored).
    external_recorders: list[ExternalRecorder] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir).resolve()
        self.logs = self.workdir / "logs"
        self.database_url = f"sqlite:///{self.workdir / 'control-plane.db'}"
        self.control_plane_url = ""
        self.robot_processes: list[RobotProcesses] = []
        self._processes: list[subprocess.Popen] = []
        # ROS_MASTER_URI & co. of the fleet's rosmaster (ros1); ROS_DOMAIN_ID & co. (ros2)
        self.ros_env: dict[str, str] = {}
        self._domain = None
        if self.transport not in FLEET_TRANSPORTS:
            raise ValueError(f"unknown fleet transport {self.transport!r}; available: {', '.join(FLEET_TRANSPORTS)}")
        if self.recording_format not in RECORDING_FORMATS:
            raise ValueError(f"unknown recording format {self.recording_format!r}; available: {', '.join(RECORDING_FORMATS)}")
        if self.external_recorders:
            if self.transport != "http":
                raise ValueError("external recorders are reached over Axon's HTTP RPC: use transport http")
            ids = [r.robot_id for r in self.external_recorders]
            if len(set(ids)) != len(ids):
                raise ValueError(f"external recorders name a robot twice: {ids}")

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "SimulatedFleet":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen, Path]:
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{name}.log"
        proc = subprocess.Popen(
            argv,
            stdout=open(log_path, "ab"),
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # Ctrl-C in the terminal reaches us, and we stop children in order
        )
        self._processes.append(proc)
        return proc, log_path

    def start(self) -> None:
        from axon_dagster.client import ControlPlaneClient

        self.workdir.mkdir(parents=True, exist_ok=True)
        port = self.control_plane_port or free_port()
        self.control_plane_url = f"http://127.0.0.1:{port}"
        py = sys.executable
        cp_env = {"AXON_DATABASE_URL": self.database_url, "AXON_ADMIN_TOKEN": self.admin_token}
        subprocess.run([py, "-m", "axon_dagster.cli", "db", "upgrade"], env={**os.environ, **cp_env}, check=True, capture_output=True)
        proc, log_path = self._spawn("control-plane", [py, "-m", "axon_dagster.cli", "api", "--host", "127.0.0.1", "--port", str(port)], cp_env)
        wait_healthy(f"{self.control_plane_url}/healthz", proc, log_path=log_path)
        admin = ControlPlaneClient(self.control_plane_url, token=self.admin_token)
        if self.transport == "ros1":
            self._start_rosmaster()
        elif self.transport == "ros2":
            self._reserve_ros2_domain()

        pending: list[tuple[str, subprocess.Popen, Path]] = []
        ros_pending: list[tuple[str, subprocess.Popen, Path]] = []
        external = {r.robot_id: r for r in self.external_recorders}
        robot_ids = list(external) or [f"robot-{index}" for index in range(1, self.robots + 1)]
        for robot_id in robot_ids:
            token = admin.register_robot(robot_id)["token"]
            data_dir = self.workdir / "robots" / robot_id
            sim_port, edge_port = free_port(), free_port()
            recordings = external[robot_id].data_dir if robot_id in external else data_dir / "recordings"
            robot = RobotProcesses(
                robot_id=robot_id,
                token=token,
                recorder_url=external[robot_id].url if robot_id in external else f"http://127.0.0.1:{sim_port}",
                edge_url=f"http://127.0.0.1:{edge_port}",
                data_dir=data_dir,
                recordings_dir=recordings,
            )
            sim_argv = [py, "-m", "axon_dagster.demo.sim.cli", "--data-dir", str(recordings), "--robot-id", robot_id,
                        "--format", self.recording_format]
            edge_argv = [py, "-m", "axon_edge.cli", "run", "--robot-id", robot_id, "--control-plane-url", self.control_plane_url,
                         "--data-dir", str(data_dir / "edge"), "--port", str(edge_port), "--poll-interval", "0.5",
                         "--recorder-output-dir", str(recordings)]
            if self.transport in ("ros1", "ros2"):
                robot.recorder_url = ""
                robot.recorder_namespace = f"{robot_id.replace('-', '_')}/axon"
                sim_argv += ["--transport", self.transport, "--namespace", robot.recorder_namespace]
                edge_argv += ["--recorder-transport", self.transport, "--recorder-namespace", robot.recorder_namespace]
                if self.transport == "ros2":
                    edge_argv += ["--teleop", "ros2"]
            else:
                sim_argv += ["--host", "127.0.0.1", "--port", str(sim_port)]
                edge_argv += ["--recorder-url", robot.recorder_url]
            if robot_id in self.sim_faults:
                sim_argv += ["--faults", self.sim_faults[robot_id]]
            if robot_id in external:
                wait_recorder(robot.recorder_url)  # it must already run: we start nothing for it
            else:
                sim, sim_log = self._spawn(f"{robot_id}-sim", sim_argv, self.ros_env)
                robot.processes.append(sim)
                if self.transport in ("ros1", "ros2"):
                    ros_pending.append((f"serving ROS {self.transport[-1]} services under /{robot.recorder_namespace}/", sim, sim_log))
                else:
                    pending.append((f"{robot.recorder_url}/health", sim, sim_log))
            edge, edge_log = self._spawn(f"{robot_id}-edge", edge_argv, {"AXON_ROBOT_TOKEN": token, **self.ros_env})
            robot.processes.append(edge)
            self.robot_processes.append(robot)
            pending.append((f"{robot.edge_url}/healthz", edge, edge_log))
        for line, proc, log_path in ros_pending:
            wait_for_log_line(line, proc, log_path)
        for url, proc, log_path in pending:
            wait_healthy(url, proc, log_path=log_path)
        log.info("fleet up: control plane %s, robots %s", self.control_plane_url, [r.robot_id for r in self.robot_processes])

    def _start_rosmaster(self) -> None:
        """A real ``rosmaster --core`` on a free port, for the whole fleet (stopped last)."""
        import shutil

        from axon_dagster.recorder.ros1_env import import_ros1

        rosgraph = import_ros1("rosgraph")  # a clear install hint where ROS 1 is missing
        executable = shutil.which("rosmaster")
        if executable is None:
            raise RuntimeError("rosmaster is not installed: run `bash scripts/ros1-deps.sh` (or source a ROS 1 setup)")
        port = free_port()
        uri = f"http://127.0.0.1:{port}"
        self.ros_env = {
            "ROS_MASTER_URI": uri,
            "ROS_HOME": str(self.workdir / "ros_home"),
            "ROS_IP": "127.0.0.1",
            "ROS_HOSTNAME": "127.0.0.1",
        }
        proc, log_path = self._spawn("rosmaster", [executable, "--core", "-p", str(port)], self.ros_env)
        deadline = time.monotonic() + 60
        while not rosgraph.is_master_online(uri):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text()[-3000:] if log_path.exists() else ""
                raise RuntimeError(f"rosmaster did not come up on {uri}\n{tail}")
            time.sleep(0.1)
        log.info("rosmaster up at %s", uri)

    def _reserve_ros2_domain(self) -> None:
        """A ROS_DOMAIN_ID of the fleet's own (held until :meth:`stop`), DDS on loopback only."""
        from axon_dagster.recorder.ros2_env import load_srv_module, reserve_domain_id

        load_srv_module()  # a clear error now where ROS 2 is missing; builds the interface package once, not per child
        self._domain = reserve_domain_id()
        self.ros_env = self._domain.env()
        log.info("ROS 2 graph on loopback, ROS_DOMAIN_ID %d", self._domain.domain_id)

    def stop(self) -> None:
        for proc in reversed(self._processes):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for proc in self._processes:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._processes.clear()
        if self._domain is not None:
            self._domain.release()
            self._domain = None

    def admin_client(self):
        from axon_dagster.client import ControlPlaneClient

        return ControlPlaneClient(self.control_plane_url, token=self.admin_token)
