"""A simulated fleet on one machine: the control-plane API and, per robot, a recorder simulator and
an edge agent — each its own process, talking over HTTP on localhost exactly as in production;
with isolation on, each robot's processes as its own OS user and the cloud's as another
(:mod:`.isolation`), so robots and cloud share no readable directory.

Used by `axon-dagster demo`, `axon-dagster dev` and the end-to-end tests.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from axon_dagster.settings import child_environ
from axon_dagster.storage.recording import RECORDING_FORMATS

from .isolation import ISOLATION_MODES, Account, IsolationPlan, try_to_read, uid_of, user_name
from .isolation import plan as isolation_plan
from .processes import free_port, wait_for_log_line, wait_healthy, wait_recorder

log = logging.getLogger(__name__)

FLEET_TRANSPORTS = ("http", "ros1", "ros2")


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


@dataclass
class RobotProcesses:
    robot_id: str
    token: str
    recorder_url: str  # "" with the ros1/ros2 transports
    edge_url: str
    data_dir: Path  # the robot's own directory (0700, its user's, when isolated)
    processes: list[subprocess.Popen] = field(default_factory=list)
    recorder_namespace: str = ""  # ROS namespace of the recorder's services (ros1/ros2)
    recordings_dir: Path | None = None  # where its recorder writes
    account: Account = field(default_factory=Account.current)  # who its processes run as
    ros_env: dict[str, str] = field(default_factory=dict)  # its ROS graph: own rosmaster (ros1) / domain (ros2)
    ran_as: dict[str, str | None] = field(default_factory=dict)  # process name -> user, read from /proc


@dataclass
class SimulatedFleet:
    """Start with ``with SimulatedFleet(workdir, robots=2) as fleet: ...``.

    Layout of ``workdir``: ``cloud/`` (the cloud's: control-plane database, ``lake/`` the object
    store, ``work/`` Dagster's scratch space), ``robots/<robot_id>/`` (one robot's: ``recordings/``,
    ``edge/``), ``logs/``. With ``isolation`` on, ``cloud/`` and each robot's directory are
    ``0700`` and owned by the user its processes run as (:mod:`.isolation`).
    """

    workdir: Path
    robots: int = 2
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    control_plane_port: int | None = None
    sim_faults: dict[str, str] = field(default_factory=dict)  # robot_id -> faults JSON
    sim_args: list[str] = field(default_factory=list)  # more axon-sim options for every simulator (e.g. --camera-bytes)
    # How agents reach their recorders: "http" (Axon HTTP RPC), "ros1" (a real rosmaster per robot,
    # its recorder serving ROS 1 services under robot_N/axon) or "ros2" (each recorder an rclpy
    # node serving ROS 2 services under robot_N/axon, on loopback in a domain of the robot's own).
    transport: str = "http"
    # What the simulators write: "mcap" (Axon v0.4) or "lance" (the Lance-era layout).
    recording_format: str = "mcap"
    # Recorders already running (no simulator is started for them; ``robots`` is then ignored).
    external_recorders: list[ExternalRecorder] = field(default_factory=list)
    # "auto" | "on" | "off": each robot and the cloud as OS users of their own (:mod:`.isolation`)
    isolation: str = "off"

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir).resolve()
        self.logs = self.workdir / "logs"
        self.cloud_dir = self.workdir / "cloud"
        self.lake_dir = self.cloud_dir / "lake"  # the cloud's object store (file://)
        self.cloud_work_dir = self.cloud_dir / "work"  # Dagster's side: scratch space, upload state
        self.database_url = f"sqlite:///{self.cloud_dir / 'control-plane.db'}"
        self.control_plane_url = ""
        self.robot_processes: list[RobotProcesses] = []
        self.cloud_ran_as: dict[str, str | None] = {}
        self.plan: IsolationPlan | None = None
        self._processes: list[subprocess.Popen] = []
        self._domains: list = []
        if self.transport not in FLEET_TRANSPORTS:
            raise ValueError(f"unknown fleet transport {self.transport!r}; available: {', '.join(FLEET_TRANSPORTS)}")
        if self.recording_format not in RECORDING_FORMATS:
            raise ValueError(f"unknown recording format {self.recording_format!r}; available: {', '.join(RECORDING_FORMATS)}")
        if self.isolation not in ISOLATION_MODES:
            raise ValueError(f"unknown isolation mode {self.isolation!r}; available: {', '.join(ISOLATION_MODES)}")
        if self.external_recorders:
            if self.transport != "http":
                raise ValueError("external recorders are reached over Axon's HTTP RPC: use transport http")
            ids = [r.robot_id for r in self.external_recorders]
            if len(set(ids)) != len(ids):
                raise ValueError(f"external recorders name a robot twice: {ids}")

    @property
    def lake_url(self) -> str:
        return f"file://{self.lake_dir}"

    @property
    def robot_ids(self) -> list[str]:
        return [r.robot_id for r in self.external_recorders] or [f"robot-{index}" for index in range(1, self.robots + 1)]

    @property
    def ros_env(self) -> dict[str, str]:
        """The first robot's ROS graph (what a tool that joins "the" robot's graph uses)."""
        return dict(self.robot_processes[0].ros_env) if self.robot_processes else {}

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

    def spawn(self, name: str, argv: list[str], account: Account, home: Path, env: dict[str, str] | None = None,
              *, drop: tuple[str, ...] = ()) -> tuple[subprocess.Popen, Path]:
        """Start ``argv`` as ``account`` (its log in ``logs/<name>.log``), in ``home`` (also its
        ``HOME``), in a session of its own; :meth:`stop` ends it."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{name}.log"
        account.private_dir(home)
        proc = subprocess.Popen(
            argv,
            stdout=open(log_path, "ab"),
            stderr=subprocess.STDOUT,
            env=child_environ({"HOME": str(home), **(env or {})}, drop=drop),
            cwd=str(home),
            start_new_session=True,  # Ctrl-C in the terminal reaches us, and we stop children in order
            **account.popen_kwargs(),
        )
        self._processes.append(proc)
        return proc, log_path

    def start(self) -> None:
        from axon_dagster.client import ControlPlaneClient

        self.workdir.mkdir(parents=True, exist_ok=True)
        external = {r.robot_id: r for r in self.external_recorders}
        ros_build = self._build_ros_interfaces()
        self.plan = isolation_plan(
            self.isolation, self.robot_ids, self.workdir, isolate_robots={r for r in self.robot_ids if r not in external},
            extra_paths=[Path(p) for p in ros_build.values()],
        )
        log.info("fleet isolation: %s", self.plan.reason)
        # reachable by every user (each finds its own directory below), listable by none but us
        self.workdir.chmod(0o711)
        self.logs.mkdir(exist_ok=True)
        self.logs.chmod(0o700)  # every process's log: ours to read (children write to the file we opened)
        (self.workdir / "robots").mkdir(exist_ok=True)
        (self.workdir / "robots").chmod(0o711)
        cloud = self.plan.cloud
        cloud.private_dir(self.cloud_dir)
        for sub in (self.lake_dir, self.cloud_work_dir, self.cloud_dir / "home"):
            cloud.private_dir(sub)
        port = self.control_plane_port or free_port()
        self.control_plane_url = f"http://127.0.0.1:{port}"
        py = sys.executable
        cp_env = {
            "AXON_DATABASE_URL": self.database_url,
            "AXON_ADMIN_TOKEN": self.admin_token,
            "AXON_OBJECT_STORE_URL": self.lake_url,  # where robots' uploads are staged, then published
            "AXON_PUBLIC_API_URL": self.control_plane_url,  # what part URLs of the file:// store point at
        }
        home = self.cloud_dir / "home"
        upgrade, upgrade_log = self.spawn("control-plane-db", [py, "-m", "axon_dagster.cli", "db", "upgrade"], cloud, home, cp_env)
        if upgrade.wait(timeout=300) != 0:
            raise RuntimeError(f"control-plane db upgrade failed\n{upgrade_log.read_text()[-3000:]}")
        proc, log_path = self.spawn(
            "control-plane", [py, "-m", "axon_dagster.cli", "api", "--host", "127.0.0.1", "--port", str(port)], cloud, home, cp_env
        )
        wait_healthy(f"{self.control_plane_url}/healthz", proc, log_path=log_path)
        self.cloud_ran_as["control-plane"] = user_name(uid_of(proc.pid))
        admin = ControlPlaneClient(self.control_plane_url, token=self.admin_token)

        pending: list[tuple[str, subprocess.Popen, Path]] = []
        ros_pending: list[tuple[str, subprocess.Popen, Path]] = []
        for robot_id in self.robot_ids:
            token = admin.register_robot(robot_id)["token"]
            account = self.plan.robot(robot_id)
            data_dir = account.private_dir(self.workdir / "robots" / robot_id)
            sim_port, edge_port = free_port(), free_port()
            recordings = external[robot_id].data_dir if robot_id in external else account.private_dir(data_dir / "recordings")
            robot = RobotProcesses(
                robot_id=robot_id,
                token=token,
                recorder_url=external[robot_id].url if robot_id in external else f"http://127.0.0.1:{sim_port}",
                edge_url=f"http://127.0.0.1:{edge_port}",
                data_dir=data_dir,
                recordings_dir=recordings,
                account=account,
            )
            if self.transport == "ros1":
                robot.ros_env = self._start_rosmaster(robot)
            elif self.transport == "ros2":
                robot.ros_env = self._reserve_ros2_domain()
            robot.ros_env.update(ros_build)
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
            sim_argv += self.sim_args
            if robot_id in self.sim_faults:
                sim_argv += ["--faults", self.sim_faults[robot_id]]
            home = data_dir / "home"
            if robot_id in external:
                wait_recorder(robot.recorder_url)  # it must already run: we start nothing for it
            else:
                sim, sim_log = self.spawn(f"{robot_id}-sim", sim_argv, account, home, robot.ros_env, drop=CLOUD_ONLY_ENV)
                robot.processes.append(sim)
                robot.ran_as["recorder"] = user_name(uid_of(sim.pid))
                if self.transport in ("ros1", "ros2"):
                    ros_pending.append((f"serving ROS {self.transport[-1]} services under /{robot.recorder_namespace}/", sim, sim_log))
                else:
                    pending.append((f"{robot.recorder_url}/health", sim, sim_log))
            edge, edge_log = self.spawn(
                f"{robot_id}-edge", edge_argv, account, home, {"AXON_ROBOT_TOKEN": token, **robot.ros_env}, drop=CLOUD_ONLY_ENV
            )
            robot.processes.append(edge)
            robot.ran_as["edge_agent"] = user_name(uid_of(edge.pid))
            self.robot_processes.append(robot)
            pending.append((f"{robot.edge_url}/healthz", edge, edge_log))
        for line, proc, log_path in ros_pending:
            wait_for_log_line(line, proc, log_path)
        for url, proc, log_path in pending:
            wait_healthy(url, proc, log_path=log_path)
        log.info("fleet up: control plane %s, robots %s", self.control_plane_url, [r.robot_id for r in self.robot_processes])

    def spawn_dagster(self, order: dict, timeout_seconds: float) -> tuple[subprocess.Popen, Path, Path]:
        """The cloud's Dagster side (:mod:`.cloud`) for ``order``, as the cloud's user, configured from
        the environment as the code location is. Returns (process, its log, where it writes its results)."""
        import json

        result = self.cloud_work_dir / "demo-result.json"
        proc, log_path = self.spawn_cloud(
            "dagster",
            [sys.executable, "-m", "axon_dagster.demo.cloud", "--order", json.dumps(order),
             "--timeout", f"{max(5.0, timeout_seconds):.1f}", "--result", str(result)],
            self.cloud_env(),
        )
        return proc, log_path, result

    def cloud_env(self) -> dict[str, str]:
        """The Dagster side's environment (the demo's cloud process, `axon-dagster dev`'s code location)."""
        return {
            "AXON_CONTROL_PLANE_URL": self.control_plane_url,
            "AXON_OBJECT_STORE_URL": self.lake_url,
            "AXON_DATA_FLOW_DIR": str(self.cloud_work_dir / "data-flow"),  # staged recordings ingested here
            # the state of the cloud's own multipart uploads (parking an ingested dataset on S3/Azure)
            "AXON_UPLOAD_STATE_DIR": str(self.cloud_work_dir / "upload-state"),
            "AXON_INSPECTION_RUNNER": "native",
            # The robots' uplink here is loopback; what they measure from a few small uploads is
            # latency, not bandwidth (a 170 kB upload "measures" ~7 Mbit/s), and a robot held below
            # the bar never uploads again to measure better: no bandwidth bar in the demo.
            "AXON_MIN_BANDWIDTH_MBPS": "0",
        }

    def _build_ros_interfaces(self) -> dict[str, str]:
        """The recorder's ROS interface package, built here once (as us) where it is missing or stale;
        every robot's user then only reads it. Returns the environment that points them at it."""
        if self.transport == "ros2":
            from axon_dagster.recorder.ros2_env import load_srv_module

            load_srv_module()  # a clear error now where ROS 2 is missing; the build sits in the venv
            return {}
        if self.transport == "ros1":
            from axon_dagster.recorder.genpy_build import build

            return {"AXON_ROS1_MSGS_DIR": str(build())}
        return {}

    def spawn_cloud(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen, Path]:
        """A cloud-side process (Dagster, ...) as the cloud's user, with the admin token, in ``cloud/``."""
        proc, log_path = self.spawn(name, argv, self.plan.cloud, self.cloud_dir / "home", {"AXON_ADMIN_TOKEN": self.admin_token, **(env or {})})
        self.cloud_ran_as[name] = user_name(uid_of(proc.pid))
        return proc, log_path

    def _start_rosmaster(self, robot: RobotProcesses) -> dict[str, str]:
        """A real ``rosmaster --core`` on a free port, the robot's own (as its user; stopped last)."""
        import shutil

        from axon_dagster.recorder.ros1_env import import_ros1

        rosgraph = import_ros1("rosgraph")  # a clear install hint where ROS 1 is missing
        executable = shutil.which("rosmaster")
        if executable is None:
            raise RuntimeError("rosmaster is not installed: run `bash scripts/ros1-deps.sh` (or source a ROS 1 setup)")
        port = free_port()
        uri = f"http://127.0.0.1:{port}"
        ros_home = robot.account.private_dir(robot.data_dir / "ros")
        env = {"ROS_MASTER_URI": uri, "ROS_HOME": str(ros_home), "ROS_IP": "127.0.0.1", "ROS_HOSTNAME": "127.0.0.1"}
        proc, log_path = self.spawn(f"{robot.robot_id}-rosmaster", [executable, "--core", "-p", str(port)], robot.account, robot.data_dir / "home", env,
                                    drop=CLOUD_ONLY_ENV)
        robot.ran_as["rosmaster"] = user_name(uid_of(proc.pid))
        deadline = time.monotonic() + 60
        while not rosgraph.is_master_online(uri):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text()[-3000:] if log_path.exists() else ""
                raise RuntimeError(f"rosmaster of {robot.robot_id} did not come up on {uri}\n{tail}")
            time.sleep(0.1)
        log.info("rosmaster of %s up at %s", robot.robot_id, uri)
        return env

    def _reserve_ros2_domain(self) -> dict[str, str]:
        """A ROS_DOMAIN_ID of the robot's own (held until :meth:`stop`), DDS on loopback only."""
        from axon_dagster.recorder.ros2_env import reserve_domain_id

        domain = reserve_domain_id()
        self._domains.append(domain)
        log.info("ROS 2 graph on loopback, ROS_DOMAIN_ID %d", domain.domain_id)
        return domain.env()

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
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        self._processes.clear()
        for domain in self._domains:
            domain.release()
        self._domains.clear()

    def isolation_report(self) -> dict:
        """The ``isolation`` object of the demo's ``--json``: who ran what (read from ``/proc`` while
        it ran), each robot's directory and mode, and what the cloud's user got when it tried to
        read every robot's directory."""
        plan = self.plan
        robots = {}
        probe_paths = []
        for robot in self.robot_processes:
            probe_paths += [robot.data_dir, robot.recordings_dir or robot.data_dir]
        probe = try_to_read(plan.cloud, probe_paths) if plan and plan.enabled else {}
        for robot in self.robot_processes:
            mode = robot.data_dir.stat().st_mode & 0o777 if robot.data_dir.exists() else None
            robots[robot.robot_id] = {
                "user": robot.account.name,
                "isolated": robot.account.isolated,  # False: an external recorder's robot (runs as the invoking user)
                "processes": dict(robot.ran_as),
                "data_dir": str(robot.data_dir),
                "data_dir_mode": f"{mode:04o}" if mode is not None else None,
                "cloud_read_attempt": {
                    str(p): probe[str(p)] for p in (robot.data_dir, robot.recordings_dir or robot.data_dir) if str(p) in probe
                },
            }
        return {
            **(plan.describe() if plan else {"enabled": False}),
            "cloud": {"user": plan.cloud.name if plan else None, "processes": dict(self.cloud_ran_as)},
            "robots": robots,
        }

    def admin_client(self):
        from axon_dagster.client import ControlPlaneClient

        return ControlPlaneClient(self.control_plane_url, token=self.admin_token)


# Never in a robot's environment: the cloud's credentials and where its data lives.
CLOUD_ONLY_ENV = ("AXON_ADMIN_TOKEN", "AXON_DATABASE_URL", "AXON_UPLOAD_SIGNING_KEY", "AXON_OBJECT_STORE_URL",
                  "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_CONNECTION_STRING")
