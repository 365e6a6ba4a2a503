"""Recording jobs request recordings from robots through a real control-plane API; the robot's side
(pull, READY, teleop start, EXECUTED or FAILED) is played through the robot's own API client, as its
edge agent would. Nothing here talks to a recorder."""

from __future__ import annotations

import threading
import time
import uuid

import dagster as dg
import pytest

from axon_dagster.defs.recording import (
    LANCE_DATASET,
    conditional_recording,
    lance_dataset,
    multi_session_recording,
    simple_recording,
)
from axon_dagster.recorder import AxonHttpRecorder
from axon_dagster.storage.recording import Sidecar, sidecar_path


def run(job, run_config, resources, instance, **kwargs):
    return job.execute_in_process(run_config=run_config, resources=resources, instance=instance, raise_on_error=False, **kwargs)


def failure_message(result) -> str:
    return " | ".join(str(e.event_specific_data.error.message) for e in result.all_events if e.is_step_failure)


def form(recording_id: str | None = "rec-1", **fields):
    base = {"robot_id": "robot-1", "scene": "warehouse", "sub_scene": "aisle_1", "skills": ["pick_place"],
            "duration_seconds": 2.0, "topics": ["/imu"], "poll_interval_seconds": 0.05, "timeout_seconds": 30.0}
    return {**base, **({"recording_id": recording_id} if recording_id else {}), **fields}


class PlayedRobot:
    """robot-1's edge agent, as the control plane sees it: every task it pulls goes READY ->
    EXECUTING -> ``outcome`` (EXECUTED, or FAILED with ``reason``)."""

    def __init__(self, client, outcome: str = "EXECUTED", reason: str = ""):
        self.client, self.outcome, self.reason = client, outcome, reason
        self.recorded: list[tuple[str, float]] = []  # (task_id, when)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)

    def _push(self, task_id: str, status: str, data: dict | None = None) -> None:
        [result] = self.client.push_events([{"event_id": uuid.uuid4().hex, "task_id": task_id, "status": status, "data": data or {}}])
        assert result["result"] in ("applied", "duplicate"), result

    def _run(self) -> None:
        cursor, seen = 0, set()
        while not self._stop.is_set():
            page = self.client.pull_tasks(after=cursor, wait=0.2)
            cursor = page["cursor"]
            for task in page["tasks"]:
                if task["task_id"] in seen or task["status"] != "PENDING":
                    continue
                seen.add(task["task_id"])
                for status in ("READY", "EXECUTING"):
                    self._push(task["task_id"], status)
                if self.outcome == "FAILED":
                    self._push(task["task_id"], "FAILED", {"reason": self.reason})
                else:
                    self._push(task["task_id"], "EXECUTED")
                self.recorded.append((task["task_id"], time.monotonic()))


def test_simple_recording_hands_the_robot_one_task_and_waits_until_it_is_recorded(cp, instance):
    with PlayedRobot(cp.robot) as robot:
        result = run(simple_recording, form(), cp.resources, instance)
    assert result.success, failure_message(result)
    [task] = cp.admin.list_tasks(order_id="rec-1")
    assert (task["robot_id"], task["status"], task["duration_seconds"]) == ("robot-1", "EXECUTED", 2.0)
    assert (task["scene"], task["sub_scene"], list(task["skills"]), list(task["topics"])) == ("warehouse", "aisle_1", ["pick_place"], ["/imu"])
    assert robot.recorded[0][0] == task["task_id"]
    assert result.output_for_node("await_recording")["status"] == "EXECUTED"


def test_a_repeated_request_is_found_again_not_made_twice(cp, instance):
    with PlayedRobot(cp.robot):
        assert run(simple_recording, form(), cp.resources, instance).success
        assert run(simple_recording, form(), cp.resources, instance).success  # e.g. a re-executed run
    assert len(cp.admin.list_tasks(order_id="rec-1")) == 1


def test_a_task_the_robot_fails_fails_the_run_with_its_reason(cp, instance):
    with PlayedRobot(cp.robot, outcome="FAILED", reason="recorder unreachable for 3 consecutive status polls"):
        result = run(simple_recording, form(), cp.resources, instance)
    assert not result.success
    assert "is FAILED: recorder unreachable for 3 consecutive status polls" in failure_message(result)


