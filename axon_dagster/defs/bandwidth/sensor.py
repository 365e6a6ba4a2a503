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
once. Every dataset's upload goes through here, whether QC or a reviewer approved it.

Idempotency and retries: a dataset's runs carry the tag ``axon/upload=<dataset_id>``, and its
``run_key`` names the attempt: ``upload:<dataset_id>`` for the first, ``upload:<dataset_id>:attempt-<n>``
after ``n - 1`` failed (FAILURE/CANCELED) runs, so a dataset seen on many ticks launches one run per
attempt, and a failed upload is launched again (Dagster never launches a run_key twice). A retry
waits ``retry_backoff_seconds * 2**(failures - 1)`` after the last failed run ended; after
``max_upload_attempts`` failed runs the sensor gives the dataset up: it logs a warning naming the
dataset and the last failure, counts an alert (``axon_dagster_alerts_total{dagster_job=upload_approved}``)
and posts it to the run-failure alert webhook (``AXON_ALERT_WEBHOOK_URL``) once, and names it in
the tick's skip reason / log from then on. A dataset with an upload run in flight (queued or
started) is never launched again. A failed upload run reports the failure (the upload op's
failure hook: the dataset goes back to INSPECTED with ``last_upload_error``); if that report
could not reach the control plane the dataset stays UPLOADING, so approved datasets UPLOADING
with no run in flight and a failed run are candidates too. The upload job itself is ``upload_approved`` (``UPLOAD_JOB_NAME`` / ``UPLOAD_OP_NAME``).
"""


import time
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pydantic
from pydantic import Field

from axon_dagster.settings.code_location import UploadSettings
from axon_dagster.storage.bandwidth import ProbeError, probe_bandwidth
from axon_dagster.storage.object_stores.remote import upload_state_dir

from ..resources import ControlPlaneResource
from ..runs import ACTIVE_RUN_STATUSES, FAILED_RUN_STATUSES, GivenUp, given_up_cursor, given_up_cursor_text, raise_given_up

UPLOAD_JOB_NAME = "upload_approved"
CANDIDATES_PER_STATUS = 500  # oldest first per status; a tick launches a handful at most
UPLOAD_OP_NAME = "load_approved_dataset"
UPLOAD_TAG = "axon/upload"


class BandwidthGate(dg.ConfigurableResource):
    """When uploads may start: the bandwidth threshold and how it is measured."""

    min_bandwidth_mbps: float = Field(default=10.0, ge=0, description="Hold uploads back below this upload bandwidth (Mbps)")
    probe_command: str | None = Field(default=None, description="Command printing upload Mbps (number or JSON upload_mbps)")
    throughput_log: str | None = Field(
        default=None, description="Uploader's throughput log (default: $AXON_UPLOAD_STATE_DIR/throughput.json)"
    )
    window_seconds: float = Field(default=600.0, gt=0, description="How far back measured throughput counts")
    probe_timeout_seconds: float = Field(default=10.0, gt=0)
    probe_upload_when_unmeasured: bool = Field(default=True, description="With no recent measurement, let one upload through")
    max_uploads_per_tick: int = Field(default=10, ge=1)
    max_concurrent_uploads: int = Field(default=2, ge=1, description="Upload runs in flight at once")
    max_upload_attempts: int = Field(default=5, ge=1, description="Upload runs per dataset before giving it up")
    retry_backoff_seconds: float = Field(
        default=60.0, ge=0, description="Wait after a failed upload run before the next; doubles with each failure"
    )

    def log_path(self) -> str:
        if self.throughput_log:
            return self.throughput_log
        return str(upload_state_dir() / "throughput.json")

    def probe(self):
        return probe_bandwidth(
            command=self.probe_command,
            throughput_log=None if self.probe_command else self.log_path(),
            window_seconds=self.window_seconds,
            timeout_seconds=self.probe_timeout_seconds,
        )


def bandwidth_resource_from_env(upload: UploadSettings | None = None) -> BandwidthGate:
    """The gate from the code location's upload settings (``AXON_MIN_BANDWIDTH_MBPS``,
    ``AXON_BANDWIDTH_PROBE_COMMAND``, ``AXON_MAX_UPLOAD_ATTEMPTS`` over the config's
    ``retries.upload_attempts``, ``AXON_UPLOAD_RETRY_BACKOFF_SECONDS``);
    a bad value is refused with the variable's name when the settings load."""
    upload = upload or UploadSettings.load()
    return BandwidthGate(
        min_bandwidth_mbps=upload.min_bandwidth_mbps,
        probe_command=upload.probe_command,
        max_upload_attempts=upload.max_upload_attempts,
        retry_backoff_seconds=upload.retry_backoff_seconds,
    )


