"""The cloud's ``data_flow`` (issue 13): one run per STAGED dataset and attempt, launched by
``staged_dataset_sensor``.

``ingest_staged_recording`` (count the attempt on the dataset; staged MCAP -> Lance in the working
directory, or the staged Lance dataset, every byte verified against the robot's manifest) ->
``inspect_staged_dataset`` (QC as always; a decision already made — a reviewer's — is kept, not
re-inspected) -> ``settle_dataset`` (approved: publish into the lake, verified, task UPLOADED,
staging deleted; needs review: the Lance dataset parked in staging until a reviewer decides, when
the sensor starts the next attempt; rejected: task FAILED, staging per ``staging_rejected``).
The functions are in :mod:`axon_dagster.services.staged`; each op calls one.

The sensor's ``run_key`` is ``data_flow:<dataset_id>:attempt-<n>`` with ``n`` the dataset's own
``publish_attempts`` + 1 (counted by the control plane when a run starts, not read from Dagster's
run history): a dataset seen on many ticks launches one run per attempt, and a failed attempt is
followed by the next. A dataset with a data_flow run in flight is left alone; after
``max_attempts`` the sensor gives it up with an alert (once) and names it in its skip reason.
"""

from typing import Any, Literal

import dagster as dg
from pydantic import Field

from axon_dagster.domain import QcOutcome
from axon_dagster.inspection.report import InspectionReport
from axon_dagster.services import data_flow as flow
from axon_dagster.services import staged as staging
from axon_dagster.storage.recording import report_path

from ..lineage import CLOUD_DATASET, DATASET, materialization
from ..resources import ControlPlaneResource, InspectionResource, ObjectStoreResource
from ..retry import NETWORK_RETRY
from ..runs import ACTIVE_RUN_STATUSES, GivenUp, given_up_cursor, given_up_cursor_text, raise_given_up
from .jobs import log_inspection, report_upload_failed

DATA_FLOW_JOB = "data_flow"
DATASET_TAG = "axon/dataset"
CANDIDATE_STATUSES = ("STAGED", "CACHED", "INSPECTED", "UPLOADING")  # what a data_flow run still has to move
CANDIDATES_PER_STATUS = 500


class DataFlowPolicy(dg.ConfigurableResource):
    """Where data_flow runs work and what happens to rejected data's staged files."""

    workdir: str = Field(default=".axon/data-flow", description="Working directory of the runs (staged recordings ingested here)")
    staging_rejected: Literal["delete", "keep"] = Field(default="delete", description="A rejected dataset's staged files: delete | keep")
    max_attempts: int = Field(default=5, ge=1, description="data_flow runs per dataset before the sensor gives it up")


def data_flow_policy_from_env() -> DataFlowPolicy:
    from axon_dagster.settings.code_location import DataFlowSettings, UploadSettings

    s = DataFlowSettings.load()
    return DataFlowPolicy(workdir=s.workdir, staging_rejected=s.staging_rejected,  # type: ignore[arg-type]
                          max_attempts=UploadSettings.load().max_upload_attempts)


class StagedFlowConfig(dg.Config):
    task_id: str = Field(description="The STAGED dataset (= its task id) to ingest, inspect and publish")


def _final(exc: Exception) -> dg.Failure:
    return dg.Failure(description=str(exc), allow_retries=False)


@dg.op(retry_policy=NETWORK_RETRY)
def ingest_staged_recording(
    context: dg.OpExecutionContext, config: StagedFlowConfig, control_plane: ControlPlaneResource,
    object_store: ObjectStoreResource, data_flow_policy: DataFlowPolicy,
) -> dict:
    try:
        recording = staging.ingest_staged(control_plane.client(), object_store.store(), data_flow_policy.workdir, config.task_id)
    except (flow.DataFlowError, staging.StagedDigestMismatch) as exc:
        raise _final(exc) from exc  # retrying reads the same bytes: nothing is published from them
    context.log_event(materialization(DATASET, recording.order_id, {
        **recording.lineage, "work_path": dg.MetadataValue.path(recording.cache_path), "dataset_digest": recording.dataset_digest,
        "size_bytes": recording.size_bytes, "ingest_seconds": recording.stage_seconds,
    }))
    return recording.to_dict()


