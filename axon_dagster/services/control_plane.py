"""The control plane's use cases: one function per thing an admin, a robot or the data flow asks.

Each function takes a fresh unit of work, opens one transaction, lets the domain decide, and
commits. Business rules live in ``axon_dagster.domain``; this module only orchestrates.
Every refusal raises before anything is written (or rolls the transaction back), so bad input
changes nothing.
"""

from __future__ import annotations

import dataclasses

import hashlib
import logging
import secrets
import threading
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Mapping, Sequence

from axon_dagster.config import recording_template
from axon_dagster.domain import (
    Dataset,
    DatasetStatus,
    IllegalTransitionError,
    ManualBatch,
    Order,
    QcOutcome,
    Requirements,
    Task,
    TaskEvent,
    TaskStatus,
    TaskTemplate,
    assign_round_robin,
    parse_task_status,
    transition_event_id,
    utcnow,
    validate_id,
)
from axon_dagster.domain.model import bounded_utc
from axon_dagster.domain import plan_order as domain_plan_order
from axon_dagster.domain.batch_review import BatchReviewStatus, initial_status
from axon_dagster.domain.identity import validate_principal_name
from axon_dagster.domain.ids import MAX_ID_LENGTH
from axon_dagster.store import EdgeCacheUsageRecord, EventRecord, SqlAlchemyUnitOfWork, TaskFilter, TaskRecord
from axon_dagster.store.errors import DuplicateKeyError

from .errors import AlreadyExistsError, AuthenticationError, InvalidRequestError, NotFoundError
from .views import (
    BatchView,
    DatasetView,
    EdgeCacheUsageView,
    EventPage,
    EventResult,
    EventView,
    MetricsSnapshot,
    OrderView,
    PlanView,
    RegisteredRobot,
    RobotView,
    TaskPage,
    TaskView,
    rollup_of,
)

log = logging.getLogger(__name__)

UnitOfWork = SqlAlchemyUnitOfWork

MAX_PAGE = 10_000
MAX_OFFSET = 2**63 - 1  # offsets and cursors are 64-bit in both stores
# "Last seen" is written at most this often per robot and API process (a fleet dashboard's grain).
LAST_SEEN_RESOLUTION = timedelta(seconds=30)
MAX_TEXT = 4096  # paths and free text a robot or an admin may send
MAX_UPLOAD_ERROR = 2000  # the reason of a failed upload (an error message, trimmed by the reporter)
# Event data keys the control plane copies onto the task (the rest stays in the event only).
_TASK_FIELDS_FROM_EVENT = ("data_collector_id", "config_path", "dataset_path")


# ------------------------------------------------------------------------------------ robots


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def register_robot(uow: UnitOfWork, robot_id: str, name: str = "") -> RegisteredRobot:
    """Register a robot and return its bearer token (shown once; only its SHA-256 is stored)."""
    robot_id = validate_id(robot_id, "robot_id")
    name = _text(name or "", "name", limit=256)
    token = secrets.token_urlsafe(32)
    with uow.writing():
        if uow.robots.get(robot_id) is not None:
            raise AlreadyExistsError("robot", robot_id)
        try:
            uow.robots.add(robot_id, name, hash_token(token), utcnow())
        except DuplicateKeyError:
            raise AlreadyExistsError("robot", robot_id) from None
        uow.commit()
    log.info("registered robot %s", robot_id)
    return RegisteredRobot(robot_id=robot_id, token=token)


MAX_TOKEN_OVERLAP = timedelta(days=7)


def rotate_robot_token(uow: UnitOfWork, robot_id: str, overlap_seconds: float = 3600.0) -> RegisteredRobot:
    """A new token for ``robot_id`` (shown once). The old one keeps working for ``overlap_seconds``
    (so a robot can be given the new one without a gap), none at all after a revocation."""
    robot_id = validate_id(robot_id, "robot_id")
    if not isinstance(overlap_seconds, (int, float)) or isinstance(overlap_seconds, bool) or not (
        0 <= overlap_seconds <= MAX_TOKEN_OVERLAP.total_seconds()
    ):
        raise InvalidRequestError(f"overlap_seconds must be between 0 and {MAX_TOKEN_OVERLAP.total_seconds():.0f}, got {overlap_seconds!r}")
    token, now = secrets.token_urlsafe(32), utcnow()
    with uow.writing():
        robot = uow.robots.get(robot_id)
        if robot is None:
            raise NotFoundError("robot", robot_id)
        keep_old = robot.tokens_revoked_at is None and overlap_seconds > 0
        current_hash = uow.robots.token_hash(robot_id)
        until = now + timedelta(seconds=overlap_seconds) if keep_old else None
        uow.robots.set_tokens(robot_id, token_hash=hash_token(token), previous_token_hash=current_hash if keep_old else None,
                              previous_token_expires_at=until, tokens_revoked_at=None)
        uow.commit()
    log.info("robot %s: token rotated (old token valid until %s)", robot_id, until.isoformat() if until else "now")
    return RegisteredRobot(robot_id=robot_id, token=token, previous_token_valid_until=until)


