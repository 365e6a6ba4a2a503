"""Status events: how a robot tells the control plane what happened, idempotent by event id."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .ids import validate_id
from .model import utcnow
from .states import TaskStatus


@dataclass(frozen=True)
class TaskEvent:
    event_id: str
    task_id: str
    status: TaskStatus
    occurred_at: datetime = field(default_factory=utcnow)
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_id(self.event_id, "event_id")
        validate_id(self.task_id, "task_id")
        object.__setattr__(self, "status", TaskStatus(self.status))


def transition_event_id(task_id: str, status: TaskStatus | str) -> str:
    """Event ids are keyed by task + transition, so a replayed transition is a duplicate event."""
    return f"{task_id}.{TaskStatus(status).value.lower()}"
