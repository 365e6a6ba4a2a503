"""The ``bandwidth`` sensor (reference design 6.6.3): holds upload runs back while the link is
below ``min_bandwidth_mbps``, and otherwise launches them in priority order.

Probe (``axon_dagster.storage.bandwidth.probe_bandwidth``): a configured command whose stdout is
Mbps (a number, or JSON ``{"upload_mbps": x}``, as in the reference design), else the upload
throughput the uploader measured over the last ``window_seconds`` (its throughput log). With the
measured probe and no recent upload there is nothing to measure: the sensor lets one upload
through as the measurement (``probe_upload_when_unmeasured``), otherwise it could never start.

What it launches: one run of the upload job (``UPLOAD_JOB_NAME``) per dataset that is INSPECTED
and approved, ordered by its order's priority (highest first), then by age (oldest first), at most
``max_uploads_per_tick`` per tick and never more than ``max_concurrent_uploads`` upload runs at
once. ``run_key = "upload:<dataset_id>"`` makes a dataset's upload launch once however often it
is seen. The upload job itself is the lead's wiring (see ``UPLOAD_JOB_NAME`` / ``UPLOAD_OP_NAME``).
"""


import os
from typing import Any, Optional

import dagster as dg
from pydantic import Field

from axon_dagster.storage.bandwidth import ProbeError, probe_bandwidth

from .resources import ControlPlaneResource

UPLOAD_JOB_NAME = "upload_approved"
UPLOAD_OP_NAME = "load_approved_dataset"
ACTIVE_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


class BandwidthGate(dg.ConfigurableResource):
    """When uploads may start: the bandwidth threshold and how it is measured."""

    min_bandwidth_mbps: float = Field(default=10.0, ge=0, description="Hold uploads back below this upload bandwidth (Mbps)")
    probe_command: Optional[str] = Field(default=None, description="Command printing upload Mbps (number or JSON upload_mbps)")
    throughput_log: Optional[str] = Field(
        default=None, description="Uploader's throughput log (default: $AXON_UPLOAD_STATE_DIR/throughput.json)"
    )
    window_seconds: float = Field(default=600.0, gt=0, description="How far back measured throughput counts")
    probe_timeout_seconds: float = Field(default=10.0, gt=0)
    probe_upload_when_unmeasured: bool = Field(default=True, description="With no recent measurement, let one upload through")
    max_uploads_per_tick: int = Field(default=10, ge=1)
    max_concurrent_uploads: int = Field(default=2, ge=1, description="Upload runs in flight at once")

    def log_path(self) -> str:
        if self.throughput_log:
            return self.throughput_log
        state_dir = os.environ.get("AXON_UPLOAD_STATE_DIR") or ".axon/upload-state"
        return os.path.join(os.path.abspath(state_dir), "throughput.json")

    def probe(self):
        return probe_bandwidth(
            command=self.probe_command,
            throughput_log=None if self.probe_command else self.log_path(),
            window_seconds=self.window_seconds,
            timeout_seconds=self.probe_timeout_seconds,
        )


def bandwidth_resource_from_env() -> BandwidthGate:
    env = os.environ.get
    return BandwidthGate(
        min_bandwidth_mbps=float(env("AXON_MIN_BANDWIDTH_MBPS", "10")),
        probe_command=env("AXON_BANDWIDTH_PROBE_COMMAND") or None,
    )


def upload_run_request(dataset: dict[str, Any], priority: int) -> dg.RunRequest:
    dataset_id = dataset["dataset_id"]
    return dg.RunRequest(
        run_key=f"upload:{dataset_id}",
        run_config={"ops": {UPLOAD_OP_NAME: {"config": {"task_id": dataset["task_id"]}}}},
        tags={"axon/task_id": dataset["task_id"], "axon/upload": dataset_id, "axon/priority": str(priority)},
    )


def upload_candidates(client: Any, limit: int) -> list[tuple[int, str, dict[str, Any]]]:
    """Approved, not-yet-uploading datasets as ``(priority, created_at, dataset)``, most urgent first."""
    datasets = client.list_datasets(status="INSPECTED", outcome="approved", limit=max(limit, 100))
    ranked = []
    for d in datasets:
        task = client.get_task(d["task_id"])
        ranked.append((int(task.get("priority") or 0), str(d.get("created_at") or ""), d))
    ranked.sort(key=lambda r: (-r[0], r[1]))
    return ranked


def evaluate_bandwidth(context: dg.SensorEvaluationContext, control_plane: ControlPlaneResource, bandwidth: BandwidthGate):
    """The sensor body, callable without the decorator (tests, other sensors)."""
    limit = bandwidth.max_uploads_per_tick
    try:
        result = bandwidth.probe()
    except ProbeError as exc:
        unmeasured = not bandwidth.probe_command and "no upload measured" in str(exc)
        if not (unmeasured and bandwidth.probe_upload_when_unmeasured):
            context.log.warning(f"Bandwidth check failed: {exc}")
            return dg.SkipReason(f"Bandwidth check unavailable: {exc}")
        context.log.info(f"{exc}; letting one upload through to measure the link")
        limit = 1
    else:
        if result.upload_mbps < bandwidth.min_bandwidth_mbps:
            return dg.SkipReason(
                f"Insufficient bandwidth: {result.upload_mbps:.2f} Mbps (required: {bandwidth.min_bandwidth_mbps} Mbps; {result.detail})"
            )
    in_flight = context.instance.get_runs_count(dg.RunsFilter(job_name=UPLOAD_JOB_NAME, statuses=ACTIVE_RUN_STATUSES))
    room = min(limit, bandwidth.max_concurrent_uploads - in_flight)
    if room <= 0:
        return dg.SkipReason(f"{in_flight} upload run(s) in flight (max {bandwidth.max_concurrent_uploads})")
    ranked = upload_candidates(control_plane.client(), room)
    if not ranked:
        return dg.SkipReason("No approved dataset waiting for upload")
    chosen = ranked[:room]
    context.log.info(
        f"launching {len(chosen)} upload(s) of {len(ranked)} waiting, by priority then age: "
        + ", ".join(f"{d['dataset_id']} (p{p})" for p, _, d in chosen)
    )
    return [upload_run_request(d, p) for p, _, d in chosen]


@dg.sensor(
    name="bandwidth_sensor",
    job_name=UPLOAD_JOB_NAME,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches uploads of approved datasets in priority order while upload bandwidth >= min_bandwidth_mbps.",
)
def bandwidth_sensor(context: dg.SensorEvaluationContext, control_plane: ControlPlaneResource, bandwidth: BandwidthGate):
    return evaluate_bandwidth(context, control_plane, bandwidth)


BANDWIDTH_DEFS = dg.Definitions(sensors=[bandwidth_sensor], resources={"bandwidth": bandwidth_resource_from_env()})