def revoke_robot_tokens(uow: UnitOfWork, robot_id: str) -> RobotView:
    """No token of ``robot_id`` is accepted any more (a lost or stolen robot) until
    :func:`rotate_robot_token` issues a new one."""
    robot_id = validate_id(robot_id, "robot_id")
    with uow.writing():
        if uow.robots.get(robot_id) is None:
            raise NotFoundError("robot", robot_id)
        uow.robots.set_tokens(robot_id, tokens_revoked_at=utcnow(), previous_token_hash=None, previous_token_expires_at=None)
        robot = uow.robots.get(robot_id)
        uow.commit()
    assert robot is not None
    log.warning("robot %s: tokens revoked", robot_id)
    return RobotView.of(robot)


def authenticate_robot(uow: UnitOfWork, token: str | None) -> str:
    """The robot a bearer token belongs to (one read of the unique token index; writes nothing:
    "last seen" is :class:`LastSeen`'s batched bookkeeping)."""
    if not token:
        raise AuthenticationError()
    with uow.reading():
        robot = uow.robots.by_token_hash(hash_token(token))
    if robot is None:
        raise AuthenticationError()
    return robot.robot_id


class LastSeen:
    """Robots' "last seen" times, noted in memory on the request path and written in one batched
    UPDATE by :meth:`flush` (the API calls it every few seconds off the request path). A robot is
    written at most once per ``resolution`` per process, however often it calls. Each API process
    keeps its own; the UPDATE never moves a time backwards, so replicas agree."""

    def __init__(self, resolution: timedelta = LAST_SEEN_RESOLUTION) -> None:
        self._pending: dict[str, datetime] = {}
        self._written: dict[str, datetime] = {}
        self._resolution = resolution
        self._lock = threading.Lock()

    def saw(self, robot_id: str, at: datetime | None = None) -> None:
        at = at or utcnow()
        with self._lock:
            written = self._written.get(robot_id)
            if written is not None and timedelta(0) <= at - written < self._resolution:
                return  # recent enough in the store already
            self._pending[robot_id] = at

    def flush(self, uow: UnitOfWork) -> int:
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        try:
            with uow.writing():
                uow.robots.touch_many(pending)
                uow.commit()
            with self._lock:
                self._written.update(pending)
        except Exception:
            with self._lock:  # keep them for the next flush (newer sightings win)
                for robot_id, at in pending.items():
                    self._pending.setdefault(robot_id, at)
            raise
        return len(pending)


def list_robots(uow: UnitOfWork) -> list[RobotView]:
    with uow.reading():
        return [RobotView.of(r) for r in uow.robots.list()]


# ------------------------------------------------------------------------------------ orders


def create_order(
    uow: UnitOfWork,
    order_id: str,
    scene: str,
    skills: Sequence[str],
    *,
    sub_scene: str = "",
    requirements: Mapping[str, Any] | None = None,
    priority: int = 0,
    created_by: str = "",
) -> OrderView:
    order = Order(
        order_id=order_id,
        scene=scene,
        sub_scene=sub_scene,
        skills=tuple(skills),
        requirements=Requirements.from_dict(requirements),
        priority=priority,
        created_by=_text(created_by or "", "created_by", limit=256),
    )
    with uow.writing():
        if uow.orders.get(order.order_id) is not None:
            raise AlreadyExistsError("order", order.order_id)
        try:
            uow.orders.add(order)
        except DuplicateKeyError:
            raise AlreadyExistsError("order", order.order_id) from None
        uow.commit()
    log.info("created order %s (scene %s, skills %s)", order.order_id, order.scene, ",".join(order.skills))
    return OrderView.of(order, {})


