"""Fixtures for the ROS suites: a real rosmaster on a free port, the simulator as a real ROS 1 node.

ROS 1 is real here (Debian's python3-rospy & co., installed by ``scripts/ros1-deps.sh``); only
rclpy cannot exist on these machines, and its test double lives in ``fake_rclpy.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from axon_dagster.recorder import RecordingConfig
from axon_dagster.recorder.ros1_env import Ros1Unavailable, import_ros1
from ros_support import axon_sim_command, free_port, new_namespace, read_line, stop_process

STARTUP_TIMEOUT = 30.0


@pytest.fixture(scope="session")
def ros_env(tmp_path_factory):
    """ROS environment for this process and its children: logs in a temp ROS_HOME, loopback
    addresses, and the genpy build in a session directory (so first use really builds it)."""
    try:
        import_ros1("rospy")
        import_ros1("genpy")
    except Ros1Unavailable as exc:
        pytest.fail(f"ROS 1 is required for tests/ros: {exc}", pytrace=False)
    root = tmp_path_factory.mktemp("ros")
    values = {
        "ROS_HOME": str(root / "ros_home"),
        "ROS_IP": "127.0.0.1",
        "AXON_ROS1_MSGS_DIR": str(root / "ros1_msgs"),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in values.items():
            mp.setenv(key, value)
        mp.delenv("ROS_HOSTNAME", raising=False)
        yield values


@pytest.fixture(scope="session")
def rosmaster(ros_env):
    """A real ``rosmaster --core`` on a free port; ROS_MASTER_URI points at it for the session."""
    executable = shutil.which("rosmaster")
    if executable is None:
        pytest.fail("rosmaster is not installed: run `bash scripts/ros1-deps.sh`", pytrace=False)
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = open(Path(ros_env["ROS_HOME"]).parent / "rosmaster.log", "w")
    proc = subprocess.Popen([executable, "--core", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    rosgraph = import_ros1("rosgraph")
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not rosgraph.is_master_online(uri):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            log.close()
            pytest.fail(f"rosmaster did not come up on {uri} (see {log.name})", pytrace=False)
        time.sleep(0.05)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROS_MASTER_URI", uri)
        yield uri
    stop_process(proc)
    log.close()


@dataclass
class Ros1Sim:
    namespace: str
    data_dir: Path
    proc: subprocess.Popen
    log_path: Path

    def client(self, **kwargs: Any):
        from axon_dagster.recorder.ros1 import Ros1Recorder

        kwargs.setdefault("timeout_seconds", 30.0)  # the first finish imports lance in the simulator
        kwargs.setdefault("retry_attempts", 0)
        return Ros1Recorder(self.namespace, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def launch_ros1_sim(directory: Path, *, faults: str | None = None, robot_id: str = "robot-1") -> Ros1Sim:
    """``axon-sim --transport ros1`` as a child process, registered at ROS_MASTER_URI under a fresh
    namespace; returns once it says all four services are advertised."""
    namespace = new_namespace()
    log_path = directory / f"{namespace}.log"
    command = [
        *axon_sim_command(), "--transport", "ros1", "--namespace", namespace,
        "--data-dir", str(directory / f"data-{namespace}"), "--robot-id", robot_id,
    ]
    if faults:
        command += ["--faults", faults]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=open(log_path, "w"), text=True)
    sim = Ros1Sim(namespace, directory / f"data-{namespace}", proc, log_path)
    line = read_line(proc.stdout, STARTUP_TIMEOUT)
    if f"serving ROS 1 services under /{namespace}/" not in line:
        kill(sim)
        raise AssertionError(f"axon-sim did not start: {line!r}\n{sim.log()}")
    return sim


def kill(sim: Ros1Sim) -> None:
    # SIGKILL: a clean stop is tested on its own; here it would only cost a second per sim, and
    # the stale registration it leaves is under a namespace no other test uses
    if sim.proc.poll() is None:
        sim.proc.kill()
    sim.proc.wait(timeout=10)


@pytest.fixture
def start_ros1_sim(rosmaster, tmp_path):
    """``start_ros1_sim(faults=None)``: a simulator of this test's own (killed at teardown)."""
    sims: list[Ros1Sim] = []

    def start(**kwargs: Any) -> Ros1Sim:
        sims.append(launch_ros1_sim(tmp_path, **kwargs))
        return sims[-1]

    yield start
    for sim in sims:
        kill(sim)


@pytest.fixture(scope="module")
def shared_ros1_sim(rosmaster, tmp_path_factory):
    """A healthy simulator shared by a module's tests (each records its own task ids)."""
    sim = launch_ros1_sim(tmp_path_factory.mktemp("shared-ros1-sim"))
    yield sim
    kill(sim)


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., str]:
    """Write a task's recording config file; returns its path."""

    def write(task_id: str = "task-1", **fields: Any) -> str:
        fields.setdefault("device_id", "robot-1")
        fields.setdefault("order_id", "order-1")
        fields.setdefault("batch_id", "batch-1")
        fields.setdefault("scene", "warehouse")
        fields.setdefault("subscene", "aisle_1")
        fields.setdefault("skills", ["pick_place"])
        return str(RecordingConfig(task_id=task_id, **fields).write(tmp_path / "configs" / f"{task_id}.yaml"))

    return write