def test_a_robot_that_does_not_record_in_time_fails_the_wait(cp, instance):
    result = run(simple_recording, form(timeout_seconds=0.3), cp.resources, instance)
    assert not result.success and "did not record it in time" in failure_message(result)
    [task] = cp.admin.list_tasks(order_id="rec-1")
    assert task["robot_id"] == "robot-1" and task["status"] == "PENDING"  # still the robot's, for later


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"duration_seconds": 0}, "greater than 0"),
        ({"poll_interval_seconds": -1}, "greater than 0"),
        ({"robot_id": "robot 1"}, "robot_id"),
        ({"skills": []}, "at least one skill"),
    ],
)
def test_a_bad_form_requests_nothing(cp, instance, bad, words):
    try:
        result = run(simple_recording, form(**bad), cp.resources, instance)
    except dg.DagsterError as exc:  # refused by the form itself
        assert words in f"{exc} {exc.__cause__}"
    else:
        assert not result.success and words in failure_message(result)
    assert cp.admin.list_orders() == []


def test_an_unknown_robot_is_refused_and_nothing_is_dispatched(cp, instance):
    result = run(simple_recording, form(robot_id="robot-9"), cp.resources, instance)
    assert not result.success and "robot-9" in failure_message(result)
    assert [t["robot_id"] for t in cp.admin.list_tasks(order_id="rec-1")] == [None]


def test_multi_session_requests_the_second_session_only_once_the_first_is_recorded(cp, instance):
    config = {"sessions": [form("rec-a", topics=["/camera"]), form("rec-b", topics=["/lidar"], skills=["navigation"])]}
    with PlayedRobot(cp.robot) as robot:
        result = run(multi_session_recording, config, cp.resources, instance)
    assert result.success, failure_message(result)
    [a] = cp.admin.list_tasks(order_id="rec-a")
    [b] = cp.admin.list_tasks(order_id="rec-b")
    assert [t for t, _ in robot.recorded] == [a["task_id"], b["task_id"]]
    assert (list(a["topics"]), list(b["topics"]), list(b["skills"])) == (["/camera"], ["/lidar"], ["navigation"])
    assert a["updated_at"] <= b["created_at"]  # the second request came after the first recording


def test_multi_session_refuses_a_wrong_number_of_sessions_before_requesting(cp, instance):
    with pytest.raises(dg.DagsterError) as raised:
        run(multi_session_recording, {"sessions": [form("rec-a")]}, cp.resources, instance)
    assert "exactly 2 sessions" in f"{raised.value} {raised.value.__cause__}"
    assert cp.admin.list_orders() == []


def test_conditional_recording_skips_a_robot_that_reported_no_recorder_state(cp, instance):
    result = run(conditional_recording, form(max_disk_usage_gb=10.0), cp.resources, instance)
    assert result.success
    report = result.output_for_node("robot_health_check", "report")
    assert report["ready"] is False and report["reasons"] == ["the robot has not reported its recorder's state"]
    skipped = {e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_SKIPPED}
    assert skipped == {"request_recording", "await_recording"}
    assert cp.admin.list_orders() == []


def test_the_jobs_never_use_a_recorder_resource():
    for job in (simple_recording, multi_session_recording, conditional_recording):
        keys = set().union(*(n.definition.required_resource_keys for n in job.nodes))
        assert keys == {"control_plane"}, (job.name, keys)


def test_lance_dataset_asset_checks_the_digest_and_describes_the_recording(peer, write_config, instance):
    client = AxonHttpRecorder(peer.url, retry_attempts=0)
    client.start_recording(write_config("task-asset", topics=["/imu"]))
    client.stop_recording()
    dataset = peer.data_dir / "task-asset.lance"

    result = dg.materialize([lance_dataset], run_config={"ops": {"lance_dataset": {"config": {"dataset_path": str(dataset)}}}},
                            instance=instance)
    assert result.success
    metadata = result.asset_materializations_for_node("lance_dataset")[0].metadata
    assert result.asset_materializations_for_node("lance_dataset")[0].asset_key == LANCE_DATASET
    assert metadata["task_id"].value == "task-asset" and metadata["topics"].value == sorted(peer.recorder.subscriptions)
    assert metadata["row_count"].value == Sidecar.read(sidecar_path(dataset)).row_count > 0
    assert metadata["size_bytes"].value > 0 and metadata["start_time"].value < metadata["end_time"].value

    data_file = next((dataset / "data").iterdir())
    data_file.write_bytes(data_file.read_bytes() + b"tampered")
    result = dg.materialize([lance_dataset], run_config={"ops": {"lance_dataset": {"config": {"dataset_path": str(dataset)}}}},
                            instance=instance, raise_on_error=False)
    assert not result.success and "does not match" in failure_message(result)

    result = dg.materialize([lance_dataset], run_config={"ops": {"lance_dataset": {"config": {"dataset_path": str(peer.data_dir / "nope.lance")}}}},
                            instance=instance, raise_on_error=False)
    assert not result.success and "no Lance dataset at" in failure_message(result)