def upload_run_key(dataset_id: str, attempt: int) -> str:
    """``upload:<id>`` for the first attempt (as before retries existed), ``upload:<id>:attempt-<n>`` after."""
    return f"upload:{dataset_id}" if attempt <= 1 else f"upload:{dataset_id}:attempt-{attempt}"


def upload_run_request(dataset: dict[str, Any], priority: int, attempt: int = 1) -> dg.RunRequest:
    dataset_id = dataset["dataset_id"]
    return dg.RunRequest(
        run_key=upload_run_key(dataset_id, attempt),
        run_config={"ops": {UPLOAD_OP_NAME: {"config": {"task_id": dataset["task_id"]}}}},
        tags={
            "axon/task_id": dataset["task_id"],
            UPLOAD_TAG: dataset_id,
            "axon/priority": str(priority),
            "axon/upload_attempt": str(attempt),
        },
    )


def upload_candidates(client: Any, limit: int) -> list[tuple[int, str, dict[str, Any]]]:
    """Approved datasets waiting for upload as ``(priority, created_at, dataset)``, most urgent first:
    INSPECTED ones (including those a failed upload run handed back), and UPLOADING ones (a failed
    run whose report never reached the control plane; :func:`upload_history` tells which of those
    have no run in flight). One dataset search per status: each answer carries the order's priority."""
    found: list[dict[str, Any]] = []
    for status in ("INSPECTED", "UPLOADING"):
        page = client.search_datasets(status=status, outcome="approved", limit=max(limit, CANDIDATES_PER_STATUS))
        found += [{**d, "task_id": d["lineage"]["task_id"]} for d in page["datasets"]]
    ranked = [(int(d.get("priority") or 0), str(d.get("created_at") or ""), d) for d in found]
    ranked.sort(key=lambda r: (-r[0], r[1]))
    return ranked


@dataclass(frozen=True)
class UploadHistory:
    """What the instance knows of one dataset's upload runs."""

    in_flight: bool
    failures: int  # finished FAILURE/CANCELED runs
    last_failed_at: float | None  # end time (epoch seconds) of the newest failed run
    last_failed_run_id: str | None
    last_failed_status: str | None

    def next_attempt_at(self, backoff_seconds: float) -> float:
        if not self.failures or self.last_failed_at is None:
            return 0.0
        return self.last_failed_at + backoff_seconds * 2 ** (self.failures - 1)


def upload_history(instance: dg.DagsterInstance, dataset_id: str) -> UploadHistory:
    records = instance.get_run_records(dg.RunsFilter(job_name=UPLOAD_JOB_NAME, tags={UPLOAD_TAG: dataset_id}))
    in_flight = any(r.dagster_run.status in ACTIVE_RUN_STATUSES for r in records)
    failed = [r for r in records if r.dagster_run.status in FAILED_RUN_STATUSES]
    last = max(failed, key=_ended_at, default=None)
    return UploadHistory(
        in_flight=in_flight,
        failures=len(failed),
        last_failed_at=_ended_at(last) if last else None,
        last_failed_run_id=last.dagster_run.run_id if last else None,
        last_failed_status=last.dagster_run.status.value if last else None,
    )


def _ended_at(record: Any) -> float:
    if record.end_time:
        return float(record.end_time)
    ts = record.update_timestamp
    return ts.timestamp() if hasattr(ts, "timestamp") else float(ts)


