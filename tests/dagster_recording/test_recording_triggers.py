"""Schedules and sensors of the recording surface, evaluated with Dagster's testing APIs against the
simulated recorder over real HTTP; and the definitions the code location loads."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest

from axon_dagster.defs.recording import (
    RecordingPolicyResource,
    daily_recording,
    disk_space_sensor,
    hourly_recording,
    simple_recording,
    topic_availability_sensor,
    topics_from_stats,
)
from axon_dagster.defs import recording as recording_area
from axon_dagster.defs.recording import recording_policy_from_env
from axon_dagster.defs.resources import RecorderResource, resources_from_env
from axon_dagster.recorder import AxonHttpRecorder, RecorderProtocolError

NINE_AM = datetime(2025, 1, 2, 9, 0, tzinfo=timezone.utc)


def template(policy: RecordingPolicyResource, name: str, write_config, **fields) -> str:
    return write_config("template", path=Path(policy.config_dir) / name, **fields)


@pytest.mark.parametrize(
    "schedule, file, run_key, task_id, duration, cron",
    [
        (daily_recording, "daily_recording.yaml", "daily_recording:20250102", "daily-20250102", 28800.0, "0 9 * * *"),
        (hourly_recording, "hourly_recording.yaml", "hourly_recording:20250102-0900", "hourly-20250102-0900", 300.0, "0 * * * *"),
    ],
)
def test_schedules_request_one_fresh_task_per_tick_and_ship_stopped(
    schedule, file, run_key, task_id, duration, cron, policy, write_config, instance
):
    assert schedule.cron_schedule == cron and schedule.job_name == "simple_recording"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    path = template(policy, file, write_config)
    [request] = schedule_tick(schedule, instance, policy).run_requests
    assert request.run_key == run_key
    assert request.run_config == {"config_path": path, "task_id": task_id, "duration_seconds": duration}
    assert dg.validate_run_config(simple_recording, request.run_config)


def test_a_schedule_without_a_usable_template_skips_with_the_reason(policy, instance, tmp_path):
    result = schedule_tick(daily_recording, instance, policy)
    assert result.run_requests == [] and "daily_recording.yaml: file not found" in result.skip_message
    (Path(policy.config_dir)).mkdir(parents=True, exist_ok=True)
    (Path(policy.config_dir) / "daily_recording.yaml").write_text("task_id: t\n")
    result = schedule_tick(daily_recording, instance, policy)
    assert "missing required field device_id" in result.skip_message


def tick(sensor, instance, peer_or_url, policy, cursor=None):
    """One evaluation of ``sensor`` with its resources, torn down afterwards."""
    url = peer_or_url if isinstance(peer_or_url, str) else peer_or_url.url
    resources = {"recorder": RecorderResource(url=url, retry_attempts=0, timeout_seconds=2), "recording_policy": policy}
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        return sensor.evaluate_tick(context)


def schedule_tick(schedule, instance, policy):
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=NINE_AM, resources={"recording_policy": policy}) as context:
        return schedule.evaluate_tick(context)


def test_disk_space_sensor_requests_a_recording_when_idle_and_below_the_limit(peer, policy, write_config, instance):
    assert disk_space_sensor.default_status == dg.DefaultSensorStatus.STOPPED
    path = template(policy, "default.yaml", write_config)
    [request] = tick(disk_space_sensor, instance, peer, policy).run_requests
    assert request.run_key.startswith("disk:") and request.run_config["config_path"] == path
    assert request.run_config["task_id"].startswith("disk-") and request.run_config["duration_seconds"] == 3600.0
    assert dg.validate_run_config(simple_recording, request.run_config)


def test_disk_space_sensor_skips_over_the_limit_while_busy_or_unreachable(peer, policy, write_config, instance):
    template(policy, "default.yaml", write_config)
    full = RecordingPolicyResource(config_dir=policy.config_dir, max_disk_usage_gb=0.0)
    assert "the limit is 0 GB" in tick(disk_space_sensor, instance, peer, full).skip_message

    client = AxonHttpRecorder(peer.url, retry_attempts=0)
    client.start_recording(write_config("busy"))
    assert "already recording" in tick(disk_space_sensor, instance, peer, policy).skip_message
    client.stop_recording()

    with dg.DagsterInstance.ephemeral() as busy_instance:  # its run stays "in progress": not the shared one
        busy_instance.create_run_for_job(simple_recording, run_config={"config_path": "x.yaml", "duration_seconds": 1})
        assert "already in progress" in tick(disk_space_sensor, busy_instance, peer, policy).skip_message


def test_disk_space_sensor_skips_when_the_recorder_is_unreachable(peer, policy, write_config, instance):
    template(policy, "default.yaml", write_config)
    url = peer.url
    peer.stop()
    message = tick(disk_space_sensor, instance, url, policy).skip_message
    assert message.startswith("recorder unavailable: recorder unreachable")


def test_topic_availability_on_http_reads_the_recorders_subscriptions(peer, policy, write_config, instance):
    assert topic_availability_sensor.default_status == dg.DefaultSensorStatus.STOPPED
    template(policy, "default.yaml", write_config, topics=["/imu"])
    result = tick(topic_availability_sensor, instance, peer, policy)
    assert [r.tags["axon/trigger"] for r in result.run_requests] == ["topics"]
    assert result.cursor == "available"
    # A second tick with the topics still there starts nothing new: it fires on the edge, not the level.
    again = tick(topic_availability_sensor, instance, peer, policy, cursor=result.cursor)
    assert again.run_requests == []


def test_topics_from_stats_reads_axons_subscriptions_then_available_topics():
    zero = {"received": 0, "written": 0, "dropped": 0}
    assert topics_from_stats({"topic_message_counts": {"/imu": zero, "/odom": zero}}) == {"/imu", "/odom"}
    assert topics_from_stats({"available_topics": ["/imu", "/camera/image_raw"]}) == {"/imu", "/camera/image_raw"}
    assert topics_from_stats({"available_topics": {"/imu": {"rate_hz": 100}}}) == {"/imu"}
    with pytest.raises(RecorderProtocolError, match="neither topic_message_counts nor available_topics"):
        topics_from_stats({"topics": {"/imu": {"messages": 5}}})


def test_topic_availability_needs_required_topics(peer, policy, write_config, instance):
    template(policy, "default.yaml", write_config)  # records every topic: nothing to wait for
    result = tick(topic_availability_sensor, instance, peer, policy)
    assert result.skip_message.startswith("no required topics")


def test_the_recording_definitions_load_with_the_code_locations_resources():
    defs = dg.Definitions.merge(
        recording_area.defs, dg.Definitions(resources={**resources_from_env(), "recording_policy": recording_policy_from_env()})
    )
    dg.Definitions.validate_loadable(defs)
    assert {j.name for j in defs.jobs} == {"simple_recording", "multi_session_recording", "conditional_recording"}
    assert {s.name for s in defs.sensors} == {"disk_space_sensor", "topic_availability_sensor"}
    for name in ("simple_recording", "multi_session_recording", "conditional_recording"):
        for node in defs.resolve_job_def(name).nodes:
            # every step that changes or reads the recorder once retries with backoff; waiting and
            # health checks decide themselves (a lost session or an unready recorder is no network blip)
            if node.definition.name in ("start_recording", "stop_recording", "get_status", "update_config"):
                assert node.definition.retry_policy.backoff == dg.Backoff.EXPONENTIAL, node.name
