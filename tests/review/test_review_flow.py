"""The review-decision sensor and the review jobs under Dagster's testing APIs, against the real API
(SQLite, a local-dir staging store), recordings robots staged and the real data_flow job: a
reviewer's approval is published by the dataset's next data_flow attempt (started by
staged_dataset_sensor); rejected datasets are archived or deleted per policy, their staged files
deleted, their tasks FAILED, and never published; manual_inspection waits for a decision and times
out clearly."""

import threading
import time

import dagster as dg
import pytest

from axon_dagster.defs import build_definitions
from axon_dagster.defs.data_flow import data_flow, evaluate_staged
from axon_dagster.defs.lineage import CLOUD_DATASET
from axon_dagster.defs import review as review_area
from axon_dagster.defs.review import (
    ReviewPolicy,
    dispose_rejected,
    manual_inspection,
    review_decision_sensor,
)
from axon_dagster.services import data_flow as flow


def evaluate(world, cursor=None, policy="archive"):
    context = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        cursor=cursor,
        resources={"control_plane": world.control_plane, "review_policy": ReviewPolicy(rejected=policy)},
    )
    return review_decision_sensor(context)


def staged_tick(world, instance=None):
    context = dg.build_sensor_context(instance=instance or dg.DagsterInstance.ephemeral(), resources=world.resources())
    return evaluate_staged(context, world.control_plane, world.data_flow_policy).run_requests or []


