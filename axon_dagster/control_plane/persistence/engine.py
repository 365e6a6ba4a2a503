"""Engines for the control-plane store: SQLite (embedded default) or PostgreSQL, chosen by URL."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

# Execution option a write transaction sets so SQLite takes its write lock at BEGIN. A deferred
# transaction that reads and then writes fails with SQLITE_BUSY (no waiting) when another writer
# committed in between; BEGIN IMMEDIATE waits for the lock instead (busy_timeout).
SQLITE_BEGIN_OPTION = "axon_sqlite_begin"


# Connections per process (PostgreSQL): size max_connections for replicas x workers x this.
POOL_SIZE = 16


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_directory(url: str) -> Path | None:
    """The directory of a SQLite database file (where the embedded default keeps its other
    secrets, e.g. the upload signing key); None for PostgreSQL or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return None
    return Path(parsed.database).expanduser().resolve().parent


def ping(engine: Engine) -> None:
    """One round trip to the database (the readiness probe); raises when it does not answer."""
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url``: ``sqlite:///path`` (WAL, foreign keys on) or ``postgresql+psycopg://``."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, echo=echo)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":  # plain scheme: psycopg 3 is the driver we ship
            parsed = parsed.set(drivername="postgresql+psycopg")
        # One pooled connection per request, without a pre-ping round trip on every checkout (a
        # request costs the statements it runs). A connection that died with the server fails
        # one request, which SQLAlchemy answers by discarding the pool's stale connections. No
        # overflow: a connection opened past the pool would be closed again after one request (a
        # server process forked per request); requests wait for a pooled one instead (the API
        # runs as many request threads as the pool has connections).
        return create_engine(parsed, echo=echo, pool_size=POOL_SIZE, max_overflow=0, pool_recycle=1800, pool_timeout=30)
    raise ValueError(f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}; use sqlite:/// or postgresql+psycopg://")


def _sqlite_engine(url: str, *, echo: bool) -> Engine:
    parsed = make_url(url)
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, echo=echo, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Let SQLAlchemy's "begin" hook below emit BEGIN itself (pysqlite's own BEGIN is always DEFERRED).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; a crash loses at most the last commits
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA cache_size=-32768")  # 32 MiB of page cache: index upkeep on bulk writes
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine
