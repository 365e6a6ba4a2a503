"""Sensors read the control plane, never a robot's disk."""

from __future__ import annotations

import dagster as dg

from axon_dagster.domain import TaskStatus

from .jobs import legacy_data_flow
from ..resources import ControlPlaneResource

EVENTS_PER_TICK = 500


def data_flow_run_request(event: dict) -> dg.RunRequest:
    task_id = event["task_id"]
    data = event.get("data") or {}
    config: dict = {"task_id": task_id}
    # What the agent knows of the recording (an old agent says nothing: the Lance-era layout).
    if isinstance(data.get("recording_format"), str):
        config["recording_format"] = data["recording_format"]
    if isinstance(data.get("checksum_sha256"), str) and data["checksum_sha256"]:
        config["recorder_checksum_sha256"] = data["checksum_sha256"]
    return dg.RunRequest(
        run_key=f"data_flow:{task_id}",  # one data flow per task, however often the event is seen
        run_config={"ops": {"stage_recording": {"config": config}}},
        tags={"axon/task_id": task_id, "axon/robot_id": event.get("robot_id") or ""},
    )


@dg.sensor(job=legacy_data_flow, minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING)
def task_status_sensor(context: dg.SensorEvaluationContext, control_plane: ControlPlaneResource) -> dg.SensorResult:
    """Legacy: starts a legacy_data_flow run for every task a robot reports EXECUTED without a
    manifest (an agent that does not upload its recordings itself). The cursor is the control
    plane's event sequence, so a tick costs what its new events cost, not what the store holds."""
    after = int(context.cursor or 0)
    page = control_plane.client().events_after(after, limit=EVENTS_PER_TICK)
    # An EXECUTED event with a manifest: the robot uploads the recording itself (staged_dataset_sensor's).
    requests = [data_flow_run_request(e) for e in page["events"]
                if e["status"] == TaskStatus.EXECUTED.value and not (e.get("data") or {}).get("manifest")]
    if page["events"]:
        context.log.info(f"events {after + 1}..{page['cursor']}: {len(requests)} recordings ready for the data flow")
    return dg.SensorResult(run_requests=requests, cursor=str(page["cursor"]))
