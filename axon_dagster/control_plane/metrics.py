"""Gauges for the control plane's /metrics (a scrape every few seconds)."""

from __future__ import annotations

import logging
from collections import Counter

from axon_dagster.domain import (
    DatasetStatus,
    QcOutcome,
    TaskStatus,
    utcnow,
)

from .persistence import SqlAlchemyUnitOfWork
from .views import (
    MetricsSnapshot,
    rollup_of,
)

log = logging.getLogger(__name__)

UnitOfWork = SqlAlchemyUnitOfWork

def metrics_snapshot(uow: UnitOfWork) -> MetricsSnapshot:
    """Gauges for /metrics. Scans the tasks table (GROUP BY): meant for a scrape every few seconds."""
    with uow.reading():
        task_counts = uow.tasks.status_counts()
        per_order = uow.tasks.status_counts_per_order()
        order_ids = uow.orders.ids()
        robots = uow.robots.list()
        batch_ids = [b.batch_id for b in uow.batches.list()]
        per_batch = uow.tasks.status_counts_by("batch_id", batch_ids)
        # The review queue: inspected, routed to a human, not decided yet (the data flow waits).
        waiting = [
            r.dataset
            for r in uow.datasets.list(DatasetStatus.INSPECTED.value, QcOutcome.NEEDS_REVIEW.value, _REVIEW_SCAN_LIMIT, 0)
            if r.dataset.reviewed_by is None
        ]
        caches = uow.edge_caches.list()
        datasets = uow.datasets.status_counts()
        active_grants = uow.grants.count_active()
    orders = Counter(rollup_of(per_order.get(oid, {})).value for oid in order_ids)
    batches = Counter(rollup_of(per_batch.get(bid, {})).value for bid in batch_ids)
    now = utcnow()
    return MetricsSnapshot(
        tasks_by_status={s.value: task_counts.get(s, 0) for s in TaskStatus},
        orders_by_status=dict(orders),
        robots_last_seen={r.robot_id: r.last_seen_at.timestamp() if r.last_seen_at else None for r in robots},
        batches_by_status=dict(batches),
        review_queue_length=len(waiting),
        review_queue_oldest_age_seconds=max(((now - d.updated_at).total_seconds() for d in waiting), default=0.0),
        edge_caches={c.cache_id: (c.used_bytes, c.quota_bytes, c.pressure) for c in caches},
        datasets_by_status={s.value: datasets.get(s.value, 0) for s in DatasetStatus},
        active_upload_grants=active_grants,
    )


_REVIEW_SCAN_LIMIT = 10_000  # a review queue longer than this is an incident of its own
