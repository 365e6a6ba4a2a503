"""A failed upload of a reviewer-approved dataset, end to end with the real ``upload_approved`` job
(real recording, edge cache, local-dir object store): the store is broken, the run fails (after the
op's retries) and its failure hook reports it, so the dataset is back INSPECTED with the error kept;
the bandwidth sensor launches attempt 2 (a new run_key) after the backoff, which uploads and verifies
it once the store is back and clears the error."""

import sys
import time

import dagster as dg

from axon_dagster.defs.bandwidth import BandwidthGate, evaluate_bandwidth
from axon_dagster.defs.data_flow import report_upload_failed, upload_approved, upload_error_reason
from axon_dagster.defs.resources import ControlPlaneResource, ObjectStoreResource
from axon_dagster.services import data_flow as flow
from axon_dagster.storage.recording import sidecar_path


def test_a_failed_upload_is_retried_by_the_bandwidth_sensor_until_it_lands(world):
    task_id = world.inspected_task()
    world.admin.review_dataset(task_id, reviewer="alice", approve=True, comment="fine")
    instance = dg.DagsterInstance.ephemeral()
    gate = BandwidthGate(probe_command=f'{sys.executable} -c "print(50)"', max_concurrent_uploads=10, retry_backoff_seconds=30)
    cloud = world.root / "retry-cloud"
    cloud.mkdir()
    blocker = cloud / "warehouse"  # the dataset's scene prefix is a file: every put fails mid-upload
    blocker.write_text("not a directory")
    object_store = ObjectStoreResource(url=f"file://{cloud}")

    def tick(now: float) -> list[dg.RunRequest]:
        """The daemon: evaluate, then launch each request whose run_key this instance has not seen."""
        context = dg.build_sensor_context(instance=instance, resources={"control_plane": world.control_plane, "bandwidth": gate})
        result = evaluate_bandwidth(context, world.control_plane, gate, now=now)
        asked = [] if isinstance(result, dg.SkipReason) else result.run_requests or []
        requests = [r for r in asked if r.tags["axon/upload"] == task_id]
        for r in requests:
            if not instance.get_runs_count(dg.RunsFilter(tags={"dagster/run_key": r.run_key})):
                upload_approved.execute_in_process(
                    run_config=r.run_config,
                    instance=instance,
                    tags={**r.tags, "dagster/run_key": r.run_key},
                    resources={**world.resources(), "object_store": object_store},
                    raise_on_error=False,
                )
        return requests

    (first,) = tick(time.time())
    assert first.run_key == f"upload:{task_id}"
    (run,) = instance.get_runs(dg.RunsFilter(tags={"axon/upload": task_id}))
    assert run.status is dg.DagsterRunStatus.FAILURE
    failed = world.admin.get_dataset(task_id)
    assert failed["status"] == "INSPECTED"  # the failure hook reported the failed upload
    assert failed["last_upload_error"].endswith(f"(run {run.run_id})")
    assert "warehouse" in failed["last_upload_error"]  # the object store's own error, not Dagster's wrapper
    hooks = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.HOOK_COMPLETED).records
    assert [r.event_log_entry.step_key for r in hooks] == ["upload_dataset"]  # once: after the retries, not per attempt

    assert tick(time.time() + 5) == []  # inside the backoff
    blocker.unlink()  # the store is back
    (second,) = tick(time.time() + 31)
    assert second.run_key == f"upload:{task_id}:attempt-2"
    task, dataset = world.admin.get_task(task_id), world.admin.get_dataset(task_id)
    assert (task["status"], dataset["status"]) == ("UPLOADED", "UPLOADED")
    assert dataset["last_upload_error"] is None  # cleared by the successful upload
    assert flow.verify_cloud_copy(object_store.store(), task, dataset)
    # The recorder's copy released to the edge cache (release_source): verified against the cache's sidecar.
    recorder_sidecar = sidecar_path(task["dataset_path"])
    recorder_sidecar.rename(recorder_sidecar.with_suffix(".moved"))
    assert flow.verify_cloud_copy(object_store.store(), task, dataset)
    assert tick(time.time() + 1000) == []


def test_the_failure_hook_reports_and_never_raises_when_the_control_plane_is_unreachable(world):
    task_id = world.inspected_task()
    world.admin.review_dataset(task_id, reviewer="alice", approve=True, comment="fine")
    world.admin.dataset_upload_started(task_id)
    instance = dg.DagsterInstance.ephemeral()
    run = instance.create_run_for_job(upload_approved, run_config={"ops": {"load_approved_dataset": {"config": {"task_id": task_id}}}})

    def hook(control_plane: ControlPlaneResource) -> None:
        context = dg.build_hook_context(
            resources={"control_plane": control_plane}, op_exception=OSError("disk gone"), run_id=run.run_id, instance=instance
        )
        report_upload_failed(context)

    hook(ControlPlaneResource(url="http://127.0.0.1:9", timeout_seconds=0.5))  # unreachable: a warning, no exception
    assert world.admin.get_dataset(task_id)["status"] == "UPLOADING"
    hook(world.control_plane)
    dataset = world.admin.get_dataset(task_id)
    assert (dataset["status"], dataset["last_upload_error"]) == ("INSPECTED", f"OSError: disk gone (run {run.run_id})")
    world.admin.dataset_upload_started(task_id)
    world.admin.dataset_uploaded(task_id, cloud_uri="file:///x", dataset_digest=dataset["dataset_digest"])
    hook(world.control_plane)  # a late report is refused (409): a warning, and the dataset stays uploaded
    assert world.admin.get_dataset(task_id)["status"] == "UPLOADED"


def test_upload_error_reason_is_one_trimmed_line_of_the_ops_own_error():
    reason = upload_error_reason(ValueError("bad\nthing\x00 " + "x" * 5000), "r1")
    assert reason.startswith("ValueError: bad thing ") and reason.endswith("… (run r1)")
    assert len(reason) == 1000 and "\n" not in reason and "\x00" not in reason
    assert upload_error_reason(None, "r2") == "upload failed (run r2)"