@dg.op(retry_policy=NETWORK_RETRY)
def inspect_staged_dataset(
    context: dg.OpExecutionContext, control_plane: ControlPlaneResource, inspection: InspectionResource, staged: dict,
) -> str:
    """QC, unless the dataset was decided already (a reviewer's decision on a parked dataset)."""
    recording = flow.StagedRecording.from_dict(staged)
    client = control_plane.client()
    dataset = client.get_dataset(recording.task_id)
    if dataset["status"] != "CACHED" and dataset.get("qc_outcome"):
        context.log.info(f"dataset {recording.task_id} was decided already: {dataset['qc_outcome']}"
                         + (f" by {dataset['reviewed_by']}" if dataset.get("reviewed_by") else ""))
        if dataset["qc_outcome"] == QcOutcome.APPROVED.value and not report_path(recording.cache_path).exists() and dataset.get("inspection_report"):
            InspectionReport.from_dict(dataset["inspection_report"]).write(report_path(recording.cache_path))
        return dataset["qc_outcome"]
    report, outcome = flow.inspect_staged(client, None, inspection.inspect, recording)
    log_inspection(context, recording, report, outcome)
    return outcome.value


@dg.op(retry_policy=NETWORK_RETRY)
def settle_dataset(
    context: dg.OpExecutionContext, control_plane: ControlPlaneResource, object_store: ObjectStoreResource,
    data_flow_policy: DataFlowPolicy, staged: dict, outcome: str,
) -> dict:
    """Approved: publish. Needs review: park in staging. Rejected: staging per ``staging_rejected``."""
    recording = flow.StagedRecording.from_dict(staged)
    client, store = control_plane.client(), object_store.store()
    files = staging.staged_files(client.get_task(recording.task_id), client.get_dataset(recording.task_id))
    if outcome == QcOutcome.APPROVED.value:
        try:
            published = staging.publish_staged(client, store, files, recording)
        except staging.StagedDigestMismatch as exc:
            raise _final(exc) from exc
        context.log_event(materialization(CLOUD_DATASET, recording.order_id, {
            **recording.lineage, "cloud_uri": dg.MetadataValue.url(published.cloud_uri), "dataset_digest": published.dataset_digest,
            "size_bytes": published.size_bytes, "publish_seconds": published.upload_seconds,
        }))
        context.log.info(f"task {recording.task_id} UPLOADED: {published.cloud_uri}")
        return {"outcome": outcome, "cloud_uri": published.cloud_uri, "dataset_digest": published.dataset_digest}
    if outcome == QcOutcome.NEEDS_REVIEW.value:
        uri = staging.park_for_review(store, files, recording)
        context.log.info(f"dataset {recording.task_id} waits for a reviewer; its Lance dataset is parked at {uri}")
        return {"outcome": outcome, "parked": uri}
    removed = staging.discard_staged(store, files, data_flow_policy.staging_rejected)
    context.log.info(f"dataset {recording.task_id} rejected: staging {data_flow_policy.staging_rejected} ({removed} object(s) deleted)")
    return {"outcome": outcome, "staging": data_flow_policy.staging_rejected, "deleted_objects": removed}


@dg.job(name=DATA_FLOW_JOB, description="Ingest one STAGED recording, inspect it, publish it (or park / discard it).")
def data_flow():
    staged = ingest_staged_recording()
    settle_dataset.with_hooks({report_upload_failed})(staged, inspect_staged_dataset(staged))


# ------------------------------------------------------------------------------ the sensor


def data_flow_run_key(dataset_id: str, attempt: int) -> str:
    return f"data_flow:{dataset_id}:attempt-{attempt}"


