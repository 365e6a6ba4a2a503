"""Status events: how a robot tells the control plane what happened, idempotent by event id."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .ids import MAX_ID_LENGTH, validate_id
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


_DIGEST_CHARS = 32  # 128 bits of SHA-256: two different task ids never share a shortened event id


def transition_event_id(task_id: str, status: TaskStatus | str) -> str:
    """Event ids are keyed by task + transition, so a replayed transition is a duplicate event.

    ``<task_id>.<status>`` while that fits the id limit (``MAX_ID_LENGTH``); for longer task ids a
    deterministic shortened form ``<task_id prefix>-<sha256(task_id)[:32]>.<status>``, exactly
    ``MAX_ID_LENGTH`` characters: still readable by its prefix, the same for every replay, and
    distinct for distinct task ids (the hash covers the whole id, not just the dropped tail).
    """
    suffix = f".{TaskStatus(status).value.lower()}"
    readable = f"{task_id}{suffix}"
    if len(readable) <= MAX_ID_LENGTH:
        return readable
    digest = hashlib.sha256(task_id.encode("utf-8")).hexdigest()[:_DIGEST_CHARS]
    keep = MAX_ID_LENGTH - len(suffix) - 1 - _DIGEST_CHARS
    return f"{task_id[:keep]}-{digest}{suffix}"
