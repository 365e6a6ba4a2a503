"""The cloud's data flow from staging (issue 13) against real parts: the control-plane API over HTTP
(SQLite) with a local staging store, a robot playing its part through its own API client (EXECUTED
with manifest and gate, uplink report, plan -> part PUTs over the signed ingest endpoint -> complete),
recordings written by the simulator's Axon writer, the grant and staged sensors evaluated as the
daemon does, the real ingestion, Daft QC and the Dagster data_flow job (world: conftest.py)."""

from __future__ import annotations

import hashlib
import os
from types import SimpleNamespace

import dagster as dg

from axon_dagster.defs.data_flow import DataFlowPolicy, data_flow, report_upload_failed, upload_error_reason
from axon_dagster.defs.resources import ControlPlaneResource
from axon_dagster.domain import mcap_key
from axon_dagster.defs.resources import InspectionResource
from axon_dagster.services import data_flow as flow
from axon_dagster.services import staged as staging
from axon_dagster.storage.digest import DigestMismatch
from axon_dagster.storage.files import file_fingerprint
from axon_dagster.storage.recording import Sidecar, sidecar_path

from staged_world import ROBOT, failure, stage

import pytest


def test_a_staged_recording_is_ingested_inspected_and_published_with_verified_digests(world, instance):
    task_id, files = stage(world, instance)
    [request] = world.staged_tick(instance).run_requests
    assert request.run_key == f"data_flow:{task_id}:attempt-1" and request.job_name == "data_flow"

    result = world.run(request, instance)
    assert result.success, failure(result)
    task, dataset = world.admin.get_task(task_id), world.admin.get_dataset(task_id)
    assert (task["status"], dataset["status"], dataset["qc_outcome"], dataset["publish_attempts"]) == ("UPLOADED", "UPLOADED", "approved", 1)
    assert flow.verify_cloud_copy(world.store, task, dataset)
    key = dataset["cloud_uri"][len(world.store.uri_for("x")) - 1:]
    assert key.startswith("warehouse/aisle_1/pick_") and key.endswith(".lance")
    # the original MCAP beside it, byte for byte what the robot recorded; Axon's sidecar too
    assert world.store.sha256_of(mcap_key(key)) == hashlib.sha256(files[f"{task_id}.mcap"]).hexdigest()
    assert world.store.get_bytes(key[: -len(".lance")] + ".axon.json") == files[f"{task_id}.json"]
    assert world.store.list_keys(f"staging/{ROBOT}/{task_id}/") == []  # staging deleted
    assert not (world.root / "work" / task_id).exists() or not any((world.root / "work" / task_id).rglob("*.mcap"))
    # nothing left to move: the sensor starts nothing more
    assert world.staged_tick(instance).run_requests == []


def test_a_dataset_whose_staged_bytes_changed_is_never_published(world, instance):
    task_id, files = stage(world, instance)
    mcap = files[f"{task_id}.mcap"]
    world.tamper(task_id, f"{task_id}.mcap", mcap[:-10] + b"0123456789")  # bit rot / tampering after staging

    [request] = world.staged_tick(instance).run_requests
    result = world.run(request, instance)
    assert not result.success and "staged" in failure(result) and "does not match" in failure(result)
    assert world.lake_keys() == []
    assert world.store.list_keys(f"staging/{ROBOT}/{task_id}/ingested/") == []  # nothing parked from it for a later attempt
    dataset = world.admin.get_dataset(task_id)
    assert dataset["status"] == "STAGED" and dataset["cloud_uri"] is None and world.admin.get_task(task_id)["status"] == "EXECUTED"
    # the next attempt is a new run_key; after max_attempts the sensor gives the dataset up
    [again] = world.staged_tick(instance).run_requests
    assert again.run_key == f"data_flow:{task_id}:attempt-2"