def plan_order(
    uow: UnitOfWork,
    order_id: str,
    strategy: str,
    template: TaskTemplate,
    manual_batches: Sequence[ManualBatch] = (),
) -> PlanView:
    """Split an order into batches and tasks (domain ``plan_order``), stored in one transaction."""
    order_id = validate_id(order_id, "order_id")
    with uow.writing():
        order = uow.orders.get(order_id, lock=True)
        if order is None:
            raise NotFoundError("order", order_id)
        if uow.batches.any_for_order(order_id):
            raise AlreadyExistsError("plan", order_id, f"order {order_id!r} is already planned")
        policy = uow.batch_review.order_policy(order_id)
        if not template.topics and policy:
            # No explicit topics: the order's recording template says what every task records.
            template = dataclasses.replace(template, topics=recording_template(policy[1]).topic_names)
        plan = domain_plan_order(order, strategy, template, manual_batches)
        try:
            uow.batches.add_many(plan.batches)
            records = uow.tasks.add_many(plan.tasks)
            # Batch review: approved now when the order auto-approves (the default), else pending.
            uow.batch_review.set_status([b.batch_id for b in plan.batches], initial_status(policy[0] if policy else True).value)
        except DuplicateKeyError as exc:
            raise AlreadyExistsError("plan", order_id, f"planned ids of order {order_id!r} collide with stored ones: {exc}") from None
        uow.commit()
    log.info("planned order %s: %d batches, %d tasks", order_id, len(plan.batches), len(records))
    per_batch = Counter(t.batch_id for t in plan.tasks)
    requirements = order.requirements.to_dict()
    return PlanView(
        order_id=order_id,
        batches=[BatchView.of(b, {TaskStatus.PENDING: per_batch[b.batch_id]}) for b in plan.batches],
        tasks=[TaskView.of(r, requirements) for r in records],
    )


def dispatch_order(uow: UnitOfWork, order_id: str, robot_ids: Sequence[str] | None = None) -> dict[str, str]:
    """Give the order's unassigned PENDING tasks to the least-loaded robots (all registered robots
    unless ``robot_ids`` names some). Returns ``{task_id: robot_id}`` for the tasks assigned now."""
    order_id = validate_id(order_id, "order_id")
    wanted = None if robot_ids is None else list(dict.fromkeys(validate_id(r, "robot_id") for r in robot_ids))
    with uow.writing():
        if uow.orders.get(order_id, lock=True) is None:  # one dispatch of an order at a time
            raise NotFoundError("order", order_id)
        if wanted is None:
            robots = [r.robot_id for r in uow.robots.list()]
        else:
            missing = [r for r in wanted if r not in uow.robots.existing_ids(wanted)]
            if missing:
                raise NotFoundError("robot", missing[0])
            robots = wanted
        # Only tasks of approved batches reach robots (domain.batch_review.dispatchable).
        task_ids = uow.tasks.unassigned_pending(order_id, review_statuses=[BatchReviewStatus.APPROVED.value])
        if not task_ids:
            return {}
        assignments = assign_round_robin(task_ids, robots, uow.tasks.open_load_by_robot())
        uow.tasks.assign(assignments, utcnow())
        uow.commit()
    log.info("dispatched %d tasks of order %s to %d robots", len(assignments), order_id, len(set(assignments.values())))
    return assignments


def list_orders(uow: UnitOfWork, limit: int = 100, offset: int = 0) -> list[OrderView]:
    limit, offset = _page(limit, offset)
    with uow.reading():
        orders = uow.orders.list(limit, offset)
        counts = uow.tasks.status_counts_by("order_id", [o.order_id for o in orders])
    return [OrderView.of(o, counts.get(o.order_id, {})) for o in orders]


def get_order(uow: UnitOfWork, order_id: str) -> OrderView:
    order_id = validate_id(order_id, "order_id")
    with uow.reading():
        order = uow.orders.get(order_id)
        if order is None:
            raise NotFoundError("order", order_id)
        counts = uow.tasks.status_counts(TaskFilter(order_id=order_id))
    return OrderView.of(order, counts)


def list_batches(uow: UnitOfWork, order_id: str | None = None) -> list[BatchView]:
    if order_id is not None:
        order_id = validate_id(order_id, "order_id")
    with uow.reading():
        batches = uow.batches.list(order_id)
        counts = uow.tasks.status_counts_by("batch_id", [b.batch_id for b in batches])
    return [BatchView.of(b, counts.get(b.batch_id, {})) for b in batches]


def get_batch(uow: UnitOfWork, batch_id: str) -> BatchView:
    batch_id = validate_id(batch_id, "batch_id")
    with uow.reading():
        batch = uow.batches.get(batch_id)
        if batch is None:
            raise NotFoundError("batch", batch_id)
        counts = uow.tasks.status_counts(TaskFilter(batch_id=batch_id))
    return BatchView.of(batch, counts)


