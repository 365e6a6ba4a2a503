"""The legacy data flow, kept until every robot uploads its own recordings (issue 13):
`legacy_data_flow` (stage from the path the robot reported -> inspect, one run per EXECUTED task
without a manifest) and `upload_approved` (upload -> report UPLOADED, one run per approved dataset,
launched by the bandwidth sensor). The cloud's data flow from staging is :mod:`.staged`.

Uploads are their own job so that every upload — approved by QC or by a reviewer — goes through
the bandwidth gate, in priority order, while inspection never waits for the link."""


import dagster as dg
from pydantic import Field

from axon_dagster.api.rate_plot import rate_plot_markdown
from axon_dagster.domain import QcOutcome
from axon_dagster.storage.recording import report_path
from axon_dagster.services import data_flow as flow

from ..lineage import CLOUD_DATASET, DATASET, INSPECTION_REPORT, QC_CHECK, materialization
from ..resources import ControlPlaneResource, EdgeCacheResource, InspectionResource, ObjectStoreResource
from ..retry import NETWORK_RETRY


class DataFlowConfig(dg.Config):
    task_id: str = Field(description="The EXECUTED task whose recording to move")
    recording_format: str | None = Field(
        default=None, description="mcap (Axon v0.4) or lance (Lance-era layout); default: from the recording's path"
    )
    recorder_checksum_sha256: str | None = Field(
        default=None, description="The MCAP's SHA-256 as the recorder reported it, checked besides Axon's sidecar"
    )


@dg.op(retry_policy=NETWORK_RETRY)
def stage_recording(
    context: dg.OpExecutionContext, config: DataFlowConfig, control_plane: ControlPlaneResource, edge_cache: EdgeCacheResource
) -> dict:
    staged = flow.stage_recording(
        control_plane.client(), edge_cache.cache(), config.task_id,
        recording_format=config.recording_format, recorder_checksum=config.recorder_checksum_sha256,
        wait_timeout_s=flow.recording_wait_seconds(),
    )
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


def log_inspection(context: dg.OpExecutionContext, recording: flow.StagedRecording, report, outcome: QcOutcome) -> None:
    """The inspection report's materialization and the QC asset check, shared by both data flows."""
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
    if outcome is not QcOutcome.APPROVED:
        context.log.warning(f"task {recording.task_id} not uploaded: QC outcome {outcome.value} (score {report.score:.3f})")


@dg.op(retry_policy=NETWORK_RETRY)
def inspect_dataset(
    context: dg.OpExecutionContext,
    control_plane: ControlPlaneResource,
    edge_cache: EdgeCacheResource,
    inspection: InspectionResource,
    staged: dict,
) -> str:
    recording = flow.StagedRecording.from_dict(staged)
    report, outcome = flow.inspect_staged(control_plane.client(), edge_cache.cache(), inspection.inspect, recording)
    log_inspection(context, recording, report, outcome)
    return outcome.value


class UploadConfig(dg.Config):
    task_id: str = Field(description="The approved dataset (= its task id) to upload")


@dg.op(retry_policy=NETWORK_RETRY)
def load_approved_dataset(config: UploadConfig, control_plane: ControlPlaneResource) -> dict:
    try:
        return flow.load_approved(control_plane.client(), config.task_id).to_dict()
    except flow.DataFlowError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc


def upload_and_record(
    context: dg.OpExecutionContext,
    control_plane: ControlPlaneResource,
    edge_cache: EdgeCacheResource,
    object_store: ObjectStoreResource,
    recording: flow.StagedRecording,
    extra_metadata: dict | None = None,
) -> dict:
    """Upload an approved recording and materialize its cloud copy; shared by every upload job."""
    uploaded = flow.publish(control_plane.client(), edge_cache.cache(), object_store.store(), recording)
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
                **(extra_metadata or {}),
            },
        )
    )
    return dict(uploaded.__dict__)


