"""A real review world: the control-plane API (uvicorn over HTTP, SQLite store) on a free port, a
robot pushing real status events, real Lance recordings from the simulator's writer, a real edge
cache and a local-dir object store in tmp, and the real Daft inspection."""

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from axon_dagster.api.app import create_app
from axon_dagster.client import EdgeSyncClient
from axon_dagster.client.review import ReviewClient
from axon_dagster.api.server import ApiThread
from axon_dagster.defs.resources import ControlPlaneResource, EdgeCacheResource, InspectionResource, ObjectStoreResource
from axon_dagster.domain import TaskStatus
from axon_dagster.demo.sim.synthetic import Faults, write_recording
from axon_dagster.services import data_flow as flow
from axon_dagster.control_plane.persistence import upgrade

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
    edge_cache: EdgeCacheResource
    object_store: ObjectStoreResource
    inspection: InspectionResource
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
            "edge_cache": self.edge_cache,
            "object_store": self.object_store,
            **extra,
        }

    def recorded_task(
        self, *, gap_seconds: float = 2.0, collector: str = "carol", scene: str = "warehouse", sub_scene: str = "aisle_1",
        skills: tuple[str, ...] = ("pick",), robot: str = ROBOT,
    ) -> str:
        """An EXECUTED task whose real Lance recording (a 2 s stall by default) sits on the robot."""
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
        for status, data in (
            (TaskStatus.READY, {}),
            (TaskStatus.ASSIGNED, {"data_collector_id": collector}),
            (TaskStatus.EXECUTING, {}),
            (TaskStatus.EXECUTED, {"dataset_path": str(dataset)}),
        ):
            event = {"event_id": f"{task_id}.{status.value.lower()}", "task_id": task_id, "status": status.value, "data": data}
            assert edge.push_events([event])[0]["result"] == "applied", status
        return task_id

    def inspected_task(self, **kwargs) -> str:
        """A recorded task staged into the edge cache and inspected by the real QC: needs_review."""
        task_id = self.recorded_task(**kwargs)
        staged = flow.stage_recording(self.admin, self.edge_cache.cache(), task_id)
        _, outcome = flow.inspect_staged(self.admin, self.edge_cache.cache(), self.inspection.inspect, staged)
        assert outcome.value == "needs_review", outcome
        return task_id


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("review")
    url = f"sqlite:///{root / 'cp.db'}"
    upgrade(url)
    server = ApiThread(create_app(url, admin_token="")).start()
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
            edge_cache=EdgeCacheResource(root=str(root / "edge-cache")),
            object_store=ObjectStoreResource(url=f"file://{root / 'cloud'}"),
            inspection=InspectionResource(runner="native"),
        )
        yield made
    finally:
        for other in (made.edges.values() if made else ()):
            other.close()
        admin.close()
        edge.close()
        server.stop()
