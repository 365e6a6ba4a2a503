"""What the data_flow ops record besides their work: the inspection's materialization and asset
check, who approved a reviewer-approved dataset, and the failure hook that reports a failed
publish to the control plane (with the op's own error, trimmed)."""

import dagster as dg

from axon_dagster.api.rate_plot import rate_plot_markdown
from axon_dagster.domain import QcOutcome
from axon_dagster.services import data_flow as flow
from axon_dagster.storage.recording import report_path

from ..lineage import DATASET, INSPECTION_REPORT, QC_CHECK, materialization
from ..resources import ControlPlaneResource


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
                "rate_plot": dg.MetadataValue.md(rate_plot_markdown(report.rate_series)),
                **checks,
            },
            severity=dg.AssetCheckSeverity.WARN if outcome is QcOutcome.NEEDS_REVIEW else dg.AssetCheckSeverity.ERROR,
        )
    )
    if outcome is not QcOutcome.APPROVED:
        context.log.warning(f"task {recording.task_id} not uploaded: QC outcome {outcome.value} (score {report.score:.3f})")


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
    """Publishing failed for good (Dagster runs failure hooks on the op's final failure only, not on
    the attempts its RetryPolicy retries): tell the control plane, which moves a dataset caught
    UPLOADING back to INSPECTED with the error kept (a dataset in another state refuses: a
    warning). Never raises: staged_dataset_sensor starts the next attempt either way."""
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
    config = (run.run_config or {}).get("ops", {}).get("ingest_staged_recording", {}).get("config", {})
    return config.get("task_id") or run.tags["axon/task_id"]


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
