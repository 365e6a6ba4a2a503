"""What starts ``simple_recording`` on its own: schedules ``daily_recording`` / ``hourly_recording``
and sensors ``disk_space_sensor`` / ``topic_availability_sensor``. All ship STOPPED, since they
make robots record.

A template (``<config_dir>/<name>.yaml``, a RecordingConfig: ``device_id`` is the robot, with its
scene, subscene, skills and topics) says what to record. The sensors judge the robot by what it
last reported of its recorder to the control plane (the shared policy of
:mod:`axon_dagster.recorder.health`): the code location never asks a recorder anything.
"""

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import dagster as dg
from pydantic import Field

from axon_dagster.recorder.config import RecordingConfig, RecordingConfigError
from axon_dagster.recorder.health import reported_topics
from axon_dagster.settings.code_location import RecordingPolicySettings

from ..resources import ControlPlaneResource
from ..runs import ACTIVE_RUN_STATUSES
from .dispatch import REPORT_MAX_AGE_SECONDS, robot_health, robot_report
from .jobs import simple_recording

DEFAULT_RECORDING_CONFIG_DIR = RecordingPolicySettings.config_dir


class RecordingPolicyResource(dg.ConfigurableResource):
    """Where recording templates live and when the sensors may request a recording."""

    config_dir: str = Field(
        default=DEFAULT_RECORDING_CONFIG_DIR,
        description="Templates daily_recording.yaml, hourly_recording.yaml, default.yaml (RecordingConfig YAML: "
        "device_id = the robot, scene, subscene, skills, topics)",
    )
    max_disk_usage_gb: float = Field(default=50.0, ge=0, description="Request only while the robot's recorder data uses less")
    required_topics: list[str] = Field(
        default_factory=list, description="topic_availability_sensor waits for these (default: default.yaml's topics)"
    )
    sensor_duration_seconds: float = Field(default=3600.0, gt=0, description="Length of recordings the sensors request")
    max_report_age_seconds: float = Field(
        default=REPORT_MAX_AGE_SECONDS, gt=0, description="A robot's recorder report older than this is unknown (the sensors wait)"
    )

    def template(self, name: str) -> Path:
        return Path(self.config_dir).resolve() / name


def recording_policy_from_env(policy: RecordingPolicySettings | None = None) -> RecordingPolicyResource:
    return RecordingPolicyResource(config_dir=(policy or RecordingPolicySettings.load()).config_dir)


def read_template(path: Path) -> tuple[Optional[RecordingConfig], Optional[str]]:
    """(template, None), or (None, why it cannot be used)."""
    try:
        template = RecordingConfig.read(path)
    except RecordingConfigError as exc:
        return None, f"recording template unusable: {exc}"
    if not template.skills:
        return None, f"recording template unusable: {path} names no skills"
    return template, None


def simple_recording_run_config(template: RecordingConfig, recording_id: str, duration_seconds: float) -> dict[str, Any]:
    """simple_recording's form for one request made from ``template``."""
    return {
        "robot_id": template.device_id,
        "scene": template.scene,
        "sub_scene": template.subscene,
        "skills": list(template.skills),
        "topics": list(template.topics),
        "duration_seconds": duration_seconds,
        "recording_id": recording_id,
    }


def _recording_schedule(
    name: str, cron: str, template: str, prefix: str, stamp_format: str, duration_seconds: float, label: str, description: str
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=name,
        job=simple_recording,
        cron_schedule=cron,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=description,
    )
    def _schedule(context: dg.ScheduleEvaluationContext, recording_policy: RecordingPolicyResource):
        config, problem = read_template(recording_policy.template(template))
        if config is None:
            return dg.SkipReason(problem)
        # one request per tick: its id is the tick's, and run_key dedups the tick
        stamp = context.scheduled_execution_time.strftime(stamp_format)
        return dg.RunRequest(
            run_key=f"{name}:{stamp}",
            run_config=simple_recording_run_config(config, f"{prefix}-{stamp}", duration_seconds),
            tags={"axon/recording_type": prefix, "axon/duration": label, "axon/robot_id": config.device_id},
        )

    return _schedule


