"""Repositories: translate rows <-> domain entities. The only place that knows the table layout.

Bulk paths (fan-out of an order, dispatch) use one multi-row INSERT/UPDATE per table so 10,000
tasks cost a handful of round trips, not 10,000.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Mapping, Sequence

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from axon_dagster.domain import Batch, Dataset, EdgeGate, Order, RecordingManifest, Requirements, Task, TaskStatus

from .bulk import insert_rows, update_by_key
from .errors import DuplicateKeyError
from .schema import (
    EVENT_SEQ_COUNTER,
    BatchRow,
    DatasetRow,
    EdgeCacheUsageRow,
    EventRow,
    OrderRow,
    RevisionCounterRow,
    RobotRow,
    TaskRow,
)

def _core(session: Session, statement: Any) -> Any:
    """Run a Core statement on the session's connection, inside its transaction, skipping the ORM
    execution layer (the hot paths -- a robot's pull and push -- read rows, not entities)."""
    return session.connection().execute(statement)


# IN (...) lists are chunked: SQLite caps bound parameters (32766 on 3.32+), and huge lists plan badly.
_IN_CHUNK = 1000


def _chunks(values: Sequence[str], size: int = _IN_CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@contextmanager
def _unique(kind: str) -> Iterator[None]:
    try:
        yield
    except IntegrityError as exc:
        raise DuplicateKeyError(f"{kind} already stored: {exc.orig}") from exc


# ---------------------------------------------------------------- records (what queries return)


@dataclass(frozen=True)
class RobotRecord:
    robot_id: str
    name: str
    created_at: datetime
    last_seen_at: datetime | None
    task_revision: int = 0  # the newest revision of this robot's tasks (its pull cursor's ceiling)
    previous_token_expires_at: datetime | None = None  # the rotated-out token is accepted until then
    tokens_revoked_at: datetime | None = None


@dataclass(frozen=True)
class TaskRecord:
    """A task as stored: the domain entity plus its revision (the edge sync cursor)."""

    task: Task
    revision: int


@dataclass(frozen=True)
class EventRecord:
    seq: int | None  # None until published (EventRepository.publish)
    event_id: str
    task_id: str
    robot_id: str | None
    status: TaskStatus
    occurred_at: datetime
    received_at: datetime
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetRecord:
    dataset: Dataset
    created_at: datetime
    inspection_report: dict[str, Any] | None = None


@dataclass(frozen=True)
class TaskFilter:
    order_id: str | None = None
    batch_id: str | None = None
    robot_id: str | None = None
    status: TaskStatus | None = None


# ---------------------------------------------------------------- robots


class RobotRepository:
    def __init__(self, session: Session):
        self._session = session

    def add(self, robot_id: str, name: str, token_hash: str, created_at: datetime) -> RobotRecord:
        with _unique("robot"):
            self._session.add(RobotRow(robot_id=robot_id, name=name, token_hash=token_hash, created_at=created_at))
            self._session.flush()
        return RobotRecord(robot_id, name, created_at, None)

    def get(self, robot_id: str) -> RobotRecord | None:
        row = _core(self._session, select(*_ROBOT_COLUMNS).where(_ROBOTS.c.robot_id == robot_id)).first()
        return _robot(row) if row else None

    def by_token_hash(self, token_hash: str, *, lock: bool = False, now: datetime | None = None) -> RobotRecord | None:
        """The robot a token hash belongs to — its current token, or the previous one until the
        rotation's overlap ends at ``now`` — unless its tokens are revoked. Reads the token
        indexes. With ``lock`` its row stays locked until commit."""
        now = now or datetime.now(timezone.utc)
        current = _ROBOTS.c.token_hash == token_hash
        previous = and_(_ROBOTS.c.previous_token_hash == token_hash, _ROBOTS.c.previous_token_expires_at > now)
        stmt = select(*_ROBOT_COLUMNS).where(or_(current, previous), _ROBOTS.c.tokens_revoked_at.is_(None))
        row = _core(self._session, stmt.with_for_update() if lock else stmt).first()
        return _robot(row) if row else None

    def token_hash(self, robot_id: str) -> str | None:
        return self._session.execute(select(_ROBOTS.c.token_hash).where(_ROBOTS.c.robot_id == robot_id)).scalar_one_or_none()

    def set_tokens(self, robot_id: str, **values: Any) -> None:
        """Rotation / revocation: ``token_hash``, ``previous_token_hash``, ``previous_token_expires_at``, ``tokens_revoked_at``."""
        self._session.execute(update(RobotRow).where(RobotRow.robot_id == robot_id).values(**values))

    def lock(self, robot_id: str) -> None:
        """Hold this robot's row lock until commit (PostgreSQL; SQLite's writer is already alone)."""
        self._session.execute(select(_ROBOTS.c.robot_id).where(_ROBOTS.c.robot_id == robot_id).with_for_update())

    def allocate_revisions(self, counts: Mapping[str, int]) -> dict[str, range]:
        """Reserve ``counts[robot]`` consecutive revisions of each robot. Rows are locked in robot id
        order (no deadlock between two multi-robot writers) and stay locked until commit, so a
        robot's revisions become visible in the order they were handed out."""
        wanted = {r: n for r, n in counts.items() if n > 0}
        if not wanted:
            return {}
        robots = sorted(wanted)
        current: dict[str, int] = {}
        for chunk in _chunks(robots):
            stmt = select(_ROBOTS.c.robot_id, _ROBOTS.c.task_revision).where(_ROBOTS.c.robot_id.in_(chunk))
            current.update(_core(self._session, stmt.order_by(_ROBOTS.c.robot_id).with_for_update()).tuples().all())
        missing = [r for r in robots if r not in current]
        if missing:
            raise LookupError(f"robot {missing[0]} is not registered")
        update_by_key(
            self._session, _ROBOTS, "robot_id", [{"robot_id": r, "task_revision": current[r] + wanted[r]} for r in robots]
        )
        return {r: range(current[r] + 1, current[r] + wanted[r] + 1) for r in robots}

    def revisions(self) -> dict[str, int]:
        """Every robot's newest task revision: one scan of a table as small as the fleet."""
        return dict(_core(self._session, select(_ROBOTS.c.robot_id, _ROBOTS.c.task_revision)).tuples().all())

    def list(self) -> list[RobotRecord]:
        rows = self._session.execute(select(*_ROBOT_COLUMNS).order_by(_ROBOTS.c.robot_id))
        return [_robot(r) for r in rows]

    def existing_ids(self, robot_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(list(robot_ids)):
            found.update(self._session.execute(select(RobotRow.robot_id).where(RobotRow.robot_id.in_(chunk))).scalars())
        return found

    def touch_many(self, seen: Mapping[str, datetime]) -> None:
        """Batched "last seen" (one executemany): never moves a robot's time backwards, so two
        API processes flushing in any order agree."""
        if not seen:
            return
        stmt = (
            update(RobotRow)
            .where(RobotRow.robot_id == bindparam("rid"))
            .where((RobotRow.last_seen_at.is_(None)) | (RobotRow.last_seen_at < bindparam("seen")))
            .values(last_seen_at=bindparam("seen"))
            .execution_options(synchronize_session=False)
        )
        self._session.connection().execute(stmt, [{"rid": r, "seen": t} for r, t in sorted(seen.items())])


_ROBOTS = RobotRow.__table__
_ROBOT_COLUMNS = (_ROBOTS.c.robot_id, _ROBOTS.c.name, _ROBOTS.c.created_at, _ROBOTS.c.last_seen_at, _ROBOTS.c.task_revision,
                  _ROBOTS.c.previous_token_expires_at, _ROBOTS.c.tokens_revoked_at)


def _robot(row: Any) -> RobotRecord:
    return RobotRecord(row.robot_id, row.name, row.created_at, row.last_seen_at, row.task_revision,
                       row.previous_token_expires_at, row.tokens_revoked_at)


# ---------------------------------------------------------------- orders and batches


class OrderRepository:
    def __init__(self, session: Session):
        self._session = session

    def add(self, order: Order) -> None:
        with _unique("order"):
            self._add(order)

    def _add(self, order: Order) -> None:
        self._session.add(
            OrderRow(
                order_id=order.order_id,
                scene=order.scene,
                sub_scene=order.sub_scene,
                skills=list(order.skills),
                requirements=order.requirements.to_dict(),
                priority=order.priority,
                created_by=order.created_by,
                created_at=order.created_at,
            )
        )
        self._session.flush()

    def get(self, order_id: str, *, lock: bool = False) -> Order | None:
        """With ``lock``, the order's row stays locked until commit: writers of an order's
        unassigned tasks (planning, dispatch, batch review, cloud moves) take it first."""
        row = self._session.get(OrderRow, order_id, with_for_update=lock or None)
        return _order(row) if row else None

    def list(self, limit: int, offset: int) -> list[Order]:
        stmt = select(OrderRow).order_by(OrderRow.created_at, OrderRow.order_id).limit(limit).offset(offset)
        return [_order(r) for r in self._session.execute(stmt).scalars()]

    def ids(self) -> list[str]:
        return list(self._session.execute(select(OrderRow.order_id)).scalars())

    def requirements_for(self, order_ids: Iterable[str]) -> dict[str, Requirements]:
        wanted = sorted(set(order_ids))
        out: dict[str, Requirements] = {}
        for chunk in _chunks(wanted):
            rows = _core(self._session, select(_ORDERS.c.order_id, _ORDERS.c.requirements).where(_ORDERS.c.order_id.in_(chunk)))
            out.update({oid: Requirements.from_dict(req) for oid, req in rows})
        return out


def _order(row: OrderRow) -> Order:
    return Order(
        order_id=row.order_id,
        scene=row.scene,
        sub_scene=row.sub_scene,
        skills=tuple(row.skills),
        requirements=Requirements.from_dict(row.requirements),
        priority=row.priority,
        created_by=row.created_by,
        created_at=row.created_at,
    )


class BatchRepository:
    def __init__(self, session: Session):
        self._session = session

    def add_many(self, batches: Sequence[Batch]) -> None:
        if not batches:
            return
        with _unique("batch"):
            self._insert(batches)

    def _insert(self, batches: Sequence[Batch]) -> None:
        insert_rows(
            self._session,
            BatchRow.__table__,
            [
                {
                    "batch_id": b.batch_id,
                    "order_id": b.order_id,
                    "scene": b.scene,
                    "sub_scene": b.sub_scene,
                    "skills": list(b.skills),
                    "task_count": b.task_count,
                    "duration_seconds": float(b.duration_seconds),
                    "topics": list(b.topics),
                    "created_at": b.created_at,
                }
                for b in batches
            ],
        )

    def get(self, batch_id: str) -> Batch | None:
        row = self._session.get(BatchRow, batch_id)
        return _batch(row) if row else None

    def list(self, order_id: str | None = None) -> list[Batch]:
        stmt = select(BatchRow).order_by(BatchRow.created_at, BatchRow.batch_id)
        if order_id is not None:
            stmt = stmt.where(BatchRow.order_id == order_id)
        return [_batch(r) for r in self._session.execute(stmt).scalars()]

    def any_for_order(self, order_id: str) -> bool:
        return self._session.execute(select(BatchRow.batch_id).where(BatchRow.order_id == order_id).limit(1)).first() is not None


def _batch(row: BatchRow) -> Batch:
    return Batch(
        batch_id=row.batch_id,
        order_id=row.order_id,
        scene=row.scene,
        sub_scene=row.sub_scene,
        skills=tuple(row.skills),
        task_count=row.task_count,
        duration_seconds=row.duration_seconds,
        topics=tuple(row.topics),
        created_at=row.created_at,
    )


# ---------------------------------------------------------------- tasks

# Task and event reads go through Core rows: no ORM identity map to go stale after the bulk
# UPDATEs below, and no per-row ORM object cost on big pages.
_TASKS = TaskRow.__table__
_EVENTS = EventRow.__table__
_ORDERS = OrderRow.__table__
_COUNTERS = RevisionCounterRow.__table__

# Columns a task change may touch; everything else is fixed at planning time.
_MUTABLE_TASK_COLUMNS = (
    "status",
    "robot_id",
    "data_collector_id",
    "config_path",
    "dataset_path",
    "failure_reason",
    "updated_at",
)


class TaskRepository:
    """Revisions are per robot (``RobotRepository.allocate_revisions``): a change of an assigned
    task takes its robot's next revision (and that robot's row lock); an unassigned task has 0."""

    def __init__(self, session: Session, robots: RobotRepository):
        self._session = session
        self._robots = robots

    def _revisions(self, tasks: Sequence[Task]) -> list[int]:
        """The new revision of each task: its robot's next one, 0 while unassigned."""
        counts: dict[str, int] = defaultdict(int)
        for t in tasks:
            if t.robot_id is not None:
                counts[t.robot_id] += 1
        ranges = {r: iter(rng) for r, rng in self._robots.allocate_revisions(counts).items()}
        return [next(ranges[t.robot_id]) if t.robot_id is not None else 0 for t in tasks]

    def add_many(self, tasks: Sequence[Task]) -> list[TaskRecord]:
        """Insert new tasks in one multi-row INSERT."""
        if not tasks:
            return []
        revisions = self._revisions(tasks)
        with _unique("task"):
            self._insert(tasks, revisions)
        return [TaskRecord(t, rev) for t, rev in zip(tasks, revisions)]

    def _insert(self, tasks: Sequence[Task], revisions: Sequence[int]) -> None:
        insert_rows(
            self._session,
            _TASKS,
            [
                {
                    "task_id": t.task_id,
                    "order_id": t.order_id,
                    "batch_id": t.batch_id,
                    "scene": t.scene,
                    "sub_scene": t.sub_scene,
                    "skills": list(t.skills),
                    "duration_seconds": float(t.duration_seconds),
                    "topics": list(t.topics),
                    "priority": t.priority,
                    "status": t.status.value,
                    "robot_id": t.robot_id,
                    "data_collector_id": t.data_collector_id,
                    "config_path": t.config_path,
                    "dataset_path": t.dataset_path,
                    "failure_reason": t.failure_reason,
                    "created_at": t.created_at,
                    "updated_at": t.updated_at,
                    "revision": rev,
                }
                for t, rev in zip(tasks, revisions)
            ],
        )

    def save(self, tasks: Sequence[Task], *, echo: bool = True) -> list[TaskRecord]:
        """Write back changed tasks (status, assignment, recorder paths). An assigned task takes
        its robot's next revision; an unassigned one keeps revision 0.

        ``echo=False`` is for changes the robot itself reported: the tasks keep their revisions,
        so the robot's pull never hands it its own news back (the edge ignores such echoes
        anyway) and its long-poll is not woken by its own pushes. Returns no records then."""
        if not tasks:
            return []
        revisions = self._revisions(tasks) if echo else None
        rows = []
        for i, task in enumerate(tasks):
            row = {col: getattr(task, col) for col in _MUTABLE_TASK_COLUMNS}
            row["status"] = task.status.value
            if revisions is not None:
                row["revision"] = revisions[i]
            row["task_id"] = task.task_id
            rows.append(row)
        update_by_key(self._session, _TASKS, "task_id", rows)
        return [TaskRecord(t, rev) for t, rev in zip(tasks, revisions)] if revisions is not None else []

    def get(self, task_id: str, *, lock: bool = False) -> TaskRecord | None:
        """With ``lock``, the task's row stays locked until commit."""
        stmt = select(_TASKS).where(_TASKS.c.task_id == task_id)
        row = _core(self._session, stmt.with_for_update() if lock else stmt).first()
        return _task(row) if row else None

    def get_many(self, task_ids: Sequence[str], *, robot_id: str | None = None, lock: bool = False) -> dict[str, TaskRecord]:
        """Tasks by id; with ``robot_id``, only those assigned to that robot. With ``lock`` their
        rows stay locked until commit, taken in task id order (two writers of overlapping sets
        never wait on each other in a cycle)."""
        found: dict[str, TaskRecord] = {}
        for chunk in _chunks(sorted(set(task_ids))):
            stmt = select(_TASKS).where(_TASKS.c.task_id.in_(chunk))
            if robot_id is not None:
                stmt = stmt.where(_TASKS.c.robot_id == robot_id)
            if lock:
                stmt = stmt.order_by(_TASKS.c.task_id).with_for_update()
            for row in _core(self._session, stmt):
                found[row.task_id] = _task(row)
        return found

    def unassigned_pending(self, order_id: str, *, review_statuses: Sequence[str] | None = None) -> list[str]:
        """The order's unassigned PENDING tasks; with ``review_statuses``, only of batches in one of them."""
        stmt = (
            select(TaskRow.task_id)
            .where(TaskRow.order_id == order_id, TaskRow.robot_id.is_(None), TaskRow.status == TaskStatus.PENDING.value)
            .order_by(TaskRow.created_at, TaskRow.task_id)
        )
        if review_statuses is not None:
            stmt = stmt.join(BatchRow, BatchRow.batch_id == TaskRow.batch_id).where(BatchRow.review_status.in_(list(review_statuses)))
        return list(self._session.execute(stmt).scalars())

    def assign(self, assignments: Mapping[str, str], assigned_at: datetime) -> dict[str, int]:
        """Bulk-assign tasks to robots (one executemany); returns each task's new revision (its
        robot's next one)."""
        if not assignments:
            return {}
        ranges = {r: iter(rng) for r, rng in self._robots.allocate_revisions(Counter(assignments.values())).items()}
        new_revisions = {task_id: next(ranges[robot_id]) for task_id, robot_id in assignments.items()}
        update_by_key(
            self._session,
            _TASKS,
            "task_id",
            [{"task_id": task_id, "robot_id": robot_id, "revision": new_revisions[task_id]} for task_id, robot_id in assignments.items()],
            constants={"updated_at": assigned_at},
        )
        return new_revisions

    def open_load_by_robot(self) -> dict[str, int]:
        """How many non-terminal tasks each robot holds (the load round-robin evens out)."""
        open_statuses = [s.value for s in TaskStatus if not s.terminal]
        stmt = (
            select(TaskRow.robot_id, func.count())
            .where(TaskRow.robot_id.is_not(None), TaskRow.status.in_(open_statuses))
            .group_by(TaskRow.robot_id)
        )
        return {robot_id: count for robot_id, count in self._session.execute(stmt)}

    def changed_for_robot(self, robot_id: str, after: int, limit: int) -> list[TaskRecord]:
        stmt = (
            select(_TASKS)
            .where(_TASKS.c.robot_id == robot_id, _TASKS.c.revision > after)
            .order_by(_TASKS.c.revision)
            .limit(limit)
        )
        return [_task(r) for r in _core(self._session, stmt)]

    def list(self, filters: TaskFilter, limit: int, offset: int) -> list[TaskRecord]:
        stmt = _filtered(select(_TASKS), filters).order_by(_TASKS.c.created_at, _TASKS.c.task_id).limit(limit).offset(offset)
        return [_task(r) for r in self._session.execute(stmt)]

    def status_counts(self, filters: TaskFilter = TaskFilter()) -> dict[TaskStatus, int]:
        stmt = _filtered(select(TaskRow.status, func.count()), filters).group_by(TaskRow.status)
        return {TaskStatus(status): count for status, count in self._session.execute(stmt)}

    def status_counts_by(self, column: str, keys: Sequence[str]) -> dict[str, dict[TaskStatus, int]]:
        """Per-order (``column="order_id"``) or per-batch status counts, for roll-ups of a page."""
        col = getattr(TaskRow, column)
        out: dict[str, dict[TaskStatus, int]] = defaultdict(dict)
        for chunk in _chunks(list(keys)):
            stmt = select(col, TaskRow.status, func.count()).where(col.in_(chunk)).group_by(col, TaskRow.status)
            for key, status, count in self._session.execute(stmt):
                out[key][TaskStatus(status)] = count
        return dict(out)

    def status_counts_per_order(self) -> dict[str, dict[TaskStatus, int]]:
        """Every order's status counts in one GROUP BY (for metrics; cost grows with the store)."""
        out: dict[str, dict[TaskStatus, int]] = defaultdict(dict)
        stmt = select(TaskRow.order_id, TaskRow.status, func.count()).group_by(TaskRow.order_id, TaskRow.status)
        for order_id, status, count in self._session.execute(stmt):
            out[order_id][TaskStatus(status)] = count
        return dict(out)

    def count(self) -> int:
        return self._session.execute(select(func.count()).select_from(TaskRow)).scalar_one()


def _filtered(stmt: Any, f: TaskFilter) -> Any:
    if f.order_id is not None:
        stmt = stmt.where(TaskRow.order_id == f.order_id)
    if f.batch_id is not None:
        stmt = stmt.where(TaskRow.batch_id == f.batch_id)
    if f.robot_id is not None:
        stmt = stmt.where(TaskRow.robot_id == f.robot_id)
    if f.status is not None:
        stmt = stmt.where(TaskRow.status == f.status.value)
    return stmt


def _task(row: Any) -> TaskRecord:
    task = Task(
        task_id=row.task_id,
        order_id=row.order_id,
        batch_id=row.batch_id,
        scene=row.scene,
        sub_scene=row.sub_scene,
        skills=tuple(row.skills),
        duration_seconds=row.duration_seconds,
        topics=tuple(row.topics),
        priority=row.priority,
        status=TaskStatus(row.status),
        robot_id=row.robot_id,
        data_collector_id=row.data_collector_id,
        config_path=row.config_path,
        dataset_path=row.dataset_path,
        failure_reason=row.failure_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
    return TaskRecord(task, row.revision)


# ---------------------------------------------------------------- events


class EventRepository:
    def __init__(self, session: Session):
        self._session = session

    def existing_ids(self, event_ids: Sequence[str], robot_id: str) -> set[str]:
        """Which of ``event_ids`` this robot already sent (event ids are scoped per robot)."""
        found: set[str] = set()
        for chunk in _chunks(sorted(set(event_ids))):
            stmt = select(_EVENTS.c.event_id).where(_EVENTS.c.robot_id == robot_id, _EVENTS.c.event_id.in_(chunk))
            found.update(_core(self._session, stmt).scalars())
        return found

    def add_many(self, events: Sequence[EventRecord]) -> None:
        """Insert in the given order (unpublished: ``seq`` is NULL until :meth:`publish`)."""
        if not events:
            return
        with _unique("event"):
            self._insert(events)

    def _insert(self, events: Sequence[EventRecord]) -> None:
        insert_rows(
            self._session,
            _EVENTS,
            [
                {
                    "event_id": e.event_id,
                    "task_id": e.task_id,
                    "robot_id": e.robot_id,
                    "status": e.status.value,
                    "occurred_at": e.occurred_at,
                    "received_at": e.received_at,
                    "data": e.data,
                }
                for e in events
            ],
        )

    def has_unpublished(self) -> bool:
        """One probe of the partial index of unpublished events."""
        stmt = select(_EVENTS.c.id).where(_EVENTS.c.seq.is_(None)).limit(1)
        return _core(self._session, stmt).first() is not None

    def publish(self, limit: int = 10_000) -> int:
        """Give committed, unpublished events the next consecutive seqs in id order. The caller
        commits. The ``events`` counter row stays locked until then, so publishers take turns and
        seqs become visible in order and without holes (see ``schema.EventRow``)."""
        counter = _COUNTERS.c.value
        last = self._session.execute(
            select(counter).where(_COUNTERS.c.name == EVENT_SEQ_COUNTER).with_for_update()
        ).scalar_one()
        # Read after the lock: on PostgreSQL (read committed) this statement sees every commit up
        # to now, including the previous publisher's.
        ids = list(
            self._session.execute(select(_EVENTS.c.id).where(_EVENTS.c.seq.is_(None)).order_by(_EVENTS.c.id).limit(limit)).scalars()
        )
        if not ids:
            return 0
        update_by_key(self._session, _EVENTS, "id", [{"id": i, "seq": last + n} for n, i in enumerate(ids, start=1)])
        self._session.execute(
            update(_COUNTERS).where(_COUNTERS.c.name == EVENT_SEQ_COUNTER).values(value=last + len(ids))
        )
        return len(ids)

    def after(self, seq: int, limit: int) -> list[EventRecord]:
        """The sensor feed (published events only): an index range scan on ``ux_events_seq``, cost
        proportional to ``limit``."""
        stmt = select(_EVENTS).where(_EVENTS.c.seq > seq).order_by(_EVENTS.c.seq).limit(limit)
        return [
            EventRecord(
                seq=r.seq,
                event_id=r.event_id,
                task_id=r.task_id,
                robot_id=r.robot_id,
                status=TaskStatus(r.status),
                occurred_at=r.occurred_at,
                received_at=r.received_at,
                data=dict(r.data or {}),
            )
            for r in _core(self._session, stmt)
        ]

    def count(self) -> int:
        return self._session.execute(select(func.count()).select_from(EventRow)).scalar_one()


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
        with _unique("dataset"):
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
