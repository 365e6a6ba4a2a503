"""Recording requests as plain functions: a recording is work for a robot, handed out through the
control plane like any order's task. The code location never talks to a recorder: the robot's
edge agent starts the recording (when its collector does), supervises it, stops it at its
duration and reports it; its recording then takes the data flow like every other.

A request is a one-task order named after the request (``recording_id``), planned as a single
batch with the request's skills, dispatched to the requested robot. Every step is idempotent
(Dagster retries ops): a request already made is found again, not made twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from axon_dagster.domain import TaskStatus, validate_id
from axon_dagster.recorder.health import RecorderHealth, fresh_report, health_of_report
from axon_dagster.client import orders

RECORDED = (TaskStatus.EXECUTED.value, TaskStatus.UPLOADED.value)
GIVEN_UP = (TaskStatus.FAILED.value, TaskStatus.CANCELLED.value)


class RecordingRequestError(Exception):
    """The robot did not record what was asked (failed, cancelled, or not within the time allowed)."""


@dataclass(frozen=True)
class RecordingRequest:
    recording_id: str  # the order's id: one request, one order, one task
    robot_id: str
    scene: str
    skills: tuple[str, ...]
    duration_seconds: float
    sub_scene: str = ""
    topics: tuple[str, ...] = ()
    priority: int = 0
    requirements: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_id(self.recording_id, "recording_id")
        validate_id(self.robot_id, "robot_id")
        if not self.skills:
            raise ValueError("a recording request names at least one skill")
        if not self.duration_seconds > 0:
            raise ValueError(f"duration_seconds must be positive, got {self.duration_seconds!r}")

    def order_spec(self) -> dict[str, Any]:
        batch = {"skills": list(self.skills), "task_count": 1, "duration_seconds": self.duration_seconds, "topics": list(self.topics)}
        return {
            "order_id": self.recording_id,
            "scene": self.scene,
            "sub_scene": self.sub_scene,
            "skills": list(self.skills),
            "priority": self.priority,
            "requirements": dict(self.requirements),
            "batch_strategy": "manual",
            "manual_batches": [batch],
        }


def request_recording(client, request: RecordingRequest, created_by: str = "") -> dict[str, Any]:
    """Create the request's one-task order and give the task to the robot; returns the task."""
    spec = request.order_spec()
    orders.create_order(client, spec, created_by=created_by)
    orders.plan_order(client, spec)
    client.dispatch_order(request.recording_id, robot_ids=[request.robot_id])
    tasks = list(orders.all_tasks(client, order_id=request.recording_id))
    if len(tasks) != 1:
        raise RecordingRequestError(f"order {request.recording_id} holds {len(tasks)} tasks: it is not a recording request")
    task = tasks[0]
    if task.get("robot_id") != request.robot_id:
        raise RecordingRequestError(
            f"task {task['task_id']} of {request.recording_id} is held by robot {task.get('robot_id')!r}, not {request.robot_id!r}"
        )
    return task


def await_recording(
    client,
    task_id: str,
    *,
    timeout_s: float,
    poll_s: float = 5.0,
    on_status: Callable[[dict[str, Any]], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Wait until the robot reports the task recorded (EXECUTED, or already UPLOADED); raise
    :class:`RecordingRequestError` when it failed, was cancelled, or ``timeout_s`` passed."""
    deadline = clock() + timeout_s
    last = None
    while True:
        task = client.get_task(task_id)
        if on_status is not None and task["status"] != last:
            on_status(task)
        last = task["status"]
        if last in RECORDED:
            return task
        if last in GIVEN_UP:
            raise RecordingRequestError(f"task {task_id} is {last}: {task.get('failure_reason') or 'no reason given'}")
        remaining = deadline - clock()
        if remaining <= 0:
            raise RecordingRequestError(
                f"task {task_id} is still {last} after {timeout_s:g}s: robot {task.get('robot_id')} did not record it in time"
            )
        sleep(min(poll_s, remaining))


# A recorder report older than this says nothing about the recorder now: unknown.
REPORT_MAX_AGE_SECONDS = 300.0


def robot_health(client, robot_id: str, *, max_disk_usage_gb: float | None = None,
                 max_report_age_s: float = REPORT_MAX_AGE_SECONDS) -> RecorderHealth:
    """The robot's recorder as the robot last reported it, judged by the shared policy."""
    robot = next((r for r in client.list_robots() if r.get("robot_id") == robot_id), None)
    if robot is None:
        return RecorderHealth(False, (f"robot {robot_id} is not registered",))
    report, why = robot_report(robot, max_report_age_s)
    if report is None:
        return RecorderHealth(False, (why,))
    return health_of_report(report, max_disk_usage_gb=max_disk_usage_gb)


def robot_report(robot: Mapping[str, Any], max_age_s: float = REPORT_MAX_AGE_SECONDS,
                 now: datetime | None = None) -> tuple[Mapping[str, Any] | None, str]:
    """What the robot reported of its recorder (``recorder`` in the robot's view) while at most
    ``max_age_s`` old; else ``(None, why)``: a stale report is unknown."""
    report = robot.get("recorder")
    if not isinstance(report, Mapping) or not report:
        return None, "the robot has not reported its recorder's state"
    if fresh_report(report, now or datetime.now(timezone.utc), max_age_s) is None:
        return None, f"the robot's last recorder report ({report.get('reported_at')}) is older than {max_age_s:g}s: its state is unknown"
    return report, ""
