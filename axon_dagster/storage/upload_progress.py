"""Progress of one upload (bytes, rate, ETA), logged every ``interval`` seconds; the S3 multipart
uploader and the Azure block upload share it."""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)


class UploadProgress:
    """Bytes, rate and ETA of one upload, logged every ``interval`` seconds."""

    def __init__(self, label: str, total: int, interval: float):
        self.label, self.total, self.interval = label, total, interval
        self.sent = 0
        self.started = time.monotonic()
        self._last_log = self.started
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.sent += n
            now = time.monotonic()
            if now - self._last_log < self.interval:
                return
            self._last_log = now
        log.info("%s", self.describe())

    def describe(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.sent / elapsed
        left = max(self.total - self.sent, 0)
        eta = f"{left / rate:.1f}s" if rate > 0 else "unknown"
        pct = 100.0 * self.sent / self.total if self.total else 100.0
        return f"upload {self.label}: {self.sent / 1e6:.1f}/{self.total / 1e6:.1f} MB ({pct:.0f}%), {rate / 1e6:.2f} MB/s, ETA {eta}"