# ------------------------------------------------------------------------------------ tasks


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
    limit, offset = _page(limit, offset)
    filters = TaskFilter(
        order_id=validate_id(order_id, "order_id") if order_id is not None else None,
        batch_id=validate_id(batch_id, "batch_id") if batch_id is not None else None,
        robot_id=validate_id(robot_id, "robot_id") if robot_id is not None else None,
        status=_task_status(status, "status") if status is not None else None,
    )
    with uow.reading():
        return _task_views(uow, uow.tasks.list(filters, limit, offset))


def get_task(uow: UnitOfWork, task_id: str) -> TaskView:
    task_id = validate_id(task_id, "task_id")
    with uow.reading():
        record = uow.tasks.get(task_id)
        if record is None:
            raise NotFoundError("task", task_id)
        return _task_views(uow, [record])[0]


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
    target = _task_status(status, "status")
    reason = _text(reason, "reason") if reason is not None else None
    event_data = _event_data(data)
    now = utcnow()
    with uow.writing():
        record = _locked_task(uow, task_id)
        task = record.task
        if not task.transition(target, reason=reason, at=now):
            return _task_views(uow, [record])[0]
        _copy_event_fields(task, event_data)
        (saved,) = uow.tasks.save([task])
        if reason is not None:
            event_data.setdefault("reason", reason)
        event_data.setdefault("source", "cloud")
        uow.events.add_many(
            [
                EventRecord(
                    seq=None,
                    event_id=_cloud_event_id(task_id, target),
                    task_id=task_id,
                    robot_id=task.robot_id,
                    status=target,
                    occurred_at=now,
                    received_at=now,
                    data=event_data,
                )
            ]
        )
        view = _task_views(uow, [saved])[0]
        uow.commit()
    log.info("task %s -> %s (cloud side)", task_id, target.value)
    return view


# ------------------------------------------------------------------------------------ edge sync


def pull_tasks(uow: UnitOfWork, robot_id: str, after: int = 0, limit: int = 100, changed: bool = False) -> TaskPage:
    """This robot's tasks whose revision is greater than ``after``, in revision order: new
    assignments and cloud-side changes (a robot's own events do not come back to it). When
    nothing changed this is one primary-key read of the robot's revision and nothing else;
    ``changed`` (the caller knows the revision moved) skips that read."""
    after = _cursor(after)
    limit, _ = _page(limit, 0)
    with uow.reading():
        robot = None if changed else uow.robots.get(robot_id)
        if not changed and (robot is None or robot.task_revision <= after):
            return TaskPage(tasks=[], cursor=after)
        records = uow.tasks.changed_for_robot(robot_id, after, limit)
        tasks = _task_views(uow, records)
    return TaskPage(tasks=tasks, cursor=records[-1].revision if records else after)


def robot_revisions(uow: UnitOfWork) -> dict[str, int]:
    """Every robot's newest task revision (what a long-polling pull waits for to grow)."""
    with uow.reading():
        return uow.robots.revisions()


def parse_events(raw: Sequence[Mapping[str, Any]]) -> list[TaskEvent]:
    """Build domain events from JSON-ish dicts ``{event_id, task_id, status, occurred_at?, data?}``;
    raises InvalidIdError / InvalidRequestError naming the first bad one."""
    events: list[TaskEvent] = []
    for index, item in enumerate(raw):
        status = _task_status(item.get("status"), f"events[{index}].status")
        occurred_at = item.get("occurred_at") or utcnow()
        if isinstance(occurred_at, str):
            try:
                occurred_at = datetime.fromisoformat(occurred_at)
            except ValueError:
                raise InvalidRequestError(f"events[{index}].occurred_at is not an ISO 8601 timestamp: {occurred_at!r}") from None
        if not isinstance(occurred_at, datetime) or occurred_at.tzinfo is None:
            raise InvalidRequestError(f"events[{index}].occurred_at must be a timezone-aware timestamp")
        occurred_at = bounded_utc(occurred_at, f"events[{index}].occurred_at")
        events.append(
            TaskEvent(
                event_id=item.get("event_id"),  # type: ignore[arg-type]  # validated by TaskEvent
                task_id=item.get("task_id"),  # type: ignore[arg-type]
                status=status,
                occurred_at=occurred_at,
                data=_event_data(item.get("data")),
            )
        )
    return events


