"""AXON_V04.md, "Callbacks": start/finish callbacks with Bearer user_token, the real fields, the
finish callback possibly after the finish reply; a cancel sends none."""

from __future__ import annotations

import re
import time

import httpx
from edge_support import wait_for

from axon_dagster.domain import TaskStatus
from tests.conformance.conftest import assert_taken_from_recorder
from axon_dagster.recorder.axon_http import AxonHttpRecorder

WHOLE_SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def _configure(axon, cb_url: str, task_id: str = "t1", **extra) -> None:
    config = {
        "task_id": task_id, "device_id": "robot-1", "scene": "warehouse", "subscene": "aisle_1", "factory": "plant-a",
        "skills": ["pick"], "topics": ["/imu"], "start_callback_url": f"{cb_url}/cb/start",
        "finish_callback_url": f"{cb_url}/cb/finish", "user_token": "tok-9", **extra,
    }
    assert axon.post("/rpc/config", {"task_config": config}).json()["success"]


def test_start_and_finish_callbacks_sim(axon, callback_receiver):
    cb_url, received = callback_receiver
    _configure(axon, cb_url)
    axon.post("/rpc/begin", {"task_id": "t1"})
    wait_for(lambda: len(received) == 1, what="start callback")
    time.sleep(0.3)
    axon.post("/rpc/finish", {"task_id": "t1"})
    wait_for(lambda: len(received) == 2, what="finish callback")
    start, finish = received
    assert start["path"] == "/cb/start" and start["auth"] == "Bearer tok-9"
    assert start["body"].keys() == {"task_id", "device_id", "status", "started_at", "topics"}
    assert (start["body"]["status"], start["body"]["topics"]) == ("recording", ["/imu"])
    assert WHOLE_SECONDS.fullmatch(start["body"]["started_at"])
    body = finish["body"]
    assert finish["auth"] == "Bearer tok-9" and body["status"] == "finished"
    assert {"started_at", "finished_at", "duration_sec", "message_count", "output_path", "sidecar_path",
            "sidecar_enabled", "sidecar_generated", "file_size_bytes", "metadata"} <= set(body)
    assert WHOLE_SECONDS.fullmatch(body["finished_at"])
    assert body["output_path"] == str(axon.data_dir / "t1.mcap")
    assert body["metadata"] == {"scene": "warehouse", "subscene": "aisle_1", "skills": ["pick"], "factory": "plant-a"}


def test_finish_callback_duration_excludes_pauses_sim(axon, callback_receiver):
    cb_url, received = callback_receiver
    _configure(axon, cb_url)
    axon.post("/rpc/begin", {"task_id": "t1"})
    time.sleep(0.2)
    axon.post("/rpc/pause", {})
    time.sleep(0.5)
    axon.post("/rpc/resume", {})
    axon.post("/rpc/finish", {"task_id": "t1"})
    wait_for(lambda: len(received) == 2, what="finish callback")
    assert received[1]["body"]["duration_sec"] < 0.5, "pauses excluded (the sidecar's duration includes them)"


def test_finish_callback_can_arrive_after_the_finish_reply_sim(axon, callback_receiver):
    cb_url, received = callback_receiver
    axon.sim.set_faults({"finish_callback_delay_seconds": 0.5})
    _configure(axon, cb_url)
    axon.post("/rpc/begin", {"task_id": "t1"})
    wait_for(lambda: len(received) == 1, what="start callback")
    axon.post("/rpc/finish", {"task_id": "t1"})
    assert len(received) == 1, "the reply came before the finish callback"
    wait_for(lambda: len(received) == 2, what="late finish callback")


def test_a_late_finish_callback_gives_the_agent_the_path_client(edge_env):
    """A recorder whose stats do not name the file: the agent waits for the finish callback,
    which arrives after the finish reply, and takes the output path from it."""

    class NoStatsMetadata(AxonHttpRecorder):
        def last_output(self, task_id):
            return {}

        def stop_recording(self):
            response = super().stop_recording()
            return type(response)(response.success, response.message, response.flushed_batches)

    recorder = NoStatsMetadata(edge_env.recorder.url, retry_attempts=0, timeout_seconds=30)
    running = edge_env.start_agent(recorder=recorder)  # serves /callbacks/recording; configs carry it
    agent = running.agent
    (task_id,) = edge_env.dispatch_order()
    wait_for(lambda: any(t.task_id == task_id and t.status is TaskStatus.READY for t in agent.list_tasks()), what="READY")
    edge_env.recorder.sim.set_faults({"finish_callback_delay_seconds": 1.0})  # taken at begin
    agent.teleop(task_id, "start")
    t0 = time.monotonic()
    task = agent.teleop(task_id, "stop")
    assert task.status is TaskStatus.EXECUTED, task.failure_reason
    assert time.monotonic() - t0 >= 0.9, "it waited for the callback"
    assert_taken_from_recorder(edge_env, task)


def test_callback_token_is_checked_client(edge_env):
    running = edge_env.start_agent()
    url = f"{running.url}/callbacks/recording"
    assert httpx.post(url, json={"task_id": "x", "status": "finished"}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert running.agent.callback_token in open(running.agent.config_dir.parent / "callback.token").read()


def test_cancel_sends_no_callback_sim(axon, callback_receiver):
    cb_url, received = callback_receiver
    _configure(axon, cb_url)
    axon.post("/rpc/begin", {"task_id": "t1"})
    wait_for(lambda: len(received) == 1, what="start callback")
    axon.post("/rpc/cancel", {})
    time.sleep(0.5)
    assert [r["path"] for r in received] == ["/cb/start"]


def test_a_cancelled_recording_is_seen_by_polling_client(edge_env):
    """No callback comes for a cancel: supervision's polling fails the task."""
    agent = edge_env.build_agent(supervision_interval=0.2)
    agent.start()
    edge_env._cleanup.append(agent.stop)
    (task_id,) = edge_env.dispatch_order(duration=60)
    wait_for(lambda: any(t.task_id == task_id and t.status is TaskStatus.READY for t in agent.list_tasks()), what="READY")
    agent.teleop(task_id, "start")
    httpx.post(f"{edge_env.recorder.url}/rpc/cancel", json={})  # someone cancels at the recorder
    task = wait_for(lambda: (t := agent.get_task(task_id)).status is not TaskStatus.EXECUTING and t, timeout=15, what="FAILED")
    assert task.status is TaskStatus.FAILED and "stopped recording unexpectedly" in task.failure_reason
