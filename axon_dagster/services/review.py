"""Human review use cases: the reviewer's queue (needs_review datasets with their lineage), the
feed of review decisions the Dagster sensor follows, and disposing of rejected datasets per policy.

Same shape as ``control_plane``: each function takes a fresh unit of work, opens one transaction,
lets the domain decide, and commits; a refusal raises before anything is written. The decision
itself is ``control_plane.review_dataset`` (the domain keeps it final).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from sqlalchemy import and_, or_, select

from axon_dagster.domain import DATASET_TRANSITIONS, DatasetStatus, DomainError, QcOutcome, utcnow, validate_id
from axon_dagster.domain.states import check_transition
from axon_dagster.store import SqlAlchemyUnitOfWork
from axon_dagster.store.review_repositories import DatasetQuery
from axon_dagster.store.schema import DatasetRow, TaskRow

from .control_plane import MAX_OFFSET
from .errors import InvalidRequestError, NotFoundError
from .views import DatasetView, View

log = logging.getLogger(__name__)

DisposalPolicy = Literal["archive", "delete"]
DISPOSAL_POLICIES: tuple[str, ...] = ("archive", "delete")
MAX_PAGE = 500


@dataclass(frozen=True)
class Lineage(View):
    order_id: str
    batch_id: str
    task_id: str
    robot_id: str | None
    data_collector_id: str | None
    scene: str
    sub_scene: str
    skills: list[str]
    task_status: str
    dataset_path: str | None
    priority: int


@dataclass(frozen=True)
class ReviewItem(View):
    """One dataset as the reviewer sees it: its record (QC report included) and where it came from."""

    dataset: DatasetView
    lineage: Lineage | None  # None only if the task row vanished (never in a consistent store)


@dataclass(frozen=True)
class DecisionPage(View):
    """Reviewed (or QC-rejected) datasets still waiting for the data flow to act on them, after the
    cursor; ``cursor`` is what to send next time."""

    decisions: list[ReviewItem]
    cursor: str


def review_queue(uow: SqlAlchemyUnitOfWork, limit: int = 50, offset: int = 0, query: DatasetQuery | None = None) -> list[ReviewItem]:
    """Datasets waiting for a human: INSPECTED, outcome needs_review, not yet reviewed; oldest first.
    ``query`` (built and validated by ``dataset_search.build_query``) narrows the queue with the
    dataset-search filters (scene, sub-scene, skills, robot, since, ...)."""
    limit, offset = _page(limit, offset)
    with uow.reading():
        stmt = select(DatasetRow.dataset_id)
        if query is not None and query != DatasetQuery():
            stmt = stmt.join(TaskRow, DatasetRow.task_id == TaskRow.task_id).where(*uow.dataset_search.conditions(query))
        stmt = (
            stmt.where(
                DatasetRow.status == DatasetStatus.INSPECTED.value,
                DatasetRow.qc_outcome == QcOutcome.NEEDS_REVIEW.value,
                DatasetRow.reviewed_by.is_(None),
            )
            .order_by(DatasetRow.created_at, DatasetRow.dataset_id)
            .limit(limit)
            .offset(offset)
        )
        ids = list(uow.session.execute(stmt).scalars())
        return [_item(uow, i) for i in ids]


def review_item(uow: SqlAlchemyUnitOfWork, dataset_id: str) -> ReviewItem:
    dataset_id = validate_id(dataset_id, "dataset_id")
    with uow.reading():
        return _item(uow, dataset_id)


def decisions_after(uow: SqlAlchemyUnitOfWork, after: str = "", limit: int = 100) -> DecisionPage:
    """The review-decision sensor's feed: INSPECTED datasets with a final outcome the data flow has
    not acted on yet — reviewed by a human (approved or rejected), or rejected by QC — ordered by
    (updated_at, dataset_id) after the cursor ``after`` (``""`` from the start)."""
    limit, _ = _page(limit, 0)
    after_at, after_id = _parse_cursor(after)
    with uow.reading():
        stmt = select(DatasetRow.dataset_id, DatasetRow.updated_at).where(
            DatasetRow.status == DatasetStatus.INSPECTED.value,
            or_(
                and_(DatasetRow.reviewed_by.is_not(None), DatasetRow.qc_outcome.in_([QcOutcome.APPROVED.value, QcOutcome.REJECTED.value])),
                DatasetRow.qc_outcome == QcOutcome.REJECTED.value,
            ),
        )
        if after_at is not None:
            stmt = stmt.where(
                or_(DatasetRow.updated_at > after_at, and_(DatasetRow.updated_at == after_at, DatasetRow.dataset_id > after_id))
            )
        rows = list(uow.session.execute(stmt.order_by(DatasetRow.updated_at, DatasetRow.dataset_id).limit(limit)))
        items = [_item(uow, r.dataset_id) for r in rows]
    cursor = f"{rows[-1].updated_at.isoformat()}|{rows[-1].dataset_id}" if rows else after
    return DecisionPage(decisions=items, cursor=cursor)


def dispose_rejected(uow: SqlAlchemyUnitOfWork, dataset_id: str, policy: str) -> DatasetView:
    """Record that a rejected dataset was archived or deleted at the edge per ``policy``.
    Refuses a dataset that is not rejected (nothing approved or waiting for review is ever
    disposed of); replaying the same disposal is a no-op."""
    dataset_id = validate_id(dataset_id, "dataset_id")
    if policy not in DISPOSAL_POLICIES:
        raise InvalidRequestError(f"policy must be one of {', '.join(DISPOSAL_POLICIES)}, got {policy!r}")
    target = DatasetStatus.ARCHIVED if policy == "archive" else DatasetStatus.DELETED
    with uow.writing():
        record = uow.datasets.get(dataset_id, lock=True)
        if record is None:
            raise NotFoundError("dataset", dataset_id)
        dataset = record.dataset
        if dataset.qc_outcome is not QcOutcome.REJECTED:
            outcome = dataset.qc_outcome.value if dataset.qc_outcome else "none"
            raise DomainError(f"dataset {dataset_id} is not rejected (outcome {outcome}); only rejected datasets are archived or deleted")
        if not check_transition(DATASET_TRANSITIONS, "dataset", dataset_id, dataset.status, target):
            return DatasetView.of_record(record)  # the same disposal again
        dataset.status = target
        dataset.updated_at = utcnow()
        uow.datasets.save(dataset)
        uow.commit()
    log.info("dataset %s %s (rejected, policy %s)", dataset_id, target.value, policy)
    return DatasetView.of(dataset, record.created_at, record.inspection_report)


# ---------------------------------------------------------------------------------- helpers


def _item(uow: SqlAlchemyUnitOfWork, dataset_id: str) -> ReviewItem:
    record = uow.datasets.get(dataset_id)
    if record is None:
        raise NotFoundError("dataset", dataset_id)
    task_record = uow.tasks.get(record.dataset.task_id)
    lineage = None
    if task_record is not None:
        t = task_record.task
        lineage = Lineage(
            order_id=t.order_id,
            batch_id=t.batch_id,
            task_id=t.task_id,
            robot_id=t.robot_id,
            data_collector_id=t.data_collector_id,
            scene=t.scene,
            sub_scene=t.sub_scene,
            skills=list(t.skills),
            task_status=t.status.value,
            dataset_path=t.dataset_path,
            priority=t.priority,
        )
    return ReviewItem(dataset=DatasetView.of_record(record), lineage=lineage)


def _parse_cursor(after: Any) -> tuple[datetime | None, str]:
    if after in (None, ""):
        return None, ""
    if not isinstance(after, str) or "|" not in after:
        raise InvalidRequestError(f"cursor must be '<iso time>|<dataset id>' as returned by the feed, got {after!r}")
    at, _, dataset_id = after.partition("|")
    try:
        parsed = datetime.fromisoformat(at)
    except ValueError:
        raise InvalidRequestError(f"cursor time {at!r} is not an ISO-8601 timestamp") from None
    parsed = parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)
    return parsed, dataset_id


def _page(limit: Any, offset: Any) -> tuple[int, int]:
    for name, value in (("limit", limit), ("offset", offset)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_OFFSET:
            raise InvalidRequestError(f"{name} must be an integer between 0 and {MAX_OFFSET}, got {value!r}")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequestError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    return limit, offset
