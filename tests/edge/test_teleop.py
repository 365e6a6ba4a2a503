"""Collector actions through the agent's HTTP surface: duplicate presses are harmless, refused
requests get a clear 4xx and change nothing, recorder failures get a clear 5xx (and FAILED only
when a recording was really lost)."""

from __future__ import annotations

import httpx
import pytest
from edge_support import RECORDER_TIMEOUT, RecorderSpy, wait_for

from axon_dagster.domain import TaskStatus
from axon_dagster.recorder.axon_http import AxonHttpRecorder


@pytest.fixture
def ready_agent(edge_env):
    """Two READY tasks on a running agent whose recorder client is spied on."""
    task_ids = edge_env.dispatch_order(task_count=2)
    spy = RecorderSpy(AxonHttpRecorder(edge_env.recorder.url, timeout_seconds=RECORDER_TIMEOUT))
    running = edge_env.start_agent(recorder=spy)
    wait_for(lambda: {t.task_id for t in running.agent.list_tasks(TaskStatus.READY)} == set(task_ids), what="READY")
    http = httpx.Client(base_url=running.url, timeout=30)
    yield running, http, spy, task_ids
    http.close()


def snapshot(agent):
    """What a collector request could change. The cloud revision (and the cloud status echo in
    metadata) move on their own as the sync loop pulls the echo of our own events."""
    tasks = [
        {k: v for k, v in t.to_dict().items() if k not in ("cloud_revision", "metadata")} for t in agent.list_tasks()
    ]
    return tasks, [e.event_id for e in agent.db.outbox()]


def test_duplicate_presses_are_harmless(ready_agent, edge_env):
    running, http, spy, (task_id, _) = ready_agent
    for _ in range(2):
        reply = http.post(f"/tasks/{task_id}/pickup", json={"collector_id": "alice"})
        assert reply.status_code == 200 and reply.json()["status"] == "ASSIGNED"
    for _ in range(3):
        reply = http.post("/teleop", json={"task_id": task_id, "command": "start"})
        assert reply.status_code == 200 and reply.json()["status"] == "EXECUTING"
    assert spy.calls["start_recording"] == 1
    for _ in range(2):
        reply = http.post("/teleop", json={"task_id": task_id, "command": "stop"})
        assert reply.status_code == 200 and reply.json()["status"] == "EXECUTED"
    # A late start press after the stop is a stale duplicate too.
    late = http.post("/teleop", json={"task_id": task_id, "command": "start"})
    assert late.status_code == 200 and late.json()["status"] == "EXECUTED"
    assert spy.calls["start_recording"] == 1 and spy.calls["stop_recording"] == 1
    own = [e.event_id for e in running.agent.db.outbox() if e.task_id == task_id]
    assert own == [f"{task_id}.ready", f"{task_id}.assigned", f"{task_id}.executing", f"{task_id}.executed"]
    wait_for(lambda: edge_env.cloud_statuses(task_id) == ["READY", "ASSIGNED", "EXECUTING", "EXECUTED"], what="events")


def test_refused_requests_get_clear_errors_and_change_nothing(ready_agent):
    running, http, spy, (task_id, other_id) = ready_agent
    before = snapshot(running.agent)
    cases = [
        (http.post("/teleop", json={"task_id": task_id, "command": "stop"}), 409, "not recording"),
        (http.get("/tasks/no-such-task"), 404, "not known"),
        (http.get("/tasks/bad..id"), 422, "'..'"),
        (http.post("/teleop", json={"task_id": "a b", "command": "start"}), 422, "task_id"),
        (http.post("/teleop", json={"task_id": task_id, "command": "jump"}), 422, "unknown teleop command"),
        (http.post("/teleop", json={"task_id": task_id}), 422, "missing field(s): command"),
        (http.post("/teleop", json={"task_id": task_id, "command": "start", "force": True}), 422, "unknown field"),
        (http.post("/teleop", content=b"{not json", headers={"content-type": "application/json"}), 422, "JSON object"),
        (http.post("/teleop", json=["start"]), 422, "JSON object"),
        (http.post(f"/tasks/{task_id}/pickup", json={"collector_id": "../root"}), 422, "collector_id"),
        (http.post(f"/tasks/{task_id}/pickup", json={"collector_id": 7}), 422, "must be a string"),
        (http.post("/tasks/no-such-task/pickup", json={"collector_id": "alice"}), 404, "not known"),
        (http.get("/tasks", params={"status": "SLEEPING"}), 422, "unknown task status"),
        (http.get("/tasks", params={"robot": "x"}), 422, "unknown query parameter"),
    ]
    for reply, code, text in cases:
        assert reply.status_code == code, (reply.request.url, reply.text)
        assert text in reply.json()["detail"], reply.json()
    assert snapshot(running.agent) == before
    assert spy.calls.get("start_recording", 0) == 0 and spy.calls.get("stop_recording", 0) == 0


