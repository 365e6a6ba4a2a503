"""A failed upload of a reviewer-approved dataset, end to end with the real ``upload_approved`` job
(real recording, edge cache, local-dir object store): the store is broken, the run fails and leaves
the dataset UPLOADING; the bandwidth sensor launches attempt 2 (a new run_key) after the backoff,
which uploads and verifies it once the store is back."""

import sys
import time

import dagster as dg

from axon_dagster.defs.bandwidth import BandwidthGate, evaluate_bandwidth
from axon_dagster.defs.data_flow import upload_approved
from axon_dagster.defs.resources import ObjectStoreResource
from axon_dagster.services import data_flow as flow


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
    assert world.admin.get_dataset(task_id)["status"] == "UPLOADING"  # where the failed run left it

    assert tick(time.time() + 5) == []  # inside the backoff
    blocker.unlink()  # the store is back
    (second,) = tick(time.time() + 31)
    assert second.run_key == f"upload:{task_id}:attempt-2"
    task, dataset = world.admin.get_task(task_id), world.admin.get_dataset(task_id)
    assert (task["status"], dataset["status"]) == ("UPLOADED", "UPLOADED")
    assert flow.verify_cloud_copy(object_store.store(), task, dataset)
    assert tick(time.time() + 1000) == []
