"""What the repositories return (records: a domain entity plus what only the store knows) and the
helpers every repository shares."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Iterator, Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from axon_dagster.domain import Dataset, Task, TaskStatus

from .errors import DuplicateKeyError


def core(session: Session, statement: Any) -> Any:
    """Run a Core statement on the session's connection, inside its transaction, skipping the ORM
    execution layer (the hot paths -- a robot's pull and push -- read rows, not entities)."""
    return session.connection().execute(statement)


# IN (...) lists are chunked: SQLite caps bound parameters (32766 on 3.32+), and huge lists plan badly.
IN_CHUNK = 1000


def chunks(values: Sequence[str], size: int = IN_CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@contextmanager
def unique(kind: str) -> Iterator[None]:
    try:
        yield
    except IntegrityError as exc:
        raise DuplicateKeyError(f"{kind} already stored: {exc.orig}") from exc


# ---------------------------------------------------------------- records (what queries return)


@dataclass(frozen=True)
class RobotRecord:
    robot_id: str
    name: str
    created_at: datetime
    last_seen_at: datetime | None
    task_revision: int = 0  # the newest revision of this robot's tasks (its pull cursor's ceiling)
    previous_token_expires_at: datetime | None = None  # the rotated-out token is accepted until then
    tokens_revoked_at: datetime | None = None


@dataclass(frozen=True)
class TaskRecord:
    """A task as stored: the domain entity plus its revision (the edge sync cursor)."""

    task: Task
    revision: int


@dataclass(frozen=True)
class EventRecord:
    seq: int | None  # None until published (EventRepository.publish)
    event_id: str
    task_id: str
    robot_id: str | None
    status: TaskStatus
    occurred_at: datetime
    received_at: datetime
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetRecord:
    dataset: Dataset
    created_at: datetime
    inspection_report: dict[str, Any] | None = None


@dataclass(frozen=True)
class TaskFilter:
    order_id: str | None = None
    batch_id: str | None = None
    robot_id: str | None = None
    status: TaskStatus | None = None
