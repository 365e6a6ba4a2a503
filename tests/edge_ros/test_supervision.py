"""Recording supervision and Axon HTTP callbacks against the real HTTP recorder simulator.

Each fault ends with the task FAILED for the right reason, on the robot and in the cloud, within
a bounded time; a task with a duration stops itself; the recorder's finish callback moves a task
to EXECUTED, and the callback endpoint refuses a wrong token (401) and an unknown task (404).
"""

from __future__ import annotations

import os

import httpx
import pytest
from edge_support import RECORDER_TIMEOUT, wait_for

from axon_dagster.domain import TaskStatus
from axon_dagster.recorder.axon_http import AxonHttpRecorder
from axon_dagster.demo.sim import RECORDING

SUPERVISION = {"supervision_interval": 0.2, "unreachable_polls": 2}
BOUND = 15.0  # seconds a fault may take to end in FAILED (a few polls, on a loaded machine)


def _agent(edge_env, **options):
    agent = edge_env.build_agent(**{**SUPERVISION, **options})
    agent.start()
    edge_env._cleanup.append(agent.stop)
    return agent


def _recording(edge_env, agent, duration: float = 60.0) -> str:
    """Dispatch one task, wait until it is READY on the robot, start it; returns its id."""
    (task_id,) = edge_env.dispatch_order(duration=duration)
    wait_for(lambda: agent.get_task(task_id).status is TaskStatus.READY if _known(agent, task_id) else False, what="READY")
    assert agent.teleop(task_id, "start").status is TaskStatus.EXECUTING
    return task_id


def _known(agent, task_id: str) -> bool:
    return any(t.task_id == task_id for t in agent.list_tasks())


def _ends_failed(edge_env, agent, task_id: str, reason_part: str) -> None:
    task = wait_for(
        lambda: (t := agent.get_task(task_id)).status is not TaskStatus.EXECUTING and t, timeout=BOUND, what="task leaves EXECUTING"
    )
    assert task.status is TaskStatus.FAILED, task
    assert reason_part in (task.failure_reason or ""), task.failure_reason
    wait_for(lambda: "FAILED" in edge_env.cloud_statuses(task_id), timeout=BOUND, what="FAILED reaches the cloud")
    cloud = edge_env.admin.get_task(task_id)
    assert reason_part in (cloud.get("failure_reason") or ""), cloud


def test_recorder_that_dies_mid_recording_fails_the_task(edge_env):
    agent = _agent(edge_env)
    task_id = _recording(edge_env, agent)
    edge_env.recorder.sim.set_faults({"die_after_seconds": 0.2})  # the simulator stops answering
    _ends_failed(edge_env, agent, task_id, "recorder unreachable for 2 consecutive status polls")


def test_recording_stopped_behind_the_agents_back_fails_the_task(edge_env):
    agent = _agent(edge_env)  # no callback URL: the recorder cannot tell the agent it finished
    task_id = _recording(edge_env, agent)
    with AxonHttpRecorder(edge_env.recorder.url, timeout_seconds=RECORDER_TIMEOUT) as other:
        assert other.stop_recording().success  # someone else's finish, over the recorder's RPC
    _ends_failed(edge_env, agent, task_id, "recorder stopped recording unexpectedly")


def test_disk_guard_self_pause_fails_the_task_and_frees_the_recorder(edge_env):
    agent = _agent(edge_env)
    task_id = _recording(edge_env, agent)
    sim = edge_env.recorder.sim
    sim.set_faults({"disk_full_after_seconds": 0.1})  # Axon's disk guard pauses the recording itself
    _ends_failed(edge_env, agent, task_id, "the recorder paused itself: Disk hard limit reached")
    # the paused session was this task's: the agent cancelled it, so the robot can record again
    wait_for(lambda: sim.state == "idle", timeout=BOUND, what="recorder idle again")
    assert not (sim.data_dir / f"{task_id}.mcap").exists()


def test_a_disk_guard_pause_between_the_state_and_the_stats_read_is_still_named_and_released(edge_env):
    """Axon's status is two requests (state, then stats): the guard may pause between them, so one
    poll sees "recording" with the guard's hard-limit error. The agent reads again before naming the
    cause — the pause — and releasing the paused session (else the robot could not record again)."""
    import dataclasses

    class TornFirstRead:  # the real client; its first status after the trip is torn as in the race
        def __init__(self, real):
            self.real, self.torn = real, 0

        def get_status(self):
            status = self.real.get_status()
            if status.paused_by_disk_guard and not self.torn:
                self.torn += 1
                return dataclasses.replace(status, state="recording", is_recording=True)
            return status

        def __getattr__(self, name):
            return getattr(self.real, name)

    spy = TornFirstRead(AxonHttpRecorder(edge_env.recorder.url, timeout_seconds=RECORDER_TIMEOUT))
    agent = _agent(edge_env, recorder=spy)
    task_id = _recording(edge_env, agent)
    edge_env.recorder.sim.set_faults({"disk_full_after_seconds": 0.1})
    _ends_failed(edge_env, agent, task_id, "the recorder paused itself: Disk hard limit reached")
    assert spy.torn == 1  # the torn read happened, and did not decide
    wait_for(lambda: edge_env.recorder.sim.state == "idle", timeout=BOUND, what="recorder idle again")