def apply_events(uow: UnitOfWork, robot_id: str, events: Sequence[TaskEvent]) -> list[EventResult]:
    """Apply a robot's status events in order, idempotent by event id.

    A task that is not this robot's (or does not exist) refuses the whole request with
    NotFoundError before anything is written. An illegal transition only rejects that event.
    """
    if len(events) > MAX_PAGE:
        raise InvalidRequestError(f"at most {MAX_PAGE} events per request, got {len(events)}")
    payloads = [_event_data(e.data) for e in events]  # malformed data refuses the request up front
    now = utcnow()
    results: list[EventResult] = []
    with uow.writing():
        # The rows of the tasks named lock (until commit): events of one task are applied one
        # push at a time and in order, cloud moves of a task wait for them; nothing else waits,
        # not even this robot's other tasks. The whole batch is one transaction.
        owned = uow.tasks.get_many([e.task_id for e in events], robot_id=robot_id, lock=True)
        foreign = [e.task_id for e in events if e.task_id not in owned]
        if foreign:
            # Same answer for "another robot's" and "no such task": never leak which it is.
            raise NotFoundError("task", foreign[0])
        seen = uow.events.existing_ids([e.event_id for e in events], robot_id)
        changed: dict[str, Task] = {}
        new_events: list[EventRecord] = []
        for event, data in zip(events, payloads):
            if event.event_id in seen:
                results.append(EventResult(event.event_id, "duplicate"))
                continue
            task = owned[event.task_id].task
            reason = data.get("reason") if event.status is TaskStatus.FAILED else None
            try:
                moved = task.transition(event.status, reason=reason, at=now)
            except IllegalTransitionError as exc:  # report it; it never blocks the robot's outbox
                log.warning("robot %s: event %s rejected: %s", robot_id, event.event_id, exc)
                results.append(EventResult(event.event_id, "rejected", str(exc)))
                continue
            if not moved:  # the task is already there (a second teleop press): nothing to record
                results.append(EventResult(event.event_id, "duplicate"))
                continue
            _copy_event_fields(task, data)
            changed[task.task_id] = task
            seen.add(event.event_id)
            new_events.append(
                EventRecord(
                    seq=None,
                    event_id=event.event_id,
                    task_id=event.task_id,
                    robot_id=robot_id,
                    status=event.status,
                    occurred_at=event.occurred_at,
                    received_at=now,
                    data=data,
                )
            )
            results.append(EventResult(event.event_id, "applied"))
        if changed:
            # The robot's own news: no new revision, no echo in its pull (see TaskRepository.save).
            uow.tasks.save(list(changed.values()), echo=False)
            uow.events.add_many(new_events)
            uow.commit()
    tally = Counter(r.result for r in results)
    log.info("robot %s: %d events (%s)", robot_id, len(events), ", ".join(f"{k} {v}" for k, v in sorted(tally.items())))
    return results


def publish_events(uow: UnitOfWork) -> int:
    """Give every committed, unpublished event its seq (``EventRepository.publish``); returns
    how many. A probe of the unpublished-events index when there is nothing to do."""
    published = 0
    with uow.reading():
        if not uow.events.has_unpublished():
            return 0
    while True:
        with uow.writing():
            count = uow.events.publish(_PUBLISH_BATCH)
            uow.commit()
        published += count
        if count < _PUBLISH_BATCH:
            return published


_PUBLISH_BATCH = 10_000


def events_after(uow: UnitOfWork, after: int = 0, limit: int = 100) -> EventPage:
    """The task-status sensor's feed: events with ``seq > after`` in seq order, at most ``limit``.
    Publishes first, so every event committed before this call is in the feed; costs what the
    returned events cost (an index range scan), not what the store holds."""
    after = _cursor(after)
    limit, _ = _page(limit, 0)
    publish_events(uow)
    with uow.reading():
        records = uow.events.after(after, limit)
    return EventPage(events=[EventView.of(e) for e in records], cursor=records[-1].seq if records else after)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ datasets


