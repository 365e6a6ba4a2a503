"""The edge cache's index: one SQLite file (WAL) with a row per cached entry, schema-versioned.

Entry paths follow from ids (``datasets/<id>/``); the row holds state, size, digest, access order
and, for a robot's raw recording, its format and manifest.
"""

from __future__ import annotations

import builtins
import json
import logging
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from ...domain.ids import validate_id
from ..sqlite import SchemaTooNew, SQLiteDB
from .files import _process_alive, _tree_size
from .model import EVICTABLE_STATES, CachedDataset, CacheState, CacheUsage, EdgeCacheError, UnknownDataset

log = logging.getLogger(__name__)

# Schema versions (PRAGMA user_version, through axon_dagster.storage.sqlite):
# 1: entries. 2: entries.recording_format and entries.manifest (a robot's raw recordings).
MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS entries (
        dataset_id TEXT PRIMARY KEY,
        state TEXT NOT NULL CHECK (state IN ('cached', 'uploaded', 'rejected')),
        size_bytes INTEGER NOT NULL,
        dataset_digest TEXT NOT NULL,
        cloud_uri TEXT,
        verified_digest TEXT,
        staged_at REAL NOT NULL,
        staged_seq INTEGER NOT NULL,
        last_access_at REAL NOT NULL,
        access_seq INTEGER NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS entries_by_state ON entries (state)
    """,
    """
    ALTER TABLE entries ADD COLUMN recording_format TEXT;
    ALTER TABLE entries ADD COLUMN manifest TEXT
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class CacheIndex:
    """Mixed into :class:`~axon_dagster.storage.edge_cache.EdgeCache`: the index and entry paths."""

    root: Path
    quota_bytes: int | None
    _datasets: Path
    _tmp: Path
    _db: Path

    def get(self, dataset_id: str) -> CachedDataset:
        """The cached dataset; counts as an access for the lru policy."""
        dataset_id = validate_id(dataset_id, "dataset_id")
        with self._tx() as db:
            if db.execute("SELECT 1 FROM entries WHERE dataset_id = ?", (dataset_id,)).fetchone() is None:
                raise UnknownDataset(dataset_id, self.root)
            self._touch(db, dataset_id)
        return self._require(dataset_id)

    def list(self) -> builtins.list[CachedDataset]:
        """Every cached dataset, oldest staged first. Does not count as an access."""
        with self._reading() as db:
            rows = db.execute("SELECT * FROM entries ORDER BY staged_seq").fetchall()
        return [self._to_entry(row) for row in rows]


    def _entry_dir(self, dataset_id: str) -> Path:
        return self._datasets / dataset_id

    def _paths(self, dataset_id: str) -> tuple[Path, Path]:
        entry_dir = self._entry_dir(dataset_id)
        return entry_dir / f"{dataset_id}.lance", entry_dir / f"{dataset_id}.json"


    # ----------------------------------------------------------------- index

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._sql.reading() as db:
            yield db

    def _tx(self):
        """A write transaction; BEGIN IMMEDIATE so concurrent writers (the edge agent's threads, a
        Dagster op) queue instead of failing on upgrade."""
        return self._sql.transaction()

    def _init_db(self) -> None:
        # One connection per thread (and process), kept for the cache's lifetime: opening one costs
        # more than the queries staging makes. WAL + NORMAL (as the rest of the project): a commit
        # survives a process crash; a power loss may roll back the last commits, and every such
        # loss errs on the side of keeping data: a lost "staged" row leaves an entry that is
        # re-adopted only after it verifies, a lost "uploaded"/"rejected" mark keeps the dataset
        # un-evictable, a lost eviction is finished by _recover.
        try:
            self._sql = SQLiteDB(self._db, migrations=MIGRATIONS, name="edge cache index", per_thread=True, busy_timeout_s=30)
        except SchemaTooNew as exc:
            raise EdgeCacheError(str(exc)) from None

    def _recover(self) -> None:
        """Finish what a crashed process left: drop rows of evictable entries whose files were already
        moved away (an interrupted eviction) and delete scratch dirs of processes that are gone."""
        with self._tx() as db:
            for row in db.execute("SELECT dataset_id, state FROM entries").fetchall():
                if self._entry_dir(row["dataset_id"]).exists():
                    continue
                if CacheState(row["state"]) in EVICTABLE_STATES:
                    db.execute("DELETE FROM entries WHERE dataset_id = ?", (row["dataset_id"],))
                    log.info("dropped index row of %s: its eviction was interrupted", row["dataset_id"])
                else:
                    log.error("cached dataset %s is missing from %s (deleted outside the cache?)", row["dataset_id"], self.root)
        for scratch in self._tmp.iterdir():
            pid = scratch.name.split("-", 1)[0]
            if pid.isdigit() and not _process_alive(int(pid)):
                shutil.rmtree(scratch, ignore_errors=True)
                log.info("removed leftover scratch %s", scratch)

    def _index_new(
        self,
        dataset_id: str,
        digest: str,
        dataset_bytes: int | None = None,
        *,
        size_bytes: int | None = None,
        recording_format: str | None = None,
        manifest: dict | None = None,
    ) -> tuple[CachedDataset, CacheUsage]:
        """Index a dataset whose entry directory is in place (``dataset_bytes``: the size of its
        ``.lance`` directory, if known; ``size_bytes``: the whole entry's, for a robot's recording);
        returns its entry and the cache's usage."""
        if size_bytes is None:
            ds, sc = self._paths(dataset_id)
            size_bytes = (_tree_size(ds) if dataset_bytes is None else dataset_bytes) + sc.stat().st_size
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO entries (dataset_id, state, size_bytes, dataset_digest, staged_at, staged_seq, "
                "last_access_at, access_seq, updated_at, recording_format, manifest) SELECT ?, ?, ?, ?, ?, "
                "COALESCE(MAX(staged_seq), 0) + 1, ?, COALESCE(MAX(access_seq), 0) + 1, ?, ?, ? FROM entries",
                (dataset_id, CacheState.CACHED.value, size_bytes, digest, now, now, now, recording_format,
                 json.dumps(manifest, sort_keys=True) if manifest is not None else None),
            )
            row = self._row_or_raise(db, dataset_id)
            used = db.execute("SELECT COALESCE(SUM(size_bytes), 0) FROM entries").fetchone()[0]
        return self._to_entry(row), self._usage_of(used)

    def _touch(self, db: sqlite3.Connection, dataset_id: str) -> None:
        # A logical clock orders accesses exactly, even when wall-clock times tie.
        db.execute(
            "UPDATE entries SET last_access_at = ?, access_seq = (SELECT COALESCE(MAX(access_seq), 0) + 1 FROM entries) "
            "WHERE dataset_id = ?",
            (time.time(), dataset_id),
        )

    def _find(self, dataset_id: str) -> CachedDataset | None:
        with self._reading() as db:
            row = db.execute("SELECT * FROM entries WHERE dataset_id = ?", (dataset_id,)).fetchone()
        return None if row is None else self._to_entry(row)

    def _require(self, dataset_id: str) -> CachedDataset:
        entry = self._find(dataset_id)
        if entry is None:
            raise UnknownDataset(dataset_id, self.root)
        return entry

    def _row_or_raise(self, db: sqlite3.Connection, dataset_id: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM entries WHERE dataset_id = ?", (dataset_id,)).fetchone()
        if row is None:
            raise UnknownDataset(dataset_id, self.root)
        return row

    def _to_entry(self, row: sqlite3.Row) -> CachedDataset:
        ds, sc = self._paths(row["dataset_id"])
        fmt = row["recording_format"]
        if fmt == "mcap":
            ds = ds.with_suffix(".mcap")
        return CachedDataset(
            dataset_id=row["dataset_id"],
            path=ds,
            sidecar_path=sc,
            size_bytes=row["size_bytes"],
            dataset_digest=row["dataset_digest"],
            state=CacheState(row["state"]),
            cloud_uri=row["cloud_uri"],
            staged_at=datetime.fromtimestamp(row["staged_at"], timezone.utc),
            last_access_at=datetime.fromtimestamp(row["last_access_at"], timezone.utc),
            recording_format=fmt,
            manifest=json.loads(row["manifest"]) if row["manifest"] else None,
        )


