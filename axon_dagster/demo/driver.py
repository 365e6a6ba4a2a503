"""`axon-dagster demo`: a simulated fleet through the control flow and the data flow, end to end.

Every part is a process of its own talking HTTP, as on separate machines: the control plane and
Dagster (:mod:`.cloud`, on an ephemeral instance, doing what the daemon does) as the cloud; per
robot, a recorder simulator and an edge agent. Where the demo can (root, ``useradd``), each robot
runs as an OS user of its own with a ``0700`` directory and the cloud as another
(:mod:`.isolation`); ``--json`` says who ran what. This process only starts them, plays the
collectors, prints progress and collects the results.
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

# What the demo's simulated recorders write: Axon v0.4 MCAP (the data flow ingests it into Lance
# and keeps the original MCAP beside the dataset); "lance" keeps the Lance-era layout.
DEFAULT_RECORDING_FORMAT = "mcap"
# Robots and the cloud as OS users of their own: "auto" where the demo can create users (root).
DEFAULT_ISOLATION = "auto"


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
    isolation: str = DEFAULT_ISOLATION  # auto | on | off: robots and the cloud as OS users of their own (see isolation.py)
    order_id: str = field(default_factory=lambda: time.strftime("demo-%Y%m%d-%H%M%S"))


@dataclass
class DemoResult:
    tasks: list[dict[str, Any]]
    elapsed_seconds: float
    workdir: Path
    isolation: dict[str, Any] = field(default_factory=dict)

    @property
    def all_uploaded(self) -> bool:
        return bool(self.tasks) and all(t["status"] == "UPLOADED" and t["digest_verified"] for t in self.tasks)


def run_demo(options: DemoOptions, progress=None, announce=None) -> DemoResult:
    """``progress(tasks, elapsed_s)`` while it runs; ``announce(line)`` for what is worth a line (who runs what)."""
    from axon_dagster.client.orders import all_tasks

    from .collectors import SimulatedCollector
    from .fleet import SimulatedFleet

    workdir = Path(options.workdir or tempfile.mkdtemp(prefix="axon-demo-")).resolve()
    started = time.monotonic()
    deadline = started + options.timeout_seconds
    check_transport(options.transport)
    with SimulatedFleet(
        workdir,
        robots=options.robots,
        transport=options.transport,
        recording_format=options.recording_format,
        external_recorders=list(options.external_recorders),
        isolation=options.isolation,
    ) as fleet:
        if announce:
            announce(f"isolation: {fleet.plan.reason}")
        cloud, cloud_log, result_path = fleet.spawn_dagster(_order(options), deadline - time.monotonic())
        stop = threading.Event()
        collectors = [SimulatedCollector(r.edge_url, f"collector-{r.robot_id}", stop_event=stop) for r in fleet.robot_processes]
        for c in collectors:
            c.start()
        client = fleet.admin_client()
        try:
            # the cloud process writes its results at its deadline; give it a moment past ours to do so
            while cloud.poll() is None and time.monotonic() < deadline + CLOUD_GRACE_SECONDS:
                if progress:
                    progress(list(all_tasks(client, order_id=options.order_id)), time.monotonic() - started)
                time.sleep(0.5)
        finally:
            stop.set()
            for c in collectors:
                c.join(timeout=15)
        if cloud.poll() is None:
            log.error("the cloud process did not finish in time; stopping it (log: %s)", cloud_log)
        rows = json.loads(result_path.read_text())["tasks"] if result_path.exists() else _rows_without_cloud(client, options.order_id)
        isolation = fleet.isolation_report()
    users = {robot_id: report["user"] for robot_id, report in isolation.get("robots", {}).items()}
    for row in rows:
        row["robot_user"] = users.get(row.get("robot_id"))
    result = DemoResult(tasks=rows, elapsed_seconds=time.monotonic() - started, workdir=workdir, isolation=isolation)
    if options.json_path:
        Path(options.json_path).write_text(json.dumps({"isolation": isolation, "tasks": [_json_row(r) for r in rows]}, indent=2))
    return result


# Seconds the cloud process may take past the demo's deadline to write its results.
CLOUD_GRACE_SECONDS = 60.0


def _order(options: DemoOptions) -> dict[str, Any]:
    return {
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


def _rows_without_cloud(client, order_id: str) -> list[dict[str, Any]]:
    """The tasks as the control plane has them, when the cloud process wrote no results."""
    from axon_dagster.client.orders import all_tasks

    keys = ("task_id", "order_id", "batch_id", "robot_id", "status", "failure_reason")
    return [
        {**{k: task.get(k) for k in keys}, "qc_score": None, "approved": False, "cloud_path": None, "dataset_digest": None,
         "seconds": None, "digest_verified": False}
        for task in all_tasks(client, order_id=order_id)
    ]


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


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("task_id", "order_id", "batch_id", "robot_id", "robot_user", "status", "qc_score", "approved", "cloud_path",
            "dataset_digest", "digest_verified")
    return {k: row[k] for k in keys}
