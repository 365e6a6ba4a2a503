"""The cloud's data flow from staging (issue 13) against real parts: the control-plane API over HTTP
(SQLite) with a local staging store, a robot playing its part through its own API client (EXECUTED
with manifest and gate, uplink report, plan -> part PUTs over the signed ingest endpoint -> complete),
recordings written by the simulator's Axon writer, the grant and staged sensors evaluated as the
daemon does, the real ingestion, Daft QC and the Dagster data_flow job."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from axon_dagster.api.app import create_app
from axon_dagster.api.server import ApiThread
from axon_dagster.client.review import ReviewClient
from axon_dagster.client import EdgeSyncClient
from axon_dagster.control_plane.persistence import upgrade
from axon_dagster.defs.data_flow import DataFlowPolicy, data_flow, evaluate_staged, report_upload_failed, upload_error_reason
from axon_dagster.defs.resources import ControlPlaneResource, InspectionResource, ObjectStoreResource
from axon_dagster.defs.uploads import UploadGrantPolicy, evaluate_grants
from axon_dagster.demo.sim.axon_mcap import write_axon_recording
from axon_dagster.domain import mcap_key
from axon_dagster.services import data_flow as flow
from axon_dagster.services import staged as staging
from axon_dagster.settings.uploads import UploadApiSettings
from axon_dagster.storage.object_stores import LocalDirObjectStore

ROBOT = "robot-1"
START_NS = 1_780_000_000_000_000_000
_n = itertools.count(1)
REQUIREMENTS = {"required_topics": ["/imu"], "max_gap_seconds": 2.0}


class World:
    def __init__(self, root: Path, url: str, store: LocalDirObjectStore):
        self.root, self.store = root, store
        self.admin = ReviewClient(url)
        self.robot = EdgeSyncClient(url, self.admin.register_robot(ROBOT)["token"])
        self.resources = {
            "control_plane": ControlPlaneResource(url=url),
            "object_store": ObjectStoreResource(url=f"file://{root / 'cloud'}"),
            "inspection": InspectionResource(runner="native"),
            "data_flow_policy": DataFlowPolicy(workdir=str(root / "work")),
            "upload_grants": UploadGrantPolicy(min_bandwidth_mbps=5),
        }

    def task(self, requirements: dict | None = None) -> dict:
        order_id = f"order-{next(_n)}"
        self.admin.create_order(order_id, "warehouse", ["pick"], sub_scene="aisle_1", requirements=requirements or REQUIREMENTS)
        task = self.admin.plan_order(order_id, task_count=1, duration_seconds=4)["tasks"][0]
        self.admin.dispatch_order(order_id, [ROBOT])
        return task

    def record_and_execute(self, task_id: str) -> dict[str, bytes]:
        """The robot records (Axon MCAP + Axon's sidecar) and reports EXECUTED with its manifest."""
        rec = write_axon_recording(
            self.root / "robot", task_config={"task_id": task_id, "scene": "warehouse", "subscene": "aisle_1", "skills": ["pick"]},
            device_id=ROBOT, started_at_ns=START_NS + next(_n) * 10**11, seed=7, duration_s=4.0,
        )
        files = {f"{task_id}.mcap": rec.mcap_path.read_bytes(), f"{task_id}.json": rec.sidecar_path.read_bytes()}
        manifest = {"files": [{"name": n, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()} for n, b in files.items()],
                    "dataset_digest": hashlib.sha256(files[f"{task_id}.mcap"]).hexdigest()}
        data = {"recording_format": "mcap", "manifest": manifest, "gate": {"passed": True, "reasons": [], "checks": {}},
                "dataset_path": "/robot/disk/never/read"}
        events = [{"event_id": f"{task_id}-{s}", "task_id": task_id, "status": s} for s in ("READY", "EXECUTING")]
        events.append({"event_id": f"{task_id}-EXECUTED", "task_id": task_id, "status": "EXECUTED", "data": data})
        assert all(r["result"] == "applied" for r in self.robot.push_events(events))
        return files

    def upload(self, task_id: str, files: dict[str, bytes]) -> dict:
        """What the edge agent's uploader does with its grant: plan, PUT every part, complete."""
        grant = {t["task_id"]: t for t in self.robot.pull_tasks(0, 1000)["tasks"]}[task_id]["upload"]
        assert grant, f"no grant for {task_id}"
        plan = self.robot.upload_plan(task_id, grant["grant_id"])
        done = {f["name"]: [{"number": p["number"], "etag": self.robot.put_part(p, files[f["name"]][p["offset"]:p["offset"] + p["size"]])}
                            for p in f["parts"]] for f in plan["files"]}
        return self.robot.complete_upload(task_id, grant["grant_id"], done)

    def grant_tick(self, instance: dg.DagsterInstance):
        with dg.build_sensor_context(instance=instance, resources=self.resources) as context:
            return evaluate_grants(context, self.resources["control_plane"], self.resources["upload_grants"])

    def staged_tick(self, instance: dg.DagsterInstance, cursor: str | None = None):
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources=self.resources) as context:
            return evaluate_staged(context, self.resources["control_plane"], self.resources["data_flow_policy"])

    def run(self, request: dg.RunRequest, instance: dg.DagsterInstance):
        return data_flow.execute_in_process(run_config=request.run_config, resources=self.resources, instance=instance,
                                            tags=request.tags, raise_on_error=False)

    def lake_keys(self) -> list[str]:
        return [k for k in self.store.list_keys("") if not k.startswith("staging/")]


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    upgrade(url)
    store = LocalDirObjectStore(tmp_path / "cloud")
    settings = UploadApiSettings(object_store_url=f"file://{tmp_path / 'cloud'}", signing_key="k" * 40, part_size=5 * 1024 * 1024)
    server = ApiThread(create_app(url, admin_token="", staging_store=store, upload_settings=settings)).start()
    w = World(tmp_path, server.url, store)
    w.robot.report_uplink(50.0, [], "UTC")
    try:
        yield w
    finally:
        w.robot.close()
        w.admin.close()
        server.stop()


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