def dataset_cached(
    uow: UnitOfWork, dataset_id: str, task_id: str, cache_path: str, dataset_digest: str, size_bytes: int
) -> DatasetView:
    dataset_id, task_id = validate_id(dataset_id, "dataset_id"), validate_id(task_id, "task_id")
    if dataset_id != task_id:
        raise InvalidRequestError(f"dataset_id {dataset_id!r} must equal its task_id {task_id!r}")
    cache_path = _text(cache_path, "cache_path", required=True)
    dataset_digest = _text(dataset_digest, "dataset_digest", limit=128, required=True)
    if not isinstance(size_bytes, int) or isinstance(size_bytes, bool) or size_bytes < 0:
        raise InvalidRequestError(f"size_bytes must be a non-negative integer, got {size_bytes!r}")
    with uow.writing():
        task = uow.tasks.get(task_id)
        if task is None:
            raise NotFoundError("task", task_id)
        record = uow.datasets.get(dataset_id, lock=True)
        if record is None:
            dataset = Dataset(dataset_id=dataset_id, task_id=task_id, source_path=task.task.dataset_path)
            dataset.cached(cache_path, dataset_digest, size_bytes)
            uow.datasets.add(dataset, created_at=utcnow())
            uow.commit()
            log.info("dataset %s cached at %s", dataset_id, cache_path)
            return DatasetView.of(dataset, dataset.updated_at, None)
        dataset = record.dataset
        replay = dataset.status not in (DatasetStatus.RECORDED, DatasetStatus.CACHED) and dataset.dataset_digest == dataset_digest
        if not replay and dataset.cached(cache_path, dataset_digest, size_bytes):
            uow.datasets.save(dataset)
            uow.commit()
            log.info("dataset %s cached at %s", dataset_id, cache_path)
        return DatasetView.of(dataset, record.created_at, record.inspection_report)


def dataset_inspected(uow: UnitOfWork, dataset_id: str, score: float, outcome: str, report: Mapping[str, Any] | None = None) -> DatasetView:
    """Record an automatic inspection. A human review stays final (the domain keeps its outcome)."""
    if not isinstance(score, (int, float)) or isinstance(score, bool) or not 0 <= score <= 1:
        raise InvalidRequestError(f"score must be a number between 0 and 1, got {score!r}")
    qc = _enum(QcOutcome, outcome, "outcome")
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
    comment = _text(comment or "", "comment")
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
    reason = _text(reason, "reason", limit=MAX_UPLOAD_ERROR, required=True)
    return _dataset_step(uow, dataset_id, f"upload failed: {reason}", lambda d: d.upload_failed(reason))


def dataset_uploaded(uow: UnitOfWork, dataset_id: str, cloud_uri: str, dataset_digest: str) -> DatasetView:
    cloud_uri = _text(cloud_uri, "cloud_uri", required=True)
    dataset_digest = _text(dataset_digest, "dataset_digest", limit=128, required=True)
    return _dataset_step(uow, dataset_id, f"uploaded to {cloud_uri}", lambda d: d.uploaded(cloud_uri, dataset_digest))


def list_datasets(
    uow: UnitOfWork, *, status: str | None = None, outcome: str | None = None, limit: int = 100, offset: int = 0
) -> list[DatasetView]:
    limit, offset = _page(limit, offset)
    status_value = _enum(DatasetStatus, status, "status").value if status is not None else None
    outcome_value = _enum(QcOutcome, outcome, "outcome").value if outcome is not None else None
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


# ------------------------------------------------------------------------------------ edge caches

CACHE_STATES = ("cached", "uploaded", "rejected")  # axon_dagster.storage.edge_cache.CacheState
# Fields of EdgeCache.disk_usage() kept beside the main columns (anything else is dropped).
_REPORT_INTS = ("evictable_bytes", "pending_upload_bytes")
_REPORT_TEXTS = ("root", "policy", "oldest_pending_staged_at", "reported_at")
MAX_BYTES = 2**63 - 1


def report_cache_usage(uow: UnitOfWork, cache_id: str, usage: Mapping[str, Any]) -> EdgeCacheUsageView:
    """Store ``usage`` (an ``EdgeCache.disk_usage()`` report) as the current usage of ``cache_id``,
    replacing its previous report. Everything is checked before anything is written."""
    cache_id = validate_id(cache_id, "cache_id")
    record = _cache_usage_record(cache_id, usage, utcnow())
    with uow.writing():
        uow.edge_caches.put(record)
        uow.commit()
    log.info(
        "edge cache %s reported %d of %s bytes used%s",
        cache_id, record.used_bytes, record.quota_bytes if record.quota_bytes is not None else "unlimited",
        " (PRESSURE)" if record.pressure else "",
    )
    return EdgeCacheUsageView.of(record)


def list_cache_usage(uow: UnitOfWork) -> list[EdgeCacheUsageView]:
    with uow.reading():
        return [EdgeCacheUsageView.of(r) for r in uow.edge_caches.list()]


def _byte_count(value: Any, field: str, *, nullable: bool = False) -> int | None:
    if value is None and nullable:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_BYTES:
        raise InvalidRequestError(f"{field} must be a non-negative integer{' or null' if nullable else ''}, got {value!r}")
    return value


