"""Prometheus metrics of the uploader (registered once per process in the default registry; the
control-plane API and the edge agent expose that registry on ``/metrics``)."""

from __future__ import annotations

import threading
import time
from collections import deque

from prometheus_client import Counter, Gauge

UPLOAD_BYTES = Counter(
    "axon_upload_bytes",  # exposed as axon_upload_bytes_total
    "Bytes of dataset files sent to the object store (as they go on the wire; retries included)",
)
UPLOAD_RATE = Gauge(
    "axon_upload_rate_bytes_per_second",
    "Upload throughput of this process over the last few seconds, all uploads together",
)
UPLOAD_QUEUE_LENGTH = Gauge(
    "axon_upload_queue_length",
    "Uploads waiting for the link (priority queue) in this process",
)


class RateMeter:
    """Bytes/s over a sliding window, in 100 ms buckets (cheap enough to call per 8 KiB block)."""

    def __init__(self, window_seconds: float = 5.0, clock=time.monotonic):
        self.window = window_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: deque[list[float]] = deque()

    def add(self, n: int) -> None:
        t = self._clock()
        slot = round(t, 1)
        with self._lock:
            if self._buckets and self._buckets[-1][0] == slot:
                self._buckets[-1][1] += n
            else:
                self._buckets.append([slot, n])
            self._trim(t)

    def _trim(self, t: float) -> None:
        while self._buckets and t - self._buckets[0][0] > self.window:
            self._buckets.popleft()

    def rate(self) -> float:
        with self._lock:
            self._trim(self._clock())
            return sum(n for _, n in self._buckets) / self.window


PROCESS_RATE = RateMeter()
UPLOAD_RATE.set_function(PROCESS_RATE.rate)


def record_sent(n: int) -> None:
    UPLOAD_BYTES.inc(n)
    PROCESS_RATE.add(n)
