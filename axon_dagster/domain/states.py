"""Explicit state machines: one transition table per entity, one place that enforces them."""

from __future__ import annotations

from enum import Enum
from typing import Mapping

from .errors import IllegalTransitionError


class TaskStatus(str, Enum):
    PENDING = "PENDING"
    READY = "READY"
    ASSIGNED = "ASSIGNED"
    EXECUTING = "EXECUTING"
    EXECUTED = "EXECUTED"
    UPLOADED = "UPLOADED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in _TASK_TERMINAL


_TASK_TERMINAL = frozenset({TaskStatus.UPLOADED, TaskStatus.FAILED, TaskStatus.CANCELLED})

TASK_TRANSITIONS: Mapping[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.PENDING: frozenset({TaskStatus.READY, TaskStatus.CANCELLED, TaskStatus.FAILED}),
    TaskStatus.READY: frozenset(
        {TaskStatus.ASSIGNED, TaskStatus.EXECUTING, TaskStatus.CANCELLED, TaskStatus.FAILED}
    ),
    TaskStatus.ASSIGNED: frozenset({TaskStatus.EXECUTING, TaskStatus.CANCELLED, TaskStatus.FAILED}),
    TaskStatus.EXECUTING: frozenset({TaskStatus.EXECUTED, TaskStatus.FAILED}),
    TaskStatus.EXECUTED: frozenset({TaskStatus.UPLOADED, TaskStatus.FAILED}),
    TaskStatus.UPLOADED: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}


class DatasetStatus(str, Enum):
    RECORDED = "RECORDED"  # the robot reported it (manifest + gate); it is on the robot's disk only
    GRANTED = "GRANTED"  # the robot may upload it now (an ACTIVE upload grant)
    STAGED = "STAGED"  # uploaded into the staging area, every file's SHA-256 verified
    CACHED = "CACHED"
    INSPECTED = "INSPECTED"
    UPLOADING = "UPLOADING"
    UPLOADED = "UPLOADED"
    ARCHIVED = "ARCHIVED"  # a rejected dataset, kept aside per policy; never uploaded
    DELETED = "DELETED"  # a rejected dataset removed per policy


class QcOutcome(str, Enum):
    APPROVED = "approved"
    NEEDS_REVIEW = "needs_review"
    REJECTED = "rejected"


DATASET_TRANSITIONS: Mapping[DatasetStatus, frozenset[DatasetStatus]] = {
    # RECORDED -> CACHED: recordings reported without a manifest (before robots uploaded their own).
    DatasetStatus.RECORDED: frozenset({DatasetStatus.GRANTED, DatasetStatus.CACHED, DatasetStatus.ARCHIVED, DatasetStatus.DELETED}),
    # Back to RECORDED when the grant expires or the staged files are refused (re-granted later).
    DatasetStatus.GRANTED: frozenset({DatasetStatus.STAGED, DatasetStatus.RECORDED}),
    DatasetStatus.STAGED: frozenset({DatasetStatus.CACHED, DatasetStatus.ARCHIVED, DatasetStatus.DELETED}),
    # Re-inspection stays INSPECTED; the outcome rules live in Dataset.record_inspection.
    DatasetStatus.CACHED: frozenset({DatasetStatus.INSPECTED}),
    DatasetStatus.INSPECTED: frozenset(
        {DatasetStatus.INSPECTED, DatasetStatus.UPLOADING, DatasetStatus.ARCHIVED, DatasetStatus.DELETED}
    ),
    # A failed upload returns to INSPECTED so it can be retried.
    DatasetStatus.UPLOADING: frozenset({DatasetStatus.UPLOADED, DatasetStatus.INSPECTED}),
    DatasetStatus.UPLOADED: frozenset(),
    DatasetStatus.ARCHIVED: frozenset({DatasetStatus.DELETED}),
    DatasetStatus.DELETED: frozenset(),
}


def check_transition(
    table: Mapping[Enum, frozenset], entity: str, entity_id: str, current: Enum, target: Enum
) -> bool:
    """Return True if ``current -> target`` is a change to apply, False if it is a replay of the
    state already reached (idempotent no-op). Raise :class:`IllegalTransitionError` otherwise."""
    if current == target and target not in table[current]:
        return False
    if target not in table[current]:
        raise IllegalTransitionError(entity, entity_id, current.value, target.value)
    return True


def parse_task_status(value: str) -> TaskStatus:
    try:
        return TaskStatus(value.upper() if isinstance(value, str) else value)
    except ValueError:
        allowed = ", ".join(s.value for s in TaskStatus)
        raise ValueError(f"unknown task status {value!r}; expected one of {allowed}") from None
