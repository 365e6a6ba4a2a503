"""Tell the cloud how the robot's recorder is doing (``PUT /api/v1/edge/recorder``).

The cloud never asks a recorder anything: its recording sensors judge what the robot last reported
(``robot["recorder"]`` in ``GET /api/v1/robots``, by the shared policy
:mod:`axon_dagster.recorder.health`). The reporter runs in a thread of its own, off the sync
loop's path: every ``interval`` it reads what the sync loop last saw of the recorder (no recorder
call of its own) and sends it when it changed, or after ``heartbeat`` anyway (the cloud treats an
old report as unknown). A failed send is tried again on the next tick.

The same reporter sends the edge cache's usage (:mod:`axon_edge.cache_upkeep`): ``what`` names the
report in logs; ``key`` picks what counts as a change (a report's clock fields change every time).
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
        what: str = "recorder report",
        key: Callable[[Mapping[str, Any]], Any] = dict,
    ):
        if interval <= 0 or heartbeat <= 0:
            raise ValueError(f"{what} interval and heartbeat must be positive, got {interval!r}, {heartbeat!r}")
        self._read, self._send, self._clock, self._key = read, send, clock, key
        self.interval, self.heartbeat, self.what = interval, heartbeat, what
        self._last: Any = None
        self._sent_at: float | None = None
        self.sent = 0
        self.last_error: str | None = None

    def due(self, report: Mapping[str, Any]) -> bool:
        """True when ``report`` differs from the last one sent, or the heartbeat is due."""
        return self._key(report) != self._last or self._sent_at is None or self._clock() - self._sent_at >= self.heartbeat

    def tick(self) -> bool:
        """Send the report if it changed or the heartbeat is due; True when sent."""
        report = self._read()
        if report is None:  # nothing to report yet (the recorder was never probed)
            return False
        if not self.due(report):
            return False
        now = self._clock()
        try:
            self._send(report)
        except ControlPlaneUnavailable as exc:
            log.debug("%s failed (%s); trying again on the next tick", self.what, exc)
            self.last_error = str(exc)
            return False
        except ControlPlaneError as exc:  # refused (e.g. 422): the cloud keeps its older report
            log.warning("the control plane refused the %s: %s", self.what, exc)
            self.last_error = str(exc)
            return False
        self._last, self._sent_at, self.last_error = self._key(report), now, None
        self.sent += 1
        return True

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # the loop must survive anything
                log.exception("%s tick failed", self.what)
            stop.wait(self.interval)
