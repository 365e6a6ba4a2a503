"""A real review world: the control-plane API (uvicorn over HTTP, SQLite store) with a local-dir
staging store on a free port, a robot pushing real status events with its recording's manifest and
uploading it through its grant (its own API client), real Lance recordings from the simulator's
writer, the real data_flow job with the real Daft inspection, and the lake in the same store."""

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest

from axon_dagster.api.app import create_app
from axon_dagster.client import EdgeSyncClient
from axon_dagster.client.review import ReviewClient
from axon_dagster.api.server import ApiThread
from axon_dagster.defs.data_flow import DataFlowPolicy, data_flow
from axon_dagster.defs.resources import ControlPlaneResource, InspectionResource, ObjectStoreResource
from axon_dagster.domain import TaskStatus
from axon_dagster.demo.sim.synthetic import Faults, write_recording
from axon_dagster.control_plane.persistence import upgrade
from axon_dagster.settings.uploads import UploadApiSettings
from axon_dagster.storage.digest import file_sha256
from axon_dagster.storage.object_stores import LocalDirObjectStore
from axon_dagster.storage.recording import Sidecar, sidecar_path

ROBOT = "robot-1"
START_NS = 1_767_000_000_000_000_000
_counter = itertools.count(1)


@dataclass
class World:
    root: Path
    url: str
    admin: ReviewClient
    edge: EdgeSyncClient
    control_plane: ControlPlaneResource
    object_store: ObjectStoreResource
    inspection: InspectionResource
    data_flow_policy: DataFlowPolicy
    edges: dict[str, EdgeSyncClient] = field(default_factory=dict)  # robots other than ROBOT

    def edge_for(self, robot: str) -> EdgeSyncClient:
        if robot == ROBOT:
            return self.edge
        if robot not in self.edges:
            self.edges[robot] = EdgeSyncClient(self.url, self.admin.register_robot(robot)["token"])
        return self.edges[robot]

    def resources(self, **extra) -> dict:
        return {
            "control_plane": self.control_plane,
            "object_store": self.object_store,
            "inspection": self.inspection,
            "data_flow_policy": self.data_flow_policy,
            **extra,
        }

    def recorded_task(
        self, *, gap_seconds: float = 2.0, collector: str = "carol", scene: str = "warehouse", sub_scene: str = "aisle_1",
        skills: tuple[str, ...] = ("pick",), robot: str = ROBOT,
    ) -> str:
        """An EXECUTED task whose real Lance recording (a 2 s stall by default) the robot staged
        through its upload grant (manifest -> grant -> plan -> parts -> complete: STAGED)."""
        n = next(_counter)
        order_id = f"order-{n}"
        self.admin.create_order(order_id, scene, list(skills), sub_scene=sub_scene, created_by="test")
        plan = self.admin.plan_order(order_id, task_count=1, duration_seconds=6)
        task_id = plan["tasks"][0]["task_id"]
        edge = self.edge_for(robot)
        self.admin.dispatch_order(order_id, [robot])
        dataset = self.root / "robot" / f"{task_id}.lance"
        write_recording(
            dataset, task_id=task_id, robot_id=robot, start_ns=START_NS + n * 10**10, duration_s=6, faults=Faults(gap_seconds=gap_seconds)
        )
        sidecar = Sidecar.read(sidecar_path(dataset))
        files = {f"{task_id}.lance/{rel}": dataset / rel for rel in sidecar.files}
        files[f"{task_id}.json"] = sidecar_path(dataset)
        manifest = {"files": [{"name": n, "size": p.stat().st_size, "sha256": file_sha256(p)} for n, p in files.items()],
                    "dataset_digest": sidecar.dataset_digest}
        executed = {"recording_format": "lance", "manifest": manifest, "gate": {"passed": True, "reasons": [], "checks": {}},
                    "dataset_path": "/on/the/robot/only"}
        for status, data in (
            (TaskStatus.READY, {}),
            (TaskStatus.ASSIGNED, {"data_collector_id": collector}),
            (TaskStatus.EXECUTING, {}),
            (TaskStatus.EXECUTED, executed),
        ):
            event = {"event_id": f"{task_id}.{status.value.lower()}", "task_id": task_id, "status": status.value, "data": data}
            assert edge.push_events([event])[0]["result"] == "applied", status
        grant = self.admin.grant_upload(task_id, ttl_seconds=600)
        plan = edge.upload_plan(task_id, grant["grant_id"])
        done = {}
        for f in plan["files"]:
            data = files[f["name"]].read_bytes()
            done[f["name"]] = [{"number": p["number"], "etag": edge.put_part(p, data[p["offset"]:p["offset"] + p["size"]])} for p in f["parts"]]
        assert edge.complete_upload(task_id, grant["grant_id"], done)["status"] == "STAGED"
        return task_id

    def inspected_task(self, **kwargs) -> str:
        """A staged recording through its first data_flow run (the real QC): needs_review, waiting."""
        task_id = self.recorded_task(**kwargs)
        result = data_flow.execute_in_process(
            run_config={"ops": {"ingest_staged_recording": {"config": {"task_id": task_id}}}}, resources=self.resources(),
            instance=dg.DagsterInstance.ephemeral(), tags={"axon/task_id": task_id}, raise_on_error=True)
        assert result.output_for_node("settle_dataset")["outcome"] == "needs_review"
        return task_id


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("review")
    url = f"sqlite:///{root / 'cp.db'}"
    upgrade(url)
    store = LocalDirObjectStore(root / "cloud")
    settings = UploadApiSettings(object_store_url=f"file://{root / 'cloud'}", signing_key="r" * 40)
    server = ApiThread(create_app(url, admin_token="", staging_store=store, upload_settings=settings)).start()
    admin = ReviewClient(server.url)
    token = admin.register_robot(ROBOT)["token"]
    edge = EdgeSyncClient(server.url, token)
    made = None
    try:
        made = World(
            root=root,
            url=server.url,
            admin=admin,
            edge=edge,
            control_plane=ControlPlaneResource(url=server.url),
            object_store=ObjectStoreResource(url=f"file://{root / 'cloud'}"),
            inspection=InspectionResource(runner="native"),
            data_flow_policy=DataFlowPolicy(workdir=str(root / "work")),
        )
        yield made
    finally:
        for other in (made.edges.values() if made else ()):
            other.close()
        admin.close()
        edge.close()
        server.stop()
