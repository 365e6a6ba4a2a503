"""Human review in Dagster: act on review decisions, and wait for one.

- ``review_decision_sensor`` follows the control plane's feed of decided datasets (cursor:
  ``(updated_at, dataset_id)`` of the last one seen) and starts, per rejected dataset (by a
  reviewer or by QC), exactly one ``dispose_rejected`` run (``run_key``): the dataset recorded
  ARCHIVED or DELETED per ``ReviewPolicy.rejected``, its staged files deleted or kept per the data
  flow's ``staging_rejected``, its task FAILED ("rejected by reviewer …"; the robot then releases
  its cached copy). Nothing rejected is ever published.
- A reviewer's approval leaves the dataset INSPECTED + approved: ``staged_dataset_sensor`` starts
  its next ``data_flow`` attempt, which publishes it like a QC-approved one (retried on failure)
  and records the reviewer on the cloud copy.
- ``manual_inspection`` (reference design 9.4): waits for a human decision on one dataset up to
  ``approval_timeout_seconds`` and fails clearly when none came; it decides nothing itself (the
  sensor acts on the decision once it is made).

"""


import os
import time
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from axon_dagster.domain import DatasetStatus, QcOutcome, TaskStatus
from axon_dagster.services import staged as staging
from axon_dagster.settings.code_location import ReviewSettings

from ..data_flow.jobs import DataFlowPolicy
from ..lineage import DATASET
from ..resources import ControlPlaneResource, ObjectStoreResource
from ..retry import NETWORK_RETRY

DECISIONS_PER_TICK = 200
DISPOSE_REJECTED_JOB = "dispose_rejected"


class ReviewPolicy(dg.ConfigurableResource):
    """What a rejected dataset's record becomes: ARCHIVED (``archive``) or DELETED (``delete``). Its
    staged files follow ``DataFlowPolicy.staging_rejected``."""

    rejected: Literal["archive", "delete"] = Field(default="archive", description="archive | delete")


def _review_client(control_plane: ControlPlaneResource):
    from axon_dagster.client.review import ReviewClient

    return ReviewClient(control_plane.url, token=control_plane.token(), timeout=control_plane.timeout_seconds)


# ------------------------------------------------------------------------------ dispose_rejected


class DisposeConfig(dg.Config):
    task_id: str = Field(description="The rejected dataset (= its task id)")
    policy: Literal["archive", "delete"] = Field(default="archive", description="archive | delete")


@dg.op(retry_policy=NETWORK_RETRY)
def dispose_rejected_dataset(
    context: dg.OpExecutionContext, config: DisposeConfig, control_plane: ControlPlaneResource,
    object_store: ObjectStoreResource, data_flow_policy: DataFlowPolicy,
) -> dict:
    client = _review_client(control_plane)
    dataset = client.get_dataset(config.task_id)
    if dataset["qc_outcome"] != QcOutcome.REJECTED.value:
        raise dg.Failure(
            description=f"dataset {config.task_id} is not rejected (outcome {dataset['qc_outcome']}): refusing to {config.policy} it",
            allow_retries=False,
        )
    removed = 0
    if dataset.get("manifest"):  # staged by its robot: its staged files per staging_rejected
        files = staging.staged_files(client.get_task(config.task_id), dataset)
        removed = staging.discard_staged(object_store.store(), files, data_flow_policy.staging_rejected, data_flow_policy.workdir)
    result = client.dispose_rejected(config.task_id, config.policy)
    reviewer = dataset.get("reviewed_by")
    if reviewer:
        reason = f"rejected by reviewer {reviewer}" + (f": {dataset['review_comment']}" if dataset.get("review_comment") else "")
    else:
        reason = "rejected by QC"
    task = client.transition_task(config.task_id, TaskStatus.FAILED.value, reason=reason)  # a replay if QC already failed it
    context.log_event(
        dg.AssetMaterialization(
            asset_key=DATASET,
            partition=task["order_id"],
            metadata={"task_id": config.task_id, "disposal": result["status"], "policy": config.policy, "reason": reason,
                      "staging": data_flow_policy.staging_rejected, "staged_objects_deleted": removed},
        )
    )
    context.log.info(f"dataset {config.task_id} {result['status']}; task {task['status']} ({task.get('failure_reason')})")
    return {"dataset_status": result["status"], "task_status": task["status"], "reason": reason, "staged_objects_deleted": removed}


@dg.job(name=DISPOSE_REJECTED_JOB, description="Archive or delete a rejected dataset per policy; its task FAILED.")
def dispose_rejected():
    dispose_rejected_dataset()


# ------------------------------------------------------------------------------ the sensor


def decision_run_request(item: dict[str, Any], policy: str) -> dg.RunRequest | None:
    dataset, lineage = item["dataset"], item.get("lineage") or {}
    dataset_id = dataset["dataset_id"]
    tags = {"axon/task_id": dataset_id, "axon/robot_id": lineage.get("robot_id") or "", "axon/reviewed_by": dataset.get("reviewed_by") or ""}
    if dataset["qc_outcome"] == QcOutcome.REJECTED.value:
        return dg.RunRequest(
            run_key=f"{DISPOSE_REJECTED_JOB}:{dataset_id}",
            job_name=DISPOSE_REJECTED_JOB,
            run_config={"ops": {"dispose_rejected_dataset": {"config": {"task_id": dataset_id, "policy": policy}}}},
            tags={**tags, "axon/policy": policy},
        )
    return None