def last_failure_message(instance: dg.DagsterInstance, history: UploadHistory) -> str:
    """The failed step's error (else the run failure's message) of the dataset's last failed run."""
    run_id = history.last_failed_run_id
    if run_id is None:
        return "no failed run"
    try:
        for event_type in (dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.RUN_CANCELED):
            records = instance.get_records_for_run(run_id, of_type=event_type).records
            for rec in reversed(records):
                event = rec.event_log_entry.dagster_event
                data = getattr(event, "event_specific_data", None)
                error = getattr(data, "error", None)
                while getattr(error, "cause", None) is not None:  # the op's own exception, not Dagster's wrapper
                    error = error.cause
                message = (getattr(error, "message", None) or (event.message if event else None) or "").strip()
                if message:
                    return f"run {run_id} ({history.last_failed_status}): {message.splitlines()[0][:500]}"
    except Exception as exc:  # noqa: BLE001 - the warning matters more than its detail
        return f"run {run_id} ({history.last_failed_status}; its failure could not be read: {exc})"
    return f"run {run_id} ({history.last_failed_status})"


def evaluate_bandwidth(
    context: dg.SensorEvaluationContext,
    control_plane: ControlPlaneResource,
    bandwidth: BandwidthGate,
    now: float | None = None,
):
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

    now = time.time() if now is None else now
    alerted = given_up_cursor(context.cursor)
    chosen: list[tuple[int, dict[str, Any], int]] = []
    backing_off: list[str] = []
    given_up: list[str] = []
    for priority, _, dataset in ranked:
        if len(chosen) >= room:
            break  # the rest wait for a later tick: no run-history query for them now
        dataset_id = dataset["dataset_id"]
        history = upload_history(context.instance, dataset_id)
        if history.in_flight:
            continue  # its run is queued or running: never a second one
        if dataset["status"] != "INSPECTED" and not history.failures:
            continue  # UPLOADING without a failed run here: someone else is uploading it
        if history.failures >= bandwidth.max_upload_attempts:
            given_up.append(dataset_id)
            if dataset_id not in alerted:
                raise_given_up(context, GivenUp(UPLOAD_JOB_NAME, dataset_id, history.failures, last_failure_message(context.instance, history)))
                alerted.append(dataset_id)
            continue
        retry_at = history.next_attempt_at(bandwidth.retry_backoff_seconds)
        if now < retry_at:
            backing_off.append(f"{dataset_id} (attempt {history.failures + 1} in {retry_at - now:.0f}s)")
            continue
        chosen.append((priority, dataset, history.failures + 1))
    cursor = given_up_cursor_text(alerted) if alerted else context.cursor
    notes = []
    if backing_off:
        notes.append("backing off after a failed upload: " + _few(backing_off))
    if given_up:
        notes.append(f"given up after {bandwidth.max_upload_attempts} failed attempts: " + _few(given_up))
    if not chosen:
        return dg.SensorResult(skip_reason=dg.SkipReason("No approved dataset ready for upload" + "".join(f"; {n}" for n in notes)), cursor=cursor)
    context.log.info(
        f"launching {len(chosen)} upload(s) of {len(ranked)} waiting, by priority then age: "
        + ", ".join(f"{d['dataset_id']} (p{p}" + (f", attempt {a})" if a > 1 else ")") for p, d, a in chosen)
        + "".join(f"; {n}" for n in notes)
    )
    return dg.SensorResult(run_requests=[upload_run_request(d, p, a) for p, d, a in chosen], cursor=cursor)


def _few(items: list[str], shown: int = 20) -> str:
    return ", ".join(items[:shown]) + (f" and {len(items) - shown} more" if len(items) > shown else "")


@dg.sensor(
    name="bandwidth_sensor",
    job_name=UPLOAD_JOB_NAME,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches uploads of approved datasets in priority order while upload bandwidth >= min_bandwidth_mbps.",
)
def bandwidth_sensor(context: dg.SensorEvaluationContext, control_plane: ControlPlaneResource, bandwidth: BandwidthGate):
    return evaluate_bandwidth(context, control_plane, bandwidth)


