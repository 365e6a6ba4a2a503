"""The cloud data flow for Axon MCAP recordings, against real parts: the control-plane API over HTTP
(SQLite), a robot pushing the EXECUTED event the edge agent sends (dataset_path = the .mcap,
recording_format, checksum_sha256), recordings written by the simulator's Axon writer, a real edge
cache, the real ingestion and Daft QC, a local-dir object store, and the Dagster data_flow job."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import lance
import pytest

from axon_dagster.api.app import create_app
from axon_dagster.client import EdgeSyncClient
from axon_dagster.client.review import ReviewClient
from axon_dagster.api.server import ApiThread
from axon_dagster.defs.data_flow import legacy_data_flow as data_flow
from axon_dagster.defs.resources import ControlPlaneResource, EdgeCacheResource, InspectionResource, ObjectStoreResource
from axon_dagster.defs.data_flow import data_flow_run_request
from axon_dagster.domain import QcOutcome, TaskStatus
from axon_dagster.demo.sim.axon_mcap import write_axon_recording
from axon_dagster.demo.sim.synthetic import Faults
from axon_dagster.services import data_flow as flow
from axon_dagster.storage.axon_recording import ChecksumMismatch, IncompleteRecording, SidecarError
from axon_dagster.storage.digest import DigestMismatch, file_sha256
from axon_dagster.storage.edge_cache import CacheConflict
from axon_dagster.storage.recording import Sidecar
from axon_dagster.control_plane.persistence import upgrade

ROBOT = "robot-1"
START_NS = 1_780_000_000_000_000_000
_n = itertools.count(1)


class World:
    def __init__(self, root: Path, url: str):
        self.root = root
        self.admin = ReviewClient(url)
        self.edge = EdgeSyncClient(url, self.admin.register_robot(ROBOT)["token"])
        self.control_plane = ControlPlaneResource(url=url)
        self.edge_cache = EdgeCacheResource(root=str(root / "edge-cache"))
        self.object_store = ObjectStoreResource(url=f"file://{root / 'cloud'}")
        self.inspection = InspectionResource(runner="native")
        self.recorder_dir = root / "robot" / "recording"

    def resources(self) -> dict:
        return {"control_plane": self.control_plane, "edge_cache": self.edge_cache,
                "object_store": self.object_store, "inspection": self.inspection}

    def task(self) -> dict:
        n = next(_n)
        order_id = f"order-mcap-{n}"
        self.admin.create_order(order_id, "warehouse", ["pick"], sub_scene="aisle_1", created_by="test")
        task = self.admin.plan_order(order_id, task_count=1, duration_seconds=4)["tasks"][0]
        self.admin.dispatch_order(order_id, [ROBOT])
        return task

    def record(self, task_id: str, *, done: bool = True, **kwargs):
        kwargs.setdefault("duration_s", 4.0)
        rec = write_axon_recording(
            self.recorder_dir, task_config={"task_id": task_id, "scene": "warehouse", "subscene": "aisle_1", "skills": ["pick"],
                                            "factory": "f1", "order_id": "ignored-by-the-cloud"},
            device_id=ROBOT, started_at_ns=START_NS + next(_n) * 10**11, seed=7, **kwargs,
        )
        if not done:
            rec.done_path.unlink()
            if rec.sidecar_path:
                rec.sidecar_path.unlink()
        return rec

    def executed(self, task_id: str, data: dict) -> dict:
        """Push READY..EXECUTED as the edge agent does; returns the EXECUTED event as the sensor sees it."""
        for status, d in ((TaskStatus.READY, {}), (TaskStatus.ASSIGNED, {"data_collector_id": "dc"}),
                          (TaskStatus.EXECUTING, {}), (TaskStatus.EXECUTED, data)):
            event = {"event_id": f"{task_id}.{status.value.lower()}", "task_id": task_id, "status": status.value, "data": d}
            assert self.edge.push_events([event])[0]["result"] == "applied", status
        events = self.admin.events_after(0, limit=10_000)["events"]
        return next(e for e in events if e["task_id"] == task_id and e["status"] == TaskStatus.EXECUTED.value)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("mcap-flow")
    url = f"sqlite:///{root / 'cp.db'}"
    upgrade(url)
    server = ApiThread(create_app(url, admin_token="")).start()
    w = World(root, server.url)
    try:
        yield w
    finally:
        w.admin.close()
        w.edge.close()
        server.stop()


def event_data(rec, fmt: str | None = "mcap", checksum: str | None = None) -> dict:
    data = {"dataset_path": str(rec.mcap_path), "sidecar_path": str(rec.sidecar_path) if rec.sidecar_path else None}
    if fmt is not None:
        data["recording_format"] = fmt
        data["checksum_sha256"] = checksum or rec.checksum_sha256
    return data


def test_an_mcap_recording_goes_through_the_dagster_data_flow_to_the_cloud_with_its_original(world):
    task = world.task()
    task_id = task["task_id"]
    rec = world.record(task_id, pauses=((1.0, 0.5),))
    event = world.executed(task_id, event_data(rec))

    # the sensor passes what the agent reported to the (thin) stage op
    request = data_flow_run_request(event)
    config = request.run_config["ops"]["stage_recording"]["config"]
    assert config == {"task_id": task_id, "recording_format": "mcap", "recorder_checksum_sha256": rec.checksum_sha256}
    result = data_flow.execute_in_process(run_config=request.run_config, resources=world.resources(),
                                          instance=dg.DagsterInstance.ephemeral())
    assert result.success
    staged = flow.StagedRecording.from_dict(result.output_for_node("stage_recording"))
    assert staged.recording_format == "mcap" and staged.axon_checksum_sha256 == rec.checksum_sha256
    dataset_mat = [m for m in result.asset_materializations_for_node("stage_recording")][0]
    assert dataset_mat.metadata["axon_checksum_sha256"].value == rec.checksum_sha256
    assert dataset_mat.metadata["dataset_digest"].value == staged.dataset_digest  # our digest beside Axon's
    assert result.output_for_node("inspect_dataset") == QcOutcome.APPROVED.value, world.admin.get_dataset(task_id)

    # the cache entry: Lance with decoded columns, its sidecar, the original MCAP and Axon's sidecar
    entry = Path(staged.cache_path).parent
    assert sorted(p.name for p in entry.iterdir()) == sorted(
        [f"{task_id}.lance", f"{task_id}.json", f"{task_id}.mcap", f"{task_id}.axon.json", f"{task_id}.qc.json"])
    assert file_sha256(entry / f"{task_id}.mcap") == rec.checksum_sha256
    ds = lance.dataset(staged.cache_path)
    assert ds.count_rows() == rec.message_count
    assert {"header_stamp_ns", "angular_velocity", "joint_position", "width", "point_count", "payload"} <= set(ds.schema.names)
    sidecar = Sidecar.read(entry / f"{task_id}.json")
    assert sidecar.metadata["order_id"] == task["order_id"] and sidecar.metadata["batch_id"] == task["batch_id"]

    # upload: the approved dataset with the original MCAP and Axon's sidecar beside it; lineage has both digests
    loaded = flow.load_approved(world.admin, task_id)
    assert loaded.axon_checksum_sha256 == rec.checksum_sha256 and loaded.lineage["recording_format"] == "mcap"
    store = world.object_store.store()
    uploaded = flow.publish(world.admin, world.edge_cache.cache(), store, loaded)
    flow.report_uploaded(world.admin, uploaded)
    assert world.admin.get_task(task_id)["status"] == TaskStatus.UPLOADED.value
    cloud_dir = Path(uploaded.cloud_uri[len("file://"):])
    stem = cloud_dir.name[: -len(".lance")]
    beside = {p.name for p in cloud_dir.parent.iterdir() if p.name.startswith(stem)}
    assert beside == {f"{stem}.lance", f"{stem}.json", f"{stem}.qc.json", f"{stem}.mcap", f"{stem}.axon.json"}
    assert file_sha256(cloud_dir.parent / f"{stem}.mcap") == rec.checksum_sha256
    assert json.loads((cloud_dir.parent / f"{stem}.axon.json").read_text())["recording"]["checksum_sha256"] == rec.checksum_sha256
    assert "header_stamp_ns" in lance.dataset(str(cloud_dir)).schema.names
    assert flow.verify_cloud_copy(store, world.admin.get_task(task_id), world.admin.get_dataset(task_id))
    (cloud_dir.parent / f"{stem}.mcap").unlink()  # the original must be there for the copy to count
    assert not flow.verify_cloud_copy(store, world.admin.get_task(task_id), world.admin.get_dataset(task_id))


def test_without_recording_format_an_mcap_path_is_still_recognised_and_without_a_sidecar_metadata_serves(world):
    task_id = world.task()["task_id"]
    rec = world.record(task_id, sidecar_mode="none")
    world.executed(task_id, {"dataset_path": str(rec.mcap_path)})  # an agent that says nothing more
    staged = flow.stage_recording(world.admin, world.edge_cache.cache(), task_id)
    assert staged.recording_format == "mcap" and staged.axon_checksum_sha256 == ""  # no sidecar: Axon computed none
    source = Sidecar.read(Path(staged.cache_path).with_suffix(".json")).extra["source"]
    assert source["axon_sidecar_origin"] == "mcap-metadata" and source["mcap_sha256"] == rec.checksum_sha256
    report, outcome = flow.inspect_staged(world.admin, world.edge_cache.cache(), world.inspection.inspect, staged)
    assert report.check("axon_sidecar_match").weight == 1 and "axon.* metadata" in report.check("axon_sidecar_match").detail
    # ... but no checksum from Axon or the recorder vouches for the bytes: never approved
    assert {c.name for c in report.failed_checks} == {"integrity"} and outcome is QcOutcome.NEEDS_REVIEW
    with pytest.raises(flow.DataFlowError, match="not approved"):
        flow.load_approved(world.admin, task_id)


def test_without_axon_sidecar_the_checksum_the_recorder_reported_vouches_for_the_mcap(world):
    task_id = world.task()["task_id"]
    rec = world.record(task_id, sidecar_mode="none")
    world.executed(task_id, event_data(rec))  # the recorder's checksum_sha256 (its RPC stats) in the event
    staged = flow.stage_recording(world.admin, world.edge_cache.cache(), task_id, recording_format="mcap",
                                  recorder_checksum=rec.checksum_sha256)
    report, outcome = flow.inspect_staged(world.admin, world.edge_cache.cache(), world.inspection.inspect, staged)
    assert outcome is QcOutcome.APPROVED, [c.detail for c in report.failed_checks]
    assert "the checksum the recorder reported" in report.check("integrity").detail


def test_a_content_fault_is_caught_in_the_flow_and_never_uploaded(world):
    task_id = world.task()["task_id"]
    rec = world.record(task_id, faults=Faults(nan_topics=("/imu",)))
    world.executed(task_id, event_data(rec))
    staged = flow.stage_recording(world.admin, world.edge_cache.cache(), task_id, recording_format="mcap")
    report, outcome = flow.inspect_staged(world.admin, world.edge_cache.cache(), world.inspection.inspect, staged)
    assert outcome is QcOutcome.NEEDS_REVIEW and {c.name for c in report.failed_checks} == {"nonfinite_values"}
    with pytest.raises(flow.DataFlowError, match="not approved"):
        flow.load_approved(world.admin, task_id)


def test_staging_waits_for_axon_to_finish_the_recording(world):
    task_id = world.task()["task_id"]
    rec = world.record(task_id, done=False)
    world.executed(task_id, event_data(rec, fmt=None))
    cache = world.edge_cache.cache()
    with pytest.raises(IncompleteRecording, match="not complete"):
        flow.stage_recording(world.admin, cache, task_id, wait_timeout_s=0.3)
    assert not (cache.root / "datasets" / task_id).exists()
    # Axon finishes (sidecar, then done) while the flow waits
    rec_dir = rec.mcap_path.parent
    finisher = threading.Timer(0.5, lambda: (rec_dir / f"{task_id}.mcap.done").write_text("done\n"))
    finisher.start()
    t0 = time.monotonic()
    staged = flow.stage_recording(world.admin, cache, task_id, wait_timeout_s=30)
    finisher.join()
    assert time.monotonic() - t0 >= 0.4 and staged.recording_format == "mcap"


def test_a_checksum_that_does_not_match_stages_nothing(world):
    task_id = world.task()["task_id"]
    rec = world.record(task_id)
    world.executed(task_id, event_data(rec, checksum="ab" * 32))
    cache = world.edge_cache.cache()
    with pytest.raises(ChecksumMismatch, match="checksum from recorder"):
        flow.stage_recording(world.admin, cache, task_id, recording_format="mcap", recorder_checksum="ab" * 32)
    assert not (cache.root / "datasets" / task_id).exists() and list((cache.root / "tmp").iterdir()) == []
    # the file changed after Axon hashed it: the sidecar's checksum catches it
    raw = bytearray(rec.mcap_path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    rec.mcap_path.write_bytes(bytes(raw))
    rec.done_path.touch()
    with pytest.raises(ChecksumMismatch, match="checksum from sidecar"):
        flow.stage_recording(world.admin, cache, task_id)
    assert world.admin.get_task(task_id)["status"] == TaskStatus.EXECUTED.value  # nothing changed


def test_a_malformed_axon_sidecar_stages_nothing(world):
    task_id = world.task()["task_id"]
    rec = world.record(task_id)
    doc = json.loads(rec.sidecar_path.read_text())
    doc["recording"]["message_count"] = "many"
    rec.sidecar_path.write_text(json.dumps(doc))
    world.executed(task_id, event_data(rec))
    cache = world.edge_cache.cache()
    with pytest.raises(SidecarError, match="recording.message_count"):
        flow.stage_recording(world.admin, cache, task_id, recording_format="mcap")
    assert not (cache.root / "datasets" / task_id).exists()


def test_restaging_is_idempotent_and_a_different_recording_under_the_same_id_conflicts(world):
    task_id = world.task()["task_id"]
    rec = world.record(task_id)
    world.executed(task_id, event_data(rec))
    cache = world.edge_cache.cache()
    first = flow.stage_recording(world.admin, cache, task_id, recording_format="mcap", recorder_checksum=rec.checksum_sha256)
    again = flow.stage_recording(world.admin, cache, task_id, recording_format="mcap", recorder_checksum=rec.checksum_sha256)
    assert again.dataset_digest == first.dataset_digest and again.cache_path == first.cache_path
    other = world.record(task_id, duration_s=3.0)  # Axon overwrites a re-recorded task id
    with pytest.raises(CacheConflict, match="already cached from an MCAP"):
        cache.stage_mcap(other.mcap_path, task_id, ingest=flow.mcap_ingester(world.admin.get_task(task_id)))


def test_unknown_recording_formats_are_refused():
    with pytest.raises(flow.DataFlowError, match="unknown recording_format 'bag'"):
        flow.recording_format_of("/x/t.mcap", "bag")
    assert flow.recording_format_of("/x/t.lance") == "lance" and flow.recording_format_of("/x/t.mcap") == "mcap"
    with pytest.raises(ValueError, match="AXON_RECORDING_WAIT_SECONDS"):
        flow.recording_wait_seconds({"AXON_RECORDING_WAIT_SECONDS": "soon"})
    assert flow.recording_wait_seconds({}) == flow.DEFAULT_RECORDING_WAIT_S


def test_an_old_agents_event_starts_the_lance_era_flow():
    """An event without recording_format (agents before MCAP) passes only the task id."""
    event = {"task_id": "t-old", "robot_id": "r", "data": {"dataset_path": "/rec/t-old.lance"}}
    assert data_flow_run_request(event).run_config == {"ops": {"stage_recording": {"config": {"task_id": "t-old"}}}}
    event = {"task_id": "t-new", "robot_id": "r", "data": {"dataset_path": "/rec/t-new.mcap", "recording_format": "mcap",
                                                         "checksum_sha256": ""}}
    assert data_flow_run_request(event).run_config["ops"]["stage_recording"]["config"] == {"task_id": "t-new", "recording_format": "mcap"}


def test_a_reported_path_that_is_not_the_tasks_recording_is_refused(world):
    task_id = world.task()["task_id"]
    other = world.record(f"{task_id}-other")
    world.executed(task_id, event_data(other))
    with pytest.raises(flow.DataFlowError, match=f"is not {task_id}.mcap"):
        flow.stage_recording(world.admin, world.edge_cache.cache(), task_id)
    assert not (world.edge_cache.cache().root / "datasets" / task_id).exists()


def test_an_mcap_changed_in_the_cache_after_staging_is_not_uploaded(world):
    """The cached MCAP can be a hardlink to the recorder's file: if the recorder rewrites it in
    place, the upload refuses it rather than store something that is not what Axon hashed."""
    task_id = world.task()["task_id"]
    rec = world.record(task_id)
    world.executed(task_id, event_data(rec))
    cache = world.edge_cache.cache()
    staged = flow.stage_recording(world.admin, cache, task_id)
    _, outcome = flow.inspect_staged(world.admin, cache, world.inspection.inspect, staged)
    assert outcome is QcOutcome.APPROVED
    cached_mcap = Path(staged.cache_path).with_suffix(".mcap")
    with open(cached_mcap, "r+b") as fh:  # in place, as a recorder truncating and rewriting would
        fh.seek(100)
        fh.write(b"\x00" * 16)
    with pytest.raises(DigestMismatch, match="changed since it was staged"):
        flow.publish(world.admin, cache, world.object_store.store(), flow.load_approved(world.admin, task_id))


def test_release_source_hands_an_mcap_recording_over_to_the_cache(world, tmp_path):
    from axon_dagster.storage.edge_cache import EdgeCache

    task = world.task()
    task_id = task["task_id"]
    rec = world.record(task_id)
    cache = EdgeCache(tmp_path / "owning-cache", release_source=True)
    entry = cache.stage_mcap(rec.mcap_path, task_id, ingest=flow.mcap_ingester(task), expected_checksum=rec.checksum_sha256)
    assert entry.source_released is True
    assert not rec.mcap_path.exists() and not rec.sidecar_path.exists() and not rec.done_path.exists()
    assert file_sha256(entry.path.with_suffix(".mcap")) == rec.checksum_sha256  # the cache holds the only copy
    again = cache.stage_mcap(rec.mcap_path, task_id, ingest=flow.mcap_ingester(task))
    assert again.source_released is True and again.dataset_digest == entry.dataset_digest
    # a different file under the recording's name is never deleted
    other = world.record(task_id, duration_s=2.0)
    with pytest.raises(CacheConflict):
        cache.stage_mcap(other.mcap_path, task_id, ingest=flow.mcap_ingester(task))
    assert other.mcap_path.exists()
