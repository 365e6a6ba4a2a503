"""The robot's task database: one SQLite file in WAL mode.

Tables follow the reference design's edge schema (tasks, orders, batches) plus an ``outbox`` of
status events for the control plane and a small ``sync_state`` key/value table (the pull cursor).

The one rule that makes the agent crash-safe: a local state change and the outbox event that
reports it are written in ONE transaction. A crash therefore never loses an event, and never
leaves a change without its event. Transitions go through ``domain.Task.transition`` so the robot
enforces the same state machine as the cloud.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from axon_dagster.domain import (
    IllegalTransitionError,
    Task,
    TaskStatus,
    rollup,
    transition_event_id,
    utcnow,
    validate_id,
)
from axon_dagster.storage.sqlite import SQLiteDB

from .errors import InvalidRequest, UnknownTask

log = logging.getLogger(__name__)

# Schema versions (PRAGMA user_version, through axon_dagster.storage.sqlite):
# 1: tasks, orders, batches, outbox, sync_state. 2: uploads, upload_parts (axon_edge.upload.state).
SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 5_000

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS orders (
    order_id    TEXT PRIMARY KEY,
    scene       TEXT NOT NULL,
    sub_scene   TEXT,
    skills      TEXT NOT NULL DEFAULT '[]',      -- JSON array
    status      TEXT NOT NULL,                   -- roll-up of this robot's tasks of the order
    created_at  TEXT NOT NULL,
    created_by  TEXT
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id    TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL,
    scene       TEXT NOT NULL,
    sub_scene   TEXT,
    skills      TEXT NOT NULL DEFAULT '[]',      -- JSON array
    status      TEXT NOT NULL,                   -- roll-up of this robot's tasks of the batch
    created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    task_id           TEXT PRIMARY KEY,
    order_id          TEXT NOT NULL,
    batch_id          TEXT NOT NULL,
    scene             TEXT NOT NULL,
    sub_scene         TEXT,
    skills            TEXT NOT NULL DEFAULT '[]',  -- JSON array
    status            TEXT NOT NULL,
    config_path       TEXT,
    dataset_path      TEXT,
    sidecar_path      TEXT,
    robot_id          TEXT,
    data_collector_id TEXT,
    created_at        TEXT NOT NULL,
    ready_at          TEXT,
    assigned_at       TEXT,
    executing_at      TEXT,
    executed_at       TEXT,
    uploaded_at       TEXT,
    uploaded          INTEGER NOT NULL DEFAULT 0,
    metadata          TEXT NOT NULL DEFAULT '{}',  -- JSON object (requirements, cloud status, ...)
    duration_seconds  REAL,
    topics            TEXT NOT NULL DEFAULT '[]',  -- JSON array
    priority          INTEGER NOT NULL DEFAULT 0,
    failure_reason    TEXT,
    cloud_revision    INTEGER NOT NULL DEFAULT 0,
    pending_command   TEXT,                        -- 'start'/'stop' sent to the recorder, not yet recorded
    updated_at        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_tasks_status ON tasks(status);
CREATE INDEX IF NOT EXISTS idx_tasks_uploaded ON tasks(uploaded);
CREATE INDEX IF NOT EXISTS idx_tasks_robot_id ON tasks(robot_id);
CREATE TABLE IF NOT EXISTS outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,  -- delivery order
    event_id     TEXT NOT NULL UNIQUE,
    task_id      TEXT NOT NULL,
    status       TEXT NOT NULL,
    occurred_at  TEXT NOT NULL,
    data         TEXT NOT NULL DEFAULT '{}',         -- JSON object
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    result       TEXT,                               -- applied | duplicate | rejected
    delivered_at TEXT                                -- when the control plane answered for it
);
CREATE INDEX IF NOT EXISTS idx_outbox_undelivered ON outbox(id) WHERE delivered_at IS NULL;
CREATE TABLE IF NOT EXISTS sync_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

_SCHEMA_V2 = """
CREATE TABLE IF NOT EXISTS uploads (
    task_id       TEXT PRIMARY KEY,
    grant_id      TEXT NOT NULL,
    state         TEXT NOT NULL,                     -- uploading | completed | failed
    bytes_sent    INTEGER NOT NULL DEFAULT 0,        -- part bytes confirmed by the store, sent by this robot
    parts_sent    INTEGER NOT NULL DEFAULT 0,
    parts_skipped INTEGER NOT NULL DEFAULT 0,        -- found done (plan's done_parts), not sent again
    retries       INTEGER NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    started_at    TEXT,
    completed_at  TEXT,
    updated_at    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS upload_parts (
    task_id     TEXT NOT NULL,
    file_name   TEXT NOT NULL,
    upload_id   TEXT NOT NULL,                       -- the backend's multipart upload id
    number      INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    md5         TEXT NOT NULL,
    etag        TEXT NOT NULL,
    verified_at TEXT NOT NULL,
    PRIMARY KEY (task_id, file_name, upload_id, number)
);
"""

MIGRATIONS = (_SCHEMA_V1, _SCHEMA_V2)

PULL_CURSOR_KEY = "pull_cursor"

# Which timestamp column each status stamps.
_STATUS_TIMESTAMP = {
    TaskStatus.READY: "ready_at",
    TaskStatus.ASSIGNED: "assigned_at",
    TaskStatus.EXECUTING: "executing_at",
    TaskStatus.EXECUTED: "executed_at",
    TaskStatus.UPLOADED: "uploaded_at",
}
# Columns a transition may set besides status and timestamps; anything else is a programming error.
_TRANSITION_COLUMNS = frozenset({"config_path", "dataset_path", "sidecar_path", "data_collector_id"})
# Moves only the cloud makes; a pulled task carrying one of these is applied locally.
CLOUD_SIDE_STATUSES = frozenset({TaskStatus.UPLOADED, TaskStatus.CANCELLED, TaskStatus.FAILED})


def _iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat()


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class LocalTask:
    """A task as the robot holds it."""

    task_id: str
    order_id: str
    batch_id: str
    scene: str
    sub_scene: str
    skills: tuple[str, ...]
    status: TaskStatus
    duration_seconds: float | None
    topics: tuple[str, ...]
    priority: int
    robot_id: str | None
    data_collector_id: str | None
    config_path: str | None
    dataset_path: str | None
    sidecar_path: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    ready_at: datetime | None
    assigned_at: datetime | None
    executing_at: datetime | None
    executed_at: datetime | None
    uploaded_at: datetime | None
    uploaded: bool
    metadata: dict[str, Any]
    cloud_revision: int
    pending_command: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "LocalTask":
        return cls(
            task_id=row["task_id"],
            order_id=row["order_id"],
            batch_id=row["batch_id"],
            scene=row["scene"],
            sub_scene=row["sub_scene"] or "",
            skills=tuple(json.loads(row["skills"])),
            status=TaskStatus(row["status"]),
            duration_seconds=row["duration_seconds"],
            topics=tuple(json.loads(row["topics"])),
            priority=row["priority"],
            robot_id=row["robot_id"],
            data_collector_id=row["data_collector_id"],
            config_path=row["config_path"],
            dataset_path=row["dataset_path"],
            sidecar_path=row["sidecar_path"],
            failure_reason=row["failure_reason"],
            created_at=_parse_time(row["created_at"]),  # type: ignore[arg-type]
            updated_at=_parse_time(row["updated_at"]),  # type: ignore[arg-type]
            ready_at=_parse_time(row["ready_at"]),
            assigned_at=_parse_time(row["assigned_at"]),
            executing_at=_parse_time(row["executing_at"]),
            executed_at=_parse_time(row["executed_at"]),
            uploaded_at=_parse_time(row["uploaded_at"]),
            uploaded=bool(row["uploaded"]),
            metadata=json.loads(row["metadata"]),
            cloud_revision=row["cloud_revision"],
            pending_command=row["pending_command"],
        )

    def to_domain(self) -> Task:
        return Task(
            task_id=self.task_id,
            order_id=self.order_id,
            batch_id=self.batch_id,
            scene=self.scene,
            sub_scene=self.sub_scene,
            skills=self.skills,
            duration_seconds=self.duration_seconds or 60.0,
            topics=self.topics,
            priority=self.priority,
            status=self.status,
            robot_id=self.robot_id,
            data_collector_id=self.data_collector_id,
            config_path=self.config_path,
            dataset_path=self.dataset_path,
            failure_reason=self.failure_reason,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = _iso(value)
            elif isinstance(value, TaskStatus):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out


@dataclass(frozen=True)
class OutboxEvent:
    id: int
    event_id: str
    task_id: str
    status: TaskStatus
    occurred_at: str
    data: dict[str, Any]
    attempts: int
    last_error: str | None
    result: str | None
    delivered_at: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "OutboxEvent":
        return cls(
            id=row["id"],
            event_id=row["event_id"],
            task_id=row["task_id"],
            status=TaskStatus(row["status"]),
            occurred_at=row["occurred_at"],
            data=json.loads(row["data"]),
            attempts=row["attempts"],
            last_error=row["last_error"],
            result=row["result"],
            delivered_at=row["delivered_at"],
        )

    def wire(self) -> dict[str, Any]:
        """The event as ``POST /edge/events`` expects it."""
        return {
            "event_id": self.event_id,
            "task_id": self.task_id,
            "status": self.status.value,
            "occurred_at": self.occurred_at,
            "data": self.data,
        }


@dataclass(frozen=True)
class TransitionOutcome:
    task: LocalTask
    changed: bool  # False: a replay of the state already reached, nothing written
    event_id: str | None = None


@dataclass(frozen=True)
class PullOutcome:
    new_task_ids: list[str] = field(default_factory=list)
    cloud_moves: list[tuple[str, TaskStatus]] = field(default_factory=list)
    cursor: int = 0


@dataclass(frozen=True)
class OutboxBacklog:
    count: int
    oldest_occurred_at: datetime | None
    rejected: int


class EdgeDB:
    """All reads and writes of the robot's state. Thread-safe: one connection behind a lock
    (robots have few writers; SQLite serialises writers anyway)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        # One connection behind a lock; WAL + synchronous=NORMAL is durable across process crashes,
        # only a power cut may lose the last transactions (the outbox replays are idempotent anyway).
        # Every write is one BEGIN IMMEDIATE transaction (the write lock up front: no upgrade deadlocks).
        self._sql = SQLiteDB(
            self.path, migrations=MIGRATIONS, name="edge task database", require_wal=True,
            busy_timeout_s=BUSY_TIMEOUT_MS / 1000,
        )

    def close(self) -> None:
        self._sql.close()

    def _tx(self):
        return self._sql.transaction()

    def write(self):
        """One write transaction (BEGIN IMMEDIATE) for the agent's other stores on this database."""
        return self._sql.transaction()

    def read(self):
        """The connection, for reads (held under the lock)."""
        return self._sql.reading()

    def pragma(self, name: str) -> Any:
        return self._sql.pragma(name)

    # ------------------------------------------------------------------ tasks

    def get_task(self, task_id: str) -> LocalTask:
        with self.read() as conn:
            row = conn.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        if row is None:
            raise UnknownTask(task_id)
        return LocalTask.from_row(row)

    def list_tasks(self, status: TaskStatus | None = None) -> list[LocalTask]:
        query, args = "SELECT * FROM tasks", ()
        if status is not None:
            query, args = query + " WHERE status = ?", (status.value,)
        with self.read() as conn:
            rows = conn.execute(query + " ORDER BY priority DESC, created_at, task_id", args).fetchall()
        return [LocalTask.from_row(r) for r in rows]

    def tasks_with_pending_command(self) -> list[LocalTask]:
        with self.read() as conn:
            rows = conn.execute("SELECT * FROM tasks WHERE pending_command IS NOT NULL").fetchall()
        return [LocalTask.from_row(r) for r in rows]

    def status_counts(self) -> dict[TaskStatus, int]:
        with self.read() as conn:
            rows = conn.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status").fetchall()
        counts = {s: 0 for s in TaskStatus}
        counts.update({TaskStatus(status): n for status, n in rows})
        return counts

    def transition(
        self,
        task_id: str,
        target: TaskStatus,
        *,
        changes: Mapping[str, Any] | None = None,
        event_data: Mapping[str, Any] | None = None,
        reason: str | None = None,
        emit_event: bool = True,
        clear_pending_command: bool = False,
    ) -> TransitionOutcome:
        """Move a task to ``target`` and (unless the cloud made the move) queue its status event,
        in one transaction. A replay of the current status changes nothing; an illegal move raises
        ``IllegalTransitionError`` and changes nothing."""
        target = TaskStatus(target)
        changes = dict(changes or {})
        unknown = set(changes) - _TRANSITION_COLUMNS
        if unknown:
            raise ValueError(f"transition cannot set column(s) {sorted(unknown)}")
        with self._tx() as conn:
            outcome = self._transition_in(
                conn, task_id, target, changes, event_data, reason, emit_event, clear_pending_command
            )
        if outcome.changed:
            log.info(
                "task %s -> %s%s", task_id, target.value, f" (event {outcome.event_id})" if outcome.event_id else ""
            )
        return outcome

    def _transition_in(
        self,
        conn: sqlite3.Connection,
        task_id: str,
        target: TaskStatus,
        changes: dict[str, Any],
        event_data: Mapping[str, Any] | None,
        reason: str | None,
        emit_event: bool,
        clear_pending_command: bool,
        at: datetime | None = None,
    ) -> TransitionOutcome:
        row = conn.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        if row is None:
            raise UnknownTask(task_id)
        current = LocalTask.from_row(row)
        domain_task = current.to_domain()
        now = at or utcnow()
        if not domain_task.transition(target, reason=reason, at=now):
            return TransitionOutcome(task=current, changed=False)
        columns: dict[str, Any] = {"status": target.value, "updated_at": _iso(now), **changes}
        if target in _STATUS_TIMESTAMP:
            columns[_STATUS_TIMESTAMP[target]] = _iso(now)
        if target is TaskStatus.UPLOADED:
            columns["uploaded"] = 1
        if target is TaskStatus.FAILED:
            columns["failure_reason"] = domain_task.failure_reason
        if clear_pending_command:
            columns["pending_command"] = None
        assignments = ", ".join(f"{name} = ?" for name in columns)
        conn.execute(f"UPDATE tasks SET {assignments} WHERE task_id = ?", (*columns.values(), task_id))
        event_id = None
        if emit_event:
            event_id = transition_event_id(task_id, target)
            conn.execute(
                "INSERT INTO outbox (event_id, task_id, status, occurred_at, data) VALUES (?, ?, ?, ?, ?)",
                (event_id, task_id, target.value, _iso(now), json.dumps(dict(event_data or {}), sort_keys=True)),
            )
        self._refresh_rollups(conn, current.order_id, current.batch_id)
        updated = LocalTask.from_row(conn.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone())
        return TransitionOutcome(task=updated, changed=True, event_id=event_id)

    def set_pending_command(self, task_id: str, command: str | None) -> None:
        """Remember that a recorder command is in flight for a task, so a restart can find out
        whether it took effect (see ``EdgeAgent.reconcile``)."""
        with self._tx() as conn:
            cur = conn.execute("UPDATE tasks SET pending_command = ? WHERE task_id = ?", (command, task_id))
            if cur.rowcount == 0:
                raise UnknownTask(task_id)

    def set_config_path(self, task_id: str, config_path: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE tasks SET config_path = ? WHERE task_id = ?", (config_path, task_id))

    def _refresh_rollups(self, conn: sqlite3.Connection, order_id: str, batch_id: str) -> None:
        for table, key, value in (("orders", "order_id", order_id), ("batches", "batch_id", batch_id)):
            statuses = [r[0] for r in conn.execute(f"SELECT status FROM tasks WHERE {key} = ?", (value,))]
            conn.execute(f"UPDATE {table} SET status = ? WHERE {key} = ?", (rollup(statuses).value, value))

    # ------------------------------------------------------------------ pull (cloud -> robot)

    def store_pulled(self, tasks: Sequence[Mapping[str, Any]], cursor: int, robot_id: str) -> PullOutcome:
        """Store one page of pulled tasks and advance the pull cursor, in one transaction.

        New tasks are inserted (PENDING, to be prepared); for known tasks the cloud revision is
        recorded and cloud-side moves (UPLOADED, CANCELLED, FAILED) are applied without an event.
        Statuses the cloud merely echoes back from this robot's own events are ignored: the robot
        is the source of truth for them. A malformed page raises ``InvalidRequest`` and changes
        nothing (the cursor stays, so the page is pulled again once the control plane is fixed).
        """
        parsed = [_parse_pulled(t, robot_id) for t in tasks]
        outcome = PullOutcome(cursor=cursor)
        with self._tx() as conn:
            for task, cloud_status, revision, extra in parsed:
                row = conn.execute("SELECT * FROM tasks WHERE task_id = ?", (task.task_id,)).fetchone()
                if row is None:
                    self._insert_pulled(conn, task, cloud_status, revision, extra)
                    if cloud_status is TaskStatus.PENDING:
                        outcome.new_task_ids.append(task.task_id)
                    continue
                local = LocalTask.from_row(row)
                # The cloud's upload grant for the task's recording ({grant_id, expires_at} or None).
                metadata = {**local.metadata, "cloud_status": cloud_status.value, "upload": _grant(extra.get("upload"))}
                conn.execute(
                    "UPDATE tasks SET cloud_revision = MAX(cloud_revision, ?), metadata = ?, priority = ? "
                    "WHERE task_id = ?",
                    (revision, json.dumps(metadata, sort_keys=True), task.priority, task.task_id),
                )
                if cloud_status in CLOUD_SIDE_STATUSES and cloud_status is not local.status:
                    try:
                        moved = self._transition_in(
                            conn, task.task_id, cloud_status, {}, None, extra.get("failure_reason"), False, False
                        )
                    except IllegalTransitionError as exc:
                        # e.g. cancelled in the cloud while this robot already records it: the robot's
                        # own events will be rejected there and show the conflict; keep recording.
                        log.warning("ignoring cloud-side move of task %s: %s", task.task_id, exc)
                    else:
                        if moved.changed:
                            outcome.cloud_moves.append((task.task_id, cloud_status))
            previous = int(self._get_state(conn, PULL_CURSOR_KEY) or 0)
            conn.execute(
                "INSERT INTO sync_state (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (PULL_CURSOR_KEY, str(max(previous, cursor))),
            )
        for task_id, status in outcome.cloud_moves:
            log.info("task %s -> %s (cloud-side)", task_id, status.value)
        return outcome

    def _insert_pulled(
        self, conn: sqlite3.Connection, task: Task, cloud_status: TaskStatus, revision: int, extra: dict[str, Any]
    ) -> None:
        if cloud_status is not TaskStatus.PENDING:
            # Only happens when this robot lost its database: adopt what the cloud knows.
            log.warning("adopting task %s in cloud status %s (not seen locally before)", task.task_id, cloud_status.value)
        now = _iso(utcnow())
        skills = json.dumps(list(task.skills))
        metadata = {
            "requirements": extra.get("requirements") or {},
            "cloud_status": cloud_status.value,
            "upload": _grant(extra.get("upload")),
        }
        conn.execute(
            "INSERT INTO tasks (task_id, order_id, batch_id, scene, sub_scene, skills, status, config_path, "
            "dataset_path, robot_id, data_collector_id, created_at, uploaded, metadata, duration_seconds, "
            "topics, priority, failure_reason, cloud_revision, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                task.task_id,
                task.order_id,
                task.batch_id,
                task.scene,
                task.sub_scene,
                skills,
                cloud_status.value,
                extra.get("config_path"),
                extra.get("dataset_path"),
                task.robot_id,
                extra.get("data_collector_id"),
                extra.get("created_at") or now,
                1 if cloud_status is TaskStatus.UPLOADED else 0,
                json.dumps(metadata, sort_keys=True),
                task.duration_seconds,
                json.dumps(list(task.topics)),
                task.priority,
                extra.get("failure_reason"),
                revision,
                now,
            ),
        )
        conn.execute(
            "INSERT INTO orders (order_id, scene, sub_scene, skills, status, created_at) VALUES (?, ?, ?, '[]', ?, ?) "
            "ON CONFLICT(order_id) DO NOTHING",
            (task.order_id, task.scene, task.sub_scene, "pending", now),
        )
        order_skills = json.loads(
            conn.execute("SELECT skills FROM orders WHERE order_id = ?", (task.order_id,)).fetchone()[0]
        )
        # The robot only sees the order through its tasks: its skills are those of its batches here.
        merged = order_skills + [s for s in task.skills if s not in order_skills]
        conn.execute("UPDATE orders SET skills = ? WHERE order_id = ?", (json.dumps(merged), task.order_id))
        conn.execute(
            "INSERT INTO batches (batch_id, order_id, scene, sub_scene, skills, status, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(batch_id) DO NOTHING",
            (task.batch_id, task.order_id, task.scene, task.sub_scene, skills, "pending", now),
        )
        self._refresh_rollups(conn, task.order_id, task.batch_id)

    def list_orders(self) -> list[dict[str, Any]]:
        with self.read() as conn:
            rows = conn.execute("SELECT * FROM orders ORDER BY created_at, order_id").fetchall()
        return [{**dict(r), "skills": json.loads(r["skills"])} for r in rows]

    def list_batches(self) -> list[dict[str, Any]]:
        with self.read() as conn:
            rows = conn.execute("SELECT * FROM batches ORDER BY created_at, batch_id").fetchall()
        return [{**dict(r), "skills": json.loads(r["skills"])} for r in rows]

    # ------------------------------------------------------------------ sync state

    @staticmethod
    def _get_state(conn: sqlite3.Connection, key: str) -> str | None:
        row = conn.execute("SELECT value FROM sync_state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def pull_cursor(self) -> int:
        with self.read() as conn:
            return int(self._get_state(conn, PULL_CURSOR_KEY) or 0)

    # ------------------------------------------------------------------ outbox (robot -> cloud)

    def undelivered_events(self, limit: int = 100) -> list[OutboxEvent]:
        """The oldest undelivered events, in the order they happened."""
        with self.read() as conn:
            rows = conn.execute(
                "SELECT * FROM outbox WHERE delivered_at IS NULL ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [OutboxEvent.from_row(r) for r in rows]

    def outbox(self) -> list[OutboxEvent]:
        with self.read() as conn:
            rows = conn.execute("SELECT * FROM outbox ORDER BY id").fetchall()
        return [OutboxEvent.from_row(r) for r in rows]

    def record_delivery(self, results: Sequence[tuple[str, str, str | None]]) -> None:
        """Record the control plane's answers ``(event_id, result, error)``. Applied, duplicate and
        rejected are all final: a rejected event is an illegal transition in the cloud's eyes and
        would be rejected forever, so it is kept for inspection and never blocks later events."""
        now = _iso(utcnow())
        with self._tx() as conn:
            for event_id, result, error in results:
                if result not in ("applied", "duplicate", "rejected"):
                    raise ValueError(f"unknown delivery result {result!r} for event {event_id}")
                conn.execute(
                    "UPDATE outbox SET result = ?, last_error = ?, delivered_at = ?, attempts = attempts + 1 "
                    "WHERE event_id = ? AND delivered_at IS NULL",
                    (result, error, now, event_id),
                )

    def record_delivery_failure(self, event_ids: Sequence[str], error: str) -> None:
        with self._tx() as conn:
            conn.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE event_id = ?",
                [(error, event_id) for event_id in event_ids],
            )

    def outbox_backlog(self) -> OutboxBacklog:
        with self.read() as conn:
            count, oldest = conn.execute(
                "SELECT COUNT(*), MIN(occurred_at) FROM outbox WHERE delivered_at IS NULL"
            ).fetchone()
            rejected = conn.execute("SELECT COUNT(*) FROM outbox WHERE result = 'rejected'").fetchone()[0]
        return OutboxBacklog(count=count, oldest_occurred_at=_parse_time(oldest), rejected=rejected)


def _parse_pulled(raw: Mapping[str, Any], robot_id: str) -> tuple[Task, TaskStatus, int, dict[str, Any]]:
    """Validate one task of a pull page (the control plane's task JSON) into a domain Task."""
    if not isinstance(raw, Mapping):
        raise InvalidRequest(f"pulled task is not an object: {raw!r}")
    try:
        revision = raw["revision"]
        if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
            raise InvalidRequest(f"task {raw.get('task_id')!r}: revision must be a non-negative integer")
        task = Task(
            task_id=raw["task_id"],
            order_id=validate_id(raw["order_id"], "order_id"),
            batch_id=validate_id(raw["batch_id"], "batch_id"),
            scene=raw["scene"],
            sub_scene=raw.get("sub_scene") or "",
            skills=tuple(raw.get("skills") or ()),
            duration_seconds=float(raw.get("duration_seconds") or 60.0),
            topics=tuple(raw.get("topics") or ()),
            priority=int(raw.get("priority") or 0),
            status=TaskStatus(raw["status"]),
            robot_id=raw.get("robot_id"),
        )
    except InvalidRequest:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRequest(f"malformed task in pull page ({type(exc).__name__}: {exc}): {raw!r}") from None
    if task.robot_id not in (None, robot_id):
        raise InvalidRequest(f"pulled task {task.task_id} belongs to robot {task.robot_id}, not {robot_id}")
    task.robot_id = robot_id
    extra = {
        key: raw.get(key)
        for key in ("requirements", "config_path", "dataset_path", "data_collector_id", "failure_reason", "created_at", "upload")
    }
    return task, task.status, revision, extra


def _grant(raw: Any) -> dict[str, str] | None:
    """A pulled task's upload grant as stored (only its id and expiry; anything malformed is none)."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("grant_id"), str) or not raw["grant_id"]:
        return None
    expires_at = raw.get("expires_at")
    return {"grant_id": raw["grant_id"], "expires_at": expires_at if isinstance(expires_at, str) else ""}