daily_recording = _recording_schedule(
    "daily_recording", "0 9 * * *", "daily_recording.yaml", "daily", "%Y%m%d", 8 * 3600.0, "8h",
    "Every day at 09:00: an 8-hour recording requested from daily_recording.yaml's robot",
)
hourly_recording = _recording_schedule(
    "hourly_recording", "0 * * * *", "hourly_recording.yaml", "hourly", "%Y%m%d-%H%M", 300.0, "5m",
    "Every hour: a 5-minute recording requested from hourly_recording.yaml's robot",
)


def _recording_in_progress(context: dg.SensorEvaluationContext) -> bool:
    runs = context.instance.get_runs(filters=dg.RunsFilter(job_name=simple_recording.name, statuses=ACTIVE_RUN_STATUSES), limit=1)
    return bool(runs)


def _sensor_run_request(policy: RecordingPolicyResource, trigger: str, template: RecordingConfig) -> dg.RunRequest:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return dg.RunRequest(
        run_key=f"{trigger}:{stamp}",
        run_config=simple_recording_run_config(template, f"{trigger}-{stamp}", policy.sensor_duration_seconds),
        tags={"axon/trigger": trigger, "axon/robot_id": template.device_id},
    )


@dg.sensor(job=simple_recording, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
def disk_space_sensor(
    context: dg.SensorEvaluationContext, control_plane: ControlPlaneResource, recording_policy: RecordingPolicyResource
):
    """Request a recording (default.yaml) whenever its robot last reported its recorder ready:
    idle, error-free and below the disk limit."""
    template, problem = read_template(recording_policy.template("default.yaml"))
    if template is None:
        return dg.SkipReason(problem)
    if _recording_in_progress(context):
        return dg.SkipReason("a simple_recording run is already in progress")
    health = robot_health(control_plane.client(), template.device_id, max_disk_usage_gb=recording_policy.max_disk_usage_gb,
                          max_report_age_s=recording_policy.max_report_age_seconds)
    if not health.ready:
        return dg.SkipReason(f"robot {template.device_id}: " + "; ".join(health.reasons))
    return _sensor_run_request(recording_policy, "disk", template)


@dg.sensor(job=simple_recording, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.STOPPED)
def topic_availability_sensor(
    context: dg.SensorEvaluationContext, control_plane: ControlPlaneResource, recording_policy: RecordingPolicyResource
):
    """Request a recording (default.yaml) when the topics it needs become available where its
    robot's recorder runs, as the robot reported them. The cursor remembers whether they were
    available, so one appearance requests one recording."""
    template, problem = read_template(recording_policy.template("default.yaml"))
    if template is None:
        return dg.SkipReason(problem)
    required = set(recording_policy.required_topics or template.topics)
    if not required:
        return dg.SkipReason("no required topics: list them in default.yaml's topics or the policy's required_topics")
    robot = next((r for r in control_plane.client().list_robots() if r.get("robot_id") == template.device_id), None)
    if robot is None:
        return dg.SensorResult(skip_reason=f"robot {template.device_id} is not registered", cursor="unknown")
    report, why = robot_report(robot, recording_policy.max_report_age_seconds)
    if report is None:
        return dg.SensorResult(skip_reason=f"robot {template.device_id}: {why}", cursor="unknown")
    missing = sorted(required - reported_topics(report))
    if missing:
        return dg.SensorResult(skip_reason=f"waiting for topics {missing} on robot {template.device_id}", cursor="missing")
    if context.cursor == "available":
        return dg.SensorResult(skip_reason="required topics still available; their recording was already requested", cursor="available")
    if _recording_in_progress(context):
        return dg.SensorResult(skip_reason="a simple_recording run is already in progress", cursor=context.cursor)
    return dg.SensorResult(run_requests=[_sensor_run_request(recording_policy, "topics", template)], cursor="available")
