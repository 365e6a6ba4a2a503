"""Eviction: only entries that are uploaded-and-verified or rejected ever leave the cache, in
policy order (lru, fifo) until it is within quota, by retention age, or one by one (manual)."""

from __future__ import annotations

import builtins
import logging
import os
import shutil
import time
import uuid

from ...domain.ids import validate_id
from .model import EVICTABLE_STATES, CacheConflict, CacheState

log = logging.getLogger(__name__)


class Eviction:
    """Mixed into :class:`~axon_dagster.storage.edge_cache.EdgeCache`."""

    def evict(self) -> builtins.list[str]:
        """Remove uploaded-and-verified or rejected datasets in policy order (lru: least recently
        accessed first; fifo: first staged first) until the cache is within quota. Never touches any
        other dataset: if still over quota, logs a warning and ``usage().pressure`` stays true.
        Returns the evicted dataset ids."""
        usage = self.usage()
        if not usage.pressure:
            return []
        if self.policy == "manual":
            log.warning(
                "edge cache %s over quota (%d of %d bytes) and policy is manual: nothing evicted",
                self.root, usage.used_bytes, usage.quota_bytes,
            )
            return []
        order = "access_seq" if self.policy == "lru" else "staged_seq"
        with self._reading() as db:
            candidates = db.execute(
                f"SELECT dataset_id, size_bytes FROM entries WHERE state IN (?, ?) ORDER BY {order}",
                tuple(s.value for s in EVICTABLE_STATES),
            ).fetchall()
        used = usage.used_bytes
        evicted: builtins.list[str] = []
        for row in candidates:
            if used <= usage.quota_bytes:
                break
            if self._delete_entry(row["dataset_id"], require_evictable=True):
                used -= row["size_bytes"]
                evicted.append(row["dataset_id"])
        after = self.usage()
        log.info("edge cache %s evicted %d dataset(s) by %s: %s", self.root, len(evicted), self.policy, evicted)
        if after.pressure:
            log.warning(
                "edge cache %s still over quota after eviction (%d of %d bytes): the rest is not yet "
                "uploaded or rejected, so it is kept",
                self.root, after.used_bytes, after.quota_bytes,
            )
        return evicted

    def apply_retention(self, now: float | None = None) -> builtins.list[str]:
        """The retention schedule's step: remove every uploaded-and-verified or rejected dataset that
        has been so for more than ``retention_days`` (whatever the quota). Never touches a dataset
        that is only cached. Returns the removed ids; a no-op without ``retention_days``."""
        if self.retention_days is None:
            return []
        cutoff = (time.time() if now is None else now) - self.retention_days * 86400
        with self._reading() as db:
            rows = db.execute(
                "SELECT dataset_id FROM entries WHERE state IN (?, ?) AND updated_at <= ? ORDER BY updated_at",
                (*(s.value for s in EVICTABLE_STATES), cutoff),
            ).fetchall()
        removed = [row["dataset_id"] for row in rows if self._delete_entry(row["dataset_id"], require_evictable=True, older_than=cutoff)]
        if removed:
            log.info("edge cache %s: retention (%.1f days) removed %d dataset(s): %s", self.root, self.retention_days, len(removed), removed)
        return removed


    def remove(self, dataset_id: str) -> None:
        """Remove one dataset now (operator action, or delete-after-upload). Same rule as eviction:
        refuses (CacheConflict) a dataset that is not uploaded-and-verified or rejected."""
        dataset_id = validate_id(dataset_id, "dataset_id")
        entry = self._require(dataset_id)
        if entry.state not in EVICTABLE_STATES:
            raise CacheConflict(f"dataset {dataset_id} is {entry.state.value}, not uploaded or rejected: refusing to remove it")
        self._delete_entry(dataset_id, require_evictable=True)
        log.info("removed dataset %s (%s) from the edge cache", dataset_id, entry.state.value)


    def _delete_entry(self, dataset_id: str, *, require_evictable: bool, older_than: float | None = None) -> bool:
        """Move the entry out of ``datasets/`` and drop its row in one transaction, then delete the
        files. A crash in between leaves an evictable row without files, cleaned up by _recover."""
        with self._tx() as db:
            row = db.execute("SELECT state, updated_at FROM entries WHERE dataset_id = ?", (dataset_id,)).fetchone()
            if row is None:
                return False
            if require_evictable and CacheState(row["state"]) not in EVICTABLE_STATES:
                return False  # its state changed since the candidate list was read
            if older_than is not None and row["updated_at"] > older_than:
                return False
            trash = self._tmp / f"{os.getpid()}-{uuid.uuid4().hex}-evict-{dataset_id}"
            entry_dir = self._entry_dir(dataset_id)
            if entry_dir.exists():
                os.rename(entry_dir, trash)
            db.execute("DELETE FROM entries WHERE dataset_id = ?", (dataset_id,))
        shutil.rmtree(trash, ignore_errors=True)
        return True