def test_task_with_a_duration_stops_itself(edge_env):
    agent = _agent(edge_env)
    task_id = _recording(edge_env, agent, duration=1.0)
    task = wait_for(
        lambda: (t := agent.get_task(task_id)).status is TaskStatus.EXECUTED and t, timeout=1.0 + RECORDER_TIMEOUT, what="EXECUTED"
    )
    assert task.dataset_path and task.sidecar_path
    assert (task.executed_at - task.executing_at).total_seconds() >= 1.0
    assert edge_env.recorder.sim.state != RECORDING
    wait_for(lambda: "EXECUTED" in edge_env.cloud_statuses(task_id), timeout=BOUND, what="EXECUTED reaches the cloud")
    # a collector's stop arriving after the automatic one is a harmless duplicate
    assert agent.teleop(task_id, "stop").status is TaskStatus.EXECUTED


def test_supervision_leaves_a_healthy_recording_alone(edge_env):
    agent = _agent(edge_env)
    task_id = _recording(edge_env, agent)
    for _ in range(5):
        assert agent.supervisor.check_once() is None
    assert agent.get_task(task_id).status is TaskStatus.EXECUTING
    assert agent.teleop(task_id, "stop").status is TaskStatus.EXECUTED


# -- Axon HTTP callbacks ---------------------------------------------------------------------


def _served(edge_env):
    running = edge_env.start_agent(**SUPERVISION)  # serves /callbacks/recording, configs carry it
    return running, running.agent


def test_finish_callback_moves_the_task_to_executed(edge_env):
    running, agent = _served(edge_env)
    task_id = _recording(edge_env, agent)
    config = agent.get_task(task_id).config_path
    text = open(config).read()
    assert f"{running.url}/callbacks/recording" in text and agent.callback_token in text
    with AxonHttpRecorder(edge_env.recorder.url, timeout_seconds=RECORDER_TIMEOUT) as other:
        finished = other.stop_recording()  # behind the agent's back: the recorder calls back
    assert finished.success
    task = wait_for(lambda: (t := agent.get_task(task_id)).status is not TaskStatus.EXECUTING and t, timeout=BOUND, what="moved")
    assert task.status is TaskStatus.EXECUTED, task.failure_reason
    assert task.dataset_path and os.path.isfile(task.dataset_path) and task.dataset_path.endswith(".mcap")
    # a late manual stop is a harmless duplicate
    assert agent.teleop(task_id, "stop").status is TaskStatus.EXECUTED


def test_callback_endpoint_checks_token_and_task(edge_env):
    running, agent = _served(edge_env)
    task_id = _recording(edge_env, agent)
    url = f"{running.url}/callbacks/recording"
    body = {"task_id": task_id, "status": "finished", "dataset_path": "/nowhere"}
    with httpx.Client(timeout=10) as http:
        assert http.post(url, json=body).status_code == 401
        assert http.post(url, json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        auth = {"Authorization": f"Bearer {agent.callback_token}"}
        assert http.post(url, json={**body, "task_id": "no_such_task"}, headers=auth).status_code == 404
        assert http.post(url, json={**body, "status": "exploded"}, headers=auth).status_code == 422
        assert agent.get_task(task_id).status is TaskStatus.EXECUTING  # nothing changed so far
        # the manual stop wins; the recorder's own finish callback then arrives and changes nothing
        stopped = agent.teleop(task_id, "stop")
        assert stopped.status is TaskStatus.EXECUTED
        again = http.post(url, json=body, headers=auth)
        assert again.status_code == 200 and again.json()["status"] == "EXECUTED"
        assert agent.get_task(task_id).dataset_path == stopped.dataset_path != "/nowhere"


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_failed_or_cancelled_callback_fails_the_task(edge_env, status):
    running, agent = _served(edge_env)
    task_id = _recording(edge_env, agent)
    reply = httpx.post(
        f"{running.url}/callbacks/recording",
        json={"task_id": task_id, "status": status, "error": "encoder crashed"},
        headers={"Authorization": f"Bearer {agent.callback_token}"},
        timeout=10,
    )
    assert reply.status_code == 200
    task = agent.get_task(task_id)
    assert task.status is TaskStatus.FAILED and f"recording {status}" in task.failure_reason
