"""Prometheus metrics of one edge agent, served on its ``/metrics``.

Two kinds, on purpose:

- **state gauges** (tasks by status, outbox backlog, recorder reachability, edge cache) are read
  from the agent's database and health at scrape time, so they are right straight after a restart
  with no counters to rebuild (:class:`EdgeAgentCollector`);
- **event instruments** (recorder call latency, teleop commands) can only be counted as they
  happen; they live in :class:`EdgeMetrics`, one per agent.

Every series carries ``robot_id`` (bounded: one per robot) and never a task id (unbounded).
Each agent has a registry of its own because the demo runs several agents in one process.

Upload metrics (``axon_upload_*``) are defined by ``axon_dagster.storage.metrics`` in the process
default registry; when this process uploads (that module is loaded), ``/metrics`` re-exports them.
They are not redefined here.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from axon_dagster.domain import utcnow



class ObservedAgent(Protocol):
    """What the scrape-time collector reads of an agent (``axon_edge.agent.EdgeAgent``; a protocol,
    so that this module does not import the agent that imports it)."""

    robot_id: str
    db: Any
    health: Any

# Recorder RPCs are local (same host): most answer in milliseconds, a stuck one hits the client
# timeout (seconds). Buckets span both.
RECORDER_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RECORDER_METHODS = ("get_status", "update_config", "start_recording", "stop_recording")
TELEOP_RESULTS = ("ok", "rejected", "failed", "error")


@dataclass(frozen=True)
class EdgeCacheUsage:
    """What an edge-cache hook reports (mirrors ``axon_dagster.storage.edge_cache.CacheUsage``)."""

    used_bytes: int
    quota_bytes: int | None  # None: no quota
    pressure: bool


EdgeCacheProbe = Callable[[], Any]  # returns an object with used_bytes, quota_bytes, pressure


class EdgeMetrics:
    """The counted instruments of one agent, in the agent's own registry."""

    def __init__(self, robot_id: str):
        self.robot_id = robot_id
        self.registry = CollectorRegistry(auto_describe=True)
        self.recorder_call_seconds = Histogram(
            "axon_edge_recorder_call_duration_seconds",
            "Duration of recorder RPCs, by method and outcome (ok, error)",
            ["robot_id", "method", "outcome"],
            buckets=RECORDER_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.teleop_commands = Counter(
            "axon_edge_teleop_commands",  # exposed as axon_edge_teleop_commands_total
            "Teleop commands received, by command (start, stop, invalid) and result (ok, rejected, failed, error)",
            ["robot_id", "command", "result"],
            registry=self.registry,
        )
        # The uploader's instruments (it calls the hooks below: part_sent, part_skipped, retry, finished).
        self.upload_bytes = Counter(
            "axon_edge_upload_bytes",  # exposed as axon_edge_upload_bytes_total
            "Bytes of recordings this robot uploaded (parts the store confirmed)",
            ["robot_id"], registry=self.registry,
        )
        self.upload_parts = Counter(
            "axon_edge_upload_parts",
            "Upload parts by result: sent (and verified) or skipped (the store already held them)",
            ["robot_id", "result"], registry=self.registry,
        )
        self.upload_retries = Counter(
            "axon_edge_upload_retries",
            "Upload retries: a part sent again after a transient failure (part) or a new plan (replan)",
            ["robot_id", "kind"], registry=self.registry,
        )
        self.uploads = Counter(
            "axon_edge_uploads",
            "Upload attempts by outcome (completed, failed, grant_unusable, stopped)",
            ["robot_id", "outcome"], registry=self.registry,
        )
        self.upload_throughput = Gauge(
            "axon_edge_upload_throughput_bytes_per_second",
            "Throughput of the last completed upload (what the robot reports as its uplink)",
            ["robot_id"], registry=self.registry,
        )
        # The agent's edge cache sets the probe (axon_edge.agent); without one the gauges are
        # absent, not 0, so an "edge cache near quota" alert cannot be fooled by a fake zero.
        self.edge_cache_probe: EdgeCacheProbe | None = None
        self._collector: EdgeAgentCollector | None = None

    # ------------------------------------------------------------------ hooks the agent calls

    def observe_recorder_call(self, method: str, seconds: float, ok: bool) -> None:
        self.recorder_call_seconds.labels(self.robot_id, method, "ok" if ok else "error").observe(seconds)

    @contextmanager
    def teleop(self, command: str) -> Iterator[None]:
        """Count one teleop command by how it ended. Refusals (409/404/422) are ``rejected``; the
        recorder failing is ``failed``; anything else unexpected is ``error``."""
        from axon_dagster.domain import DomainError

        from .errors import Conflict, InvalidRequest, RecorderFailure, UnknownTask

        label = command if command in ("start", "stop") else "invalid"
        try:
            yield
        except RecorderFailure:
            self.teleop_commands.labels(self.robot_id, label, "failed").inc()
            raise
        except (Conflict, InvalidRequest, UnknownTask, DomainError):
            # DomainError: an illegal transition or an invalid id — the agent refused, nothing broke.
            self.teleop_commands.labels(self.robot_id, label, "rejected").inc()
            raise
        except Exception:
            self.teleop_commands.labels(self.robot_id, label, "error").inc()
            raise
        self.teleop_commands.labels(self.robot_id, label, "ok").inc()

    # upload observer (axon_edge.upload.uploader.UploadObserver)

    def part_sent(self, size: int, seconds: float) -> None:
        self.upload_bytes.labels(self.robot_id).inc(size)
        self.upload_parts.labels(self.robot_id, "sent").inc()

    def part_skipped(self, size: int) -> None:
        self.upload_parts.labels(self.robot_id, "skipped").inc()

    def retry(self, reason: str) -> None:
        self.upload_retries.labels(self.robot_id, reason).inc()

    def finished(self, result: Any, outcome: str) -> None:
        self.uploads.labels(self.robot_id, outcome).inc()
        if result is not None and result.bytes_sent:
            self.upload_throughput.labels(self.robot_id).set(result.throughput_bytes_per_second)

    def instrument(self, recorder: Any) -> "TimedRecorder":
        return TimedRecorder(recorder, self)

    def attach(self, agent: ObservedAgent) -> CollectorRegistry:
        """Register the scrape-time collector for ``agent`` once; returns the registry to serve."""
        if self._collector is None:
            self._collector = EdgeAgentCollector(agent)
            self.registry.register(self._collector)
            self.registry.register(ProcessUploadMetrics())
        return self.registry


class TimedRecorder:
    """A ``RecorderClient`` that times every RPC into :class:`EdgeMetrics` and otherwise passes
    through (attributes it does not wrap are the wrapped client's)."""

    def __init__(self, inner: Any, metrics: EdgeMetrics):
        self._inner = inner
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in RECORDER_METHODS or not callable(attr):
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            ok = False
            try:
                result = attr(*args, **kwargs)
                ok = True
                return result
            finally:
                self._metrics.observe_recorder_call(name, time.perf_counter() - started, ok)

        return timed


class EdgeAgentCollector(Collector):
    """Gauges computed from the agent's database and health at scrape time."""

    def __init__(self, agent: ObservedAgent):
        self.agent = agent

    def describe(self) -> Iterator[Metric]:
        # Names only (for registries that list their metrics, e.g. the dashboard test).
        yield GaugeMetricFamily("axon_edge_tasks", "", labels=["robot_id", "status"])
        for name in EDGE_STATE_GAUGES:
            yield GaugeMetricFamily(name, "", labels=["robot_id"])

    def collect(self) -> Iterator[Metric]:
        agent = self.agent
        robot = [agent.robot_id]

        tasks = GaugeMetricFamily("axon_edge_tasks", "Tasks held by this robot, by status", labels=["robot_id", "status"])
        for status, count in agent.db.status_counts().items():
            tasks.add_metric([agent.robot_id, status.value], count)
        yield tasks

        backlog = agent.db.outbox_backlog()
        yield _gauge("axon_edge_outbox_backlog", "Status events not yet delivered to the control plane", robot, backlog.count)
        age = (utcnow() - backlog.oldest_occurred_at).total_seconds() if backlog.oldest_occurred_at else 0.0
        yield _gauge(
            "axon_edge_outbox_oldest_undelivered_age_seconds",
            "Age of the oldest undelivered status event (0 when the outbox is empty)",
            robot,
            max(age, 0.0),
        )
        yield _gauge(
            "axon_edge_outbox_rejected_events", "Status events the control plane rejected for good", robot, backlog.rejected
        )
        yield _gauge(
            "axon_edge_outbox_delivery_failures_in_a_row",
            "Consecutive failed delivery attempts (control plane down)",
            robot,
            agent.health.delivery_failures_in_a_row,
        )
        reachable = agent.health.recorder_reachable
        yield _gauge(
            "axon_edge_recorder_reachable", "1 if the recorder answered the last probe, else 0", robot, 1 if reachable else 0
        )
        status = agent.health.recorder_status
        recording = 1 if (reachable and status is not None and status.is_recording) else 0
        yield _gauge("axon_edge_recorder_recording", "1 while the recorder records", robot, recording)
        yield _gauge("axon_edge_pull_cursor", "Revision cursor of the task pull", robot, agent.db.pull_cursor())
        last_sync = agent.health.last_sync_at
        yield _gauge(
            "axon_edge_seconds_since_last_sync",
            "Seconds since the sync loop last ran (-1 before the first run)",
            robot,
            time.time() - last_sync if last_sync else -1,
        )
        yield _gauge(
            "axon_edge_control_plane_pull_ok",
            "1 if the last pull from the control plane succeeded, else 0",
            robot,
            1 if last_sync and agent.health.last_sync_error is None else 0,
        )
        yield from _edge_cache_gauges(getattr(agent, "metrics", None), robot)


def _edge_cache_gauges(metrics: EdgeMetrics | None, robot: list[str]) -> Iterator[Metric]:
    probe = metrics.edge_cache_probe if metrics is not None else None
    if probe is None:
        return
    try:
        usage = probe()
    except Exception:  # a broken cache must not break the scrape; the gauges go missing instead
        return
    yield _gauge("axon_edge_cache_used_bytes", "Bytes of datasets held in the robot's edge cache", robot, usage.used_bytes)
    if usage.quota_bytes is not None:
        yield _gauge("axon_edge_cache_quota_bytes", "Edge-cache quota in bytes (absent: no quota)", robot, usage.quota_bytes)
    yield _gauge(
        "axon_edge_cache_pressure",
        "1 while the edge cache is over quota and eviction could not bring it under",
        robot,
        1 if usage.pressure else 0,
    )


EDGE_STATE_GAUGES = (
    "axon_edge_outbox_backlog",
    "axon_edge_outbox_oldest_undelivered_age_seconds",
    "axon_edge_outbox_rejected_events",
    "axon_edge_outbox_delivery_failures_in_a_row",
    "axon_edge_recorder_reachable",
    "axon_edge_recorder_recording",
    "axon_edge_pull_cursor",
    "axon_edge_seconds_since_last_sync",
    "axon_edge_control_plane_pull_ok",
    "axon_edge_cache_used_bytes",
    "axon_edge_cache_quota_bytes",
    "axon_edge_cache_pressure",
)


class ProcessUploadMetrics(Collector):
    """Re-exports the process-wide ``axon_upload_*`` families (defined by the uploader) when this
    process uploads, without the rest of the default registry (process/GC series would repeat
    once per agent in a multi-agent process)."""

    PREFIX = "axon_upload_"

    def describe(self) -> Iterator[Metric]:
        return iter(())  # dynamic: present only if the uploader is loaded

    def collect(self) -> Iterator[Metric]:
        if "axon_dagster.storage.metrics" not in sys.modules:
            return  # never import the uploader just to report zeros
        for family in REGISTRY.collect():
            if family.name.startswith(self.PREFIX):
                yield family


def _gauge(name: str, documentation: str, robot: list[str], value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["robot_id"])
    family.add_metric(robot, value)
    return family


def metrics_registry(agent: ObservedAgent) -> CollectorRegistry:
    """The registry ``/metrics`` serves for ``agent`` (its own: several agents can share a process).
    Agents built without :class:`EdgeMetrics` (older callers) get the scrape-time gauges only."""
    metrics = getattr(agent, "metrics", None)
    if isinstance(metrics, EdgeMetrics):
        return metrics.attach(agent)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EdgeAgentCollector(agent))
    return registry