def test_recordings_of_the_same_labels_and_instant_never_share_a_lake_key(world, instance):
    """Two robots recording the same skills in the same scene at the same instant: the second
    published takes the key qualified by its robot; the first one's copy is never touched. (One
    robot plays both here; a third such recording is refused, nothing copied.)"""
    same = 1_790_000_000_123_000_000
    published = []
    for _ in range(3):
        task_id = world.task()["task_id"]
        files = world.record_and_execute(task_id, started_at_ns=same)
        assert world.grant_tick(instance).skip_reason.skip_message.startswith("1 upload(s) granted")
        assert world.upload(task_id, files)["status"] == "STAGED"
        [request] = world.staged_tick(instance).run_requests
        published.append((task_id, world.run(request, instance)))
    (first, ok1), (second, ok2), (third, refused) = published
    assert ok1.success and ok2.success, failure(ok1) + failure(ok2)
    uri1, uri2 = (world.admin.get_dataset(t)["cloud_uri"] for t in (first, second))
    assert uri1.endswith("pick_20260921T141320.123000Z.lance") and uri2.endswith(f"pick_20260921T141320.123000Z_{ROBOT}.lance")
    for task_id in (first, second):
        assert flow.verify_cloud_copy(world.store, world.admin.get_task(task_id), world.admin.get_dataset(task_id))
    assert not refused.success and "hold other recordings" in failure(refused)
    assert world.admin.get_dataset(third)["status"] != "UPLOADED"
    assert flow.verify_cloud_copy(world.store, world.admin.get_task(first), world.admin.get_dataset(first))  # untouched


