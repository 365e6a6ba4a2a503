"""One SQLite helper for the project's small local databases (the edge agent's task DB, the edge
cache index, the S3 uploader's state): WAL, explicit write transactions, and a schema version
kept in ``PRAGMA user_version`` with ordered migrations.

Standard library only and no Dagster, Ray or Daft: the edge agent uses it on robots.

    db = SQLiteDB(path, migrations=[MIGRATION_1, MIGRATION_2], name="upload state")
    with db.transaction() as conn:      # BEGIN IMMEDIATE ... COMMIT (ROLLBACK on an error)
        conn.execute("INSERT ...")
    rows = db.query("SELECT ...")       # one autocommit statement

**Schema versions.** ``migrations[i]`` brings the schema from version ``i`` to ``i + 1``. Opening
a database applies, in one transaction, every migration above its ``user_version``, then sets the
version; a database whose version is newer than the code is refused (:class:`SchemaTooNew`),
never touched. Version 1 must be idempotent (``CREATE TABLE IF NOT EXISTS``) so that a database
written before versions existed (``user_version`` 0 with its tables in place) adopts it.

**Connections.** ``per_thread=False`` (default): one connection behind a lock, shared by the
process's threads. ``per_thread=True``: one connection per thread (readers never wait for each
other). Either way a forked child opens its own connection instead of using its parent's.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Union

Migration = Union[str, Callable[[sqlite3.Connection], None]]
Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]


class SchemaTooNew(RuntimeError):
    """The database was written by newer code (a higher schema version): refused, not touched."""


def _statements(script: str) -> list[str]:
    """A migration script's statements (split on ';': migrations hold DDL, not triggers)."""
    return [s.strip() for s in script.split(";") if s.strip()]


class SQLiteDB:
    """One SQLite file with a versioned schema (see the module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        migrations: Sequence[Migration],
        name: str = "database",
        synchronous: Synchronous = "NORMAL",
        busy_timeout_s: float = 30.0,
        require_wal: bool = False,
        per_thread: bool = False,
        row_factory: Any = sqlite3.Row,
    ):
        if not migrations:
            raise ValueError("a database needs at least one migration (its version 1 schema)")
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, got {synchronous!r}")
        self.path = Path(path)
        self.name = name
        self.migrations = tuple(migrations)
        self.synchronous = synchronous
        self.busy_timeout_s = busy_timeout_s
        self.per_thread = per_thread
        self.row_factory = row_factory
        self._lock = threading.RLock()
        self._local = threading.local()
        self._shared: tuple[int, sqlite3.Connection] | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connection()
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if require_wal and str(mode).lower() != "wal":
            raise RuntimeError(f"SQLite refused WAL mode for {self.name} {self.path} (got {mode})")
        self._migrate()

    @property
    def schema_version(self) -> int:
        """The version this code writes (the number of migrations)."""
        return len(self.migrations)

    def __repr__(self) -> str:
        return f"SQLiteDB({str(self.path)!r}, name={self.name!r}, schema_version={self.schema_version})"

    # --- connections

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=not self._shareable)
        conn.row_factory = self.row_factory
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
        return conn

    @property
    def _shareable(self) -> bool:
        return not self.per_thread

    def _connection(self) -> sqlite3.Connection:
        pid = os.getpid()
        if self.per_thread:
            if getattr(self._local, "pid", None) != pid:
                self._local.conn, self._local.pid = self._connect(), pid
            return self._local.conn
        with self._lock:
            if self._shared is None or self._shared[0] != pid:
                self._shared = (pid, self._connect())
            return self._shared[1]

    @contextmanager
    def _using(self) -> Iterator[sqlite3.Connection]:
        if self.per_thread:
            yield self._connection()
        else:
            with self._lock:
                yield self._connection()

    # --- use

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken with BEGIN IMMEDIATE (the write lock up front: concurrent
        writers queue instead of failing on an upgrade); committed on success, rolled back on an error."""
        with self._using() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection, for reads (held under the lock when shared)."""
        with self._using() as conn:
            yield conn

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """Run one statement (autocommit) and return its rows."""
        with self._using() as conn:
            return conn.execute(sql, tuple(args)).fetchall()

    def pragma(self, name: str) -> Any:
        with self._using() as conn:
            return conn.execute(f"PRAGMA {name}").fetchone()[0]

    def close(self) -> None:
        """Close this process's connection (the calling thread's, when per thread)."""
        if self.per_thread:
            conn = getattr(self._local, "conn", None)
            if conn is not None and self._local.pid == os.getpid():
                conn.close()
            self._local.__dict__.clear()
            return
        with self._lock:
            if self._shared is not None and self._shared[0] == os.getpid():
                self._shared[1].close()
            self._shared = None

    # --- schema

    def _migrate(self) -> None:
        with self.transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > self.schema_version:
                raise SchemaTooNew(
                    f"{self.name} {self.path} has schema version {version}, newer than this code's {self.schema_version}: "
                    "run the newer version, or move the file away to start afresh"
                )
            for migration in self.migrations[version:]:
                if callable(migration):
                    migration(conn)
                else:
                    for statement in _statements(migration):
                        conn.execute(statement)
            if version != self.schema_version:
                conn.execute(f"PRAGMA user_version = {self.schema_version}")
