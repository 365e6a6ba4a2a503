"""The recording jobs and the lance_dataset asset, run with ``execute_in_process`` against the
simulated recorder over real HTTP."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest

from axon_dagster.defs.recording import (
    LANCE_DATASET,
    conditional_recording,
    lance_dataset,
    multi_session_recording,
    simple_recording,
    update_config,
)
from axon_dagster.recorder import AxonHttpRecorder
from axon_dagster.storage.digest import dataset_digest
from axon_dagster.storage.recording import Sidecar, sidecar_path


def run(job, run_config, resources, instance, **kwargs):
    return job.execute_in_process(run_config=run_config, resources=resources, instance=instance, raise_on_error=False, **kwargs)


def steps(result, kind: str) -> list[str]:
    return sorted(e.step_key for e in result.all_events if e.event_type_value == kind)


def failure_message(result) -> str:
    return " ".join(e.event_specific_data.error.message for e in result.get_step_failure_events())


def test_simple_recording_records_and_reports_the_lance_dataset(peer, resources_for, write_config, instance):
    config_path = write_config("task-simple", topics=["/imu", "/joint_states"])
    result = run(
        simple_recording,
        {"config_path": config_path, "duration_seconds": 0.5, "check_interval_seconds": 0.1},
        resources_for(peer),
        instance,
    )
    assert result.success, failure_message(result)
    assert result.output_for_node("start_recording")["task_id"] == "task-simple"
    assert result.output_for_node("wait_for_recording")["status"]["is_recording"] is True
    assert result.output_for_node("final_status")["is_recording"] is False

    dataset = peer.data_dir / "task-simple.lance"
    sidecar = Sidecar.read(sidecar_path(dataset))
    assert sidecar.dataset_digest == dataset_digest(dataset)
    assert sidecar.end_ns - sidecar.start_ns >= 0.4e9, "recorded for the configured duration"
    [materialization] = result.asset_materializations_for_node("stop_recording")
    assert materialization.asset_key == LANCE_DATASET
    metadata = materialization.metadata
    assert metadata["dataset_path"].value == str(dataset)
    assert metadata["dataset_digest"].value == sidecar.dataset_digest
    # Axon records its own subscriptions, whatever the task config lists
    assert metadata["topics"].value == sorted(peer.recorder.subscriptions)
    assert metadata["recording_config"].value["scene"] == "warehouse"
    assert [c.name for c in metadata["dagster/column_schema"].value.columns] == [
        "topic", "log_time_ns", "sequence", "message_type", "payload",
    ]


def test_a_task_id_records_a_copy_of_the_template(peer, resources_for, write_config, instance, policy):
    template = write_config("template-task")
    result = run(
        simple_recording,
        {"config_path": template, "task_id": "daily-20250102", "duration_seconds": 0.2, "check_interval_seconds": 0.1},
        resources_for(peer),
        instance,
    )
    assert result.success, failure_message(result)
    copy = Path(policy.config_dir).resolve() / "runs" / "daily-20250102.yaml"
    assert result.output_for_node("start_recording")["config_path"] == str(copy)
    assert Sidecar.read(peer.data_dir / "daily-20250102.json").metadata["scene"] == "warehouse"
    assert not (peer.data_dir / "template-task.lance").exists()


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"duration_seconds": 0}, "greater than 0"),
        ({"check_interval_seconds": -1}, "greater than 0"),
        ({"task_id": "../escape"}, None),  # refused when the op copies the template: no recording
    ],
)
def test_bad_run_config_starts_nothing(peer, resources_for, write_config, instance, bad, words):
    config = {"config_path": write_config("task-bad"), "duration_seconds": 0.2, **bad}
    if words:
        with pytest.raises(dg.DagsterError) as raised:
            run(simple_recording, config, resources_for(peer), instance)
        chain = f"{raised.value} {raised.value.__cause__}"
        assert words in chain
    else:
        result = run(simple_recording, config, resources_for(peer), instance)
        assert not result.success and "bad recording config; nothing was started" in failure_message(result)
    assert peer.recorder.state == "idle" and list(peer.data_dir.iterdir()) == []


def test_a_refused_start_fails_at_once_with_the_recorders_reason(start_peer, resources_for, write_config, instance):
    peer = start_peer(faults={"fail_start": True})
    result = run(simple_recording, {"config_path": write_config("task-refused"), "duration_seconds": 0.2},
                 resources_for(peer), instance)
    assert not result.success
    assert "recorder did not start task task-refused" in failure_message(result)
    assert "simulated start failure" in failure_message(result)
    assert steps(result, "STEP_UP_FOR_RETRY") == [], "a refusal is never retried"
    assert "wait_for_recording" not in steps(result, "STEP_START")


def test_a_recorder_dying_mid_recording_fails_the_wait_quickly(start_peer, resources_for, write_config, instance):
    peer = start_peer(faults={"die_after_seconds": 0.3})
    started = time.monotonic()
    result = run(
        simple_recording,
        {"config_path": write_config("task-dies"), "duration_seconds": 30, "check_interval_seconds": 0.1},
        resources_for(peer, timeout_seconds=1.0),
        instance,
    )
    assert not result.success
    assert time.monotonic() - started < 15
    assert steps(result, "STEP_FAILURE") == ["wait_for_recording"]
    assert "recorder stopped answering while recording task task-dies" in failure_message(result)
    assert "stop_recording" not in steps(result, "STEP_START")


def test_multi_session_records_each_session_with_its_own_config_in_order(peer, resources_for, write_config, instance):
    sessions = [
        {"config_path": write_config("session-cam", topics=["/camera/image_raw"]), "duration_seconds": 0.2,
         "check_interval_seconds": 0.1},
        {"config_path": write_config("session-imu", topics=["/imu"]), "duration_seconds": 0.2, "check_interval_seconds": 0.1},
    ]
    result = run(multi_session_recording, {"sessions": sessions}, resources_for(peer), instance)
    assert result.success, failure_message(result)
    first = Sidecar.read(peer.data_dir / "session-cam.json")
    second = Sidecar.read(peer.data_dir / "session-imu.json")
    # each session's own config (its task id, its topics echoed); Axon records its subscriptions
    assert (first.task_id, second.task_id) == ("session-cam", "session-imu")
    assert set(first.topics) == set(second.topics) == set(peer.recorder.subscriptions)
    assert second.start_ns >= first.end_ns, "the second session starts after the first is stopped"
    assert len(result.asset_materializations_for_node("session_2_stop")) == 1


def test_multi_session_refuses_a_wrong_number_of_sessions_before_recording(peer, resources_for, write_config, instance):
    one = [{"config_path": write_config("only"), "duration_seconds": 0.2}]
    with pytest.raises(dg.DagsterError) as raised:
        run(multi_session_recording, {"sessions": one}, resources_for(peer), instance)
    assert "exactly 2 sessions, got 1" in str(raised.value.__cause__)
    assert peer.recorder.state == "idle"


def test_conditional_recording_records_when_the_recorder_is_ready(peer, resources_for, write_config, instance):
    result = run(conditional_recording, {"config_path": write_config("task-cond"), "duration_seconds": 0.2,
                                         "check_interval_seconds": 0.1}, resources_for(peer), instance)
    assert result.success, failure_message(result)
    assert result.output_for_node("health_check", "report")["ready"] is True
    assert (peer.data_dir / "task-cond.lance").is_dir()


def _skipped_for(result) -> list[str]:
    assert result.success, failure_message(result)
    assert {"start_recording", "wait_for_recording", "stop_recording", "final_status"} <= set(steps(result, "STEP_SKIPPED"))
    return result.output_for_node("health_check", "report")["reasons"]


def test_conditional_recording_skips_when_disk_is_over_the_limit(peer, resources_for, write_config, instance):
    client = AxonHttpRecorder(peer.url, retry_attempts=0)
    client.start_recording(write_config("earlier"))
    client.stop_recording()
    result = run(conditional_recording, {"config_path": write_config("task-full"), "duration_seconds": 0.2,
                                         "max_disk_usage_gb": 1e-7}, resources_for(peer), instance)
    [reason] = _skipped_for(result)
    assert "the limit is 1e-07 GB" in reason
    assert not (peer.data_dir / "task-full.lance").exists()


def test_conditional_recording_skips_when_the_recorder_is_unhealthy(start_peer, resources_for, write_config, instance):
    # Axon's stats carry no last_error; the error they do carry is the disk guard's hard limit
    peer = start_peer(faults={"disk_full_after_seconds": 0.05})
    client = AxonHttpRecorder(peer.url, retry_attempts=0)
    client.start_recording(write_config("filled-the-disk"))
    deadline = time.monotonic() + 5
    while client.state().state != "paused" and time.monotonic() < deadline:
        time.sleep(0.05)
    result = run(conditional_recording, {"config_path": write_config("task-unhealthy"), "duration_seconds": 0.2},
                 resources_for(peer), instance)
    reasons = _skipped_for(result)
    assert any(r.startswith("recorder reports an error: Disk hard limit reached") for r in reasons), reasons


def test_conditional_recording_skips_when_the_recorder_is_unreachable(peer, resources_for, write_config, instance):
    url = peer.url
    peer.stop()
    result = run(conditional_recording, {"config_path": write_config("task-gone"), "duration_seconds": 0.2},
                 resources_for(url, timeout_seconds=1.0), instance)
    [reason] = _skipped_for(result)
    assert reason.startswith("recorder unavailable: recorder unreachable")


def test_update_config_hands_the_config_to_the_recorder(peer, resources_for, write_config, instance):
    @dg.job
    def push_config():
        update_config()

    path = write_config("task-pending")
    result = run(push_config, {"ops": {"update_config": {"config": {"config_path": path}}}}, resources_for(peer), instance)
    assert result.success, failure_message(result)
    assert peer.recorder.state == "ready" and peer.recorder.rpc_state()[1]["task_id"] == "task-pending"


def test_lance_dataset_asset_checks_the_digest_and_describes_the_recording(peer, write_config, instance):
    client = AxonHttpRecorder(peer.url, retry_attempts=0)
    client.start_recording(write_config("task-asset", topics=["/imu"]))
    client.stop_recording()
    dataset = peer.data_dir / "task-asset.lance"

    result = dg.materialize([lance_dataset], run_config={"ops": {"lance_dataset": {"config": {"dataset_path": str(dataset)}}}},
                            instance=instance)
    assert result.success
    metadata = result.asset_materializations_for_node("lance_dataset")[0].metadata
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