def failure(result) -> str:
    return " | ".join(str(e.event_specific_data.error.message) for e in result.all_events if e.is_step_failure)


def stage(world: World, instance, requirements: dict | None = None) -> tuple[str, dict[str, bytes]]:
    task_id = world.task(requirements)["task_id"]
    files = world.record_and_execute(task_id)
    granted = world.grant_tick(instance)
    assert granted.skip_reason.skip_message.startswith("1 upload(s) granted"), granted.skip_reason
    assert world.upload(task_id, files)["status"] == "STAGED"
    return task_id, files


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
    staged_mcap = world.root / "cloud" / "staging" / ROBOT / task_id / f"{task_id}.mcap"
    staged_mcap.write_bytes(staged_mcap.read_bytes()[:-10] + b"0123456789")  # bit rot / tampering after staging

    [request] = world.staged_tick(instance).run_requests
    result = world.run(request, instance)
    assert not result.success and "staged" in failure(result) and "does not match" in failure(result)
    assert world.lake_keys() == []
    dataset = world.admin.get_dataset(task_id)
    assert dataset["status"] == "STAGED" and dataset["cloud_uri"] is None and world.admin.get_task(task_id)["status"] == "EXECUTED"
    # the next attempt is a new run_key; after max_attempts the sensor gives the dataset up
    [again] = world.staged_tick(instance).run_requests
    assert again.run_key == f"data_flow:{task_id}:attempt-2"


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
    staged_mcap = world.root / "cloud" / "staging" / ROBOT / task_id / f"{task_id}.mcap"
    staged_mcap.write_bytes(b"not what the robot sent")
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


def test_qc_on_a_remote_runner_reads_the_object_store_and_locally_the_working_copy(world, tmp_path):
    from axon_dagster.storage.object_stores import object_store_from_url

    mcap = staging.StagedFiles("t-1", ROBOT, "mcap", {"t-1.mcap": "a" * 64}, "a" * 64)
    lance = staging.StagedFiles("t-1", ROBOT, "lance", {"t-1.json": "b" * 64, "t-1.lance/data/0.lance": "c" * 64}, "b" * 64)
    recording = flow.StagedRecording(task_id="t-1", order_id="o", batch_id="b", robot_id=ROBOT, scene="w", sub_scene="", skills=("s",),
                                     cache_path=str(tmp_path / "work" / "t-1.lance"), dataset_digest="d", size_bytes=1,
                                     requirements={}, stage_seconds=0.0)
    s3 = object_store_from_url("s3://lake/axon", endpoint_url="http://127.0.0.1:1")  # never contacted
    assert staging.inspection_target(s3, mcap, recording, "kuberay") == "s3://lake/axon/staging/robot-1/t-1/ingested/t-1.lance"
    assert staging.inspection_target(s3, lance, recording, "ray-job") == "s3://lake/axon/staging/robot-1/t-1/t-1.lance"
    for runner in ("native", "ray"):
        assert staging.inspection_target(s3, mcap, recording, runner) == recording.cache_path
    assert staging.inspection_target(world.store, mcap, recording, "kuberay") == recording.cache_path  # file:// is this disk
