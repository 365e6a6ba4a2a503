"""Nothing is lost: the control plane down while the robot records, the agent process killed
with SIGKILL mid-task and restarted, a recorder command left in flight by a crash."""

from __future__ import annotations

import sqlite3
import time

import httpx
import pytest
from edge_support import RECORDER_TIMEOUT, wait_for
from test_imports import FORBIDDEN

from axon_dagster.domain import TaskStatus
from axon_dagster.recorder.axon_http import AxonHttpRecorder
from axon_edge.db import EdgeDB

FULL_CYCLE = ["READY", "ASSIGNED", "EXECUTING", "EXECUTED"]


def record_one(http: httpx.Client, task_id: str, seconds: float = 0.3) -> dict:
    for request in (
        ("/tasks/" + task_id + "/pickup", {"collector_id": "alice"}),
        ("/teleop", {"task_id": task_id, "command": "start"}),
    ):
        reply = http.post(*request[:1], json=request[1])
        assert reply.status_code == 200, reply.text
    time.sleep(seconds)
    stopped = http.post("/teleop", json={"task_id": task_id, "command": "stop"})
    assert stopped.status_code == 200, stopped.text
    return stopped.json()


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"metric {name} not exposed:\n{text}")


def assert_each_event_once_in_order(edge_env, local_events: list[tuple[str, str]]) -> None:
    cloud = [(e["task_id"], e["status"]) for e in edge_env.events()]
    assert cloud == local_events
    ids = [e["event_id"] for e in edge_env.events()]
    assert len(ids) == len(set(ids))


def test_control_plane_down_while_recording_then_everything_arrives_in_order(edge_env):
    first, second = edge_env.dispatch_order(task_count=2)
    running = edge_env.start_agent()
    http = httpx.Client(base_url=running.url, timeout=RECORDER_TIMEOUT)
    wait_for(lambda: len(edge_env.events()) == 2, what="both READY events in the cloud")

    edge_env.control_plane.stop()
    executed = record_one(http, first)
    assert http.post(f"/tasks/{second}/pickup", json={"collector_id": "bob"}).status_code == 200

    status = wait_for(
        lambda: (s := http.get("/status").json())["outbox"]["last_error"] and s, what="a failed delivery attempt"
    )
    assert status["outbox"]["backlog"] == 4 and "unavailable" in status["outbox"]["last_error"]
    metrics = http.get("/metrics").text
    assert metric(metrics, "axon_edge_outbox_backlog") == 4
    assert metric(metrics, "axon_edge_outbox_oldest_undelivered_age_seconds") > 0
    assert metric(metrics, "axon_edge_control_plane_pull_ok") == 0
    # Every event has been tried (events queued after the first failed attempt wait for the next one).
    wait_for(lambda: all(e.attempts >= 1 for e in running.agent.db.undelivered_events()), what="every event tried")
    assert edge_env.admin  # the cloud is still down: nothing of this reached it yet

    edge_env.control_plane.start()
    wait_for(lambda: running.agent.db.outbox_backlog().count == 0, timeout=15, what="outbox drained")
    local = [(e.task_id, e.status.value) for e in running.agent.db.outbox()]
    assert local == [
        (first, "READY"), (second, "READY"),
        (first, "ASSIGNED"), (first, "EXECUTING"), (first, "EXECUTED"), (second, "ASSIGNED"),
    ]
    assert_each_event_once_in_order(edge_env, local)
    cloud_task = edge_env.admin.get_task(first)
    assert cloud_task["status"] == "EXECUTED" and cloud_task["dataset_path"] == executed["dataset_path"]
    assert all(e.result == "applied" for e in running.agent.db.outbox())


