"""Reporting: the cache's usage (quota, pressure) and the JSON report sent to the control plane."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone

from .model import EVICTABLE_STATES, CacheState, CacheUsage


class Reporting:
    """Mixed into :class:`~axon_dagster.storage.edge_cache.EdgeCache`."""

    def usage(self) -> CacheUsage:
        with self._reading() as db:
            used = db.execute("SELECT COALESCE(SUM(size_bytes), 0) FROM entries").fetchone()[0]
        return self._usage_of(used)

    def _usage_of(self, used: int) -> CacheUsage:
        return CacheUsage(used, self.quota_bytes, self.quota_bytes is not None and used > self.quota_bytes)


    def disk_usage(self) -> dict:
        """A JSON-ready report for the control plane: quota, usage by state, what eviction could
        free, the filesystem's free space, and the oldest dataset still waiting for upload."""
        with self._reading() as db:
            rows = db.execute(
                "SELECT state, COUNT(*) AS n, COALESCE(SUM(size_bytes), 0) AS bytes, MIN(staged_at) AS oldest FROM entries GROUP BY state"
            ).fetchall()
        by_state = {s.value: {"count": 0, "bytes": 0} for s in CacheState}
        oldest_cached = None
        for row in rows:
            by_state[row["state"]] = {"count": row["n"], "bytes": row["bytes"]}
            if row["state"] == CacheState.CACHED.value and row["oldest"] is not None:
                oldest_cached = datetime.fromtimestamp(row["oldest"], timezone.utc).isoformat()
        used = sum(v["bytes"] for v in by_state.values())
        fs = shutil.disk_usage(self.root)
        return {
            "root": str(self.root),
            "policy": self.policy,
            "quota_bytes": self.quota_bytes,
            "used_bytes": used,
            "pressure": self.quota_bytes is not None and used > self.quota_bytes,
            "datasets": by_state,
            "evictable_bytes": sum(by_state[s.value]["bytes"] for s in EVICTABLE_STATES),
            "pending_upload_bytes": by_state[CacheState.CACHED.value]["bytes"],
            "oldest_pending_staged_at": oldest_cached,
            "filesystem": {"total_bytes": fs.total, "free_bytes": fs.free},
            "delete_after_upload": self.delete_after_upload,
            "release_source": self.release_source,
            "retention_days": self.retention_days,
            "reported_at": datetime.now(timezone.utc).isoformat(),
        }

