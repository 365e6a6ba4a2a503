"""Schedules and sensors of the recording surface, evaluated with Dagster's testing APIs against a
real control-plane API; and the definitions the code location loads. The sensors judge a robot by
what it reported of its recorder (the shared policy, tested in test_recorder_health.py)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest

from axon_dagster.defs import recording as recording_area
from axon_dagster.defs.recording import (
    RecordingPolicyResource,
    daily_recording,
    disk_space_sensor,
    hourly_recording,
    recording_policy_from_env,
    simple_recording,
    topic_availability_sensor,
)
from axon_dagster.defs.resources import resources_from_env

NINE_AM = datetime(2025, 1, 2, 9, 0, tzinfo=timezone.utc)


def template(policy: RecordingPolicyResource, name: str, write_config, **fields) -> str:
    return write_config("template", path=Path(policy.config_dir) / name, **fields)


def tick(sensor, instance, cp, policy=None, cursor=None):
    """One evaluation of ``sensor`` with its resources, torn down afterwards."""
    resources = {**cp.resources, **({"recording_policy": policy} if policy else {})}
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        return sensor.evaluate_tick(context)


def schedule_tick(schedule, instance, policy):
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=NINE_AM, resources={"recording_policy": policy}) as context:
        return schedule.evaluate_tick(context)


@pytest.mark.parametrize(
    "schedule, file, run_key, recording_id, duration, cron",
    [
        (daily_recording, "daily_recording.yaml", "daily_recording:20250102", "daily-20250102", 28800.0, "0 9 * * *"),
        (hourly_recording, "hourly_recording.yaml", "hourly_recording:20250102-0900", "hourly-20250102-0900", 300.0, "0 * * * *"),
    ],
)
def test_schedules_request_one_recording_per_tick_from_the_templates_robot_and_ship_stopped(
    schedule, file, run_key, recording_id, duration, cron, policy, write_config, instance
):
    assert schedule.cron_schedule == cron and schedule.job_name == "simple_recording"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    template(policy, file, write_config, device_id="robot-2", topics=["/imu"])
    [request] = schedule_tick(schedule, instance, policy).run_requests
    assert request.run_key == run_key and request.tags["axon/robot_id"] == "robot-2"
    assert request.run_config == {
        "robot_id": "robot-2", "scene": "warehouse", "sub_scene": "aisle_1", "skills": ["pick_place"], "topics": ["/imu"],
        "duration_seconds": duration, "recording_id": recording_id,
    }
    assert dg.validate_run_config(simple_recording, request.run_config)


def test_a_schedule_without_a_usable_template_skips_with_the_reason(policy, instance, write_config):
    result = schedule_tick(daily_recording, instance, policy)
    assert result.run_requests == [] and "daily_recording.yaml: file not found" in result.skip_message
    (Path(policy.config_dir)).mkdir(parents=True, exist_ok=True)
    (Path(policy.config_dir) / "daily_recording.yaml").write_text("task_id: t\n")
    assert "missing required field device_id" in schedule_tick(daily_recording, instance, policy).skip_message
    template(policy, "daily_recording.yaml", write_config, skills=[])
    assert "names no skills" in schedule_tick(daily_recording, instance, policy).skip_message


def test_disk_space_sensor_ships_stopped_and_requests_nothing_for_a_robot_without_a_report(cp, policy, write_config, instance):
    assert disk_space_sensor.default_status == dg.DefaultSensorStatus.STOPPED
    template(policy, "default.yaml", write_config)
    result = tick(disk_space_sensor, instance, cp, policy)
    assert result.run_requests == [] and result.skip_message == "robot robot-1: the robot has not reported its recorder's state"
    template(policy, "default.yaml", write_config, device_id="robot-9")
    assert tick(disk_space_sensor, instance, cp, policy).skip_message == "robot robot-9: robot robot-9 is not registered"
    assert cp.admin.list_orders() == []  # a sensor only ever asks


def test_disk_space_sensor_waits_for_a_recording_run_in_progress(cp, policy, write_config):
    template(policy, "default.yaml", write_config)
    with dg.DagsterInstance.ephemeral() as busy_instance:  # its run stays "in progress": not the shared one
        busy_instance.create_run_for_job(simple_recording, run_config={"robot_id": "robot-1", "scene": "w", "skills": ["a"], "duration_seconds": 1})
        assert "already in progress" in tick(disk_space_sensor, busy_instance, cp, policy).skip_message


def test_topic_availability_sensor_waits_for_the_robots_report(cp, policy, write_config, instance):
    assert topic_availability_sensor.default_status == dg.DefaultSensorStatus.STOPPED
    template(policy, "default.yaml", write_config, topics=["/imu"])
    result = tick(topic_availability_sensor, instance, cp, policy)
    assert result.run_requests == [] and result.cursor == "unknown"
    assert result.skip_message == "robot robot-1: the robot has not reported its recorder's state"


IDLE = {"state": "idle", "disk_usage_gb": 10.0, "disk_state": "normal", "subscribed_topics": ["/imu", "/cam"]}


def test_disk_space_sensor_acts_on_what_the_robot_reported_of_its_recorder(cp, policy, write_config, instance):
    template(policy, "default.yaml", write_config)
    cp.robot.report_recorder({**IDLE, "disk_usage_gb": 60.0})  # over the policy's 50 GB
    result = tick(disk_space_sensor, instance, cp, policy)
    assert result.run_requests == [] and result.skip_message == "robot robot-1: recorder data uses 60 GB; the limit is 50 GB"
    cp.robot.report_recorder({**IDLE, "state": "paused", "disk_state": "hard_limit", "last_error": "disk full"})
    assert "the recorder paused itself: disk full" in tick(disk_space_sensor, instance, cp, policy).skip_message
    cp.robot.report_recorder(IDLE)  # room again: the sensor requests its recording
    [request] = tick(disk_space_sensor, instance, cp, policy).run_requests
    assert (request.tags["axon/trigger"], request.tags["axon/robot_id"]) == ("disk", "robot-1") and dg.validate_run_config(simple_recording, request.run_config)
    assert cp.admin.list_orders() == []  # a sensor only ever asks


def test_a_stale_recorder_report_is_unknown_to_both_sensors(cp, policy, write_config, instance):
    template(policy, "default.yaml", write_config, topics=["/imu"])
    cp.robot.report_recorder(IDLE)
    strict = RecordingPolicyResource(config_dir=policy.config_dir, max_report_age_seconds=0.05)
    time.sleep(0.2)
    disk = tick(disk_space_sensor, instance, cp, strict)
    assert disk.run_requests == [] and "is older than 0.05s: its state is unknown" in disk.skip_message
    topics = tick(topic_availability_sensor, instance, cp, strict)
    assert topics.run_requests == [] and topics.cursor == "unknown" and "is older than 0.05s" in topics.skip_message
    assert len(tick(disk_space_sensor, instance, cp, policy).run_requests) == 1  # fresh enough for the default age


def test_topic_availability_sensor_requests_once_when_the_reported_topics_appear(cp, policy, write_config, instance):
    template(policy, "default.yaml", write_config, topics=["/imu", "/lidar"])
    cp.robot.report_recorder(IDLE)
    waiting = tick(topic_availability_sensor, instance, cp, policy)
    assert waiting.cursor == "missing" and waiting.skip_message == "waiting for topics ['/lidar'] on robot robot-1"
    cp.robot.report_recorder({**IDLE, "available_topics": ["/imu", "/lidar"]})
    appeared = tick(topic_availability_sensor, instance, cp, policy, cursor=waiting.cursor)
    assert appeared.cursor == "available" and [r.tags["axon/trigger"] for r in appeared.run_requests] == ["topics"]
    assert tick(topic_availability_sensor, instance, cp, policy, cursor="available").run_requests == []


def test_topic_availability_needs_required_topics(cp, policy, write_config, instance):
    template(policy, "default.yaml", write_config)  # records every topic: nothing to wait for
    assert tick(topic_availability_sensor, instance, cp, policy).skip_message.startswith("no required topics")


def test_the_recording_definitions_load_with_the_code_locations_resources():
    defs = dg.Definitions.merge(
        recording_area.defs, dg.Definitions(resources={**resources_from_env(), "recording_policy": recording_policy_from_env()})
    )
    dg.Definitions.validate_loadable(defs)
    assert {j.name for j in defs.jobs} == {"simple_recording", "multi_session_recording", "conditional_recording"}
    assert {s.name for s in defs.sensors} == {"disk_space_sensor", "topic_availability_sensor"}
    for name in ("simple_recording", "multi_session_recording", "conditional_recording"):
        for node in defs.resolve_job_def(name).nodes:
            policy = node.definition.retry_policy
            assert policy is not None and policy.backoff == dg.Backoff.EXPONENTIAL, (name, node.name)
