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
from datetime import datetime
from pathlib import Path
from typing import Any

from axon_dagster.domain import (
    IllegalTransitionError,
    Task,
    TaskStatus,
    rollup,
    transition_event_id,
    utcnow,
)
from axon_dagster.storage.sqlite import SQLiteDB

from .errors import UnknownTask
from .records import (  # noqa: F401  (re-exported: the agent's modules import them from here)
    LocalTask,
    OutboxBacklog,
    OutboxEvent,
    PullOutcome,
    TransitionOutcome,
    _grant,
    _iso,
    _parse_pulled,
    _parse_time,
)
from .schema import MIGRATIONS, SCHEMA_VERSION  # noqa: F401

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000
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


