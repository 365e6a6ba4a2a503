"""The cloud's ``data_flow`` (issue 13): one run per STAGED dataset and attempt, launched by
``staged_dataset_sensor`` (:mod:`.sensors`).

``ingest_staged_recording`` (count the attempt on the dataset; staged MCAP -> Lance parked in
staging, written once, or the staged Lance dataset, every byte verified against the robot's manifest) ->
``inspect_staged_dataset`` (QC as always; a decision already made — a reviewer's — is kept, not
re-inspected) -> ``settle_dataset`` (approved: publish into the lake by verified server-side copies,
task UPLOADED, staging deleted; needs review: the Lance dataset stays parked in staging until a reviewer decides, when
the sensor starts the next attempt; rejected: task FAILED, staging per ``staging_rejected``).
The functions are in :mod:`axon_dagster.services.staged`; each op calls one.

The sensor's ``run_key`` is ``data_flow:<dataset_id>:attempt-<n>`` with ``n`` the dataset's own
``publish_attempts`` + 1 (counted by the control plane when a run starts, not read from Dagster's
run history): a dataset seen on many ticks launches one run per attempt, and a failed attempt is
followed by the next. A dataset with a data_flow run in flight is left alone; after
``max_attempts`` the sensor gives it up with an alert (once) and names it in its skip reason.
"""

from typing import Literal

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
from .reporting import log_inspection, report_upload_failed, review_metadata

DATA_FLOW_JOB = "data_flow"


class DataFlowPolicy(dg.ConfigurableResource):
    """Where data_flow runs work and what happens to rejected data's staged files."""

    workdir: str = Field(default=".axon/data-flow", description="Working directory of the runs (staged recordings ingested here)")
    staging_rejected: Literal["delete", "keep"] = Field(default="delete", description="A rejected dataset's staged files: delete | keep")
    max_attempts: int = Field(default=5, ge=1, description="data_flow runs per dataset before the sensor gives it up")
    follow_uploads: bool = Field(default=True, description="Start a dataset's run when its upload is granted and ingest the "
                                 "recording while it arrives (stores that can be read before an upload completes)")
    follow_stall_seconds: float = Field(default=30.0, gt=0, description="A run following an upload gives it up (to the run "
                                        "for the staged dataset) after this long without a new part")


def data_flow_policy_from_env(data_flow=None, upload=None) -> DataFlowPolicy:
    """From ``settings.data_flow`` and ``settings.upload`` (loaded now when not given)."""
    from axon_dagster.settings.code_location import DataFlowSettings, UploadSettings

    s = data_flow or DataFlowSettings.load()
    return DataFlowPolicy(workdir=s.workdir, staging_rejected=s.staging_rejected,  # type: ignore[arg-type]
                          max_attempts=(upload or UploadSettings.load()).max_upload_attempts,
                          follow_uploads=s.follow_uploads, follow_stall_seconds=s.follow_stall_seconds)


class StagedFlowConfig(dg.Config):
    task_id: str = Field(description="The STAGED dataset (= its task id) to ingest, inspect and publish")


def _final(exc: Exception) -> dg.Failure:
    return dg.Failure(description=str(exc), allow_retries=False)


@dg.op(retry_policy=NETWORK_RETRY, out=dg.Out(dict, is_required=False))
def ingest_staged_recording(
    context: dg.OpExecutionContext, config: StagedFlowConfig, control_plane: ControlPlaneResource,
    object_store: ObjectStoreResource, data_flow_policy: DataFlowPolicy,
):
    """No output (the rest of the run skipped) when a run started at the grant could not ingest
    the recording while it arrived: the run for the STAGED dataset does it."""
    follow = data_flow_policy.follow_stall_seconds if data_flow_policy.follow_uploads else None
    try:
        recording = staging.ingest_staged(control_plane.client(), object_store.store(), data_flow_policy.workdir, config.task_id,
                                          follow_stall_seconds=follow)
    except (flow.DataFlowError, staging.StagedDigestMismatch) as exc:
        raise _final(exc) from exc  # retrying reads the same bytes: nothing is published from them
    if recording is None:
        context.log.info(f"dataset {config.task_id}: not ingested while uploaded; the run for the staged dataset takes it")
        return
    context.log_event(materialization(DATASET, recording.order_id, {
        **recording.lineage, "work_path": dg.MetadataValue.path(recording.cache_path), "dataset_digest": recording.dataset_digest,
        "size_bytes": recording.size_bytes, "ingest_seconds": recording.stage_seconds,
    }))
    yield dg.Output(recording.to_dict())


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
    # The dataset was verified (or written) against its sidecar by this run's ingest: QC need not
    # hash it again; publishing proves each file unchanged since. It is a local path — on the local
    # store the parked dataset where it lies, else the run's working copy: a remote runner (Ray
    # job, KubeRay) must see it (a shared volume); reading an s3:// URI instead would cost the
    # integrity evidence (the sidecar check reads local datasets only) and so every auto-approval.
    def inspect(path: str, requirements):
        return inspection.inspect(path, requirements, verify_digest=False)

    report, outcome = flow.inspect_staged(client, inspect, recording)
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
            published = staging.publish_staged(client, store, files, recording, data_flow_policy.workdir)
        except (flow.DataFlowError, staging.StagedDigestMismatch) as exc:
            raise _final(exc) from exc
        context.log_event(materialization(CLOUD_DATASET, recording.order_id, {
            **recording.lineage, "cloud_uri": dg.MetadataValue.url(published.cloud_uri), "dataset_digest": published.dataset_digest,
            "size_bytes": published.size_bytes, "publish_seconds": published.upload_seconds,
            **review_metadata(control_plane, recording.task_id),
        }))
        context.log.info(f"task {recording.task_id} UPLOADED: {published.cloud_uri}")
        return {"outcome": outcome, "cloud_uri": published.cloud_uri, "dataset_digest": published.dataset_digest}
    if outcome == QcOutcome.NEEDS_REVIEW.value:
        uri = staging.park_for_review(store, files, recording)
        context.log.info(f"dataset {recording.task_id} waits for a reviewer; its Lance dataset is parked at {uri}")
        return {"outcome": outcome, "parked": uri}
    removed = staging.discard_staged(store, files, data_flow_policy.staging_rejected, data_flow_policy.workdir)
    context.log.info(f"dataset {recording.task_id} rejected: staging {data_flow_policy.staging_rejected} ({removed} object(s) deleted)")
    return {"outcome": outcome, "staging": data_flow_policy.staging_rejected, "deleted_objects": removed}


@dg.job(name=DATA_FLOW_JOB, description="Ingest one STAGED recording, inspect it, publish it (or park / discard it).")
def data_flow():
    staged = ingest_staged_recording()
    settle_dataset.with_hooks({report_upload_failed})(staged, inspect_staged_dataset(staged))