def _cache_usage_record(cache_id: str, usage: Any, received_at: datetime) -> EdgeCacheUsageRecord:
    if not isinstance(usage, Mapping):
        raise InvalidRequestError(f"usage must be an object, got {type(usage).__name__}")
    for key in ("used_bytes", "pressure", "datasets"):
        if key not in usage:
            raise InvalidRequestError(f"usage.{key} is required")
    used = _byte_count(usage["used_bytes"], "usage.used_bytes")
    quota = _byte_count(usage.get("quota_bytes"), "usage.quota_bytes", nullable=True)
    pressure = usage["pressure"]
    if not isinstance(pressure, bool):
        raise InvalidRequestError(f"usage.pressure must be true or false, got {pressure!r}")
    if pressure != (quota is not None and used > quota):
        raise InvalidRequestError(
            f"usage.pressure={pressure} contradicts used_bytes={used} and quota_bytes={quota} (pressure means over quota)"
        )
    raw_datasets = usage["datasets"]
    if not isinstance(raw_datasets, Mapping):
        raise InvalidRequestError("usage.datasets must be an object of {state: {count, bytes}}")
    unknown = sorted(set(map(str, raw_datasets)) - set(CACHE_STATES))
    if unknown:
        raise InvalidRequestError(f"usage.datasets has unknown states {unknown}; expected {list(CACHE_STATES)}")
    datasets: dict[str, Any] = {}
    for state in CACHE_STATES:
        entry = raw_datasets.get(state, {"count": 0, "bytes": 0})
        if not isinstance(entry, Mapping):
            raise InvalidRequestError(f"usage.datasets.{state} must be an object with count and bytes")
        datasets[state] = {
            "count": _byte_count(entry.get("count"), f"usage.datasets.{state}.count"),
            "bytes": _byte_count(entry.get("bytes"), f"usage.datasets.{state}.bytes"),
        }
    total = sum(d["bytes"] for d in datasets.values())
    if total != used:
        raise InvalidRequestError(f"usage.used_bytes={used} differs from the sum of usage.datasets bytes ({total})")
    report: dict[str, Any] = {}
    for key in _REPORT_INTS:
        if usage.get(key) is not None:
            report[key] = _byte_count(usage[key], f"usage.{key}")
    for key in _REPORT_TEXTS:
        if usage.get(key) is not None:
            report[key] = _text(usage[key], f"usage.{key}")
    if usage.get("filesystem") is not None:
        fs = usage["filesystem"]
        if not isinstance(fs, Mapping):
            raise InvalidRequestError("usage.filesystem must be an object with total_bytes and free_bytes")
        report["filesystem"] = {k: _byte_count(fs.get(k), f"usage.filesystem.{k}") for k in ("total_bytes", "free_bytes")}
    if usage.get("delete_after_upload") is not None:
        if not isinstance(usage["delete_after_upload"], bool):
            raise InvalidRequestError("usage.delete_after_upload must be true or false")
        report["delete_after_upload"] = usage["delete_after_upload"]
    if usage.get("retention_days") is not None:
        days = usage["retention_days"]
        if isinstance(days, bool) or not isinstance(days, (int, float)) or not 0 < days < float("inf"):
            raise InvalidRequestError(f"usage.retention_days must be a positive number or null, got {days!r}")
        report["retention_days"] = days
    return EdgeCacheUsageRecord(
        cache_id=cache_id,
        used_bytes=used,
        quota_bytes=quota,
        pressure=pressure,
        datasets=datasets,
        report=report,
        reported_at=received_at,
    )


# ------------------------------------------------------------------------------------ metrics


def metrics_snapshot(uow: UnitOfWork) -> MetricsSnapshot:
    """Gauges for /metrics. Scans the tasks table (GROUP BY): meant for a scrape every few seconds."""
    with uow.reading():
        task_counts = uow.tasks.status_counts()
        per_order = uow.tasks.status_counts_per_order()
        order_ids = uow.orders.ids()
        robots = uow.robots.list()
        batch_ids = [b.batch_id for b in uow.batches.list()]
        per_batch = uow.tasks.status_counts_by("batch_id", batch_ids)
        # The review queue: inspected, routed to a human, not decided yet (the data flow waits).
        waiting = [
            r.dataset
            for r in uow.datasets.list(DatasetStatus.INSPECTED.value, QcOutcome.NEEDS_REVIEW.value, _REVIEW_SCAN_LIMIT, 0)
            if r.dataset.reviewed_by is None
        ]
        caches = uow.edge_caches.list()
    orders = Counter(rollup_of(per_order.get(oid, {})).value for oid in order_ids)
    batches = Counter(rollup_of(per_batch.get(bid, {})).value for bid in batch_ids)
    now = utcnow()
    return MetricsSnapshot(
        tasks_by_status={s.value: task_counts.get(s, 0) for s in TaskStatus},
        orders_by_status=dict(orders),
        robots_last_seen={r.robot_id: r.last_seen_at.timestamp() if r.last_seen_at else None for r in robots},
        batches_by_status=dict(batches),
        review_queue_length=len(waiting),
        review_queue_oldest_age_seconds=max(((now - d.updated_at).total_seconds() for d in waiting), default=0.0),
        edge_caches={c.cache_id: (c.used_bytes, c.quota_bytes, c.pressure) for c in caches},
    )


