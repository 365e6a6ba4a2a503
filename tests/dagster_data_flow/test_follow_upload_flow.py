"""The data flow ingests a recording while its robot uploads it (issue 13: stop of recording ->
published is the upload and the ingest side by side, not one after the other), against real parts:
the control-plane API over HTTP with the local store's signed ingest endpoint, a robot sending its
parts through its own client, the staged sensor as deployed (with the object store), the real
streaming ingestion, Daft QC and the Dagster data_flow job. A run started at the grant counts its
attempt and parks its ingest only once the control plane has verified the whole upload (STAGED);
when it cannot (a stall, bytes that are not the manifest's), it ends without output and nothing
is counted, parked or published (world: staged_world.py)."""

from __future__ import annotations

import hashlib
import logging
import threading
import time

import pytest

from axon_dagster.defs.data_flow import DataFlowPolicy
from axon_dagster.services import data_flow as flow

from staged_world import ROBOT, failure


class RobotStopped(Exception):
    pass


def granted(world, instance) -> tuple[str, dict[str, bytes]]:
    task_id = world.task()["task_id"]
    files = world.record_and_execute(task_id)
    assert world.grant_tick(instance).skip_reason.skip_message.startswith("1 upload(s) granted")
    assert world.admin.get_dataset(task_id)["status"] == "GRANTED"
    return task_id, files


def in_background(fn):
    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(result=fn()), daemon=True)
    thread.start()
    return thread, box


def test_a_recording_is_ingested_while_it_is_uploaded_and_published_once_staged(world, instance, caplog):
    caplog.set_level(logging.INFO, logger="axon_dagster.services.staged")
    task_id, files = granted(world, instance)
    [request] = world.follow_tick(instance).run_requests
    assert request.run_key.startswith(f"data_flow:{task_id}:follow-") and request.tags["axon/attempt"] == "follow"
    assert world.staged_tick(instance).run_requests == []  # without the store the sensor cannot follow: nothing to do yet

    thread, box = in_background(lambda: world.run(request, instance))
    time.sleep(1.0)  # the run is waiting for the robot's parts
    assert world.admin.get_dataset(task_id)["publish_attempts"] == 0  # nothing counted before the upload is staged
    world.upload(task_id, files, before_part=lambda name, _n: time.sleep(1.0) if name.endswith(".mcap") else None)
    thread.join(120)
    result = box["result"]
    assert result.success, failure(result)

    task, dataset = world.admin.get_task(task_id), world.admin.get_dataset(task_id)
    assert (task["status"], dataset["status"], dataset["qc_outcome"], dataset["publish_attempts"]) == ("UPLOADED", "UPLOADED", "approved", 1)
    assert flow.verify_cloud_copy(world.store, task, dataset)
    key = dataset["cloud_uri"][len(world.store.uri_for("x")) - 1:]
    assert world.store.sha256_of(key[: -len(".lance")] + ".mcap") == hashlib.sha256(files[f"{task_id}.mcap"]).hexdigest()
    assert world.store.list_keys(f"staging/{ROBOT}/{task_id}/") == []
    [line] = [r.getMessage() for r in caplog.records if "while it was uploaded" in r.getMessage()]
    waited = float(line.rsplit(", ", 1)[1].split(" s of it waiting")[0])
    assert waited > 0.3, line  # it was reading the MCAP before it had arrived
    assert world.follow_tick(instance).run_requests == []  # nothing left to move