def staged_candidates(client: Any, limit: int = CANDIDATES_PER_STATUS) -> list[dict[str, Any]]:
    """Datasets a data_flow run still has to move, oldest first: STAGED, CACHED (a run failed after
    ingest), INSPECTED and approved (by a reviewer, or a publish that failed), UPLOADING (a publish
    cut short). Only datasets a robot staged (a manifest); a decision pending review waits."""
    found: list[dict[str, Any]] = []
    for status in CANDIDATE_STATUSES:
        for item in client.search_datasets(status=status, limit=limit)["datasets"]:
            dataset = item if "manifest" in item and "publish_attempts" in item else client.get_dataset(item["dataset_id"])
            if not dataset.get("manifest"):
                continue  # recorded before robots uploaded their own: the legacy flow's
            if status in ("INSPECTED", "UPLOADING") and dataset.get("qc_outcome") != QcOutcome.APPROVED.value:
                continue
            found.append({**dataset, "priority": item.get("priority", 0), "created_at": item.get("created_at") or dataset.get("created_at")})
    found.sort(key=lambda d: (-int(d.get("priority") or 0), str(d.get("created_at") or "")))
    return found


def staged_run_request(dataset: dict[str, Any], attempt: int) -> dg.RunRequest:
    dataset_id = dataset["dataset_id"]
    return dg.RunRequest(
        run_key=data_flow_run_key(dataset_id, attempt),
        job_name=DATA_FLOW_JOB,
        run_config={"ops": {"ingest_staged_recording": {"config": {"task_id": dataset_id}}}},
        tags={"axon/task_id": dataset_id, DATASET_TAG: dataset_id, "axon/attempt": str(attempt)},
    )


def evaluate_staged(context: dg.SensorEvaluationContext, control_plane: ControlPlaneResource, policy: DataFlowPolicy) -> dg.SensorResult:
    """The sensor body, callable without the decorator (tests, the demo's driver)."""
    with control_plane.client() as client:
        candidates = staged_candidates(client)
    alerted = given_up_cursor(context.cursor)
    requests, given_up = [], []
    for dataset in candidates:
        dataset_id, attempts = dataset["dataset_id"], int(dataset.get("publish_attempts") or 0)
        in_flight = context.instance.get_runs_count(
            dg.RunsFilter(job_name=DATA_FLOW_JOB, tags={DATASET_TAG: dataset_id}, statuses=ACTIVE_RUN_STATUSES))
        if in_flight:
            continue
        if attempts >= policy.max_attempts:
            given_up.append(dataset_id)
            if dataset_id not in alerted:
                raise_given_up(context, GivenUp(DATA_FLOW_JOB, dataset_id, attempts,
                                                dataset.get("last_upload_error") or f"still {dataset['status']}"))
                alerted.append(dataset_id)
            continue
        requests.append(staged_run_request(dataset, attempts + 1))
    cursor = given_up_cursor_text(alerted) if alerted else context.cursor
    if requests:
        context.log.info("starting the data flow of " + ", ".join(f"{r.tags[DATASET_TAG]} (attempt {r.tags['axon/attempt']})" for r in requests[:20]))
        return dg.SensorResult(run_requests=requests, cursor=cursor)
    note = f"no staged dataset to move ({len(candidates)} in flight or given up)"
    if given_up:
        note += f"; given up after {policy.max_attempts} attempts: " + ", ".join(given_up[:20])
    return dg.SensorResult(skip_reason=dg.SkipReason(note), cursor=cursor)


@dg.sensor(
    name="staged_dataset_sensor",
    job=data_flow,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts one data_flow run per staged dataset and attempt (and for reviewer-approved ones).",
)
def staged_dataset_sensor(context: dg.SensorEvaluationContext, control_plane: ControlPlaneResource, data_flow_policy: DataFlowPolicy):
    return evaluate_staged(context, control_plane, data_flow_policy)