def test_a_recording_that_is_the_robots_but_does_not_ingest_fails_its_attempt_at_once(world, instance):
    """Bytes whose SHA-256 is the manifest's but that are no readable MCAP (a recorder bug): the
    attempt fails with the reason, without in-run retries (each would read the same bytes and count
    an attempt), and nothing is parked or published."""
    task_id = world.task()["task_id"]
    files = world.record_and_execute(task_id, mangle=lambda f: {n: (b[: len(b) // 2] if n.endswith(".mcap") else b) for n, b in f.items()})
    assert world.grant_tick(instance).skip_reason.skip_message.startswith("1 upload(s) granted")
    assert world.upload(task_id, files)["status"] == "STAGED"
    [request] = world.staged_tick(instance).run_requests
    result = world.run(request, instance)
    assert not result.success
    assert "cannot be ingested" in failure(result) and "its SHA-256 verified" in failure(result)
    assert [e.step_key for e in result.all_events if e.event_type_value == "STEP_RESTARTED"] == []  # no in-run retry
    dataset = world.admin.get_dataset(task_id)
    assert (dataset["status"], dataset["publish_attempts"]) == ("STAGED", 1)
    assert world.store.list_keys(f"staging/{ROBOT}/{task_id}/ingested/") == [] and world.lake_keys() == []


def test_a_rejected_dataset_is_never_published_and_its_staging_is_deleted(world, instance):
    task_id, _ = stage(world, instance, {"required_topics": ["/not/recorded"]})
    [request] = world.staged_tick(instance).run_requests
    result = world.run(request, instance)
    assert result.success, failure(result)
    assert result.output_for_node("settle_dataset")["outcome"] == "rejected"
    task, dataset = world.admin.get_task(task_id), world.admin.get_dataset(task_id)
    assert task["status"] == "FAILED" and "rejected by QC" in task["failure_reason"] and dataset["cloud_uri"] is None
    assert world.lake_keys() == [] and world.store.list_keys("staging/") == []
    assert world.staged_tick(instance).run_requests == []


def test_staging_rejected_keep_keeps_the_staged_files(world, instance):
    world.resources["data_flow_policy"] = DataFlowPolicy(workdir=str(world.root / "work"), staging_rejected="keep")
    task_id, files = stage(world, instance, {"required_topics": ["/not/recorded"]})
    result = world.run(world.staged_tick(instance).run_requests[0], instance)
    assert result.success, failure(result)
    kept = set(world.store.list_keys(f"staging/{ROBOT}/{task_id}/"))
    assert {f"staging/{ROBOT}/{task_id}/{n}" for n in files} <= kept  # the robot's files, and the cloud's ingest beside them
    assert world.lake_keys() == []


def test_a_dataset_for_review_waits_parked_and_is_published_once_a_reviewer_approves(world, instance):
    task_id, _ = stage(world, instance, {"required_topics": ["/imu"], "expected_rates_hz": {"/imu": 5000.0}, "review_floor": 0.0})
    result = world.run(world.staged_tick(instance).run_requests[0], instance)
    assert result.success, failure(result)
    assert result.output_for_node("settle_dataset")["outcome"] == "needs_review"
    assert world.lake_keys() == [] and world.admin.get_task(task_id)["status"] == "EXECUTED"
    assert world.staged_tick(instance).run_requests == []  # it waits for a reviewer, not for a run

    world.admin.review_dataset(task_id, reviewer="alice", approve=True, comment="fine")
    [request] = world.staged_tick(instance).run_requests
    assert request.run_key == f"data_flow:{task_id}:attempt-2"
    result = world.run(request, instance)
    assert result.success, failure(result)
    task, dataset = world.admin.get_task(task_id), world.admin.get_dataset(task_id)
    assert (task["status"], dataset["status"], dataset["reviewed_by"]) == ("UPLOADED", "UPLOADED", "alice")
    assert flow.verify_cloud_copy(world.store, task, dataset)
    assert world.store.list_keys("staging/") == []


def test_a_dataset_with_a_run_in_flight_is_not_launched_again(world, instance):
    task_id, _ = stage(world, instance)
    [request] = world.staged_tick(instance).run_requests
    instance.create_run_for_job(data_flow, run_config=request.run_config, tags=request.tags,
                                status=dg.DagsterRunStatus.STARTED)
    assert world.staged_tick(instance).run_requests == []


def test_a_dataset_that_keeps_failing_is_given_up_with_one_alert(world, instance):
    from axon_dagster.observability import metrics

    world.resources["data_flow_policy"] = DataFlowPolicy(workdir=str(world.root / "work"), max_attempts=2)
    task_id, _ = stage(world, instance)
    world.tamper(task_id, f"{task_id}.mcap", b"not what the robot sent")
    for attempt in (1, 2):
        [request] = world.staged_tick(instance).run_requests
        assert request.run_key == f"data_flow:{task_id}:attempt-{attempt}"
        assert not world.run(request, instance).success
    before = metrics.ALERTS_TOTAL.labels("data_flow")._value.get()
    given_up = world.staged_tick(instance)
    assert given_up.run_requests == [] and f"given up after 2 attempts: {task_id}" in given_up.skip_reason.skip_message
    assert metrics.ALERTS_TOTAL.labels("data_flow")._value.get() == before + 1
    again = world.staged_tick(instance, cursor=given_up.cursor)  # alerted once, named every tick
    assert f"given up after 2 attempts: {task_id}" in again.skip_reason.skip_message
    assert metrics.ALERTS_TOTAL.labels("data_flow")._value.get() == before + 1
    assert world.lake_keys() == []


def test_a_publish_that_fails_is_reported_and_the_next_attempt_publishes(world, instance):
    task_id, _ = stage(world, instance)
    blocker = world.root / "cloud" / "warehouse"  # the dataset's scene prefix is a file: every lake write fails
    blocker.write_text("not a directory")
    [first] = world.staged_tick(instance).run_requests
    result = world.run(first, instance)
    assert not result.success
    failed = world.admin.get_dataset(task_id)
    assert (failed["status"], failed["qc_outcome"]) == ("INSPECTED", "approved")  # the failure hook handed it back
    assert failed["last_upload_error"].endswith(f"(run {result.run_id})") and "warehouse" in failed["last_upload_error"]
    hooks = instance.get_records_for_run(result.run_id, of_type=dg.DagsterEventType.HOOK_COMPLETED).records
    assert [r.event_log_entry.step_key for r in hooks] == ["settle_dataset"]  # once: after the retries

    blocker.unlink()  # the store is back
    [second] = world.staged_tick(instance).run_requests
    assert second.run_key == f"data_flow:{task_id}:attempt-2"
    assert world.run(second, instance).success
    task, dataset = world.admin.get_task(task_id), world.admin.get_dataset(task_id)
    assert (task["status"], dataset["status"], dataset["last_upload_error"]) == ("UPLOADED", "UPLOADED", None)
    assert flow.verify_cloud_copy(world.store, task, dataset)


def test_the_failure_hook_never_raises_when_the_control_plane_is_unreachable(world, instance):
    run = instance.create_run_for_job(data_flow, run_config={"ops": {"ingest_staged_recording": {"config": {"task_id": "t-x"}}}},
                                      tags={"axon/task_id": "t-x"})
    context = dg.build_hook_context(resources={"control_plane": ControlPlaneResource(url="http://127.0.0.1:9", timeout_seconds=0.5)},
                                    op_exception=OSError("disk gone"), run_id=run.run_id, instance=instance)
    report_upload_failed(context)  # a warning, no exception


def test_upload_error_reason_is_one_trimmed_line_of_the_ops_own_error():
    reason = upload_error_reason(ValueError("bad\nthing\x00 " + "x" * 5000), "r1")
    assert reason.startswith("ValueError: bad thing ") and reason.endswith("… (run r1)")
    assert len(reason) == 1000 and "\n" not in reason and "\x00" not in reason
    assert upload_error_reason(None, "r2") == "upload failed (run r2)"


def _inspect(path, requirements):
    return InspectionResource(runner="native").inspect(path, requirements, verify_digest=False)


def test_on_the_local_store_the_dataset_is_written_once_and_published_as_the_very_files_the_ingest_wrote(world, instance):
    task_id, _ = stage(world, instance)
    store = world.store
    recording = staging.ingest_staged(world.admin, store, world.root / "work", task_id)
    parked = f"staging/{ROBOT}/{task_id}/ingested/{task_id}.lance"
    assert recording.cache_path == str(store.local_path(parked)) and recording.dataset_key == parked  # QC reads it where it lies
    assert not (world.root / "work").exists()  # nothing copied into the run's directory: the MCAP was read in place
    sidecar = Sidecar.read(sidecar_path(recording.cache_path))
    inodes = {rel: (store.local_path(parked) / rel).stat().st_ino for rel in sidecar.files}
    assert flow.inspect_staged(world.admin, _inspect, recording)[1].value == "approved"

    files = staging.staged_files(world.admin.get_task(task_id), world.admin.get_dataset(task_id))
    published = staging.publish_staged(world.admin, store, files, recording, world.root / "work")
    key = published.cloud_uri[len(store.uri_for("x")) - 1:]
    assert {rel: store.local_path(f"{key}/{rel}").stat().st_ino for rel in sidecar.files} == inodes
    assert flow.verify_cloud_copy(store, world.admin.get_task(task_id), world.admin.get_dataset(task_id))
    assert store.list_keys(f"staging/{ROBOT}/{task_id}/") == [] and not store.scratch_dir("data-flow").joinpath(task_id).exists()


def test_a_dataset_that_changed_after_it_was_inspected_is_not_published(world, instance):
    task_id, _ = stage(world, instance)
    recording = staging.ingest_staged(world.admin, world.store, world.root / "work", task_id)
    assert flow.inspect_staged(world.admin, _inspect, recording)[1].value == "approved"
    sidecar = Sidecar.read(sidecar_path(recording.cache_path))
    victim = next(p for rel in sorted(sidecar.files) if (p := world.store.local_path(f"{recording.dataset_key}/{rel}")).stat().st_size)
    victim.write_bytes(bytes(b ^ 0xFF for b in victim.read_bytes()))  # same size, other bytes, after QC read them

    files = staging.staged_files(world.admin.get_task(task_id), world.admin.get_dataset(task_id))
    with pytest.raises(DigestMismatch, match="changed since it was verified"):
        staging.publish_staged(world.admin, world.store, files, recording, world.root / "work")
    assert world.lake_keys() == [] and world.admin.get_dataset(task_id)["cloud_uri"] is None
    assert world.admin.get_task(task_id)["status"] == "EXECUTED"


def test_an_mcap_that_changes_while_it_is_ingested_counts_as_not_verified(tmp_path):
    """The ingest hashes the staged MCAP as it reads it; a file written to meanwhile (here rewritten
    with the very same bytes) proves nothing about what the ingest read: its output goes."""
    mcap = tmp_path / "t.mcap"
    mcap.write_bytes(b"recording" * 1000)
    os.utime(mcap, ns=(10**18, 10**18))  # written long ago: any write now gives it another modification time
    sha = hashlib.sha256(mcap.read_bytes()).hexdigest()
    out = tmp_path / "t.lance"

    def ingest_that_sees_a_write():
        out.mkdir()
        (out / "data").write_bytes(b"x")
        sidecar_path(out).write_text("{}")
        mcap.write_bytes(mcap.read_bytes())  # same bytes, a new write
        return SimpleNamespace(mcap_sha256=sha)

    with pytest.raises(staging.StagedDigestMismatch, match="changed while it was read"):
        staging._ingest_verified(mcap, sha, "staged t.mcap", ingest_that_sees_a_write, out)
    assert not out.exists() and not sidecar_path(out).exists()
    unchanged = staging._ingest_verified(mcap, sha, "staged t.mcap", lambda: SimpleNamespace(mcap_sha256=sha), out)
    assert unchanged == {str(mcap): list(file_fingerprint(mcap))}
