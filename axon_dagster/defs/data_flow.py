"""`data_flow`: stage -> inspect -> (gate) -> upload -> report UPLOADED, one run per EXECUTED task."""


import dagster as dg
from pydantic import Field

from axon_dagster.api.rate_plot import rate_plot_markdown
from axon_dagster.domain import QcOutcome
from axon_dagster.storage.recording import report_path
from axon_dagster.services import data_flow as flow

from .lineage import CLOUD_DATASET, DATASET, INSPECTION_REPORT, QC_CHECK, materialization
from .resources import ControlPlaneResource, EdgeCacheResource, InspectionResource, ObjectStoreResource
from .retry import NETWORK_RETRY


class DataFlowConfig(dg.Config):
    task_id: str = Field(description="The EXECUTED task whose recording to move")


@dg.op(retry_policy=NETWORK_RETRY)
def stage_recording(
    context: dg.OpExecutionContext, config: DataFlowConfig, control_plane: ControlPlaneResource, edge_cache: EdgeCacheResource
) -> dict:
    staged = flow.stage_recording(control_plane.client(), edge_cache.cache(), config.task_id)
    context.log_event(
        materialization(
            DATASET,
            staged.order_id,
            {
                **staged.lineage,
                "cache_path": dg.MetadataValue.path(staged.cache_path),
                "dataset_digest": staged.dataset_digest,
                "size_bytes": staged.size_bytes,
                "stage_seconds": staged.stage_seconds,
            },
        )
    )
    return staged.to_dict()


@dg.op(out={"approved": dg.Out(dict, is_required=False)}, retry_policy=NETWORK_RETRY)
def inspect_dataset(
    context: dg.OpExecutionContext,
    control_plane: ControlPlaneResource,
    edge_cache: EdgeCacheResource,
    inspection: InspectionResource,
    staged: dict,
):
    recording = flow.StagedRecording.from_dict(staged)
    report, outcome = flow.inspect_staged(control_plane.client(), edge_cache.cache(), inspection.inspect, recording)
    checks = {f"check.{c.name}": bool(c.passed) for c in report.checks}
    context.log_event(
        materialization(
            INSPECTION_REPORT,
            recording.order_id,
            {
                **recording.lineage,
                "qc_score": report.score,
                "outcome": outcome.value,
                "report": dg.MetadataValue.path(str(report_path(recording.cache_path))),
                **checks,
            },
        )
    )
    context.log_event(
        dg.AssetCheckEvaluation(
            asset_key=DATASET,
            check_name=QC_CHECK,
            passed=outcome is QcOutcome.APPROVED,
            partition=recording.order_id,
            metadata={
                "task_id": recording.task_id,
                "qc_score": report.score,
                "outcome": outcome.value,
                "report": dg.MetadataValue.path(str(report_path(recording.cache_path))),
                "rate_plot": dg.MetadataValue.md(rate_plot_markdown(recording.cache_path)),
                **checks,
            },
            severity=dg.AssetCheckSeverity.WARN if outcome is QcOutcome.NEEDS_REVIEW else dg.AssetCheckSeverity.ERROR,
        )
    )
    if outcome is QcOutcome.APPROVED:
        yield dg.Output(staged, "approved")
    else:
        context.log.warning(f"task {recording.task_id} not uploaded: QC outcome {outcome.value} (score {report.score:.3f})")


@dg.op(retry_policy=NETWORK_RETRY)
def upload_dataset(
    context: dg.OpExecutionContext,
    control_plane: ControlPlaneResource,
    edge_cache: EdgeCacheResource,
    object_store: ObjectStoreResource,
    approved: dict,
) -> dict:
    recording = flow.StagedRecording.from_dict(approved)
    uploaded = flow.upload_approved(control_plane.client(), edge_cache.cache(), object_store.store(), recording)
    rate = uploaded.size_bytes / uploaded.upload_seconds if uploaded.upload_seconds > 0 else 0.0
    context.log_event(
        materialization(
            CLOUD_DATASET,
            recording.order_id,
            {
                **recording.lineage,
                "cloud_uri": dg.MetadataValue.url(uploaded.cloud_uri),
                "dataset_digest": uploaded.dataset_digest,
                "size_bytes": uploaded.size_bytes,
                "upload_seconds": uploaded.upload_seconds,
                "upload_bytes_per_second": rate,
            },
        )
    )
    return {**uploaded.__dict__}


@dg.op(retry_policy=NETWORK_RETRY)
def report_uploaded(context: dg.OpExecutionContext, control_plane: ControlPlaneResource, uploaded: dict) -> None:
    task = flow.report_uploaded(control_plane.client(), flow.Uploaded(**uploaded))
    context.log.info(f"task {uploaded['task_id']} is {task['status']}: {uploaded['cloud_uri']}")


@dg.job(description="Move one EXECUTED task's recording: stage, inspect, upload if approved, report UPLOADED.")
def data_flow():
    report_uploaded(upload_dataset(inspect_dataset(stage_recording())))
