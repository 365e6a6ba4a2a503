"""The cloud's data flow with S3 as staging area and lake (moto's server over HTTP): the robot PUTs
its parts to pre-signed UploadPart URLs, data_flow downloads and re-verifies what was staged,
publishes with server-side copies verified by their SHA-256, deletes the staging area."""

from __future__ import annotations

import hashlib

from axon_dagster.domain import mcap_key
from axon_dagster.services import data_flow as flow

from staged_world import ROBOT, failure, stage


def test_on_s3_a_staged_recording_is_published_with_verified_digests(s3_world, instance):
    world = s3_world
    task_id, files = stage(world, instance)
    assert world.store.list_keys(f"staging/{ROBOT}/{task_id}/")  # on S3, not on any disk of ours
    [request] = world.staged_tick(instance).run_requests
    result = world.run(request, instance)
    assert result.success, failure(result)
    task, dataset = world.admin.get_task(task_id), world.admin.get_dataset(task_id)
    assert (task["status"], dataset["status"]) == ("UPLOADED", "UPLOADED") and dataset["cloud_uri"].startswith("s3://")
    assert flow.verify_cloud_copy(world.store, task, dataset)
    key = dataset["cloud_uri"][len(world.store.uri_for("x")) - 1:]
    assert world.store.sha256_of(mcap_key(key)) == hashlib.sha256(files[f"{task_id}.mcap"]).hexdigest()
    assert world.store.list_keys(f"staging/{ROBOT}/{task_id}/") == []


def test_on_s3_staged_bytes_that_changed_are_never_published(s3_world, instance):
    world = s3_world
    task_id, files = stage(world, instance)
    world.tamper(task_id, f"{task_id}.mcap", files[f"{task_id}.mcap"][::-1])
    [request] = world.staged_tick(instance).run_requests
    result = world.run(request, instance)
    assert not result.success and "does not match" in failure(result)
    assert world.lake_keys() == [] and world.admin.get_dataset(task_id)["cloud_uri"] is None


def test_on_s3_the_dataset_is_uploaded_once_and_published_by_server_side_copies_without_reading_back(s3_world, instance):
    from axon_dagster.defs.resources import InspectionResource
    from axon_dagster.services import staged as staging
    from axon_dagster.storage.recording import Sidecar, sidecar_path

    try:
        from tests.s3_fixture import S3RequestLog
    except ModuleNotFoundError:
        from s3_fixture import S3RequestLog  # type: ignore[no-redef]

    world = s3_world
    task_id, _ = stage(world, instance)
    recording = staging.ingest_staged(world.admin, world.store, world.root / "work", task_id)
    parked = f"staging/{ROBOT}/{task_id}/ingested/{task_id}.lance"
    sidecar = Sidecar.read(sidecar_path(recording.cache_path))
    assert recording.dataset_key == parked and world.store.verify_dataset(parked, sidecar.files) == sidecar.dataset_digest
    inspect = InspectionResource(runner="native").inspect
    assert flow.inspect_staged(world.admin, lambda p, r: inspect(p, r, verify_digest=False), recording)[1].value == "approved"

    requests = S3RequestLog(world.store.client)
    files = staging.staged_files(world.admin.get_task(task_id), world.admin.get_dataset(task_id))
    published = staging.publish_staged(world.admin, world.store, files, recording, world.root / "work")
    copies = len(sidecar.files) + 2  # the dataset's files, the MCAP and Axon's sidecar
    assert requests.count("CopyObject") == copies and requests.count("GetObject") == 0  # S3's own SHA-256 of each copy
    assert requests.count("PutObject") == 2  # the dataset's sidecar and QC's report: written, not copied
    assert flow.verify_cloud_copy(world.store, world.admin.get_task(task_id), world.admin.get_dataset(task_id))
    assert published.dataset_digest == sidecar.dataset_digest and world.store.list_keys(f"staging/{ROBOT}/{task_id}/") == []
