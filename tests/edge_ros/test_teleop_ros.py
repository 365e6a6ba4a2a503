"""Teleop over ROS 1 and ROS 2, all real processes: the recorder simulator serving its ROS services
under ``robot_1/axon``, ``axon-edge run --recorder-transport rosN --teleop rosN``, and a teleop
device node publishing on /teleop/recording_commands and reading the feedback — on a real
rosmaster (ROS 1) or on the run's loopback DDS domain (ROS 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from edge_support import REPO_ROOT, wait_for
from ros_support import axon_sim_command, free_port, read_line, stop_process

NAMESPACE = "robot_1/axon"
FEEDBACK_TIMEOUT = 60.0  # a stop makes the simulator write the Lance dataset first


def _child_env(ros_master: dict[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ROS_HOSTNAME"}
    return {**env, **ros_master, **extra}


@pytest.fixture(params=["ros1", "ros2"])
def ros_robot(request, edge_env, ros_master, tmp_path):
    """The simulator and the agent (recorder + teleop over the same ROS generation) as processes;
    yields (generation, agent url, agent log)."""
    generation = request.param
    children: list[subprocess.Popen] = []
    sim_log = tmp_path / "sim.log"
    sim = subprocess.Popen(
        [*axon_sim_command(), "--transport", generation, "--namespace", NAMESPACE,
         "--data-dir", str(tmp_path / "recordings"), "--robot-id", edge_env.robot_id],
        env=_child_env(ros_master), stdout=subprocess.PIPE, stderr=open(sim_log, "w"), text=True,
    )
    children.append(sim)
    agent_log = tmp_path / "agent.log"
    port = free_port()
    try:
        line = read_line(sim.stdout, 30)
        assert f"serving ROS {generation[-1]} services under /{NAMESPACE}/" in line, f"{line!r}\n{sim_log.read_text()}"
        agent = subprocess.Popen(
            [sys.executable, "-m", "axon_edge.cli", "run", "--host", "127.0.0.1", "--port", str(port), "--debug-routes",
             "--poll-interval", "0.2", "--supervision-interval", "0.5"],
            env=_child_env(
                ros_master,
                AXON_ROBOT_ID=edge_env.robot_id, AXON_CONTROL_PLANE_URL=edge_env.control_plane.url,
                AXON_ROBOT_TOKEN=edge_env.robot_token, AXON_EDGE_DATA_DIR=str(edge_env.data_dir),
                AXON_RECORDER_TRANSPORT=generation, AXON_RECORDER_NAMESPACE=NAMESPACE, AXON_TELEOP=generation,
            ),
            cwd=REPO_ROOT, stdout=open(agent_log, "wb"), stderr=subprocess.STDOUT,
        )
        children.append(agent)
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            assert agent.poll() is None, f"agent exited with {agent.returncode}:\n{agent_log.read_text()}"
            try:
                return httpx.get(url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=40, what="axon-edge with ROS teleop")
        yield generation, url, agent_log
        agent.terminate()  # a clean shutdown with a ROS node in the process: exit 0, in time
        assert agent.wait(timeout=20) == 0, agent_log.read_text()[-3000:]
        assert "edge agent robot-1 stopped" in agent_log.read_text()
    finally:
        for child in reversed(children):
            stop_process(child, timeout=10)


@pytest.fixture
def device(ros_master, ros_robot):
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("teleop_device.py")), ros_robot[0]],
        env=_child_env(ros_master), cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert read_line(proc.stdout, 40).strip() == "READY"

        def press(message: str) -> dict:
            proc.stdin.write(message + "\n")
            proc.stdin.flush()
            line = read_line(proc.stdout, FEEDBACK_TIMEOUT)
            assert line.startswith("FEEDBACK "), f"no feedback for {message!r}: {line!r}"
            return json.loads(line.removeprefix("FEEDBACK "))

        yield press
    finally:
        stop_process(proc)


def _status(url: str, task_id: str) -> str:
    return httpx.get(f"{url}/tasks/{task_id}", timeout=5).json()["status"]


def test_teleop_commands_over_ros_drive_the_recording(edge_env, ros_robot, device):
    generation, url, agent_log = ros_robot
    first, second = edge_env.dispatch_order(task_count=2, duration=120.0)
    wait_for(lambda: all(_status(url, t) == "READY" for t in (first, second)) if _known(url, first, second) else False,
             timeout=40, what=f"both tasks READY (configs pushed over {generation})")

    fb = device(json.dumps({"task_id": first, "command": "start"}))
    assert fb == {"task_id": first, "command": "start", "ok": True, "error": None, "status": "EXECUTING"}
    assert _status(url, first) == "EXECUTING"
    # a duplicate press is harmless
    assert device(json.dumps({"task_id": first, "command": "start"}))["ok"] is True
    assert _status(url, first) == "EXECUTING"

    # refusals: a clear error on the feedback topic (and in the log), nothing changes
    fb = device(json.dumps({"task_id": second, "command": "stop"}))
    assert fb["ok"] is False and fb["task_id"] == second and "not recording" in fb["error"]
    fb = device("{not json")
    assert fb["ok"] is False and "not JSON" in fb["error"]
    fb = device(json.dumps({"task_id": "no_such_task", "command": "start"}))
    assert fb["ok"] is False and "not known on this robot" in fb["error"]
    fb = device(json.dumps({"task_id": first, "command": "jump"}))
    assert fb["ok"] is False and "unknown teleop command" in fb["error"]
    fb = device(json.dumps({"task": first}))
    assert fb["ok"] is False and "task_id and command" in fb["error"]
    assert _status(url, first) == "EXECUTING" and _status(url, second) == "READY"
    assert "cannot stop task" in agent_log.read_text()

    fb = device(json.dumps({"task_id": first, "command": "stop"}))
    assert fb["ok"] is True and fb["status"] == "EXECUTED", fb
    task = httpx.get(f"{url}/tasks/{first}", timeout=5).json()
    assert task["status"] == "EXECUTED" and task["dataset_path"] and Path(task["dataset_path"]).is_file()
    assert device(json.dumps({"task_id": first, "command": "stop"}))["ok"] is True  # duplicate stop

    wait_for(lambda: edge_env.cloud_statuses(first)[-1:] == ["EXECUTED"], timeout=15, what="EXECUTED in the cloud")
    assert edge_env.cloud_statuses(first)[-3:] == ["READY", "EXECUTING", "EXECUTED"]
    assert edge_env.cloud_statuses(second)[-1] == "READY"
    modules = httpx.get(f"{url}/debug/modules", timeout=5).json()["modules"]
    assert ("rospy" in modules, "rclpy" in modules) == ((True, False) if generation == "ros1" else (False, True))
    assert not {"dagster", "ray", "daft", "fastapi", "sqlalchemy", "boto3", "lance", "pyarrow"} & set(modules)


def _known(url: str, *task_ids: str) -> bool:
    known = {t["task_id"] for t in httpx.get(f"{url}/tasks", timeout=5).json()["tasks"]}
    return set(task_ids) <= known


def test_http_only_agent_never_imports_ros(edge_env):
    process = edge_env.agent_process()
    modules = httpx.get(f"{process.url}/debug/modules", timeout=5).json()["modules"]
    assert "rospy" not in modules and "rosgraph" not in modules and "rclpy" not in modules
