"""A staged world for the data flow's tests: the control-plane API over HTTP (SQLite) with a staging
store (a local dir, or S3 on moto's server), a robot playing its part through its own API client
(EXECUTED with manifest and gate, uplink report, plan -> part PUTs -> complete), recordings written
by the simulator's Axon writer, the grant and staged sensors evaluated as the daemon does."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from axon_dagster.api.app import create_app
from axon_dagster.api.server import ApiThread
from axon_dagster.client import EdgeSyncClient
from axon_dagster.client.review import ReviewClient
from axon_dagster.control_plane.persistence import upgrade
from axon_dagster.defs.data_flow import DataFlowPolicy, data_flow, evaluate_staged
from axon_dagster.defs.resources import ControlPlaneResource, InspectionResource, ObjectStoreResource
from axon_dagster.defs.uploads import UploadGrantPolicy, evaluate_grants
from axon_dagster.demo.sim.axon_mcap import write_axon_recording
from axon_dagster.settings.uploads import UploadApiSettings
from axon_dagster.storage.object_stores import LocalDirObjectStore, object_store_from_url

try:
    from tests.s3_fixture import s3_bucket, s3_client, s3_env, s3_server  # noqa: F401
except ImportError:  # tests/ not importable as a package: the fixture module sits beside the suites
    from s3_fixture import s3_bucket, s3_client, s3_env, s3_server  # type: ignore[no-redef]  # noqa: F401

ROBOT = "robot-1"
START_NS = 1_780_000_000_000_000_000
_n = itertools.count(1)
REQUIREMENTS = {"required_topics": ["/imu"], "max_gap_seconds": 2.0}


class World:
    def __init__(self, root: Path, url: str, store, store_url: str, endpoint_url: str | None = None):
        self.root, self.store = root, store
        self.admin = ReviewClient(url)
        self.robot = EdgeSyncClient(url, self.admin.register_robot(ROBOT)["token"])
        self.resources = {
            "control_plane": ControlPlaneResource(url=url),
            "object_store": ObjectStoreResource(url=store_url, endpoint_url=endpoint_url),
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

    def record_and_execute(self, task_id: str, mangle=None, started_at_ns: int | None = None) -> dict[str, bytes]:
        """The robot records (Axon MCAP + Axon's sidecar) and reports EXECUTED with its manifest
        (of the files as ``mangle(files)`` leaves them: a recorder writing bad bytes)."""
        rec = write_axon_recording(
            self.root / "robot", task_config={"task_id": task_id, "scene": "warehouse", "subscene": "aisle_1", "skills": ["pick"]},
            device_id=ROBOT, started_at_ns=started_at_ns or START_NS + next(_n) * 10**11, seed=7, duration_s=4.0,
        )
        files = {f"{task_id}.mcap": rec.mcap_path.read_bytes(), f"{task_id}.json": rec.sidecar_path.read_bytes()}
        files = mangle(files) if mangle is not None else files
        manifest = {"files": [{"name": n, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()} for n, b in files.items()],
                    "dataset_digest": hashlib.sha256(files[f"{task_id}.mcap"]).hexdigest()}
        data = {"recording_format": "mcap", "manifest": manifest, "gate": {"passed": True, "reasons": [], "checks": {}},
                "dataset_path": "/robot/disk/never/read"}
        events = [{"event_id": f"{task_id}-{s}", "task_id": task_id, "status": s} for s in ("READY", "EXECUTING")]
        events.append({"event_id": f"{task_id}-EXECUTED", "task_id": task_id, "status": "EXECUTED", "data": data})
        assert all(r["result"] == "applied" for r in self.robot.push_events(events))
        return files

    def upload(self, task_id: str, files: dict[str, bytes], before_part=None, complete: bool = True) -> dict:
        """What the edge agent's uploader does with its grant: plan, PUT every part (small files
        first, as it does; ``before_part(name, number)`` is called before each), complete."""
        grant = {t["task_id"]: t for t in self.robot.pull_tasks(0, 1000)["tasks"]}[task_id]["upload"]
        assert grant, f"no grant for {task_id}"
        plan = self.robot.upload_plan(task_id, grant["grant_id"])
        done: dict[str, list] = {}
        for f in sorted(plan["files"], key=lambda f: f["size"]):
            for p in f["parts"]:
                if before_part is not None:
                    before_part(f["name"], p["number"])
                etag = self.robot.put_part(p, files[f["name"]][p["offset"]:p["offset"] + p["size"]])
                done.setdefault(f["name"], []).append({"number": p["number"], "etag": etag})
        return self.robot.complete_upload(task_id, grant["grant_id"], done) if complete else {"grant_id": grant["grant_id"], "parts": done}

    def grant_tick(self, instance: dg.DagsterInstance):
        with dg.build_sensor_context(instance=instance, resources=self.resources) as context:
            return evaluate_grants(context, self.resources["control_plane"], self.resources["upload_grants"])

    def staged_tick(self, instance: dg.DagsterInstance, cursor: str | None = None):
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources=self.resources) as context:
            return evaluate_staged(context, self.resources["control_plane"], self.resources["data_flow_policy"])

    def follow_tick(self, instance: dg.DagsterInstance):
        """The staged sensor as deployed: with the object store, so that a store that can be read
        while a robot uploads gets a run for each GRANTED dataset."""
        with dg.build_sensor_context(instance=instance, resources=self.resources) as context:
            return evaluate_staged(context, self.resources["control_plane"], self.resources["data_flow_policy"],
                                   self.resources["object_store"])

    def run(self, request: dg.RunRequest, instance: dg.DagsterInstance):
        return data_flow.execute_in_process(run_config=request.run_config, resources=self.resources, instance=instance,
                                            tags=request.tags, raise_on_error=False)

    def tamper(self, task_id: str, name: str, data: bytes) -> None:
        """Bit rot or tampering in the staging area, after the control plane verified it."""
        self.store.put_bytes(f"staging/{ROBOT}/{task_id}/{name}", data)

    def lake_keys(self) -> list[str]:
        return [k for k in self.store.list_keys("") if not k.startswith("staging/")]


def _world(tmp_path: Path, store, store_url: str, endpoint_url: str | None = None) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    upgrade(url)
    settings = UploadApiSettings(object_store_url=store_url, endpoint_url=endpoint_url, signing_key="k" * 40, part_size=5 * 1024 * 1024)
    server = ApiThread(create_app(url, admin_token="", staging_store=store, upload_settings=settings)).start()
    w = World(tmp_path, server.url, store, store_url, endpoint_url)
    w.robot.report_uplink(50.0, [], "UTC")
    try:
        yield w
    finally:
        w.robot.close()
        w.admin.close()
        server.stop()


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    """The embedded default: a local-dir store (the staging area and the lake)."""
    yield from _world(tmp_path, LocalDirObjectStore(tmp_path / "cloud"), f"file://{tmp_path / 'cloud'}")


@pytest.fixture
def s3_world(tmp_path, s3_env, s3_bucket) -> Iterator[World]:
    """S3 on moto's server over HTTP: robots PUT parts to pre-signed URLs, publishing copies server-side."""
    store_url = f"s3://{s3_bucket}/axon"
    yield from _world(tmp_path, object_store_from_url(store_url, endpoint_url=s3_env.url), store_url, s3_env.url)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


def failure(result) -> str:
    return " | ".join(str(e.event_specific_data.error.message) for e in result.all_events if e.is_step_failure)


def stage(world: World, instance, requirements: dict | None = None) -> tuple[str, dict[str, bytes]]:
    """A task recorded, reported, granted by the sensor and uploaded by its robot: STAGED."""
    task_id = world.task(requirements)["task_id"]
    files = world.record_and_execute(task_id)
    granted = world.grant_tick(instance)
    assert granted.skip_reason.skip_message.startswith("1 upload(s) granted"), granted.skip_reason
    assert world.upload(task_id, files)["status"] == "STAGED"
    return task_id, files


def failure(result) -> str:
    return " | ".join(str(e.event_specific_data.error.message) for e in result.all_events if e.is_step_failure)
