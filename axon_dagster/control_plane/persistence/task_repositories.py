"""Tasks and their events.

Bulk paths (fan-out of an order, dispatch) use one multi-row INSERT/UPDATE per table so 10,000
tasks cost a handful of round trips, not 10,000."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from typing import Any, Mapping, Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from axon_dagster.domain import Task, TaskStatus

from .bulk import insert_rows, update_by_key
from .schema import (
    EVENT_SEQ_COUNTER,
    BatchRow,
    EventRow,
    OrderRow,
    RevisionCounterRow,
    TaskRow,
)
from .fleet_repositories import RobotRepository
from .records import EventRecord, TaskFilter, TaskRecord, chunks, core, unique


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
        with unique("task"):
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
        row = core(self._session, stmt.with_for_update() if lock else stmt).first()
        return _task(row) if row else None

    def get_many(self, task_ids: Sequence[str], *, robot_id: str | None = None, lock: bool = False) -> dict[str, TaskRecord]:
        """Tasks by id; with ``robot_id``, only those assigned to that robot. With ``lock`` their
        rows stay locked until commit, taken in task id order (two writers of overlapping sets
        never wait on each other in a cycle)."""
        found: dict[str, TaskRecord] = {}
        for chunk in chunks(sorted(set(task_ids))):
            stmt = select(_TASKS).where(_TASKS.c.task_id.in_(chunk))
            if robot_id is not None:
                stmt = stmt.where(_TASKS.c.robot_id == robot_id)
            if lock:
                stmt = stmt.order_by(_TASKS.c.task_id).with_for_update()
            for row in core(self._session, stmt):
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
        return [_task(r) for r in core(self._session, stmt)]

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
        for chunk in chunks(list(keys)):
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
        for chunk in chunks(sorted(set(event_ids))):
            stmt = select(_EVENTS.c.event_id).where(_EVENTS.c.robot_id == robot_id, _EVENTS.c.event_id.in_(chunk))
            found.update(core(self._session, stmt).scalars())
        return found

    def add_many(self, events: Sequence[EventRecord]) -> None:
        """Insert in the given order (unpublished: ``seq`` is NULL until :meth:`publish`)."""
        if not events:
            return
        with unique("event"):
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
        return core(self._session, stmt).first() is not None

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
            for r in core(self._session, stmt)
        ]

    def count(self) -> int:
        return self._session.execute(select(func.count()).select_from(EventRow)).scalar_one()