def test_a_stalled_upload_is_left_to_the_run_for_the_staged_dataset(world, instance):
    world.resources["data_flow_policy"] = DataFlowPolicy(workdir=str(world.root / "work"), follow_stall_seconds=0.5)
    task_id, files = granted(world, instance)
    [request] = world.follow_tick(instance).run_requests

    def robot_goes_quiet(name, _number):
        if name.endswith(".mcap"):
            raise RobotStopped

    with pytest.raises(RobotStopped):
        world.upload(task_id, files, before_part=robot_goes_quiet)  # Axon's sidecar went, the MCAP never starts
    result = world.run(request, instance)
    assert result.success, failure(result)
    assert [e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"] == ["ingest_staged_recording"]
    dataset = world.admin.get_dataset(task_id)
    assert (dataset["status"], dataset["publish_attempts"]) == ("GRANTED", 0)  # nothing counted
    assert world.store.list_keys(f"staging/{ROBOT}/{task_id}/ingested/") == [] and world.lake_keys() == []
    assert not list(world.store.root.glob(f".axon-work/data-flow/{task_id}/follow/*"))  # its scratch went with it
    [same] = world.follow_tick(instance).run_requests
    assert same.run_key == request.run_key  # one follow run per grant: Dagster launches a run_key once

    assert world.upload(task_id, files)["status"] == "STAGED"  # the robot comes back and finishes
    [again] = world.follow_tick(instance).run_requests
    assert again.run_key == f"data_flow:{task_id}:attempt-1"
    assert (result := world.run(again, instance)).success, failure(result)
    assert world.admin.get_dataset(task_id)["status"] == "UPLOADED"


def test_bytes_that_are_not_the_manifests_are_never_kept_from_a_followed_upload(world, instance, caplog):
    caplog.set_level(logging.INFO, logger="axon_dagster.services.staged")
    task_id, files = granted(world, instance)
    [request] = world.follow_tick(instance).run_requests
    mcap = files[f"{task_id}.mcap"]
    forged = {**files, f"{task_id}.mcap": mcap[:-10] + b"0123456789"}

    thread, box = in_background(lambda: world.run(request, instance))
    sent = world.upload(task_id, forged, complete=False)
    thread.join(120)  # the run read the forged bytes as they arrived and gave them up, before any completion
    result = box["result"]
    with pytest.raises(Exception, match="(?i)digest|sha-?256"):  # the control plane refuses them too
        world.robot.complete_upload(task_id, sent["grant_id"], sent["parts"])
    assert result.success, failure(result)
    assert [e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"] == ["ingest_staged_recording"]
    dataset = world.admin.get_dataset(task_id)
    assert (dataset["status"], dataset["publish_attempts"], dataset["cloud_uri"]) == ("RECORDED", 0, None)
    # It read them and refused them: here the forged tail is no MCAP's (other bytes: the digest)
    assert any("not ingested while uploaded (IngestError" in r.getMessage() for r in caplog.records)
    assert world.store.list_keys(f"staging/{ROBOT}/{task_id}/") == [] and world.lake_keys() == []


def test_stores_that_cannot_be_read_before_completion_get_no_run_at_the_grant(s3_world, instance):
    task_id, _files = granted(s3_world, instance)
    assert s3_world.follow_tick(instance).run_requests == []


def test_without_a_completion_vouching_for_the_bytes_read_the_ingest_is_redone_from_the_staged_file(world, instance, monkeypatch, caplog):
    """A part written again after the ingest read it (a robot's resume), or a completion that had to
    read the file anew (the API restarted): nothing proves the bytes read are the staged ones, so the
    run keeps nothing and the run for the STAGED dataset ingests the staged file, hashing it."""
    from axon_dagster.storage.object_stores import UploadFollower

    caplog.set_level(logging.INFO, logger="axon_dagster.services.staged")
    monkeypatch.setattr(UploadFollower, "verified_sha256", lambda self: None)
    task_id, files = granted(world, instance)
    [request] = world.follow_tick(instance).run_requests
    thread, box = in_background(lambda: world.run(request, instance))
    world.upload(task_id, files, before_part=lambda name, _n: time.sleep(0.5) if name.endswith(".mcap") else None)
    thread.join(120)
    assert box["result"].success, failure(box["result"])
    assert any("no completion vouches" in r.getMessage() for r in caplog.records)
    dataset = world.admin.get_dataset(task_id)
    assert (dataset["status"], dataset["publish_attempts"]) == ("STAGED", 0)
    assert world.store.list_keys(f"staging/{ROBOT}/{task_id}/ingested/") == []
    [again] = world.follow_tick(instance).run_requests
    assert again.run_key == f"data_flow:{task_id}:attempt-1"
    assert (result := world.run(again, instance)).success, failure(result)
    assert world.admin.get_dataset(task_id)["status"] == "UPLOADED"
