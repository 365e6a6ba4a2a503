"""Datasets through the data flow: cached, inspected, reviewed, uploading, uploaded; read them."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from axon_dagster.domain import (
    Dataset,
    DatasetStatus,
    QcOutcome,
    utcnow,
    validate_id,
)
from axon_dagster.domain.identity import validate_principal_name

from .errors import InvalidRequestError, NotFoundError
from .persistence import SqlAlchemyUnitOfWork
from .validation import enum_value, page, text
from .views import (
    DatasetView,
)

log = logging.getLogger(__name__)

UnitOfWork = SqlAlchemyUnitOfWork

MAX_UPLOAD_ERROR = 2000  # the reason of a failed upload (an error message, trimmed by the reporter)


def dataset_cached(
    uow: UnitOfWork, dataset_id: str, task_id: str, cache_path: str, dataset_digest: str, size_bytes: int
) -> DatasetView:
    dataset_id, task_id = validate_id(dataset_id, "dataset_id"), validate_id(task_id, "task_id")
    if dataset_id != task_id:
        raise InvalidRequestError(f"dataset_id {dataset_id!r} must equal its task_id {task_id!r}")
    cache_path = text(cache_path, "cache_path", required=True)
    dataset_digest = text(dataset_digest, "dataset_digest", limit=128, required=True)
    if not isinstance(size_bytes, int) or isinstance(size_bytes, bool) or size_bytes < 0:
        raise InvalidRequestError(f"size_bytes must be a non-negative integer, got {size_bytes!r}")
    with uow.writing():
        task = uow.tasks.get(task_id)
        if task is None:
            raise NotFoundError("task", task_id)
        record = uow.datasets.get(dataset_id, lock=True)
        if record is None:
            dataset = Dataset(dataset_id=dataset_id, task_id=task_id, source_path=task.task.dataset_path)
            dataset.mark_cached(cache_path, dataset_digest, size_bytes)
            uow.datasets.add(dataset, created_at=utcnow())
            uow.commit()
            log.info("dataset %s cached at %s", dataset_id, cache_path)
            return DatasetView.of(dataset, dataset.updated_at, None)
        dataset = record.dataset
        replay = dataset.status not in (DatasetStatus.RECORDED, DatasetStatus.STAGED, DatasetStatus.CACHED) and dataset.dataset_digest == dataset_digest
        if not replay and dataset.mark_cached(cache_path, dataset_digest, size_bytes):
            uow.datasets.save(dataset)
            uow.commit()
            log.info("dataset %s cached at %s", dataset_id, cache_path)
        return DatasetView.of(dataset, record.created_at, record.inspection_report)


def dataset_inspected(uow: UnitOfWork, dataset_id: str, score: float, outcome: str, report: Mapping[str, Any] | None = None) -> DatasetView:
    """Record an automatic inspection. A human review stays final (the domain keeps its outcome)."""
    if not isinstance(score, (int, float)) or isinstance(score, bool) or not 0 <= score <= 1:
        raise InvalidRequestError(f"score must be a number between 0 and 1, got {score!r}")
    qc = enum_value(QcOutcome, outcome, "outcome")
    report_data = dict(report or {})

    def step(dataset: Dataset) -> bool:
        already = dataset.qc_score == score and (dataset.qc_outcome is qc or dataset.reviewed_by is not None)
        if already and dataset.status in (DatasetStatus.UPLOADING, DatasetStatus.UPLOADED, DatasetStatus.ARCHIVED, DatasetStatus.DELETED):
            return False  # a replay after the data flow moved on
        dataset.record_inspection(float(score), qc)
        return True

    return _dataset_step(uow, dataset_id, "inspected", step, report=report_data)


def review_dataset(uow: UnitOfWork, dataset_id: str, reviewer: str, approve: bool, comment: str = "") -> DatasetView:
    reviewer = validate_principal_name(reviewer, "reviewer")
    if not isinstance(approve, bool):
        raise InvalidRequestError(f"approve must be true or false, got {approve!r}")
    comment = text(comment or "", "comment")
    decided = QcOutcome.APPROVED if approve else QcOutcome.REJECTED

    def step(dataset: Dataset) -> bool:
        if dataset.reviewed_by == reviewer and dataset.qc_outcome is decided:
            return False  # the same decision again
        dataset.record_review(reviewer, approve, comment)
        return True

    return _dataset_step(uow, dataset_id, f"reviewed ({decided.value} by {reviewer})", step)


def dataset_upload_started(uow: UnitOfWork, dataset_id: str) -> DatasetView:
    def step(dataset: Dataset) -> bool:
        if dataset.status is DatasetStatus.UPLOADED:
            return False
        return dataset.start_upload()

    return _dataset_step(uow, dataset_id, "uploading", step)


def dataset_upload_failed(uow: UnitOfWork, dataset_id: str, reason: str) -> DatasetView:
    """An upload that failed for good (after its retries): the dataset returns to INSPECTED with
    ``reason`` kept as its ``last_upload_error``. The same report again is a no-op; a report for a
    dataset that is not uploading (e.g. already UPLOADED) is refused."""
    reason = text(reason, "reason", limit=MAX_UPLOAD_ERROR, required=True)
    return _dataset_step(uow, dataset_id, f"upload failed: {reason}", lambda d: d.upload_failed(reason))


def dataset_uploaded(uow: UnitOfWork, dataset_id: str, cloud_uri: str, dataset_digest: str) -> DatasetView:
    cloud_uri = text(cloud_uri, "cloud_uri", required=True)
    dataset_digest = text(dataset_digest, "dataset_digest", limit=128, required=True)
    return _dataset_step(uow, dataset_id, f"uploaded to {cloud_uri}", lambda d: d.mark_uploaded(cloud_uri, dataset_digest))


def dataset_publish_attempt(uow: UnitOfWork, dataset_id: str) -> DatasetView:
    """A data-flow run starts to ingest and publish the dataset: ``publish_attempts`` + 1 (the
    run-attempt count lives with the dataset, not in Dagster's run history)."""

    def step(dataset: Dataset) -> bool:
        dataset.count_publish_attempt()
        return True

    return _dataset_step(uow, dataset_id, "publish attempt started", step)


def list_datasets(
    uow: UnitOfWork, *, status: str | None = None, outcome: str | None = None, limit: int = 100, offset: int = 0
) -> list[DatasetView]:
    limit, offset = page(limit, offset)
    status_value = enum_value(DatasetStatus, status, "status").value if status is not None else None
    outcome_value = enum_value(QcOutcome, outcome, "outcome").value if outcome is not None else None
    with uow.reading():
        return [DatasetView.of_record(r) for r in uow.datasets.list(status_value, outcome_value, limit, offset)]


def get_dataset(uow: UnitOfWork, dataset_id: str) -> DatasetView:
    dataset_id = validate_id(dataset_id, "dataset_id")
    with uow.reading():
        record = uow.datasets.get(dataset_id)
    if record is None:
        raise NotFoundError("dataset", dataset_id)
    return DatasetView.of_record(record)


def _dataset_step(uow: UnitOfWork, dataset_id: str, what: str, step: Any, report: dict[str, Any] | None = None) -> DatasetView:
    dataset_id = validate_id(dataset_id, "dataset_id")
    with uow.writing():
        record = uow.datasets.get(dataset_id, lock=True)
        if record is None:
            raise NotFoundError("dataset", dataset_id)
        dataset = record.dataset
        if not step(dataset):
            return DatasetView.of_record(record)
        uow.datasets.save(dataset, inspection_report=report)
        uow.commit()
    log.info("dataset %s %s", dataset_id, what)
    return DatasetView.of(dataset, record.created_at, report if report is not None else record.inspection_report)

