"""The shared SQLite helper: schema versions and migrations, refusing newer databases untouched,
write transactions, shared or per-thread connections, a forked child's own connection — and the
upload state converted to it (adopting a database written before it had a version)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from axon_dagster.storage.sqlite import SchemaTooNew, SQLiteDB
from axon_dagster.storage.object_stores.s3_upload_state import STATE_MIGRATIONS, UploadRow, UploadStateStore

V1 = "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"
V2 = "ALTER TABLE items ADD COLUMN size INTEGER NOT NULL DEFAULT 0; CREATE INDEX items_by_name ON items (name)"


def raw(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_a_new_database_gets_every_migration_and_its_version(tmp_path: Path) -> None:
    db = SQLiteDB(tmp_path / "a.db", migrations=[V1, V2], name="test db")
    assert db.pragma("user_version") == 2 == db.schema_version
    assert str(db.pragma("journal_mode")).lower() == "wal"
    with db.transaction() as conn:
        conn.execute("INSERT INTO items (name, size) VALUES ('x', 3)")
    assert [tuple(r) for r in db.query("SELECT name, size FROM items")] == [("x", 3)]


def test_an_older_database_is_migrated_in_order_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    db = SQLiteDB(path, migrations=[V1])
    db.query("INSERT INTO items (name) VALUES ('kept')")
    db.close()
    db = SQLiteDB(path, migrations=[V1, V2])
    assert db.pragma("user_version") == 2
    assert [tuple(r) for r in db.query("SELECT name, size FROM items")] == [("kept", 0)]
    assert raw(path, "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'items_by_name'") == [("items_by_name",)]


def test_a_newer_database_is_refused_and_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    SQLiteDB(path, migrations=[V1, V2]).close()
    before = path.read_bytes()
    with pytest.raises(SchemaTooNew, match="test db .* has schema version 2, newer than this code's 1"):
        SQLiteDB(path, migrations=[V1], name="test db")
    assert path.read_bytes() == before
    assert raw(path, "PRAGMA user_version") == [(2,)]


def test_a_failing_migration_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    SQLiteDB(path, migrations=[V1]).query("INSERT INTO items (name) VALUES ('kept')")
    with pytest.raises(sqlite3.OperationalError):
        SQLiteDB(path, migrations=[V1, "ALTER TABLE items ADD COLUMN size INTEGER; CREATE TABLE broken (("])
    assert raw(path, "PRAGMA user_version") == [(1,)]
    assert [r[1] for r in raw(path, "PRAGMA table_info(items)")] == ["id", "name"]  # the ALTER was rolled back


def test_a_callable_migration(tmp_path: Path) -> None:
    def backfill(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE items ADD COLUMN upper TEXT")
        conn.execute("UPDATE items SET upper = upper(name)")

    path = tmp_path / "a.db"
    SQLiteDB(path, migrations=[V1]).query("INSERT INTO items (name) VALUES ('abc')")
    db = SQLiteDB(path, migrations=[V1, backfill])
    assert [tuple(r) for r in db.query("SELECT upper FROM items")] == [("ABC",)]


def test_a_transaction_rolls_back_on_an_error(tmp_path: Path) -> None:
    db = SQLiteDB(tmp_path / "a.db", migrations=[V1])
    with pytest.raises(RuntimeError):
        with db.transaction() as conn:
            conn.execute("INSERT INTO items (name) VALUES ('gone')")
            raise RuntimeError("boom")
    assert db.query("SELECT COUNT(*) FROM items")[0][0] == 0


@pytest.mark.parametrize("per_thread", [False, True])
def test_threads_write_concurrently_without_losing_rows(tmp_path: Path, per_thread: bool) -> None:
    db = SQLiteDB(tmp_path / "a.db", migrations=[V1], per_thread=per_thread)

    def work(n: int) -> None:
        for i in range(50):
            with db.transaction() as conn:
                count = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
                conn.execute("INSERT INTO items (id, name) VALUES (?, ?)", (count + 1, f"{n}-{i}"))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.query("SELECT COUNT(*), MAX(id) FROM items")[0][:] == (200, 200)


@pytest.mark.filterwarnings("ignore:lance is not fork-safe")  # the child only touches SQLite, then _exit
def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    db = SQLiteDB(tmp_path / "a.db", migrations=[V1])
    db.query("INSERT INTO items (name) VALUES ('parent')")
    parent_conn = db._connection()
    pid = os.fork()
    if pid == 0:  # child: must not reuse the parent's connection object
        try:
            ok = db._connection() is not parent_conn
            db.query("INSERT INTO items (name) VALUES ('child')")
            os._exit(0 if ok else 3)
        except BaseException:
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sorted(r[0] for r in db.query("SELECT name FROM items")) == ["child", "parent"]


def test_at_least_one_migration_is_required(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one migration"):
        SQLiteDB(tmp_path / "a.db", migrations=[])
    assert not (tmp_path / "a.db").exists()


def test_the_helper_imports_nothing_heavy() -> None:
    code = "import sys, axon_dagster.storage.sqlite; print(sorted(m for m in ('dagster', 'ray', 'daft', 'boto3', 'pyarrow') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


# --------------------------------------------------------------------------- the upload state


def test_the_upload_state_is_versioned(tmp_path: Path) -> None:
    state = UploadStateStore(tmp_path / "s")
    assert raw(state.path, "PRAGMA user_version") == [(len(STATE_MIGRATIONS),)] == [(1,)]


def test_an_unversioned_upload_state_from_before_is_adopted_with_its_rows(tmp_path: Path) -> None:
    """The layout written before versions existed (user_version 0): opened as version 1, rows kept."""
    (tmp_path / "s").mkdir()
    path = tmp_path / "s" / "uploads.db"
    conn = sqlite3.connect(path)
    conn.executescript(STATE_MIGRATIONS[0])
    conn.execute("INSERT INTO uploads VALUES ('b', 'k', 'up-1', ?, 10, 5, 0)", ("a" * 64,))
    conn.commit()
    conn.close()
    assert raw(path, "PRAGMA user_version") == [(0,)]
    state = UploadStateStore(tmp_path / "s")
    assert state.upload("b", "k") == UploadRow("up-1", "a" * 64, 10, 5)
    assert raw(path, "PRAGMA user_version") == [(1,)]


def test_an_upload_state_from_newer_code_is_refused(tmp_path: Path) -> None:
    state = UploadStateStore(tmp_path / "s")
    state.close()
    conn = sqlite3.connect(state.path)
    conn.execute("PRAGMA user_version = 9")
    conn.close()
    with pytest.raises(SchemaTooNew, match="upload state .* schema version 9"):
        UploadStateStore(tmp_path / "s")
