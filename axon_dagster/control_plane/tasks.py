"""Tasks: read them, move them from the cloud side; the helpers every task writer shares."""

from __future__ import annotations

import hashlib
import logging
from typing import Any, Mapping, Sequence

from axon_dagster.domain import (
    Task,
    TaskStatus,
    UploadGrant,
    transition_event_id,
    utcnow,
    validate_id,
)
from axon_dagster.domain.ids import MAX_ID_LENGTH

from .errors import InvalidRequestError, NotFoundError
from .persistence import EventRecord, SqlAlchemyUnitOfWork, TaskFilter, TaskRecord
from .validation import page, task_status, text
from .views import (
    TaskView,
)

log = logging.getLogger(__name__)

UnitOfWork = SqlAlchemyUnitOfWork

# Event data keys the control plane copies onto the task (the rest stays in the event only).
TASK_FIELDS_FROM_EVENT = ("data_collector_id", "config_path", "dataset_path")


def list_tasks(
    uow: UnitOfWork,
    *,
    order_id: str | None = None,
    batch_id: str | None = None,
    robot_id: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[TaskView]:
    limit, offset = page(limit, offset)
    filters = TaskFilter(
        order_id=validate_id(order_id, "order_id") if order_id is not None else None,
        batch_id=validate_id(batch_id, "batch_id") if batch_id is not None else None,
        robot_id=validate_id(robot_id, "robot_id") if robot_id is not None else None,
        status=task_status(status, "status") if status is not None else None,
    )
    with uow.reading():
        return task_views(uow, uow.tasks.list(filters, limit, offset))


def get_task(uow: UnitOfWork, task_id: str) -> TaskView:
    task_id = validate_id(task_id, "task_id")
    with uow.reading():
        record = uow.tasks.get(task_id)
        if record is None:
            raise NotFoundError("task", task_id)
        return task_views(uow, [record])[0]


def transition_task(
    uow: UnitOfWork,
    task_id: str,
    status: str,
    *,
    reason: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> TaskView:
    """A cloud-side move (UPLOADED by the data flow, CANCELLED/FAILED by an admin). Idempotent: a
    move to the current state changes nothing; an illegal move raises IllegalTransitionError."""
    task_id = validate_id(task_id, "task_id")
    target = task_status(status, "status")
    reason = text(reason, "reason") if reason is not None else None
    event_data = checked_event_data(data)
    now = utcnow()
    with uow.writing():
        record = locked_task(uow, task_id)
        task = record.task
        if not task.transition(target, reason=reason, at=now):
            return task_views(uow, [record])[0]
        copy_event_fields(task, event_data)
        (saved,) = uow.tasks.save([task])
        if reason is not None:
            event_data.setdefault("reason", reason)
        event_data.setdefault("source", "cloud")
        uow.events.add_many(
            [
                EventRecord(
                    seq=None,
                    event_id=cloud_event_id(task_id, target),
                    task_id=task_id,
                    robot_id=task.robot_id,
                    status=target,
                    occurred_at=now,
                    received_at=now,
                    data=event_data,
                )
            ]
        )
        view = task_views(uow, [saved])[0]
        uow.commit()
    log.info("task %s -> %s (cloud side)", task_id, target.value)
    return view



def locked_task(uow: UnitOfWork, task_id: str) -> TaskRecord:
    """A task read for a change, under the locks its writers take (``unit_of_work``): its order's
    row, then (assigned) its robot's row, then its own row. Read again after each: it may have
    moved meanwhile. Once assigned (under the order's lock, held here) a task never changes robots."""
    record = uow.tasks.get(task_id)
    if record is None:
        raise NotFoundError("task", task_id)
    uow.orders.get(record.task.order_id, lock=True)
    record = uow.tasks.get(task_id)
    assert record is not None  # tasks are deleted only unassigned, under the order's lock
    if record.task.robot_id is not None:
        uow.robots.lock(record.task.robot_id)
    record = uow.tasks.get(task_id, lock=True)
    assert record is not None
    return record


def task_views(uow: UnitOfWork, records: Sequence[TaskRecord]) -> list[TaskView]:
    requirements = {oid: req.to_dict() for oid, req in uow.orders.requirements_for(r.task.order_id for r in records).items()}
    # Only an EXECUTED task's recording can hold an upload grant: no query for anything else.
    executed = [r.task.task_id for r in records if r.task.status is TaskStatus.EXECUTED]
    now = utcnow()
    grants = {d: g for d, g in uow.grants.active_for_datasets(executed).items() if not g.due(now)} if executed else {}
    return [TaskView.of(r, requirements[r.task.order_id], _upload(grants.get(r.task.task_id))) for r in records]


def _upload(grant: UploadGrant | None) -> dict[str, str] | None:
    return {"grant_id": grant.grant_id, "expires_at": grant.expires_at.isoformat()} if grant is not None else None


def copy_event_fields(task: Task, data: Mapping[str, Any]) -> None:
    for key in TASK_FIELDS_FROM_EVENT:
        if data.get(key) is not None:
            setattr(task, key, data[key])


def checked_event_data(data: Mapping[str, Any] | None) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidRequestError(f"event data must be an object, got {type(data).__name__}")
    out = dict(data)
    for key in (*TASK_FIELDS_FROM_EVENT, "reason", "sidecar_path"):
        if key in out and out[key] is not None:
            out[key] = text(out[key], f"data.{key}")
    return out


def cloud_event_id(task_id: str, status: TaskStatus) -> str:
    # The same key the edge uses for a transition (task + status): a task reaches each status at
    # most once, so a robot later reporting the same move is recognised as a duplicate.
    event_id = transition_event_id(task_id, status)
    if len(event_id) <= MAX_ID_LENGTH:
        return event_id
    return "cloud-" + hashlib.sha256(event_id.encode()).hexdigest()[:40]

