"""``staged_dataset_sensor``: one ``data_flow`` run per dataset and attempt.

With ``follow_uploads`` on a store that can be read before an upload completes (the embedded
``file://`` store), a dataset's run starts as soon as its upload is granted (GRANTED, run key
``data_flow:<dataset_id>:follow-<granted at>``) and ingests the recording while the robot's parts
arrive; it counts its attempt once the control plane has staged the upload. If it cannot (the
upload stalls, is abandoned or refused), it ends without output and the STAGED dataset gets the
usual run.

Candidates: datasets a robot staged (they carry a manifest) that a data_flow run still has to
move — STAGED, CACHED (a run failed after ingest), INSPECTED and approved (by a reviewer, or a
publish that failed), UPLOADING (a publish cut short) — by order priority, then age. The
``run_key`` is ``data_flow:<dataset_id>:attempt-<n>``, ``n`` the dataset's own ``publish_attempts``
+ 1 (counted by the control plane when a run starts, not read from Dagster's run history): a
dataset seen on many ticks launches one run per attempt, and a failed attempt is followed by the
next. A dataset with a data_flow run in flight is left alone; after ``max_attempts`` the sensor
gives it up with an alert (once; the cursor remembers it) and names it in its skip reason.
"""

from typing import Any

import dagster as dg

from axon_dagster.domain import QcOutcome

from ..resources import ControlPlaneResource, ObjectStoreResource
from ..runs import ACTIVE_RUN_STATUSES, GivenUp, given_up_cursor, given_up_cursor_text, raise_given_up
from .jobs import DATA_FLOW_JOB, DataFlowPolicy, data_flow

DATASET_TAG = "axon/dataset"
CANDIDATE_STATUSES = ("STAGED", "CACHED", "INSPECTED", "UPLOADING")  # what a data_flow run still has to move
FOLLOWED_STATUS = "GRANTED"  # being uploaded: a run may ingest it as it arrives
CANDIDATES_PER_STATUS = 500


def data_flow_run_key(dataset_id: str, attempt: int) -> str:
    return f"data_flow:{dataset_id}:attempt-{attempt}"


def staged_candidates(client: Any, limit: int = CANDIDATES_PER_STATUS, *, granted: bool = False) -> list[dict[str, Any]]:
    """Datasets a data_flow run still has to move, oldest first: STAGED, CACHED (a run failed after
    ingest), INSPECTED and approved (by a reviewer, or a publish that failed), UPLOADING (a publish
    cut short); with ``granted``, GRANTED ones too (being uploaded). Only datasets a robot staged
    or is staging (a manifest); a decision pending review waits."""
    found: list[dict[str, Any]] = []
    for status in (*CANDIDATE_STATUSES, *((FOLLOWED_STATUS,) if granted else ())):
        for item in client.search_datasets(status=status, limit=limit)["datasets"]:
            dataset = item if "manifest" in item and "publish_attempts" in item else client.get_dataset(item["dataset_id"])
            if not dataset.get("manifest"):
                continue  # reported before robots uploaded their own recordings: never staged
            if status in ("INSPECTED", "UPLOADING") and dataset.get("qc_outcome") != QcOutcome.APPROVED.value:
                continue
            found.append({**dataset, "priority": item.get("priority", 0), "created_at": item.get("created_at") or dataset.get("created_at")})
    found.sort(key=lambda d: (-int(d.get("priority") or 0), str(d.get("created_at") or "")))
    return found


def staged_run_request(dataset: dict[str, Any], attempt: int) -> dg.RunRequest:
    dataset_id = dataset["dataset_id"]
    following = dataset["status"] == FOLLOWED_STATUS
    granted_at = "".join(c for c in str(dataset.get("updated_at") or "") if c.isalnum())
    return dg.RunRequest(
        run_key=f"data_flow:{dataset_id}:follow-{granted_at}" if following else data_flow_run_key(dataset_id, attempt),
        job_name=DATA_FLOW_JOB,
        run_config={"ops": {"ingest_staged_recording": {"config": {"task_id": dataset_id}}}},
        tags={"axon/task_id": dataset_id, DATASET_TAG: dataset_id, "axon/attempt": "follow" if following else str(attempt)},
    )


def evaluate_staged(context: dg.SensorEvaluationContext, control_plane: ControlPlaneResource, policy: DataFlowPolicy,
                    object_store: ObjectStoreResource | None = None) -> dg.SensorResult:
    """The sensor body, callable without the decorator (tests, the demo's driver). Runs for
    GRANTED datasets only with ``object_store`` given, whose store can be followed."""
    follow = policy.follow_uploads and object_store is not None and object_store.store().follows_uploads
    with control_plane.client() as client:
        candidates = staged_candidates(client, granted=follow)
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
def staged_dataset_sensor(context: dg.SensorEvaluationContext, control_plane: ControlPlaneResource, data_flow_policy: DataFlowPolicy,
                          object_store: ObjectStoreResource):
    return evaluate_staged(context, control_plane, data_flow_policy, object_store)
