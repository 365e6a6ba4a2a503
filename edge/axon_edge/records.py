"""The robot's records as the agent hands them around: a task as the robot holds it, an outbox
event, the outcomes of a transition and of a pull page, and the parsing of a pulled task."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from axon_dagster.domain import Task, TaskStatus, validate_id

from .errors import InvalidRequest

def _iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat()


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class LocalTask:
    """A task as the robot holds it."""

    task_id: str
    order_id: str
    batch_id: str
    scene: str
    sub_scene: str
    skills: tuple[str, ...]
    status: TaskStatus
    duration_seconds: float | None
    topics: tuple[str, ...]
    priority: int
    robot_id: str | None
    data_collector_id: str | None
    config_path: str | None
    dataset_path: str | None
    sidecar_path: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    ready_at: datetime | None
    assigned_at: datetime | None
    executing_at: datetime | None
    executed_at: datetime | None
    uploaded_at: datetime | None
    uploaded: bool
    metadata: dict[str, Any]
    cloud_revision: int
    pending_command: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "LocalTask":
        return cls(
            task_id=row["task_id"],
            order_id=row["order_id"],
            batch_id=row["batch_id"],
            scene=row["scene"],
            sub_scene=row["sub_scene"] or "",
            skills=tuple(json.loads(row["skills"])),
            status=TaskStatus(row["status"]),
            duration_seconds=row["duration_seconds"],
            topics=tuple(json.loads(row["topics"])),
            priority=row["priority"],
            robot_id=row["robot_id"],
            data_collector_id=row["data_collector_id"],
            config_path=row["config_path"],
            dataset_path=row["dataset_path"],
            sidecar_path=row["sidecar_path"],
            failure_reason=row["failure_reason"],
            created_at=_parse_time(row["created_at"]),  # type: ignore[arg-type]
            updated_at=_parse_time(row["updated_at"]),  # type: ignore[arg-type]
            ready_at=_parse_time(row["ready_at"]),
            assigned_at=_parse_time(row["assigned_at"]),
            executing_at=_parse_time(row["executing_at"]),
            executed_at=_parse_time(row["executed_at"]),
            uploaded_at=_parse_time(row["uploaded_at"]),
            uploaded=bool(row["uploaded"]),
            metadata=json.loads(row["metadata"]),
            cloud_revision=row["cloud_revision"],
            pending_command=row["pending_command"],
        )

    def to_domain(self) -> Task:
        return Task(
            task_id=self.task_id,
            order_id=self.order_id,
            batch_id=self.batch_id,
            scene=self.scene,
            sub_scene=self.sub_scene,
            skills=self.skills,
            duration_seconds=self.duration_seconds or 60.0,
            topics=self.topics,
            priority=self.priority,
            status=self.status,
            robot_id=self.robot_id,
            data_collector_id=self.data_collector_id,
            config_path=self.config_path,
            dataset_path=self.dataset_path,
            failure_reason=self.failure_reason,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = _iso(value)
            elif isinstance(value, TaskStatus):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out


@dataclass(frozen=True)
class OutboxEvent:
    id: int
    event_id: str
    task_id: str
    status: TaskStatus
    occurred_at: str
    data: dict[str, Any]
    attempts: int
    last_error: str | None
    result: str | None
    delivered_at: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "OutboxEvent":
        return cls(
            id=row["id"],
            event_id=row["event_id"],
            task_id=row["task_id"],
            status=TaskStatus(row["status"]),
            occurred_at=row["occurred_at"],
            data=json.loads(row["data"]),
            attempts=row["attempts"],
            last_error=row["last_error"],
            result=row["result"],
            delivered_at=row["delivered_at"],
        )

    def wire(self) -> dict[str, Any]:
        """The event as ``POST /edge/events`` expects it."""
        return {
            "event_id": self.event_id,
            "task_id": self.task_id,
            "status": self.status.value,
            "occurred_at": self.occurred_at,
            "data": self.data,
        }


@dataclass(frozen=True)
class TransitionOutcome:
    task: LocalTask
    changed: bool  # False: a replay of the state already reached, nothing written
    event_id: str | None = None


@dataclass(frozen=True)
class PullOutcome:
    new_task_ids: list[str] = field(default_factory=list)
    cloud_moves: list[tuple[str, TaskStatus]] = field(default_factory=list)
    cursor: int = 0


@dataclass(frozen=True)
class OutboxBacklog:
    count: int
    oldest_occurred_at: datetime | None
    rejected: int



def _parse_pulled(raw: Mapping[str, Any], robot_id: str) -> tuple[Task, TaskStatus, int, dict[str, Any]]:
    """Validate one task of a pull page (the control plane's task JSON) into a domain Task."""
    if not isinstance(raw, Mapping):
        raise InvalidRequest(f"pulled task is not an object: {raw!r}")
    try:
        revision = raw["revision"]
        if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
            raise InvalidRequest(f"task {raw.get('task_id')!r}: revision must be a non-negative integer")
        task = Task(
            task_id=raw["task_id"],
            order_id=validate_id(raw["order_id"], "order_id"),
            batch_id=validate_id(raw["batch_id"], "batch_id"),
            scene=raw["scene"],
            sub_scene=raw.get("sub_scene") or "",
            skills=tuple(raw.get("skills") or ()),
            duration_seconds=float(raw.get("duration_seconds") or 60.0),
            topics=tuple(raw.get("topics") or ()),
            priority=int(raw.get("priority") or 0),
            status=TaskStatus(raw["status"]),
            robot_id=raw.get("robot_id"),
        )
    except InvalidRequest:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRequest(f"malformed task in pull page ({type(exc).__name__}: {exc}): {raw!r}") from None
    if task.robot_id not in (None, robot_id):
        raise InvalidRequest(f"pulled task {task.task_id} belongs to robot {task.robot_id}, not {robot_id}")
    task.robot_id = robot_id
    extra = {
        key: raw.get(key)
        for key in ("requirements", "config_path", "dataset_path", "data_collector_id", "failure_reason", "created_at", "upload")
    }
    return task, task.status, revision, extra


def _grant(raw: Any) -> dict[str, str] | None:
    """A pulled task's upload grant as stored (only its id and expiry; anything malformed is none)."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("grant_id"), str) or not raw["grant_id"]:
        return None
    expires_at = raw.get("expires_at")
    return {"grant_id": raw["grant_id"], "expires_at": expires_at if isinstance(expires_at, str) else ""}

