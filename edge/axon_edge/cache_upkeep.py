"""The robot's edge-cache upkeep: retention and eviction on a timer, and the cache's usage told to
the control plane. The cloud holds no robot's cache and reads no robot's disk: this is where the
robot's cache is kept within its limits, and these reports are all the cloud knows of it.

- **Upkeep** every ``upkeep_seconds`` (``AXON_EDGE_CACHE_UPKEEP_SECONDS``, hourly by default), at
  start, and straight after the cloud lets a recording go (its task UPLOADED or FAILED:
  :meth:`CacheUpkeep.released`): retention first (``AXON_EDGE_CACHE_RETENTION_DAYS``: published or
  rejected recordings that have been so for longer leave the cache whatever the quota), then
  eviction down to the quota. Neither ever removes a recording the cloud has not published or
  rejected (the cache's own rule, :class:`~axon_dagster.storage.edge_cache.EdgeCache`).
- **Usage report** (``EdgeCache.disk_usage()``: used/quota/pending-upload bytes, datasets by state,
  pressure, ...) to ``PUT /api/v1/edge/cache-usage`` over the agent's own authenticated client, when
  it changed (checked every ``report_seconds``, so at most that often) and at least once per
  ``heartbeat_seconds`` (:class:`~axon_edge.recorder_report.RecorderReporter`'s rule). A failed send
  (control plane down) is tried again on the next tick; a refusal is logged and tried again once
  the usage changes or the heartbeat is due.

One thread of its own (``axon-edge-cache``), off the sync loop's path. The agent's ``/metrics``
has the cache's gauges (``axon_edge_cache_used_bytes`` & co.) and, from here, what upkeep removed
(``axon_edge_cache_removed_total{reason}``) and the reports sent (``axon_edge_cache_usage_reports_total{outcome}``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from axon_dagster.client import ControlPlaneError, ControlPlaneUnavailable
from axon_dagster.storage.edge_cache import EdgeCache

from .recorder_report import RecorderReporter
from .settings import DataPathSettings

log = logging.getLogger(__name__)

# Fields of a usage report that change on their own (a clock, the disk the recorder writes to): a
# change of these alone is no reason to send; they go along with the next report that is sent.
VOLATILE_FIELDS = frozenset({"reported_at", "filesystem"})


def usage_key(report: Mapping[str, Any]) -> dict[str, Any]:
    """What counts as a change of the cache's usage (everything but :data:`VOLATILE_FIELDS`)."""
    return {k: v for k, v in report.items() if k not in VOLATILE_FIELDS}


@dataclass(frozen=True)
class UpkeepResult:
    retained: list[str] = field(default_factory=list)  # removed by retention (age)
    evicted: list[str] = field(default_factory=list)  # removed by eviction (quota)
    used_bytes: int = 0
    quota_bytes: int | None = None
    pressure: bool = False


