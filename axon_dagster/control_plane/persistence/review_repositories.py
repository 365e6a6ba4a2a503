"""Repositories added with migration 0002: batch review state, the audit log, order review policy,
and dataset search over datasets joined with their task lineage."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import String, and_, cast, delete, func, or_, select, update

from axon_dagster.domain import DatasetStatus, QcOutcome
from sqlalchemy.orm import Session

from .schema import AuditRow, BatchRow, DatasetRow, EventRow, OrderRow, TaskRow

_INSPECTED = DatasetStatus.INSPECTED.value
_NEEDS_REVIEW, _APPROVED, _REJECTED = QcOutcome.NEEDS_REVIEW.value, QcOutcome.APPROVED.value, QcOutcome.REJECTED.value


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    at: datetime
    actor: str
    action: str
    entity_kind: str
    entity_id: str
    order_id: str | None
    details: dict[str, Any]


class AuditRepository:
    def __init__(self, session: Session):
        self._session = session

    def add(self, *, at: datetime, actor: str, action: str, entity_kind: str, entity_id: str,
            order_id: str | None, details: dict[str, Any]) -> None:
        self._session.add(AuditRow(at=at, actor=actor, action=action, entity_kind=entity_kind,
                                   entity_id=entity_id, order_id=order_id, details=details))
        self._session.flush()

    def list(self, *, order_id: str | None = None, entity_id: str | None = None, limit: int = 100, offset: int = 0) -> list[AuditRecord]:
        stmt = select(AuditRow)
        if order_id is not None:
            stmt = stmt.where(AuditRow.order_id == order_id)
        if entity_id is not None:
            stmt = stmt.where(AuditRow.entity_id == entity_id)
        stmt = stmt.order_by(AuditRow.seq).limit(limit).offset(offset)
        return [
            AuditRecord(r.seq, r.at, r.actor, r.action, r.entity_kind, r.entity_id, r.order_id, dict(r.details or {}))
            for r in self._session.execute(stmt).scalars()
        ]


class BatchReviewRepository:
    """Review status of batches, the order's review policy, and the batch's tasks before release."""

    def __init__(self, session: Session):
        self._session = session

    def order_policy(self, order_id: str) -> tuple[bool, str] | None:
        row = self._session.execute(
            select(OrderRow.auto_approve_batches, OrderRow.recording_template).where(OrderRow.order_id == order_id)
        ).first()
        return (bool(row[0]), row[1]) if row else None

    def set_order_policy(self, order_id: str, *, auto_approve_batches: bool | None = None, recording_template: str | None = None) -> None:
        values: dict[str, Any] = {}
        if auto_approve_batches is not None:
            values["auto_approve_batches"] = auto_approve_batches
        if recording_template is not None:
            values["recording_template"] = recording_template
        if values:
            self._session.execute(update(OrderRow).where(OrderRow.order_id == order_id).values(**values))

    def statuses(self, batch_ids: Sequence[str]) -> dict[str, str]:
        if not batch_ids:
            return {}
        rows = self._session.execute(select(BatchRow.batch_id, BatchRow.review_status).where(BatchRow.batch_id.in_(list(batch_ids))))
        return {bid: status for bid, status in rows}

    def set_status(self, batch_ids: Sequence[str], status: str) -> None:
        if batch_ids:
            self._session.execute(update(BatchRow).where(BatchRow.batch_id.in_(list(batch_ids))).values(review_status=status))

    def released(self, batch_id: str) -> bool:
        """Whether any task of the batch went to a robot (or moved on from PENDING)."""
        stmt = select(TaskRow.task_id).where(
            TaskRow.batch_id == batch_id, (TaskRow.robot_id.is_not(None)) | (TaskRow.status != "PENDING")
        ).limit(1)
        return self._session.execute(stmt).first() is not None

    def update_batch(self, batch_id: str, values: dict[str, Any]) -> None:
        self._session.execute(update(BatchRow).where(BatchRow.batch_id == batch_id).values(**values))

    def delete_unreleased_tasks(self, batch_id: str) -> int:
        """Drop a never-dispatched batch's tasks (to re-plan them after an edit). Refuses if any has events."""
        ids = list(self._session.execute(
            select(TaskRow.task_id).where(TaskRow.batch_id == batch_id, TaskRow.robot_id.is_(None), TaskRow.status == "PENDING")
        ).scalars())
        if not ids:
            return 0
        if self._session.execute(select(EventRow.seq).where(EventRow.task_id.in_(ids)).limit(1)).first() is not None:
            raise RuntimeError(f"batch {batch_id}: tasks with events cannot be re-planned")
        self._session.execute(delete(TaskRow).where(TaskRow.task_id.in_(ids)))
        return len(ids)

    def batch_ids_of_order(self, order_id: str) -> list[str]:
        return list(self._session.execute(select(BatchRow.batch_id).where(BatchRow.order_id == order_id)).scalars())


# ------------------------------------------------------------------------------ dataset search


@dataclass(frozen=True)
class DatasetQuery:
    scene: str | None = None
    sub_scene: str | None = None
    skills: tuple[str, ...] = ()  # every one must be among the task's skills
    status: str | None = None
    outcome: str | None = None
    order_id: str | None = None
    batch_id: str | None = None
    robot_id: str | None = None
    collector_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class DatasetHit:
    row: dict[str, Any] = field(default_factory=dict)


