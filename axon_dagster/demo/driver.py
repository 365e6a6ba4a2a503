"""`axon-dagster demo`: a simulated fleet through the control flow and the data flow, end to end.

Dagster runs on an ephemeral instance in this process. The loop below does what the Dagster
daemon does in production: it ticks the task-status sensor with its cursor and launches one
data_flow run per new run_key. Everything else (control plane, robots, recorders) runs as
separate processes talking HTTP.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TERMINAL = {"UPLOADED", "FAILED", "CANCELLED"}
# What the demo's simulated recorders write: Axon v0.4 MCAP (the data flow ingests it into Lance
# and keeps the original MCAP beside the dataset); "lance" keeps the Lance-era layout.
DEFAULT_RECORDING_FORMAT = "mcap"


@dataclass
class DemoOptions:
    robots: int = 2
    skills: tuple[str, ...] = ("navigation", "pick_place")
    tasks_per_skill: int = 2
    duration_seconds: float = 3.0
    scene: str = "warehouse"
    sub_scene: str = "aisle_1"
    workdir: Path | None = None
    json_path: Path | None = None
    timeout_seconds: float = 110.0
    transport: str = "http"  # how edge agents reach their recorders: http | ros1 | ros2
    recording_format: str = DEFAULT_RECORDING_FORMAT  # what the simulated recorders write: mcap | lance
    # Recorders already running (``ExternalRecorder``: robot id, URL, data dir): the demo starts no
    # simulator for them and runs one robot per recorder.
    external_recorders: list = field(default_factory=list)
    order_id: str = field(default_factory=lambda: time.strftime("demo-%Y%m%d-%H%M%S"))


@dataclass
class DemoResult:
    tasks: list[dict[str, Any]]
    elapsed_seconds: float
    workdir: Path

    @property
    def all_uploaded(self) -> bool:
        return bool(self.tasks) and all(t["status"] == "UPLOADED" and t["digest_verified"] for t in self.tasks)


class DagsterDriver:
    """Ticks the sensor and executes the runs it requests, like the daemon would."""

    # The demo shows its own progress; Dagster's per-step DEBUG lines would drown it.
    LOGGING = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    SENSORS = ("task_status_sensor", "bandwidth_sensor", "review_decision_sensor")

    def __init__(self, defs, instance):
        self.defs = defs
        self.instance = instance
        self.sensors = [defs.resolve_sensor_def(name) for name in self.SENSORS]
        self.cursors: dict[str, str | None] = {}
        self.launched: set[str] = set()
        self.failed_runs: list[str] = []

    def run_order(self, order_config: dict) -> None:
        result = self.defs.resolve_job_def("order_processing").execute_in_process(
            run_config={"ops": {"create_order": {"config": order_config}}, **self.LOGGING}, instance=self.instance, raise_on_error=True
        )
        assert result.success

    def tick(self) -> int:
        """One evaluation of each sensor that moves data (new recordings, uploads through the
        bandwidth gate, review decisions), then every run they request, once per run_key."""
        import dagster as dg

        started = 0
        for sensor in self.sensors:
            resources = {k: self.defs.resources[k] for k in sensor.required_resource_keys}
            with dg.build_sensor_context(instance=self.instance, cursor=self.cursors.get(sensor.name), resources=resources) as context:
                result = sensor.evaluate_tick(context)
            self.cursors[sensor.name] = result.cursor
            for request in result.run_requests or []:
                if request.run_key in self.launched:
                    continue
                self.launched.add(request.run_key)
                job = self.defs.resolve_job_def(request.job_name or sensor.job_name)
                run = job.execute_in_process(
                    run_config={**request.run_config, **self.LOGGING}, instance=self.instance, tags=request.tags, raise_on_error=False
                )
                if not run.success:
                    self.failed_runs.append(run.run_id)
                    log.error("%s run %s for %s failed", job.name, run.run_id, request.tags.get("axon/task_id"))
                started += 1
        return started


def run_demo(options: DemoOptions, progress=None) -> DemoResult:
    import dagster as dg

    from axon_dagster.demo.collectors import SimulatedCollector
    from axon_dagster.defs import build_definitions
    from axon_dagster.defs.resources import (
        ControlPlaneResource,
        EdgeCacheResource,
        InspectionResource,
        ObjectStoreResource,
        RecorderResource,
    )
    from axon_dagster.demo.fleet import SimulatedFleet
    from axon_dagster.client.orders import all_tasks

    workdir = Path(options.workdir or tempfile.mkdtemp(prefix="axon-demo-")).resolve()
    started = time.monotonic()
    check_transport(options.transport)
    with SimulatedFleet(
        workdir,
        robots=options.robots,
        transport=options.transport,
        recording_format=options.recording_format,
        external_recorders=list(options.external_recorders),
    ) as fleet:
        import os

        os.environ["AXON_ADMIN_TOKEN"] = fleet.admin_token
        os.environ.setdefault("AXON_UPLOAD_STATE_DIR", str(workdir / "upload-state"))
        os.environ.update(fleet.ros_env)  # this process's recorder resource joins the fleet's master (ros1) / domain (ros2)
        first = fleet.robot_processes[0]
        defs = build_definitions(
            {
                "control_plane": ControlPlaneResource(url=fleet.control_plane_url),
                "edge_cache": EdgeCacheResource(root=str(workdir / "edge-cache")),
                "object_store": ObjectStoreResource(url=f"file://{workdir / 'cloud'}"),
                "inspection": InspectionResource(runner="native"),
                "recorder": (
                    RecorderResource(transport=options.transport, namespace=first.recorder_namespace)
                    if options.transport in ("ros1", "ros2")
                    else RecorderResource(url=first.recorder_url)
                ),
            }
        )
        driver = DagsterDriver(defs, dg.DagsterInstance.ephemeral())
        order = {
            "order_id": options.order_id,
            "scene": options.scene,
            "sub_scene": options.sub_scene,
            "skills": list(options.skills),
            "task_count": options.tasks_per_skill,
            "duration_seconds": options.duration_seconds,
            "requirements": {
                "required_topics": ["/camera/image_raw", "/joint_states", "/imu"],
                "expected_rates_hz": {"/camera/image_raw": 30.0, "/joint_states": 200.0, "/imu": 100.0},
                "max_gap_seconds": 0.5,
                "min_duration_seconds": options.duration_seconds * 0.5,
            },
        }
        driver.run_order(order)
        stop = threading.Event()
        collectors = [
            SimulatedCollector(r.edge_url, f"collector-{r.robot_id}", stop_event=stop) for r in fleet.robot_processes
        ]
        for c in collectors:
            c.start()
        client = fleet.admin_client()
        deadline = started + options.timeout_seconds
        try:
            while time.monotonic() < deadline:
                driver.tick()
                tasks = list(all_tasks(client, order_id=options.order_id))
                if progress:
                    progress(tasks, time.monotonic() - started)
                if tasks and all(t["status"] in TERMINAL for t in tasks):
                    break
                time.sleep(0.5)
        finally:
            stop.set()
            for c in collectors:
                c.join(timeout=15)
        rows = _result_rows(client, defs, options.order_id)
    result = DemoResult(tasks=rows, elapsed_seconds=time.monotonic() - started, workdir=workdir)
    if options.json_path:
        Path(options.json_path).write_text(json.dumps({"tasks": [_json_row(r) for r in rows]}, indent=2))
    return result


DEMO_TRANSPORTS = ("http", "ros1", "ros2")


class DemoTransportUnavailable(RuntimeError):
    """The demo cannot run over the transport asked for on this machine."""


def check_transport(transport: str) -> None:
    if transport not in DEMO_TRANSPORTS:
        raise DemoTransportUnavailable(f"unknown transport {transport!r}; choose one of {', '.join(DEMO_TRANSPORTS)}")
    if transport == "ros2":
        from axon_dagster.recorder.ros2_env import Ros2Unavailable, load_srv_module

        try:
            load_srv_module()  # rclpy there, and our interface package built (or buildable: built now)
        except Ros2Unavailable as exc:
            raise DemoTransportUnavailable(f"--transport ros2: {exc}") from None
    if transport == "ros1":
        from axon_dagster.recorder.ros1_env import ros1_available

        if not ros1_available():
            raise DemoTransportUnavailable("--transport ros1 needs ROS 1 (rospy, rosmaster): run `bash scripts/ros1-deps.sh`")


def _result_rows(client, defs, order_id: str) -> list[dict[str, Any]]:
    """One row per task, with the cloud copy's digest re-verified against the sidecar's."""
    from axon_dagster.client import ControlPlaneError
    from axon_dagster.services.data_flow import verify_cloud_copy
    from axon_dagster.client.orders import all_tasks

    store = defs.resources["object_store"].store()
    rows = []
    for task in all_tasks(client, order_id=order_id):
        try:
            dataset = client.get_dataset(task["task_id"])
        except ControlPlaneError:
            dataset = {}
        row = {
            "task_id": task["task_id"],
            "order_id": task["order_id"],
            "batch_id": task["batch_id"],
            "robot_id": task.get("robot_id"),
            "status": task["status"],
            "qc_score": dataset.get("qc_score"),
            "approved": dataset.get("qc_outcome") == "approved",
            "cloud_path": dataset.get("cloud_uri"),
            "dataset_digest": dataset.get("dataset_digest"),
            "failure_reason": task.get("failure_reason"),
            "seconds": _seconds(task),
            "digest_verified": False,
        }
        if task["status"] == "UPLOADED" and task.get("dataset_path"):
            row["digest_verified"] = verify_cloud_copy(store, task, dataset)
        rows.append(row)
    return rows


def _seconds(task: dict) -> float | None:
    from datetime import datetime

    try:
        created = datetime.fromisoformat(task["created_at"])
        updated = datetime.fromisoformat(task["updated_at"])
        return round((updated - created).total_seconds(), 1)
    except (KeyError, TypeError, ValueError):
        return None


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("task_id", "order_id", "batch_id", "robot_id", "status", "qc_score", "approved", "cloud_path", "dataset_digest")
    return {k: row[k] for k in keys}