@dg.sensor(job=dispose_rejected, minimum_interval_seconds=10, default_status=dg.DefaultSensorStatus.RUNNING)
def review_decision_sensor(
    context: dg.SensorEvaluationContext, control_plane: ControlPlaneResource, review_policy: ReviewPolicy
) -> dg.SensorResult:
    """Archive or delete (per ``review_policy``) what was rejected. Approved datasets are
    ``staged_dataset_sensor``'s (their next ``data_flow`` attempt publishes them)."""
    after = context.cursor or ""
    page = _review_client(control_plane).review_decisions(after=after, limit=DECISIONS_PER_TICK)
    requests = [r for r in (decision_run_request(i, review_policy.rejected) for i in page["decisions"]) if r is not None]
    if page["decisions"]:
        context.log.info(
            f"{len(page['decisions'])} decided dataset(s): {len(requests)} to {review_policy.rejected}, "
            "approved ones left to staged_dataset_sensor"
        )
    return dg.SensorResult(run_requests=requests, cursor=page["cursor"])


# ------------------------------------------------------------------------------ manual_inspection


class ManualInspectionConfig(dg.Config):
    task_id: str = Field(description="The dataset (= task id) waiting for a human decision")
    wait_for_approval: bool = Field(default=True, description="Wait for the decision (else report it pending and finish)")
    approval_timeout_seconds: float = Field(default=86400.0, gt=0, description="Fail if no decision came within this long (24 h default)")
    poll_interval_seconds: float = Field(default=10.0, gt=0, description="How often to ask the control plane")


@dg.op
def manual_inspection_op(context: dg.OpExecutionContext, config: ManualInspectionConfig, control_plane: ControlPlaneResource) -> dict:
    """Wait for a reviewer's decision on one dataset (approve/reject in the review page at /review)."""
    from axon_dagster.client import ControlPlaneUnavailable

    client = control_plane.client()
    dataset = client.get_dataset(config.task_id)  # unknown dataset: fails now, with the API's message
    if dataset["status"] == DatasetStatus.UPLOADED.value or dataset["status"] in (DatasetStatus.ARCHIVED.value, DatasetStatus.DELETED.value):
        return _decision(dataset)
    if dataset["qc_outcome"] is None:
        raise dg.Failure(description=f"dataset {config.task_id} is {dataset['status']} and not inspected yet: nothing to review", allow_retries=False)
    started = time.monotonic()
    deadline = started + config.approval_timeout_seconds
    review_url = f"{control_plane.url.rstrip('/')}/review/{config.task_id}"
    context.log.info(f"waiting up to {config.approval_timeout_seconds:g}s for a review decision on {config.task_id}: {review_url}")
    while dataset["qc_outcome"] == QcOutcome.NEEDS_REVIEW.value:
        if not config.wait_for_approval:
            return {**_decision(dataset), "approval_status": "pending"}
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise dg.Failure(
                description=(
                    f"manual inspection timed out: no review decision on dataset {config.task_id} within "
                    f"{config.approval_timeout_seconds:g}s (approval_timeout_seconds); it still needs review at {review_url}. "
                    "Nothing was uploaded or deleted."
                ),
                metadata={"task_id": config.task_id, "waited_seconds": round(time.monotonic() - started, 3), "review_url": dg.MetadataValue.url(review_url)},
                allow_retries=False,
            )
        time.sleep(min(config.poll_interval_seconds, remaining))
        try:
            dataset = client.get_dataset(config.task_id)
        except ControlPlaneUnavailable as exc:  # keep waiting; the deadline still holds
            context.log.warning(f"control plane unavailable while waiting for a review decision: {exc}")
    decision = _decision(dataset)
    context.log.info(f"dataset {config.task_id}: {decision['approval_status']} by {decision['approved_by'] or 'QC'}")
    return decision


def _decision(dataset: dict) -> dict:
    return {
        "task_id": dataset["dataset_id"],
        "edge_cache_path": dataset.get("cache_path"),
        "inspection_type": "manual" if dataset.get("reviewed_by") else "automatic",
        "approval_status": dataset.get("qc_outcome"),
        "approved_by": dataset.get("reviewed_by"),
        "comment": dataset.get("review_comment"),
        "decided_at": str(dataset.get("updated_at")),
    }


@dg.job(description="Wait for a human review decision on one dataset, up to approval_timeout_seconds.")
def manual_inspection():
    manual_inspection_op()


def review_policy_from_env(review: ReviewSettings | None = None) -> ReviewPolicy:
    """``AXON_REVIEW_REJECTED_POLICY`` (archive | delete; default archive)."""
    return ReviewPolicy(rejected=(review or ReviewSettings.load()).rejected_policy)  # type: ignore[arg-type]
