"""Datasets (with what the robot reported) and edge caches' usage reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from axon_dagster.domain import Dataset, EdgeGate, RecordingManifest

from .schema import (
    DatasetRow,
    EdgeCacheUsageRow,
)
from .records import DatasetRecord, unique


# ---------------------------------------------------------------- datasets

_DATASET_COLUMNS = (
    "task_id",
    "source_path",
    "cache_path",
    "dataset_digest",
    "size_bytes",
    "qc_score",
    "reviewed_by",
    "review_comment",
    "cloud_uri",
    "last_upload_error",
    "publish_attempts",
    "updated_at",
)


class DatasetRepository:
    def __init__(self, session: Session):
        self._session = session

    def get(self, dataset_id: str, *, lock: bool = False) -> DatasetRecord | None:
        """With ``lock``, the dataset's row stays locked until commit (read-modify-write steps)."""
        row = self._session.get(DatasetRow, dataset_id, with_for_update=lock or None)
        return _dataset(row) if row else None

    def add(self, dataset: Dataset, created_at: datetime) -> None:
        row = DatasetRow(dataset_id=dataset.dataset_id, created_at=created_at)
        _copy_dataset(dataset, row)
        with unique("dataset"):
            self._session.add(row)
            self._session.flush()

    def save(self, dataset: Dataset, *, inspection_report: dict[str, Any] | None = None) -> None:
        row = self._session.get(DatasetRow, dataset.dataset_id)
        if row is None:
            raise LookupError(f"dataset {dataset.dataset_id} is not stored; add it first")
        _copy_dataset(dataset, row)
        if inspection_report is not None:
            row.inspection_report = inspection_report
        self._session.flush()

    def list(self, status: str | None, outcome: str | None, limit: int, offset: int) -> list[DatasetRecord]:
        stmt = select(DatasetRow)
        if status is not None:
            stmt = stmt.where(DatasetRow.status == status)
        if outcome is not None:
            stmt = stmt.where(DatasetRow.qc_outcome == outcome)
        stmt = stmt.order_by(DatasetRow.created_at, DatasetRow.dataset_id).limit(limit).offset(offset)
        return [_dataset(r) for r in self._session.execute(stmt).scalars()]

    def count(self) -> int:
        return self._session.execute(select(func.count()).select_from(DatasetRow)).scalar_one()

    def status_counts(self) -> dict[str, int]:
        rows = self._session.execute(select(DatasetRow.status, func.count()).group_by(DatasetRow.status))
        return {status: n for status, n in rows}


def _copy_dataset(dataset: Dataset, row: DatasetRow) -> None:
    for col in _DATASET_COLUMNS:
        setattr(row, col, getattr(dataset, col))
    row.status = dataset.status.value
    row.qc_outcome = dataset.qc_outcome.value if dataset.qc_outcome else None
    row.manifest = dataset.manifest.to_dict() if dataset.manifest else None
    row.recording_format = dataset.manifest.recording_format if dataset.manifest else None
    row.gate = dataset.gate.to_dict() if dataset.gate else None
    row.gate_passed = dataset.gate.passed if dataset.gate else None


def _dataset(row: DatasetRow) -> DatasetRecord:
    dataset = Dataset(
        dataset_id=row.dataset_id,
        task_id=row.task_id,
        status=row.status,
        source_path=row.source_path,
        cache_path=row.cache_path,
        dataset_digest=row.dataset_digest,
        size_bytes=row.size_bytes,
        qc_score=row.qc_score,
        qc_outcome=row.qc_outcome,
        reviewed_by=row.reviewed_by,
        review_comment=row.review_comment,
        cloud_uri=row.cloud_uri,
        last_upload_error=row.last_upload_error,
        updated_at=row.updated_at,
        manifest=RecordingManifest.from_stored(row.manifest) if row.manifest else None,
        gate=EdgeGate(row.gate["passed"], tuple(row.gate["reasons"]), row.gate["checks"]) if row.gate else None,
        publish_attempts=row.publish_attempts or 0,
    )
    return DatasetRecord(dataset, row.created_at, row.inspection_report)


# ---------------------------------------------------------------- edge-cache usage (0003)


@dataclass(frozen=True)
class EdgeCacheUsageRecord:
    cache_id: str
    used_bytes: int
    quota_bytes: int | None
    pressure: bool
    datasets: dict[str, Any]  # {state: {"count": n, "bytes": b}}
    report: dict[str, Any]
    reported_at: datetime


class EdgeCacheUsageRepository:
    """The last usage report of each edge cache: a report replaces the cache's previous one."""

    def __init__(self, session: Session):
        self._session = session

    def put(self, record: EdgeCacheUsageRecord) -> None:
        row = self._session.get(EdgeCacheUsageRow, record.cache_id, with_for_update=True)
        if row is None:
            row = EdgeCacheUsageRow(cache_id=record.cache_id)
            self._session.add(row)
        row.used_bytes = record.used_bytes
        row.quota_bytes = record.quota_bytes
        row.pressure = record.pressure
        row.datasets = record.datasets
        row.report = record.report
        row.reported_at = record.reported_at
        self._session.flush()

    def get(self, cache_id: str) -> EdgeCacheUsageRecord | None:
        row = self._session.get(EdgeCacheUsageRow, cache_id)
        return _cache_usage(row) if row else None

    def list(self) -> list[EdgeCacheUsageRecord]:
        stmt = select(EdgeCacheUsageRow).order_by(EdgeCacheUsageRow.cache_id)
        return [_cache_usage(r) for r in self._session.execute(stmt).scalars()]


def _cache_usage(row: EdgeCacheUsageRow) -> EdgeCacheUsageRecord:
    return EdgeCacheUsageRecord(
        cache_id=row.cache_id,
        used_bytes=row.used_bytes,
        quota_bytes=row.quota_bytes,
        pressure=bool(row.pressure),
        datasets=dict(row.datasets or {}),
        report=dict(row.report or {}),
        reported_at=row.reported_at,
    )