def run(world, job, run_config):
    return job.execute_in_process(run_config=run_config, resources=world.resources(), instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def requests_for(result, dataset_id):
    return [r for r in result.run_requests if r.tags["axon/task_id"] == dataset_id]


def staged_keys(world, task_id):
    return world.object_store.store().list_keys(f"staging/robot-1/{task_id}/")


def test_reviewer_approval_is_published_by_the_next_data_flow_attempt_and_rejections_follow_the_policy(world):
    approved, archived, deleted, pending = (world.inspected_task() for _ in range(4))
    cloud = world.object_store.store()

    # Nothing decided yet: no run requests, nothing to publish; every one waits with its staged files.
    first = evaluate(world)
    assert first.run_requests == []
    assert not [r for r in staged_tick(world) if r.tags["axon/task_id"] in (approved, pending, archived, deleted)]
    assert world.admin.get_dataset(pending)["status"] == "INSPECTED" and staged_keys(world, pending)

    world.admin.review_dataset(approved, reviewer="alice", approve=True, comment="ok")
    world.admin.review_dataset(archived, reviewer="bob", approve=False, comment="camera frozen")
    world.admin.review_dataset(deleted, reviewer="bob", approve=False, comment="wrong scene")

    # The review sensor only disposes of rejections; it never starts a publish.
    tick = evaluate(world, cursor=first.cursor)
    assert requests_for(tick, pending) == [] and requests_for(tick, approved) == []
    assert {r.job_name for r in tick.run_requests} == {"dispose_rejected"}
    (arch,) = requests_for(tick, archived)
    assert (arch.job_name, arch.run_key) == ("dispose_rejected", f"dispose_rejected:{archived}")
    assert arch.run_config["ops"]["dispose_rejected_dataset"]["config"]["policy"] == "archive"
    # The cursor moves past what it has seen: the next tick asks for nothing again.
    assert evaluate(world, cursor=tick.cursor).run_requests == []

    # The reviewer-approved dataset is staged_dataset_sensor's: its second data_flow attempt.
    (up,) = [r for r in staged_tick(world) if r.tags["axon/task_id"] == approved]
    assert up.run_key == f"data_flow:{approved}:attempt-2"
    assert world.admin.get_dataset(pending)["qc_outcome"] == "needs_review"

    # Approve -> publish: cloud copy verified by its keys and record, task UPLOADED, reviewer on the cloud copy.
    published = run(world, data_flow, up.run_config)
    assert published.success
    task, dataset = world.admin.get_task(approved), world.admin.get_dataset(approved)
    assert (task["status"], dataset["status"], dataset["reviewed_by"]) == ("UPLOADED", "UPLOADED", "alice")
    assert flow.verify_cloud_copy(cloud, task, dataset)
    assert staged_keys(world, approved) == []
    (cloud_copy,) = [m for m in published.get_asset_materialization_events() if m.asset_key == CLOUD_DATASET]
    meta = cloud_copy.materialization.metadata
    assert (meta["reviewed_by"].value, meta["review_comment"].value) == ("alice", "ok")
    assert not [r for r in staged_tick(world) if r.tags["axon/task_id"] == approved]

    # Reject + archive: dataset ARCHIVED; task FAILED with the reason; staged files deleted (staging_rejected: delete).
    assert staged_keys(world, archived)
    assert run(world, dispose_rejected, arch.run_config).success
    assert world.admin.get_dataset(archived)["status"] == "ARCHIVED"
    task = world.admin.get_task(archived)
    assert (task["status"], task["failure_reason"]) == ("FAILED", "rejected by reviewer bob: camera frozen")
    assert staged_keys(world, archived) == []

    # Reject + delete policy: dataset DELETED.
    (dele,) = requests_for(evaluate(world, cursor=first.cursor, policy="delete"), deleted)
    assert dele.run_config["ops"]["dispose_rejected_dataset"]["config"]["policy"] == "delete"
    assert run(world, dispose_rejected, dele.run_config).success
    assert world.admin.get_dataset(deleted)["status"] == "DELETED"
    assert world.admin.get_task(deleted)["status"] == "FAILED"
    assert staged_keys(world, deleted) == []

    # Nothing rejected was published, and acted-on datasets leave the feed.
    assert len(list((world.root / "cloud").glob("*/*/*.lance"))) == 1
    assert evaluate(world).run_requests == []
    assert not [r for r in staged_tick(world) if r.tags["axon/task_id"] in (archived, deleted)]
    # The dispose job refuses a dataset that is not rejected (here: the approved, published one).
    wrong = run(world, dispose_rejected, {"ops": {"dispose_rejected_dataset": {"config": {"task_id": approved, "policy": "delete"}}}})
    assert not wrong.success and "is not rejected" in str(wrong.all_events)
    assert world.admin.get_dataset(approved)["status"] == "UPLOADED"


def _manual(task_id, timeout, poll=0.2):
    return {
        "ops": {
            "manual_inspection_op": {
                "config": {"task_id": task_id, "approval_timeout_seconds": timeout, "poll_interval_seconds": poll}
            }
        }
    }


def test_manual_inspection_times_out_clearly(world):
    task_id = world.inspected_task()
    started = time.monotonic()
    result = run(world, manual_inspection, _manual(task_id, 1.0))
    assert not result.success and time.monotonic() - started < 30
    failure = result.failure_data_for_node("manual_inspection_op")
    message = failure.error.message if failure and failure.error else str(result.all_events)
    assert "manual inspection timed out" in message and "approval_timeout_seconds" in message and task_id in message
    assert world.admin.get_dataset(task_id)["qc_outcome"] == "needs_review"  # nothing decided for the reviewer


def test_manual_inspection_returns_the_decision_when_it_arrives(world):
    task_id = world.inspected_task()

    def decide() -> None:
        time.sleep(1.0)
        world.admin.review_dataset(task_id, reviewer="alice", approve=True, comment="checked by hand")

    threading.Thread(target=decide, daemon=True).start()
    result = run(world, manual_inspection, _manual(task_id, 30.0))
    assert result.success
    decision = result.output_for_node("manual_inspection_op")
    assert (decision["approval_status"], decision["approved_by"], decision["comment"]) == ("approved", "alice", "checked by hand")


def test_review_defs_load_in_a_code_location(world):
    defs = dg.Definitions.merge(review_area.defs, dg.Definitions(resources={**world.resources(), "review_policy": ReviewPolicy()}))
    repo = defs.get_repository_def()
    assert {j.name for j in repo.get_all_jobs()} >= {"dispose_rejected", "manual_inspection"}
    assert {t.job_name for t in repo.get_sensor_def("review_decision_sensor").targets} == {"dispose_rejected"}
    assert set(ReviewPolicy.model_fields) == {"rejected"}  # no switch to start uploads from here


def test_one_publishing_job_in_the_code_location():
    """Every publish, QC- or reviewer-approved, is a data_flow run launched by staged_dataset_sensor."""
    defs = build_definitions()
    jobs = {j.name for j in defs.get_repository_def().get_all_jobs()}
    assert "data_flow" in jobs and not {j for j in jobs if j.startswith("upload")}
    launching = {t.job_name for s in defs.get_repository_def().sensor_defs for t in s.targets if t.job_name == "data_flow"}
    assert launching == {"data_flow"}
    assert [s.name for s in defs.get_repository_def().sensor_defs if any(t.job_name == "data_flow" for t in s.targets)] == ["staged_dataset_sensor"]
    with pytest.raises(Exception, match="archive"):
        ReviewPolicy(rejected="shred")


def test_the_qc_check_plot_is_drawn_from_the_series_stored_with_the_report(world, monkeypatch):
    """The series is read from the recording once per run, at inspection; the asset check's plot
    and the control plane's record are the same series."""
    import base64

    from axon_dagster.api.rate_plot import rate_plot_svg
    from axon_dagster.inspection import rate_series as series_module

    reads = []
    real = series_module.rate_series

    def counted(path, **kwargs):
        reads.append(path)
        return real(path, **kwargs)

    monkeypatch.setattr(series_module, "rate_series", counted)
    monkeypatch.setattr(flow, "rate_series", counted)
    task_id = world.recorded_task()
    result = data_flow.execute_in_process(
        run_config={"ops": {"ingest_staged_recording": {"config": {"task_id": task_id}}}}, resources=world.resources(),
        instance=dg.DagsterInstance.ephemeral(), tags={"axon/task_id": task_id}, raise_on_error=True)
    assert len(reads) == 1, reads
    [check] = result.get_asset_check_evaluations()
    markdown = check.metadata["rate_plot"].value
    svg = base64.b64decode(markdown.split("base64,")[1][:-1]).decode()
    stored = world.admin.get_dataset(task_id)["inspection_report"]["rate_series"]
    assert svg == rate_plot_svg(stored) and svg.count('class="rate-line"') == 3