class CacheUpkeep:
    def __init__(
        self,
        cache: EdgeCache,
        client: Any,
        robot_id: str,
        *,
        upkeep_seconds: float = DataPathSettings.cache_upkeep_seconds,
        report_seconds: float = DataPathSettings.cache_report_seconds,
        heartbeat_seconds: float = DataPathSettings.cache_report_heartbeat_seconds,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not upkeep_seconds > 0:
            raise ValueError(f"upkeep_seconds must be positive, got {upkeep_seconds!r}")
        self.cache, self.robot_id = cache, robot_id
        self._client, self._clock = client, clock
        self.upkeep_seconds = upkeep_seconds
        self.wake = threading.Event()  # set: upkeep and report now (a release, or stop)
        self._next_upkeep: float | None = None  # None: at the first tick
        self.last_upkeep: UpkeepResult | None = None
        self.reporter = RecorderReporter(
            self.cache.disk_usage, self._send, interval=report_seconds, heartbeat=heartbeat_seconds, clock=clock,
            what="edge-cache usage report", key=usage_key,
        )
        registry = registry if registry is not None else CollectorRegistry()
        self._removed = Counter(
            "axon_edge_cache_removed",  # exposed as axon_edge_cache_removed_total
            "Recordings the edge cache's upkeep removed, by reason (retention: published or rejected for longer than "
            "the retention; eviction: over quota)",
            ["robot_id", "reason"], registry=registry,
        )
        self._reports = Counter(
            "axon_edge_cache_usage_reports",
            "Edge-cache usage reports to the control plane, by outcome (sent, unavailable, refused)",
            ["robot_id", "outcome"], registry=registry,
        )

    # ------------------------------------------------------------------ the steps

    def upkeep(self) -> UpkeepResult:
        """Retention, then eviction down to the quota; logs what went and what is left."""
        retained = self.cache.apply_retention()
        evicted = self.cache.evict()
        usage = self.cache.usage()
        result = UpkeepResult(retained, evicted, usage.used_bytes, usage.quota_bytes, usage.pressure)
        if retained:
            self._removed.labels(self.robot_id, "retention").inc(len(retained))
        if evicted:
            self._removed.labels(self.robot_id, "eviction").inc(len(evicted))
        quota = f"{usage.quota_bytes} bytes" if usage.quota_bytes is not None else "no quota"
        log.info(
            "edge cache upkeep: retention (%s) removed %d recording(s) %s, eviction (%s) removed %d %s; %d bytes used of %s",
            f"{self.cache.retention_days:g} days" if self.cache.retention_days else "off", len(retained), retained,
            self.cache.policy, len(evicted), evicted, usage.used_bytes, quota,
        )
        if usage.pressure:
            log.warning(
                "edge cache over quota (%d of %d bytes) and nothing more may go: the rest is not yet published "
                "or rejected by the cloud, so it is kept", usage.used_bytes, usage.quota_bytes,
            )
        self.last_upkeep = result
        return result

    def report(self) -> bool:
        """Send the usage if it changed or the heartbeat is due; True when sent."""
        if not callable(getattr(self._client, "report_cache_usage", None)):
            return False  # a control-plane client without the route (a test double): upkeep only
        return self.reporter.tick()

    def released(self) -> None:
        """The cloud let a recording go (published or rejected): upkeep and report now."""
        self.wake.set()

    def tick(self) -> None:
        now = self._clock()
        if self.wake.is_set() or self._next_upkeep is None or now >= self._next_upkeep:
            self.wake.clear()
            self._next_upkeep = now + self.upkeep_seconds
            self.upkeep()
        self.report()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # the loop must survive anything; the next tick tries again
                log.exception("edge cache upkeep tick failed")
            self.wake.wait(self.reporter.interval)

    def status(self) -> dict[str, Any]:
        """What ``/status`` shows of the upkeep."""
        last = self.last_upkeep
        return {
            "retention_days": self.cache.retention_days,
            "upkeep_seconds": self.upkeep_seconds,
            "last_upkeep": None if last is None else {"retained": last.retained, "evicted": last.evicted},
            "reports_sent": self.reporter.sent,
            "last_report_error": self.reporter.last_error,
        }

    # ------------------------------------------------------------------ sending

    def _send(self, usage: Mapping[str, Any]) -> Any:
        try:
            reply = self._client.report_cache_usage(usage)
        except ControlPlaneUnavailable:
            self._reports.labels(self.robot_id, "unavailable").inc()
            raise
        except ControlPlaneError:
            self._reports.labels(self.robot_id, "refused").inc()
            raise
        self._reports.labels(self.robot_id, "sent").inc()
        log.info(
            "edge cache usage reported: %d bytes used of %s, %d waiting for upload, datasets %s%s",
            usage["used_bytes"], usage["quota_bytes"] if usage.get("quota_bytes") is not None else "no quota",
            usage.get("pending_upload_bytes") or 0, {s: d["count"] for s, d in usage["datasets"].items()},
            " (PRESSURE)" if usage["pressure"] else "",
        )
        return reply
