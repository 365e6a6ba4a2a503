"""The S3 multipart uploader's state: ``state_dir/uploads.db`` (in-progress uploads, their finished
parts, verified objects; schema-versioned through :class:`~..sqlite.SQLiteDB`) and a lock file per
key so that one uploader at a time works on a key across processes."""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..sqlite import SQLiteDB


@dataclass(frozen=True)
class UploadRow:
    upload_id: str
    sha256: str
    size: int
    part_size: int


@dataclass(frozen=True)
class PartRow:
    etag: str
    checksum: str
    size: int


_STATE_SCHEMA_V1 = """
    CREATE TABLE IF NOT EXISTS uploads (
        bucket TEXT NOT NULL, key TEXT NOT NULL, upload_id TEXT NOT NULL, sha256 TEXT NOT NULL,
        size INTEGER NOT NULL, part_size INTEGER NOT NULL, created_at REAL NOT NULL,
        PRIMARY KEY (bucket, key));
    CREATE TABLE IF NOT EXISTS parts (
        upload_id TEXT NOT NULL, part_number INTEGER NOT NULL, etag TEXT NOT NULL,
        checksum TEXT NOT NULL, size INTEGER NOT NULL, PRIMARY KEY (upload_id, part_number));
    CREATE TABLE IF NOT EXISTS completed (
        bucket TEXT NOT NULL, key TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
        checksum TEXT NOT NULL, verified_at REAL NOT NULL, PRIMARY KEY (bucket, key))
"""
STATE_MIGRATIONS = (_STATE_SCHEMA_V1,)  # version 1 = the unversioned layout before it (adopted as is)


class UploadStateStore:
    """``state_dir/uploads.db``: in-progress uploads, their finished parts, and verified objects
    (schema-versioned through :class:`~.sqlite.SQLiteDB`)."""

    def __init__(self, state_dir: str | os.PathLike):
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "locks").mkdir(exist_ok=True)
        self.path = self.dir / "uploads.db"
        # FULL: a part counts as done only once its row is on disk.
        self._db = SQLiteDB(self.path, migrations=STATE_MIGRATIONS, name="upload state", synchronous="FULL", row_factory=None)

    def close(self) -> None:
        self._db.close()

    def _q(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self._db.query(sql, args)

    def upload(self, bucket: str, key: str) -> UploadRow | None:
        rows = self._q("SELECT upload_id, sha256, size, part_size FROM uploads WHERE bucket = ? AND key = ?", (bucket, key))
        return UploadRow(*rows[0]) if rows else None

    def start(self, bucket: str, key: str, row: UploadRow) -> None:
        self._q(
            "INSERT OR REPLACE INTO uploads VALUES (?, ?, ?, ?, ?, ?, ?)",
            (bucket, key, row.upload_id, row.sha256, row.size, row.part_size, time.time()),
        )

    def parts(self, upload_id: str) -> dict[int, PartRow]:
        rows = self._q("SELECT part_number, etag, checksum, size FROM parts WHERE upload_id = ?", (upload_id,))
        return {n: PartRow(etag, checksum, size) for n, etag, checksum, size in rows}

    def record_part(self, upload_id: str, part_number: int, part: PartRow) -> None:
        self._q("INSERT OR REPLACE INTO parts VALUES (?, ?, ?, ?, ?)", (upload_id, part_number, part.etag, part.checksum, part.size))

    def drop(self, bucket: str, key: str, upload_id: str | None) -> None:
        with self._db.transaction() as db:
            db.execute("DELETE FROM uploads WHERE bucket = ? AND key = ?", (bucket, key))
            if upload_id:
                db.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))

    def complete(self, bucket: str, key: str, sha256: str, size: int, checksum: str, upload_id: str | None) -> None:
        with self._db.transaction() as db:
            db.execute("INSERT OR REPLACE INTO completed VALUES (?, ?, ?, ?, ?, ?)", (bucket, key, sha256, size, checksum, time.time()))
            db.execute("DELETE FROM uploads WHERE bucket = ? AND key = ?", (bucket, key))
            if upload_id:
                db.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))

    def completed_checksum(self, bucket: str, key: str, sha256: str, size: int) -> str | None:
        rows = self._q("SELECT checksum FROM completed WHERE bucket = ? AND key = ? AND sha256 = ? AND size = ?", (bucket, key, sha256, size))
        return rows[0][0] if rows else None

    def in_progress(self) -> list[tuple[str, str, str]]:
        return self._q("SELECT bucket, key, upload_id FROM uploads ORDER BY created_at")

    @contextmanager
    def key_lock(self, bucket: str, key: str) -> Iterator[None]:
        """One uploader per key across processes: a second one waits instead of aborting the
        first one's upload as a stray."""
        name = hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()[:32]
        with open(self.dir / "locks" / f"{name}.lock", "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
