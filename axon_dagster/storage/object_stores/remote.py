"""What the stores across a link (S3, Azure) share: a dataset upload waits for its turn in the
process's priority queue and leaves what it did in :meth:`RemoteObjectStore.last_upload_stats`."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .base import RESERVED_PREFIX, ObjectStore, validate_key

def upload_state_dir() -> Path:
    """Where uploads keep their local state and measured throughput: ``AXON_UPLOAD_STATE_DIR``
    (default ``.axon/upload-state``), absolute."""
    from axon_dagster.settings.storage import UploaderSettings  # stdlib only

    return Path(UploaderSettings.load().state_dir).resolve()


class RemoteObjectStore(ObjectStore):
    """A store across a link: a dataset upload waits for its turn in the process's priority queue
    (order priority, then age) and leaves what it did in :meth:`last_upload_stats`."""

    prefix: str
    _reports: threading.local  # per thread: the report of its last put_dataset

    def _full(self, key: str) -> str:
        key = validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _record_key(self, key: str) -> str:
        """Where the dataset record of ``key`` lives (a reserved segment: never a dataset key)."""
        base = f"{self.prefix}/" if self.prefix else ""
        return f"{base}{RESERVED_PREFIX}meta/{validate_key(key, 'dataset key')}.json"

    def _upload_queue(self) -> Any:
        raise NotImplementedError

    def put_dataset(
        self, local_dir: str | os.PathLike, key: str, files: Mapping[str, str], *, priority: int = 0, created_at: float | None = None
    ) -> str:
        key = validate_key(key, "dataset key")
        queued = time.monotonic()
        with self._upload_queue().slot(priority, created_at, self.uri_for(key)):
            started = time.monotonic()
            session = self._open_session(key)
            uri = self._put_dataset(local_dir, key, files, session)
        seconds = time.monotonic() - started
        stats: dict[str, Any] = dict(session.stats)
        stats.update(
            upload_seconds=round(seconds, 3),
            queued_seconds=round(started - queued, 3),
            upload_bytes_per_second=round(stats["bytes_sent"] / seconds, 1) if seconds > 0 else 0.0,
        )
        self._reports.last_upload = stats
        return uri

    def last_upload_stats(self) -> dict[str, Any]:
        """What the last :meth:`put_dataset` of this thread did (files and bytes sent, parts or
        blocks kept from an interrupted run, seconds queued and uploading, rate): run metadata for
        Dagster. (The report of a finished upload; no upload reads it.)"""
        return dict(getattr(self._reports, "last_upload", None) or {})
