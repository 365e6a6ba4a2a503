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

from axon_dagster.domain import DATASET_TRANSITIONS, DatasetStatus, DomainError, QcOutcome, utcnow, validate_id
from axon_dagster.domain.states import check_transition

from .persistence import SqlAlchemyUnitOfWork
from .persistence.review_repositories import DatasetQuery
from .errors import InvalidRequestError, NotFoundError
from .validation import page
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
    limit, offset = page(limit, offset, MAX_PAGE)
    with uow.reading():
        ids = uow.review.waiting_ids(query, limit, offset)
        return [_item(uow, i) for i in ids]


def review_item(uow: SqlAlchemyUnitOfWork, dataset_id: str) -> ReviewItem:
    dataset_id = validate_id(dataset_id, "dataset_id")
    with uow.reading():
        return _item(uow, dataset_id)


def decisions_after(uow: SqlAlchemyUnitOfWork, after: str = "", limit: int = 100) -> DecisionPage:
    """The review-decision sensor's feed: INSPECTED datasets with a final outcome the data flow has
    not acted on yet — reviewed by a human (approved or rejected), or rejected by QC — ordered by
    (updated_at, dataset_id) after the cursor ``after`` (``""`` from the start)."""
    limit, _ = page(limit, 0, MAX_PAGE)
    after_at, after_id = _parse_cursor(after)
    with uow.reading():
        rows = uow.review.decided_after(after_at, after_id, limit)
        items = [_item(uow, dataset_id) for dataset_id, _ in rows]
    cursor = f"{rows[-1][1].isoformat()}|{rows[-1][0]}" if rows else after
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

