"""Batch review: an admin looks at the batches an order was planned into, edits them, approves or
rejects them. Only approved batches are dispatched to robots. Pure rules, no I/O.

Status: ``pending_review`` -> ``approved`` | ``rejected``; ``approved`` -> ``rejected`` while the
batch is not released. ``rejected`` is final. A batch is *released* once any of its tasks went to
a robot; from then on it can be neither edited nor rejected. An order with
``auto_approve_batches`` (the default) gets its batches approved at planning time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping

from .errors import DomainError, PlanningError
from .ids import validate_id


class BatchReviewStatus(str, Enum):
    PENDING_REVIEW = "pending_review"
    APPROVED = "approved"
    REJECTED = "rejected"


class BatchReviewError(DomainError):
    """A review step the batch's state refuses (edit after release, approve a rejected batch, ...)."""


# Which review statuses may move to which.
_MOVES: dict[BatchReviewStatus, frozenset[BatchReviewStatus]] = {
    BatchReviewStatus.PENDING_REVIEW: frozenset({BatchReviewStatus.APPROVED, BatchReviewStatus.REJECTED}),
    BatchReviewStatus.APPROVED: frozenset({BatchReviewStatus.REJECTED}),
    BatchReviewStatus.REJECTED: frozenset(),
}

EDITABLE_FIELDS = ("skills", "task_count", "duration_seconds", "topics")
MAX_TASKS_PER_BATCH = 10_000


def parse_review_status(value: Any) -> BatchReviewStatus:
    try:
        return BatchReviewStatus(value)
    except ValueError:
        allowed = ", ".join(s.value for s in BatchReviewStatus)
        raise PlanningError(f"unknown batch review status {value!r}; expected one of {allowed}") from None


def initial_status(auto_approve: bool) -> BatchReviewStatus:
    return BatchReviewStatus.APPROVED if auto_approve else BatchReviewStatus.PENDING_REVIEW


def dispatchable(status: BatchReviewStatus | str) -> bool:
    """Only approved batches reach robots."""
    return BatchReviewStatus(status) is BatchReviewStatus.APPROVED


def check_move(batch_id: str, current: BatchReviewStatus | str, target: BatchReviewStatus | str, *, released: bool) -> bool:
    """Whether to move; False for a replay (already there). Raises BatchReviewError when refused."""
    current, target = BatchReviewStatus(current), BatchReviewStatus(target)
    if current is target:
        return False
    if target not in _MOVES[current]:
        raise BatchReviewError(f"batch {batch_id} is {current.value}; it cannot become {target.value}")
    if released and target is BatchReviewStatus.REJECTED:
        raise BatchReviewError(f"batch {batch_id} is already released to robots; it cannot be rejected")
    return True


def check_editable(batch_id: str, status: BatchReviewStatus | str, *, released: bool) -> None:
    status = BatchReviewStatus(status)
    if released:
        raise BatchReviewError(f"batch {batch_id} is already released to robots; it can no longer be edited")
    if status is BatchReviewStatus.REJECTED:
        raise BatchReviewError(f"batch {batch_id} is rejected; it can no longer be edited")


@dataclass(frozen=True)
class BatchEdit:
    """New values for some of a batch's editable fields (None: keep)."""

    skills: tuple[str, ...] | None = None
    task_count: int | None = None
    duration_seconds: float | None = None
    topics: tuple[str, ...] | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BatchEdit":
        """Validate a JSON-ish edit; the error names the bad key."""
        if not isinstance(data, Mapping):
            raise PlanningError("a batch edit must be an object")
        unknown = sorted(set(data) - set(EDITABLE_FIELDS))
        if unknown:
            raise PlanningError(f"unknown batch field(s): {', '.join(unknown)}; editable: {', '.join(EDITABLE_FIELDS)}")
        if not data:
            raise PlanningError(f"a batch edit needs at least one of: {', '.join(EDITABLE_FIELDS)}")
        skills = data.get("skills")
        if skills is not None:
            if not isinstance(skills, (list, tuple)) or not skills or not all(isinstance(s, str) for s in skills):
                raise PlanningError("skills must be a non-empty list of skill names")
            skills = tuple(validate_id(s, "skill") for s in skills)
            if len(set(skills)) != len(skills):
                raise PlanningError(f"skills: duplicate skills in {list(skills)}")
        count = data.get("task_count")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_TASKS_PER_BATCH):
            raise PlanningError(f"task_count must be an integer between 1 and {MAX_TASKS_PER_BATCH}, got {count!r}")
        duration = data.get("duration_seconds")
        if duration is not None and (not isinstance(duration, (int, float)) or isinstance(duration, bool) or not duration > 0):
            raise PlanningError(f"duration_seconds must be a positive number, got {duration!r}")
        topics = data.get("topics")
        if topics is not None:
            if not isinstance(topics, (list, tuple)) or not all(isinstance(t, str) and t.startswith("/") and len(t) <= 256 for t in topics):
                raise PlanningError("topics must be a list of ROS topic names (each starting with '/')")
            topics = tuple(dict.fromkeys(topics))
        return cls(
            skills=skills,
            task_count=count,
            duration_seconds=float(duration) if duration is not None else None,
            topics=topics,
        )

    def changes(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k in EDITABLE_FIELDS if (v := getattr(self, k)) is not None}


def check_skills_of_order(batch_id: str, skills: tuple[str, ...], order_skills: tuple[str, ...]) -> None:
    unknown = sorted(set(skills) - set(order_skills))
    if unknown:
        raise PlanningError(f"batch {batch_id}: skills {unknown} are not skills of its order ({', '.join(order_skills)})")


__all__ = [
    "EDITABLE_FIELDS",
    "BatchEdit",
    "BatchReviewError",
    "BatchReviewStatus",
    "check_editable",
    "check_move",
    "check_skills_of_order",
    "dispatchable",
    "initial_status",
    "parse_review_status",
]