def test_agent_killed_mid_task_and_restarted_loses_no_event(edge_env):
    [task_id] = edge_env.dispatch_order()
    agent = edge_env.agent_process()
    wait_for(lambda: edge_env.cloud_statuses(task_id) == ["READY"], what="READY in the cloud")

    # The control plane goes away, so what happens next can only live in the robot's outbox.
    edge_env.control_plane.stop()
    http = httpx.Client(base_url=agent.url, timeout=RECORDER_TIMEOUT)
    assert http.post(f"/tasks/{task_id}/pickup", json={"collector_id": "alice"}).status_code == 200
    started = http.post("/teleop", json={"task_id": task_id, "command": "start"})
    assert started.status_code == 200 and started.json()["status"] == "EXECUTING"
    agent.kill()

    # What the power cut left on disk: the changes and their events, undelivered.
    with sqlite3.connect(edge_env.data_dir / "edge.db") as db:
        rows = db.execute("SELECT event_id, delivered_at FROM outbox ORDER BY id").fetchall()
        status = db.execute("SELECT status FROM tasks WHERE task_id = ?", (task_id,)).fetchone()[0]
    assert [(event_id, delivered is not None) for event_id, delivered in rows] == [
        (f"{task_id}.ready", True), (f"{task_id}.assigned", False), (f"{task_id}.executing", False),
    ]
    assert status == "EXECUTING"

    restarted = edge_env.agent_process()
    http = httpx.Client(base_url=restarted.url, timeout=RECORDER_TIMEOUT)
    # Robots are small: the running agent process has loaded no heavy framework.
    modules = set(http.get("/debug/modules").json()["modules"])
    assert "axon_edge" in modules and not modules & set(FORBIDDEN)
    # The recording went on while the agent was dead; the restarted agent stops it.
    stopped = http.post("/teleop", json={"task_id": task_id, "command": "stop"})
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["status"] == "EXECUTED" and stopped.json()["dataset_path"].endswith(f"{task_id}.mcap")
    assert http.get("/status").json()["outbox"]["backlog"] == 3

    edge_env.control_plane.start()
    wait_for(lambda: http.get("/status").json()["outbox"]["backlog"] == 0, timeout=15, what="outbox drained")
    assert edge_env.cloud_statuses(task_id) == FULL_CYCLE
    assert_each_event_once_in_order(edge_env, [(task_id, s) for s in FULL_CYCLE])
    assert edge_env.admin.get_task(task_id)["status"] == "EXECUTED"

    assert restarted.terminate() == 0  # SIGTERM: clean shutdown, exit 0
    assert "edge agent robot-1 stopped" in restarted.log()


def test_second_agent_on_the_same_data_dir_is_refused(edge_env):
    running = edge_env.start_agent()
    from axon_edge.errors import DataDirLocked

    with pytest.raises(DataDirLocked, match="already running"):
        edge_env.build_agent()
    assert running.agent.running


@pytest.mark.parametrize("crash_point", ["after recorder start", "before recorder start", "after recorder stop"])
def test_restart_settles_a_recorder_command_left_in_flight(edge_env, crash_point):
    """The agent marks a recorder command as in flight before sending it; a crash between the
    recorder acting and the local commit is settled at restart by asking the recorder."""
    # A long duration: the agent's own stop at duration must not race the checks below on a slow machine.
    [task_id] = edge_env.dispatch_order(duration=600)
    first = edge_env.start_agent()
    wait_for(lambda: first.agent.list_tasks(TaskStatus.READY), what="READY")
    config_path = first.agent.get_task(task_id).config_path
    if crash_point == "after recorder stop":
        first.agent.teleop(task_id, "start")
    first.stop()

    # Replay exactly what the agent does before it would have committed, then "crash".
    recorder = AxonHttpRecorder(edge_env.recorder.url, timeout_seconds=RECORDER_TIMEOUT)
    db = EdgeDB(edge_env.data_dir / "edge.db")
    if crash_point == "after recorder start":
        db.set_pending_command(task_id, "start")
        recorder.start_recording(config_path)
    elif crash_point == "before recorder start":
        db.set_pending_command(task_id, "start")
    else:
        db.set_pending_command(task_id, "stop")
        recorder.stop_recording()
    db.close()

    second = edge_env.start_agent()  # start() settles before serving
    task = second.agent.get_task(task_id)
    assert task.pending_command is None
    if crash_point == "after recorder start":
        assert task.status is TaskStatus.EXECUTING
        assert second.agent.teleop(task_id, "stop").status is TaskStatus.EXECUTED
        expected = ["READY", "EXECUTING", "EXECUTED"]
    elif crash_point == "before recorder start":
        assert task.status is TaskStatus.READY and not recorder.get_status().is_recording
        expected = ["READY"]
    else:
        assert task.status is TaskStatus.EXECUTED and task.sidecar_path.endswith(f"{task_id}.json")
        expected = ["READY", "EXECUTING", "EXECUTED"]
    wait_for(lambda: edge_env.cloud_statuses(task_id) == expected, what=f"cloud events {expected}")
