"""`axon-dagster demo --transport ...`: the demo over ROS 1 (a real rosmaster, recorders serving
ROS 1 services, agents calling them) ends with every task UPLOADED; ros2 is refused clearly where
rclpy does not exist. (`--transport http` is the default: tests/e2e/test_demo.py.)"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from axon_dagster.storage.digest import dataset_digest
from axon_dagster.storage.recording import Sidecar

pytestmark = pytest.mark.slow


def test_demo_over_ros1_uploads_every_task(tmp_path):
    out, work = tmp_path / "demo.json", tmp_path / "work"
    proc = subprocess.run(
        [sys.executable, "-m", "axon_dagster.cli", "demo", "--transport", "ros1", "--robots", "2", "--tasks-per-skill", "1",
         "--duration", "2", "--workdir", str(work), "--json", str(out), "--timeout", "240"],
        capture_output=True, text=True, timeout=330,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    tasks = json.loads(out.read_text())["tasks"]
    assert len(tasks) == 2 and {t["robot_id"] for t in tasks} == {"robot-1", "robot-2"}
    for task in tasks:
        assert task["status"] == "UPLOADED" and task["approved"] is True
        cloud_dir = Path(task["cloud_path"].removeprefix("file://"))
        assert dataset_digest(cloud_dir) == Sidecar.read(cloud_dir.with_suffix(".json")).dataset_digest == task["dataset_digest"]
    # the recorders really were ROS 1 services (no HTTP RPC server) on the fleet's own rosmaster
    logs = work / "logs"
    assert (logs / "rosmaster.log").exists()
    for robot in ("robot_1", "robot_2"):
        sim_log = (logs / f"{robot.replace('_', '-')}-sim.log").read_text()
        assert f"axon-sim serving ROS 1 services under /{robot}/axon/" in sim_log
        assert "axon-sim listening on" not in sim_log


def test_demo_refuses_ros2_without_rclpy(tmp_path):
    try:
        import rclpy  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("rclpy is installed here")
    proc = subprocess.run(
        [sys.executable, "-m", "axon_dagster.cli", "demo", "--transport", "ros2", "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "rclpy" in proc.stderr and "not installed" in proc.stderr
    assert not (tmp_path / "work").exists()  # refused before anything started
