"""Tell the cloud how the robot's recorder is doing (``PUT /api/v1/edge/recorder``).

The cloud never asks a recorder anything: its recording sensors judge what the robot last reported
(``robot["recorder"]`` in ``GET /api/v1/robots``, by the shared policy
:mod:`axon_dagster.recorder.health`). The reporter runs in a thread of its own, off the sync
loop's path: every ``interval`` it reads what the sync loop last saw of the recorder (no recorder
call of its own) and sends it when it changed, or after ``heartbeat`` anyway (the cloud treats an
old report as unknown). A failed send is tried again on the next tick.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Mapping

from axon_dagster.client import ControlPlaneError, ControlPlaneUnavailable

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 30.0
DEFAULT_HEARTBEAT = 120.0  # well under the cloud's default report age (300 s)


class RecorderReporter:
    def __init__(
        self,
        read: Callable[[], Mapping[str, Any] | None],
        send: Callable[[Mapping[str, Any]], Any],
        *,
        interval: float = DEFAULT_INTERVAL,
        heartbeat: float = DEFAULT_HEARTBEAT,
        clock: Callable[[], float] = time.monotonic,
    ):
        if interval <= 0 or heartbeat <= 0:
            raise ValueError(f"recorder report interval and heartbeat must be positive, got {interval!r}, {heartbeat!r}")
        self._read, self._send, self._clock = read, send, clock
        self.interval, self.heartbeat = interval, heartbeat
        self._last: Mapping[str, Any] | None = None
        self._sent_at: float | None = None
        self.sent = 0

    def tick(self) -> bool:
        """Send the report if it changed or the heartbeat is due; True when sent."""
        report = self._read()
        if report is None:  # the recorder was never probed yet
            return False
        now = self._clock()
        if report == self._last and self._sent_at is not None and now - self._sent_at < self.heartbeat:
            return False
        try:
            self._send(report)
        except ControlPlaneUnavailable as exc:
            log.debug("recorder report failed (%s); trying again on the next tick", exc)
            return False
        except ControlPlaneError as exc:  # refused (e.g. 422): the cloud keeps its older report
            log.warning("the control plane refused the recorder report: %s", exc)
            return False
        self._last, self._sent_at = dict(report), now
        self.sent += 1
        return True

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # the loop must survive anything
                log.exception("recorder report tick failed")
            stop.wait(self.interval)