_REVIEW_SCAN_LIMIT = 10_000  # a review queue longer than this is an incident of its own


# ------------------------------------------------------------------------------------ helpers


def _locked_task(uow: UnitOfWork, task_id: str) -> TaskRecord:
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


def _task_views(uow: UnitOfWork, records: Sequence[TaskRecord]) -> list[TaskView]:
    requirements = {oid: req.to_dict() for oid, req in uow.orders.requirements_for(r.task.order_id for r in records).items()}
    return [TaskView.of(r, requirements[r.task.order_id]) for r in records]


def _copy_event_fields(task: Task, data: Mapping[str, Any]) -> None:
    for key in _TASK_FIELDS_FROM_EVENT:
        if data.get(key) is not None:
            setattr(task, key, data[key])


def _event_data(data: Mapping[str, Any] | None) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidRequestError(f"event data must be an object, got {type(data).__name__}")
    out = dict(data)
    for key in (*_TASK_FIELDS_FROM_EVENT, "reason", "sidecar_path"):
        if key in out and out[key] is not None:
            out[key] = _text(out[key], f"data.{key}")
    return out


def _cloud_event_id(task_id: str, status: TaskStatus) -> str:
    # The same key the edge uses for a transition (task + status): a task reaches each status at
    # most once, so a robot later reporting the same move is recognised as a duplicate.
    event_id = transition_event_id(task_id, status)
    if len(event_id) <= MAX_ID_LENGTH:
        return event_id
    return "cloud-" + hashlib.sha256(event_id.encode()).hexdigest()[:40]


def _text(value: Any, field: str, *, limit: int = MAX_TEXT, required: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidRequestError(f"{field} must be a string, got {type(value).__name__}")
    if required and not value:
        raise InvalidRequestError(f"{field} must not be empty")
    if len(value) > limit:
        raise InvalidRequestError(f"{field} is longer than {limit} characters")
    if any(ord(ch) < 32 and ch not in "\t\n" for ch in value) or "\x7f" in value:
        raise InvalidRequestError(f"{field} contains control characters")
    return value


def _task_status(value: Any, field: str) -> TaskStatus:
    if isinstance(value, TaskStatus):
        return value
    if not isinstance(value, str):
        raise InvalidRequestError(f"{field} must be a task status string, got {value!r}")
    try:
        return parse_task_status(value)
    except ValueError as exc:
        raise InvalidRequestError(f"{field}: {exc}") from None


def _enum(kind: Any, value: Any, field: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise InvalidRequestError(f"unknown {field} {value!r}; expected one of {allowed}") from None


def _cursor(after: Any) -> int:
    if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after <= MAX_OFFSET:
        raise InvalidRequestError(f"cursor 'after' must be an integer between 0 and {MAX_OFFSET}, got {after!r}")
    return after


def _page(limit: Any, offset: Any) -> tuple[int, int]:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise InvalidRequestError(f"limit must be an integer between 1 and {MAX_PAGE}, got {limit!r}")
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= MAX_OFFSET:
        raise InvalidRequestError(f"offset must be an integer between 0 and {MAX_OFFSET} (64-bit), got {offset!r}")
    return limit, offset


__all__ = [
    "apply_events",
    "authenticate_robot",
    "create_order",
    "dataset_cached",
    "dataset_inspected",
    "dataset_upload_started",
    "dataset_uploaded",
    "dispatch_order",
    "events_after",
    "get_batch",
    "get_dataset",
    "get_order",
    "get_task",
    "hash_token",
    "list_batches",
    "list_cache_usage",
    "list_datasets",
    "list_orders",
    "list_robots",
    "list_tasks",
    "LastSeen",
    "robot_revisions",
    "metrics_snapshot",
    "parse_events",
    "plan_order",
    "publish_events",
    "pull_tasks",
    "register_robot",
    "revoke_robot_tokens",
    "rotate_robot_token",
    "report_cache_usage",
    "review_dataset",
    "transition_task",
]

