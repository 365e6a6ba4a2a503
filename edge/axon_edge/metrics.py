"""Prometheus metrics of one agent, computed from its database at scrape time (so they are right
after a restart, with no counters to rebuild)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from axon_dagster.domain import utcnow

if TYPE_CHECKING:
    from .agent import EdgeAgent


class EdgeAgentCollector(Collector):
    def __init__(self, agent: "EdgeAgent"):
        self.agent = agent

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


def _gauge(name: str, documentation: str, robot: list[str], value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["robot_id"])
    family.add_metric(robot, value)
    return family


def metrics_registry(agent: "EdgeAgent") -> CollectorRegistry:
    """A registry of its own per agent: several agents (the demo's fleet) can share a process."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EdgeAgentCollector(agent))
    return registry