def test_conflicts_busy_recorder_and_taken_tasks(ready_agent):
    running, http, spy, (first, second) = ready_agent
    assert http.post(f"/tasks/{first}/pickup", json={"collector_id": "alice"}).status_code == 200
    taken = http.post(f"/tasks/{first}/pickup", json={"collector_id": "bob"})
    assert taken.status_code == 409 and "already picked up by alice" in taken.json()["detail"]
    assert http.post("/teleop", json={"task_id": first, "command": "start"}).status_code == 200

    before = snapshot(running.agent)
    busy = http.post("/teleop", json={"task_id": second, "command": "start"})
    assert busy.status_code == 409 and f"busy recording task {first}" in busy.json()["detail"]
    late_pickup = http.post(f"/tasks/{first}/pickup", json={"collector_id": "alice"})
    assert late_pickup.status_code == 409 and "EXECUTING" in late_pickup.json()["detail"]
    assert snapshot(running.agent) == before and spy.calls["start_recording"] == 1

    assert http.post("/teleop", json={"task_id": first, "command": "stop"}).status_code == 200
    # Start without pickup (READY -> EXECUTING) is allowed once the recorder is free.
    started = http.post("/teleop", json={"task_id": second, "command": "start"})
    assert started.status_code == 200 and started.json()["status"] == "EXECUTING"
    assert started.json()["data_collector_id"] is None
    assert http.post("/teleop", json={"task_id": second, "command": "stop"}).json()["status"] == "EXECUTED"


def test_recorder_refusing_or_down_at_start_leaves_the_task_ready(ready_agent, edge_env):
    running, http, spy, (task_id, _) = ready_agent
    faults = httpx.post(edge_env.recorder.url + "/sim/faults", json={"fail_start": True})
    assert faults.json()["success"]
    refused = http.post("/teleop", json={"task_id": task_id, "command": "start"})
    assert refused.status_code == 502 and "simulated start failure" in refused.json()["detail"]
    assert running.agent.get_task(task_id).status.value == "READY"
    assert running.agent.get_task(task_id).pending_command is None

    httpx.post(edge_env.recorder.url + "/sim/faults", json={})
    edge_env.recorder.stop()
    down = http.post("/teleop", json={"task_id": task_id, "command": "start"})
    assert down.status_code == 503 and "unreachable" in down.json()["detail"]
    assert running.agent.get_task(task_id).status.value == "READY"
    assert f"{task_id}.executing" not in [e.event_id for e in running.agent.db.outbox()]

    edge_env.recorder.start()
    ok = http.post("/teleop", json={"task_id": task_id, "command": "start"})
    assert ok.status_code == 200 and ok.json()["status"] == "EXECUTING"


def test_recording_lost_to_a_recorder_crash_fails_the_task_with_the_reason(ready_agent, edge_env):
    running, http, spy, (task_id, _) = ready_agent
    started = http.post("/teleop", json={"task_id": task_id, "command": "start"})
    assert started.status_code == 200
    # The recorder dies mid-recording and comes back empty (idle, nothing written).
    edge_env.recorder.restart()
    lost = http.post("/teleop", json={"task_id": task_id, "command": "stop"})
    assert lost.status_code == 502
    assert lost.json()["task_failed"] is True and "recording lost" in lost.json()["detail"]
    task = running.agent.get_task(task_id)
    assert task.status.value == "FAILED" and "recording lost" in task.failure_reason
    wait_for(lambda: edge_env.admin.get_task(task_id)["status"] == "FAILED", what="FAILED in the cloud")
    assert "recording lost" in edge_env.admin.get_task(task_id)["failure_reason"]
    assert edge_env.cloud_statuses(task_id) == ["READY", "EXECUTING", "FAILED"]
