"""`axon-dagster demo --transport ...`: the demo over ROS 1 (a real rosmaster per robot, recorders
serving ROS 1 services, agents calling them) and over ROS 2 (recorders as rclpy nodes, agents
calling them and listening for teleop on ROS 2, all on loopback in a domain of each robot's own)
ends with every task UPLOADED and its published copy verified, each robot as its own OS user where
the demo can make users. (`--transport http` is the default: tests/e2e/test_demo.py.)"""

import json
import os
import subprocess
import sys

import pytest

from demo_checks import check_isolation, check_published

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("transport", ["ros1", "ros2"])
def test_demo_over_ros_uploads_every_task(demo_workdir, tmp_path, transport):
    out, work = tmp_path / "demo.json", demo_workdir
    proc = subprocess.run(
        [sys.executable, "-m", "axon_dagster.cli", "demo", "--transport", transport, "--robots", "2", "--tasks-per-skill", "1",
         "--duration", "2", "--workdir", str(work), "--json", str(out), "--timeout", "240"],
        capture_output=True, text=True, timeout=330,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())
    tasks = result["tasks"]
    assert len(tasks) == 2 and {t["robot_id"] for t in tasks} == {"robot-1", "robot-2"}
    check_published(tasks, work / "cloud" / "lake")
    # as root: each robot's rosmaster, recorder and agent as its own user; the cloud cannot read them
    check_isolation(result["isolation"], ["robot-1", "robot-2"], transport)
    # the recorders really were ROS services (no HTTP RPC server): on each robot's own rosmaster
    # (ROS 1), or in a ROS 2 domain of the robot's own, not this test run's
    logs = work / "logs"
    for robot in ("robot_1", "robot_2"):
        assert (logs / f"{robot.replace('_', '-')}-rosmaster.log").exists() == (transport == "ros1")
        sim_log = (logs / f"{robot.replace('_', '-')}-sim.log").read_text()
        assert f"axon-sim serving ROS {transport[-1]} services under /{robot}/axon/" in sim_log
        assert "axon-sim listening on" not in sim_log
        if transport == "ros2":
            domain = int(sim_log.split("ROS_DOMAIN_ID ", 1)[1].split(")", 1)[0])
            assert domain not in (0, int(os.environ["ROS_DOMAIN_ID"]))
            edge_log = (logs / f"{robot.replace('_', '-')}-edge.log").read_text()
            assert "listening for teleop commands on ROS 2 topic /teleop/recording_commands" in edge_log
