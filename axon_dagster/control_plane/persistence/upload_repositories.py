"""Repositories added with migration 0009: upload grants, robots' reported uplinks, and the upload
queue the bandwidth sensor reads (gate-passed RECORDED datasets with their task's priority and robot);
with migration 0010: robots' reported recorder state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from axon_dagster.domain import DatasetStatus, GrantStatus, TaskStatus, UploadGrant

from .schema import DatasetRow, RobotRecorderRow, RobotUplinkRow, TaskRow, UploadGrantRow


class UploadGrantRepository:
    def __init__(self, session: Session):
        self._session = session

    def add(self, grant: UploadGrant) -> None:
        row = UploadGrantRow(grant_id=grant.grant_id, dataset_id=grant.dataset_id, robot_id=grant.robot_id)
        self._copy(grant, row)
        self._session.add(row)
        self._session.flush()

    def save(self, grant: UploadGrant) -> None:
        row = self._session.get(UploadGrantRow, grant.grant_id)
        if row is None:
            raise LookupError(f"grant {grant.grant_id} is not stored; add it first")
        self._copy(grant, row)
        self._session.flush()

    @staticmethod
    def _copy(grant: UploadGrant, row: UploadGrantRow) -> None:
        row.status = grant.status.value
        row.granted_at, row.expires_at, row.finished_at = grant.granted_at, grant.expires_at, grant.finished_at
        row.upload_ids = dict(grant.upload_ids)

    def get(self, grant_id: str, *, lock: bool = False) -> UploadGrant | None:
        row = self._session.get(UploadGrantRow, grant_id, with_for_update=lock or None)
        return _grant(row) if row is not None else None

    def latest_for(self, dataset_id: str) -> UploadGrant | None:
        """The dataset's newest grant (active or not): the one a re-issued grant resumes from."""
        stmt = (
            select(UploadGrantRow).where(UploadGrantRow.dataset_id == dataset_id)
            .order_by(UploadGrantRow.granted_at.desc(), UploadGrantRow.grant_id.desc()).limit(1)
        )
        row = self._session.execute(stmt).scalars().first()
        return _grant(row) if row is not None else None

    def active_for_datasets(self, dataset_ids: Sequence[str]) -> dict[str, UploadGrant]:
        """The ACTIVE grant of each of ``dataset_ids`` that has one (one indexed query)."""
        if not dataset_ids:
            return {}
        stmt = select(UploadGrantRow).where(
            UploadGrantRow.dataset_id.in_(list(dataset_ids)), UploadGrantRow.status == GrantStatus.ACTIVE.value
        )
        return {row.dataset_id: _grant(row) for row in self._session.execute(stmt).scalars()}

    def active(self, limit: int) -> list[UploadGrant]:
        stmt = (
            select(UploadGrantRow).where(UploadGrantRow.status == GrantStatus.ACTIVE.value)
            .order_by(UploadGrantRow.expires_at, UploadGrantRow.grant_id).limit(limit)
        )
        return [_grant(r) for r in self._session.execute(stmt).scalars()]

    def count_active(self) -> int:
        stmt = select(func.count()).select_from(UploadGrantRow).where(UploadGrantRow.status == GrantStatus.ACTIVE.value)
        return self._session.execute(stmt).scalar_one()

    def due(self, now: datetime, limit: int) -> list[str]:
        """Ids of ACTIVE grants whose expiry has passed, oldest first."""
        stmt = (
            select(UploadGrantRow.grant_id)
            .where(UploadGrantRow.status == GrantStatus.ACTIVE.value, UploadGrantRow.expires_at <= now)
            .order_by(UploadGrantRow.expires_at, UploadGrantRow.grant_id).limit(limit)
        )
        return list(self._session.execute(stmt).scalars())


def _grant(row: UploadGrantRow) -> UploadGrant:
    return UploadGrant(
        grant_id=row.grant_id, dataset_id=row.dataset_id, robot_id=row.robot_id, granted_at=row.granted_at,
        expires_at=row.expires_at, status=GrantStatus(row.status), upload_ids=dict(row.upload_ids or {}), finished_at=row.finished_at,
    )


@dataclass(frozen=True)
class UplinkRecord:
    robot_id: str
    mbps: float | None
    windows: list[dict[str, str]]
    timezone: str
    reported_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"mbps": self.mbps, "windows": list(self.windows), "timezone": self.timezone, "reported_at": self.reported_at.isoformat()}


class UplinkRepository:
    def __init__(self, session: Session):
        self._session = session

    def put(self, record: UplinkRecord) -> None:
        row = self._session.get(RobotUplinkRow, record.robot_id)
        if row is None:
            row = RobotUplinkRow(robot_id=record.robot_id)
            self._session.add(row)
        row.mbps, row.windows, row.timezone, row.reported_at = record.mbps, list(record.windows), record.timezone, record.reported_at
        self._session.flush()

    def all(self) -> dict[str, UplinkRecord]:
        rows = self._session.execute(select(RobotUplinkRow)).scalars()
        return {r.robot_id: UplinkRecord(r.robot_id, r.mbps, list(r.windows or []), r.timezone, r.reported_at) for r in rows}


class RecorderReportRepository:
    """What each robot last reported of its recorder (``PUT /edge/recorder``): the report as a
    dict with its ``reported_at`` (ISO 8601)."""

    def __init__(self, session: Session):
        self._session = session

    def put(self, robot_id: str, report: dict[str, Any], reported_at: datetime) -> None:
        row = self._session.get(RobotRecorderRow, robot_id)
        if row is None:
            row = RobotRecorderRow(robot_id=robot_id)
            self._session.add(row)
        row.report, row.reported_at = dict(report), reported_at
        self._session.flush()

    def all(self) -> dict[str, dict[str, Any]]:
        rows = self._session.execute(select(RobotRecorderRow)).scalars()
        return {r.robot_id: {**(r.report or {}), "reported_at": r.reported_at.isoformat()} for r in rows}


@dataclass(frozen=True)
class UploadCandidate:
    dataset_id: str
    task_id: str
    robot_id: str | None
    order_id: str
    priority: int
    size_bytes: int
    recorded_at: datetime
    last_upload_error: str | None


class UploadQueueRepository:
    def __init__(self, session: Session):
        self._session = session

    def waiting(self, limit: int) -> list[UploadCandidate]:
        """RECORDED datasets whose edge gate passed, of tasks still EXECUTED (a robot that found its
        recording corrupt fails the task): highest order priority first, then oldest."""
        stmt = (
            select(DatasetRow.dataset_id, DatasetRow.task_id, DatasetRow.manifest, DatasetRow.created_at,
                   DatasetRow.last_upload_error, TaskRow.robot_id, TaskRow.order_id, TaskRow.priority)
            .join(TaskRow, DatasetRow.task_id == TaskRow.task_id)
            .where(DatasetRow.status == DatasetStatus.RECORDED.value, DatasetRow.gate_passed.is_(True),
                   TaskRow.status == TaskStatus.EXECUTED.value)
            .order_by(TaskRow.priority.desc(), DatasetRow.created_at, DatasetRow.dataset_id)
            .limit(limit)
        )
        return [
            UploadCandidate(r.dataset_id, r.task_id, r.robot_id, r.order_id, r.priority, sum(int(f["size"]) for f in r.manifest["files"]),
                            r.created_at, r.last_upload_error)
            for r in self._session.execute(stmt)
        ]
