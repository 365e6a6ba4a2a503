"""Fixtures for the ROS suites: a real rosmaster on a free port, the simulator as a real ROS 1
node, and the simulator as a real ROS 2 node.

Both ROS generations are real here: ROS 1 from Debian (python3-rospy & co., installed by
``scripts/ros1-deps.sh``), ROS 2 from the PyPI wheels (rclpy, Fast DDS) with our interface
package built by ``python -m axon_dagster.recorder.ros2_build``. The ROS 2 graph of the session
is on loopback in a domain of its own (tests/conftest.py).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from axon_dagster.recorder import RecordingConfig
from axon_dagster.recorder.ros1_env import Ros1Unavailable, import_ros1
from ros_support import STARTUP_TIMEOUT, RosSim, free_port, kill, launch_sim, stop_process



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


def _sim_starter(transport: str, directory: Path):
    sims: list[RosSim] = []

    def start(**kwargs: Any) -> RosSim:
        sims.append(launch_sim(transport, directory, **kwargs))
        return sims[-1]

    return start, sims


@pytest.fixture
def start_ros1_sim(rosmaster, tmp_path):
    """``start_ros1_sim(faults=None)``: a ROS 1 simulator of this test's own (killed at teardown)."""
    start, sims = _sim_starter("ros1", tmp_path)
    yield start
    for sim in sims:
        kill(sim)


@pytest.fixture(scope="module")
def shared_ros1_sim(rosmaster, tmp_path_factory):
    """A healthy ROS 1 simulator shared by a module's tests (each records its own task ids)."""
    sim = launch_sim("ros1", tmp_path_factory.mktemp("shared-ros1-sim"))
    yield sim
    kill(sim)


@pytest.fixture(scope="session")
def ros2_ready():
    """rclpy importable and our interface package built (fails, never skips, where it is not)."""
    from axon_dagster.recorder.ros2_env import Ros2Unavailable, load_srv_module

    try:
        return load_srv_module()
    except Ros2Unavailable as exc:
        pytest.fail(f"ROS 2 is required for the ROS 2 tests: {exc}", pytrace=False)


@pytest.fixture
def start_ros2_sim(ros2_ready, tmp_path):
    """``start_ros2_sim(faults=None)``: a ROS 2 simulator of this test's own (killed at teardown)."""
    start, sims = _sim_starter("ros2", tmp_path)
    yield start
    for sim in sims:
        kill(sim)


@pytest.fixture(scope="module")
def shared_ros2_sim(ros2_ready, tmp_path_factory):
    """A healthy ROS 2 simulator shared by a module's tests (each records its own task ids)."""
    sim = launch_sim("ros2", tmp_path_factory.mktemp("shared-ros2-sim"))
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

