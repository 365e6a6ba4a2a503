"""Prometheus metrics of the control-plane API, served on ``/metrics``.

- **From the store at scrape time** (the store is the truth, so gauges are right after a restart
  and equal across API replicas): orders, batches and tasks by status, robots' last-seen time, the
  human review queue (length and oldest age), and each edge cache's last reported usage
  (``axon_edge_cache_*{robot_id}``), datasets by status and the active upload grants.
- **Counted as events arrive**: status events ingested per robot and result, and the ingest lag
  (receive time minus the event's ``occurred_at`` on the robot) per robot — a growing lag means a
  robot's outbox is draining a backlog; robots' upload completions (staged / refused) and the part
  bytes the file store's ingest endpoint stored, per robot.

With several uvicorn workers (``serve(workers=N)``) each process counts its own requests:
:func:`share_counts_between_workers` puts prometheus_client in multiprocess mode before the workers
start, and every worker's ``/metrics`` then adds up all workers' counters (a scrape reaches one
worker at random; without this it would see that worker's share only).

Labels are bounded: ``robot_id`` (one per robot), statuses and results (enums); never task ids.
Upload metrics (``axon_upload_*``, defined by ``axon_dagster.storage.metrics`` in the process
default registry) are re-exported when this process uploads.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric

from axon_dagster.domain import utcnow
from axon_dagster import control_plane as cp
from axon_dagster.control_plane.persistence import UnitOfWorkFactory
from axon_dagster.settings.api import MULTIPROCESS_ENV, ServerSettings
from axon_dagster.settings.environ import export

log = logging.getLogger(__name__)

# Robots deliver within seconds when online; an outbox drained after an outage is minutes to days.
INGEST_LAG_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)

STORE_GAUGES = (
    "axon_tasks",
    "axon_orders",
    "axon_batches",
    "axon_robot_last_seen_timestamp_seconds",
    "axon_review_queue_length",
    "axon_review_queue_oldest_age_seconds",
    # The last usage report of each robot's edge cache (PUT /api/v1/edge/cache-usage by its edge
    # agent), labelled robot_id: the same names and label as the agent's own gauges, so the
    # "edge cache near quota" alert reads either.
    "axon_edge_cache_used_bytes",
    "axon_edge_cache_quota_bytes",
    "axon_edge_cache_pressure",
    "axon_datasets",
    "axon_active_upload_grants",
)




@contextmanager
def share_counts_between_workers() -> Iterator[str]:
    """Around uvicorn's worker processes: a fresh directory where every worker's counters live
    (prometheus_client's multiprocess mode; the workers import it after this, so they all use it),
    removed afterwards unless the operator named it in ``PROMETHEUS_MULTIPROC_DIR``."""
    named = ServerSettings.load().metrics_dir
    directory = named or tempfile.mkdtemp(prefix="axon-api-metrics-")
    for leftover in os.listdir(directory):  # counts of an earlier run are not this run's
        if leftover.endswith(".db"):
            os.unlink(os.path.join(directory, leftover))
    export({MULTIPROCESS_ENV: directory})
    try:
        yield directory
    finally:
        if not named:
            shutil.rmtree(directory, ignore_errors=True)
            export({MULTIPROCESS_ENV: None})


class ControlPlaneMetrics:
    """The API's registry: store gauges plus ingest counters (all workers' when there are several)."""

    def __init__(self, uow_factory: UnitOfWorkFactory):
        self.registry = CollectorRegistry(auto_describe=True)
        counters_registry = self.registry
        if ServerSettings.load().metrics_dir:
            # This process's counters go to its own file; the scrape reads every worker's files.
            counters_registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.registry)
        self.events_ingested = Counter(
            "axon_events_ingested",  # exposed as axon_events_ingested_total
            "Robot status events received, by robot and result (applied, duplicate, rejected)",
            ["robot_id", "result"],
            registry=counters_registry,
        )
        self.ingest_lag = Histogram(
            "axon_event_ingest_lag_seconds",
            "Receive time minus the event's occurred_at on the robot, per robot",
            ["robot_id"],
            buckets=INGEST_LAG_BUCKETS,
            registry=counters_registry,
        )
        self.staging_results = Counter(
            "axon_staging_completions",  # exposed as axon_staging_completions_total
            "Robots' upload completion requests answered, by robot and result (staged, replays included; refused: a digest or the grant did not hold)",
            ["robot_id", "result"],
            registry=counters_registry,
        )
        self.part_bytes = Counter(
            "axon_ingested_part_bytes",  # exposed as axon_ingested_part_bytes_total
            "Bytes of upload parts the file store's ingest endpoint stored, per robot",
            ["robot_id"],
            registry=counters_registry,
        )
        self.registry.register(StoreCollector(uow_factory))
        self.registry.register(ProcessUploadMetrics())

    def events_received(self, robot_id: str, occurred_at: Iterable[datetime], results: Sequence[object]) -> None:
        """Called by the events route after applying a batch (``results`` carry ``.result``)."""
        now = utcnow()
        lag = self.ingest_lag.labels(robot_id)
        for when in occurred_at:
            lag.observe(max((now - when).total_seconds(), 0.0))
        for result in results:
            self.events_ingested.labels(robot_id=robot_id, result=str(getattr(result, "result", "unknown"))).inc()


class StoreCollector:
    """Gauges read from the store at scrape time."""

    def __init__(self, uow_factory: UnitOfWorkFactory):
        self._uow_factory = uow_factory

    def describe(self) -> Iterator[Metric]:
        # Names only, without touching the store (registration and metric listing call this).
        for name in STORE_GAUGES:
            yield GaugeMetricFamily(name, "")

    def collect(self) -> Iterator[Metric]:
        try:
            snapshot = cp.metrics_snapshot(self._uow_factory())
        except Exception:  # a scrape must not crash the API; the gauges just go missing
            log.exception("metrics: could not read the store")
            return
        yield _by_status("axon_tasks", "Tasks by status", snapshot.tasks_by_status)
        yield _by_status("axon_orders", "Orders by rolled-up status", snapshot.orders_by_status)
        yield _by_status("axon_batches", "Batches by rolled-up status", snapshot.batches_by_status)
        seen = GaugeMetricFamily(
            "axon_robot_last_seen_timestamp_seconds", "When each robot last called the API (unix time)", labels=["robot_id"]
        )
        for robot, ts in snapshot.robots_last_seen.items():
            if ts is not None:
                seen.add_metric([robot], ts)
        yield seen
        yield GaugeMetricFamily(
            "axon_review_queue_length", "Datasets waiting for a human review decision", value=snapshot.review_queue_length
        )
        yield GaugeMetricFamily(
            "axon_review_queue_oldest_age_seconds",
            "Seconds the oldest dataset has waited for review (0 when the queue is empty)",
            value=snapshot.review_queue_oldest_age_seconds,
        )
        yield from _edge_cache_gauges(snapshot.edge_caches)
        yield _by_status("axon_datasets", "Datasets by status (GRANTED: its robot may upload it; STAGED: uploaded, verified)",
                         snapshot.datasets_by_status)
        yield GaugeMetricFamily("axon_active_upload_grants", "Upload grants robots may use now", value=snapshot.active_upload_grants)


def _edge_cache_gauges(caches: dict[str, tuple[int, int | None, bool]]) -> Iterator[Metric]:
    used = GaugeMetricFamily(
        "axon_edge_cache_used_bytes", "Bytes of recordings held in each robot's edge cache (its last report)", labels=["robot_id"]
    )
    quota = GaugeMetricFamily(
        "axon_edge_cache_quota_bytes", "Edge-cache quota in bytes (absent: no quota)", labels=["robot_id"]
    )
    pressure = GaugeMetricFamily(
        "axon_edge_cache_pressure",
        "1 while the robot's edge cache is over quota and eviction could not bring it under (its last report)",
        labels=["robot_id"],
    )
    for robot_id, (used_bytes, quota_bytes, over) in caches.items():
        used.add_metric([robot_id], used_bytes)
        if quota_bytes is not None:
            quota.add_metric([robot_id], quota_bytes)
        pressure.add_metric([robot_id], 1 if over else 0)
    yield used
    yield quota
    yield pressure


def _by_status(name: str, documentation: str, counts: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["status"])
    for status, count in counts.items():
        family.add_metric([status], count)
    return family


class ProcessUploadMetrics:
    """Re-exports the process-wide ``axon_upload_*`` families when the uploader is loaded here
    (the same idea as ``axon_edge.metrics.ProcessUploadMetrics``; the edge cannot import this)."""

    PREFIX = "axon_upload_"

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        if "axon_dagster.storage.metrics" not in sys.modules:
            return
        for family in REGISTRY.collect():
            if family.name.startswith(self.PREFIX):
                yield family