@dg.op(retry_policy=NETWORK_RETRY)
def upload_dataset(
    context: dg.OpExecutionContext,
    control_plane: ControlPlaneResource,
    edge_cache: EdgeCacheResource,
    object_store: ObjectStoreResource,
    approved: dict,
) -> dict:
    recording = flow.StagedRecording.from_dict(approved)
    return upload_and_record(context, control_plane, edge_cache, object_store, recording, review_metadata(control_plane, recording.task_id))


def review_metadata(control_plane: ControlPlaneResource, task_id: str) -> dict:
    """Who approved a reviewer-approved dataset (and why), for its cloud copy; {} when QC approved it."""
    dataset = control_plane.client().get_dataset(task_id)
    if not dataset.get("reviewed_by"):
        return {}
    return {
        "reviewed_by": dataset["reviewed_by"],
        "review_comment": dataset.get("review_comment") or "",
        "rate_plot": dg.MetadataValue.url(f"{control_plane.url.rstrip('/')}/api/v1/datasets/{task_id}/rate-plot.svg"),
    }


MAX_UPLOAD_ERROR_CHARS = 1000  # of the error message sent as the dataset's last_upload_error


@dg.failure_hook(required_resource_keys={"control_plane"})
def report_upload_failed(context: dg.HookContext) -> None:
    """``upload_dataset`` failed for good (Dagster runs failure hooks on the op's final failure only,
    not on the attempts its RetryPolicy retries): tell the control plane, which moves the dataset
    back to INSPECTED with the error kept. Never raises: a report that cannot be made is a warning
    (the bandwidth sensor relaunches the upload from Dagster's run history either way)."""
    try:
        task_id = _upload_task_id(context)
        reason = upload_error_reason(context.op_exception, context.run_id)
        context.resources.control_plane.client().dataset_upload_failed(task_id, reason)
        context.log.warning(f"dataset {task_id}: upload failed for good, reported to the control plane: {reason}")
    except Exception as exc:  # noqa: BLE001 - a hook must never fail the run's bookkeeping
        context.log.warning(f"could not report the failed upload to the control plane: {type(exc).__name__}: {exc}")


def _upload_task_id(context: dg.HookContext) -> str:
    run = context.instance.get_run_by_id(context.run_id)
    assert run is not None, f"run {context.run_id} not found"
    config = (run.run_config or {}).get("ops", {}).get(load_approved_dataset.name, {}).get("config", {})
    return config.get("task_id") or run.tags.get("axon/upload") or run.tags["axon/task_id"]


def upload_error_reason(exc: BaseException | None, run_id: str) -> str:
    """One line naming the op's own error (not Dagster's wrapper), trimmed, without control characters."""
    while exc is not None and getattr(exc, "user_exception", None) is not None:
        exc = exc.user_exception
    if exc is None:
        message = "upload failed"
    else:
        text = " ".join("".join(ch if ch.isprintable() or ch.isspace() else " " for ch in str(exc)).split())
        message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    suffix = f" (run {run_id})"
    if len(message) + len(suffix) > MAX_UPLOAD_ERROR_CHARS:
        message = message[: MAX_UPLOAD_ERROR_CHARS - len(suffix) - 1] + "…"
    return message + suffix


@dg.op(retry_policy=NETWORK_RETRY)
def report_uploaded(context: dg.OpExecutionContext, control_plane: ControlPlaneResource, uploaded: dict) -> None:
    task = flow.report_uploaded(control_plane.client(), flow.Uploaded(**uploaded))
    context.log.info(f"task {uploaded['task_id']} is {task['status']}: {uploaded['cloud_uri']}")


@dg.job(description="Legacy: stage one EXECUTED task's recording from the path its robot reported into the edge cache and inspect it.")
def legacy_data_flow():
    inspect_dataset(stage_recording())


@dg.job(description="Upload one approved dataset with its sidecar and QC report, verify it, report UPLOADED.")
def upload_approved():
    report_uploaded(upload_dataset.with_hooks({report_upload_failed})(load_approved_dataset()))