def _like_token(skill: str) -> str:
    # Skills are ids (no quotes); LIKE wildcards in them are escaped so "a_b" never matches "axb".
    escaped = skill.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f'%"{escaped}"%'


class DatasetSearchRepository:
    def __init__(self, session: Session):
        self._session = session

    def conditions(self, q: DatasetQuery) -> list[Any]:
        """The WHERE conditions of ``q`` over datasets joined with their tasks (also used by the review queue)."""
        return self._where(q)

    def _where(self, q: DatasetQuery) -> list[Any]:
        conds: list[Any] = []
        if q.scene is not None:
            conds.append(TaskRow.scene == q.scene)
        if q.sub_scene is not None:
            conds.append(TaskRow.sub_scene == q.sub_scene)
        for skill in q.skills:
            conds.append(cast(TaskRow.skills, String).like(_like_token(skill), escape="\\"))
        if q.status is not None:
            conds.append(DatasetRow.status == q.status)
        if q.outcome is not None:
            conds.append(DatasetRow.qc_outcome == q.outcome)
        if q.order_id is not None:
            conds.append(TaskRow.order_id == q.order_id)
        if q.batch_id is not None:
            conds.append(TaskRow.batch_id == q.batch_id)
        if q.robot_id is not None:
            conds.append(TaskRow.robot_id == q.robot_id)
        if q.collector_id is not None:
            conds.append(TaskRow.data_collector_id == q.collector_id)
        if q.since is not None:
            conds.append(DatasetRow.created_at >= q.since)
        if q.until is not None:
            conds.append(DatasetRow.created_at < q.until)
        return conds

    def search(self, q: DatasetQuery, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        join = DatasetRow.__table__.join(TaskRow.__table__, DatasetRow.task_id == TaskRow.task_id)
        conds = self._where(q)
        where = and_(*conds) if conds else None
        stmt = select(
            DatasetRow.dataset_id, DatasetRow.status, DatasetRow.qc_score, DatasetRow.qc_outcome,
            DatasetRow.reviewed_by, DatasetRow.cloud_uri, DatasetRow.last_upload_error, DatasetRow.cache_path, DatasetRow.dataset_digest,
            DatasetRow.size_bytes, DatasetRow.created_at, DatasetRow.updated_at,
            TaskRow.task_id, TaskRow.order_id, TaskRow.batch_id, TaskRow.robot_id, TaskRow.data_collector_id, TaskRow.priority,
            TaskRow.scene, TaskRow.sub_scene, TaskRow.skills, TaskRow.topics, TaskRow.duration_seconds,
        ).select_from(join)
        count = select(func.count()).select_from(join)
        if where is not None:
            stmt, count = stmt.where(where), count.where(where)
        stmt = stmt.order_by(DatasetRow.created_at, DatasetRow.dataset_id).limit(limit).offset(offset)
        rows = [dict(r._mapping) for r in self._session.execute(stmt)]
        total = self._session.execute(count).scalar_one()
        return rows, total


class ReviewQueueRepository:
    """The reviewer's queue and the review-decision feed (``control_plane.review``)."""

    def __init__(self, session: Session, search: DatasetSearchRepository):
        self._session = session
        self._search = search

    def waiting_ids(self, q: DatasetQuery | None, limit: int, offset: int) -> list[str]:
        """Datasets waiting for a human (INSPECTED, needs_review, not reviewed), narrowed by ``q``; oldest first."""
        stmt = select(DatasetRow.dataset_id)
        if q is not None and q != DatasetQuery():
            stmt = stmt.join(TaskRow, DatasetRow.task_id == TaskRow.task_id).where(*self._search.conditions(q))
        stmt = (
            stmt.where(
                DatasetRow.status == _INSPECTED,
                DatasetRow.qc_outcome == _NEEDS_REVIEW,
                DatasetRow.reviewed_by.is_(None),
            )
            .order_by(DatasetRow.created_at, DatasetRow.dataset_id)
            .limit(limit)
            .offset(offset)
        )
        return list(self._session.execute(stmt).scalars())

    def decided_after(self, after_at: datetime | None, after_id: str, limit: int) -> list[tuple[str, datetime]]:
        """INSPECTED datasets with a final outcome (reviewed approved/rejected, or rejected by QC)
        ordered by (updated_at, dataset_id) after the cursor ``(after_at, after_id)``."""
        stmt = select(DatasetRow.dataset_id, DatasetRow.updated_at).where(
            DatasetRow.status == _INSPECTED,
            or_(
                and_(DatasetRow.reviewed_by.is_not(None), DatasetRow.qc_outcome.in_([_APPROVED, _REJECTED])),
                DatasetRow.qc_outcome == _REJECTED,
            ),
        )
        if after_at is not None:
            stmt = stmt.where(
                or_(DatasetRow.updated_at > after_at, and_(DatasetRow.updated_at == after_at, DatasetRow.dataset_id > after_id))
            )
        stmt = stmt.order_by(DatasetRow.updated_at, DatasetRow.dataset_id).limit(limit)
        return [(r.dataset_id, r.updated_at) for r in self._session.execute(stmt)]
