"""Fixtures of the edge agent's ROS and supervision suite.

Reuses the edge suite's real peers (control-plane API, HTTP recorder simulator: tests/edge) and the
ROS suite's helpers (tests/ros/ros_support.py), plus a real ``rosmaster`` of this suite's own.

Every rospy node here is its own process (the agent, the simulator, the teleop device): a process
registers one node with one master for life, and the test process may already hold the ROS
suite's node. So this suite's master is passed to children through their environment only and
never changes ``os.environ`` of the test process.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for _dir in (HERE.parent / "edge", HERE.parent / "ros"):
    if str(_dir) not in sys.path:
        sys.path.insert(0, str(_dir))

from ros_support import free_port, stop_process  # noqa: E402

from axon_dagster.recorder.ros1_env import Ros1Unavailable, import_ros1  # noqa: E402


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The edge suite's fixtures (a real control plane + HTTP simulator per test), re-exported.
_edge = _load("edge_suite_conftest", HERE.parent / "edge" / "conftest.py")
_lance_imported = _edge._lance_imported
_migrated_control_plane_db = _edge._migrated_control_plane_db
edge_env = _edge.edge_env

STARTUP_TIMEOUT = 30.0


@pytest.fixture(scope="session")
def ros_master(tmp_path_factory) -> dict[str, str]:
    """A real ``rosmaster --core`` on a free port; returns the environment for ROS children."""
    try:
        import_ros1("rospy")
        rosgraph = import_ros1("rosgraph")
    except Ros1Unavailable as exc:
        pytest.fail(f"ROS 1 is required for tests/edge_ros: {exc}", pytrace=False)
    executable = shutil.which("rosmaster")
    if executable is None:
        pytest.fail("rosmaster is not installed: run `bash scripts/ros1-deps.sh`", pytrace=False)
    root = tmp_path_factory.mktemp("edge-ros")
    uri = f"http://127.0.0.1:{free_port()}"
    log = open(root / "rosmaster.log", "w")
    proc = subprocess.Popen([executable, "--core", "-p", uri.rsplit(":", 1)[1]], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not rosgraph.is_master_online(uri):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            log.close()
            pytest.fail(f"rosmaster did not come up on {uri} (see {log.name})", pytrace=False)
        time.sleep(0.05)
    env = {
        "ROS_MASTER_URI": uri,
        "ROS_HOME": str(root / "ros_home"),
        "ROS_IP": "127.0.0.1",
        "AXON_ROS1_MSGS_DIR": str(root / "ros1_msgs"),
    }
    yield env
    stop_process(proc)
    log.close()
