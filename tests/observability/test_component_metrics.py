"""The control-plane and edge-agent metrics on their real HTTP surfaces, parsed as Prometheus
text: store gauges (tasks, batches, review queue), ingest counters and lag; the agent's
recorder-latency histogram, teleop counter and edge-cache hook."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from axon_dagster.api.app import create_app
from axon_dagster.client import ControlPlaneClient, EdgeSyncClient
from axon_dagster.api.server import ApiThread
from axon_dagster.domain import utcnow
from axon_dagster.storage.edge_cache import EdgeCache
from axon_dagster.control_plane.persistence import upgrade
from axon_edge.agent import EdgeAgent
from axon_edge.errors import InvalidRequest
from axon_edge.metrics import metrics_registry

ADMIN = "admin-token-for-metrics-tests"


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _get(samples, name, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def api(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    upgrade(url)
    server = ApiThread(create_app(url, admin_token=ADMIN)).start()
    try:
        yield server.url
    finally:
        server.stop()


def test_control_plane_metrics_cover_tasks_batches_ingest_and_the_review_queue(api: str):
    admin = ControlPlaneClient(api, token=ADMIN)
    token = admin.register_robot("robot-m")["token"]
    admin.create_order("om", "warehouse", ["pick"], sub_scene="aisle_1")
    plan = admin.plan_order("om", task_count=2, duration_seconds=1.0, topics=["/imu"])
    admin.dispatch_order("om", ["robot-m"])
    task = plan["tasks"][0]["task_id"]
    robot = EdgeSyncClient(api, token)
    late = (utcnow() - timedelta(seconds=120)).isoformat()  # delivered two minutes after it happened
    results = robot.push_events([
        {"event_id": "e1", "task_id": task, "status": "READY", "occurred_at": late},
        {"event_id": "e2", "task_id": task, "status": "EXECUTING"},
        {"event_id": "e3", "task_id": task, "status": "EXECUTED", "data": {"dataset_path": "/rec/x.lance"}},
        {"event_id": "e3", "task_id": task, "status": "EXECUTED", "data": {"dataset_path": "/rec/x.lance"}},
    ])
    assert [r["result"] for r in results] == ["applied", "applied", "applied", "duplicate"]
    admin.dataset_cached(task, cache_path="/cache/x.lance", dataset_digest="a" * 64, size_bytes=10)
    admin.dataset_inspected(task, score=0.7, outcome="needs_review")

    s = _samples(httpx.get(f"{api}/metrics", timeout=10).text)
    assert _get(s, "axon_tasks", status="EXECUTED") == 1
    assert sum(v for (n, _), v in s.items() if n == "axon_tasks") == 2  # the other one still waits on the robot
    assert sum(v for (n, _), v in s.items() if n == "axon_batches") == 1
    assert _get(s, "axon_events_ingested_total", robot_id="robot-m", result="applied") == 3
    assert _get(s, "axon_events_ingested_total", robot_id="robot-m", result="duplicate") == 1
    assert _get(s, "axon_event_ingest_lag_seconds_count", robot_id="robot-m") == 4
    # The late event landed in a bucket above a minute; the on-time ones below 10 s.
    assert _get(s, "axon_event_ingest_lag_seconds_bucket", robot_id="robot-m", le="10.0") == 3
    assert _get(s, "axon_event_ingest_lag_seconds_bucket", robot_id="robot-m", le="300.0") == 4
    assert _get(s, "axon_review_queue_length") == 1
    assert _get(s, "axon_review_queue_oldest_age_seconds") >= 0
    assert _get(s, "axon_robot_last_seen_timestamp_seconds", robot_id="robot-m") > 0

    admin.review_dataset(task, reviewer="alice", approve=True)
    s = _samples(httpx.get(f"{api}/metrics", timeout=10).text)
    assert _get(s, "axon_review_queue_length") == 0
    assert _get(s, "axon_review_queue_oldest_age_seconds") == 0


class _RecorderNotStarted:
    """Stand-in recorder for an agent that is never started: these tests only read its metrics
    and call one method through the timing wrapper (a fake: no recorder process is needed)."""

    def __init__(self):
        self.calls = 0

    def get_status(self):
        self.calls += 1
        raise TimeoutError("no recorder here")

    def close(self):
        pass


def test_edge_agent_metrics_time_recorder_calls_count_teleop_and_show_the_edge_cache(tmp_path: Path):
    recorder = _RecorderNotStarted()
    agent = EdgeAgent("robot-e", control_plane=None, recorder=recorder, data_dir=tmp_path / "edge")  # type: ignore[arg-type]
    try:
        registry = metrics_registry(agent)
        assert metrics_registry(agent) is registry  # one registry per agent, collectors registered once
        text = generate_latest(registry).decode()
        # the agent owns its edge cache (issue 13): its usage is always reported, no quota by default
        assert 'axon_edge_cache_used_bytes{robot_id="robot-e"} 0.0' in text and "axon_edge_cache_quota_bytes" not in text

        with pytest.raises(TimeoutError):
            agent.recorder.get_status()
        assert recorder.calls == 1
        agent.recorder.close()  # passes through untimed

        with pytest.raises(InvalidRequest):
            agent.teleop("task-1", "jump")
        with pytest.raises(Exception):
            agent.teleop("task-unknown", "start")

        cache = EdgeCache(tmp_path / "cache", max_size_gb=0.001)
        agent.metrics.edge_cache_probe = cache.usage
        s = _samples(generate_latest(registry).decode())
        assert _get(s, "axon_edge_recorder_call_duration_seconds_count", robot_id="robot-e", method="get_status", outcome="error") == 1
        assert _get(s, "axon_edge_teleop_commands_total", robot_id="robot-e", command="invalid", result="rejected") == 1
        assert _get(s, "axon_edge_teleop_commands_total", robot_id="robot-e", command="start", result="rejected") == 1
        assert _get(s, "axon_edge_cache_used_bytes", robot_id="robot-e") == 0
        assert _get(s, "axon_edge_cache_quota_bytes", robot_id="robot-e") == 1_000_000
        assert _get(s, "axon_edge_cache_pressure", robot_id="robot-e") == 0
        assert _get(s, "axon_edge_tasks", robot_id="robot-e", status="READY") == 0  # holds no tasks
        assert _get(s, "axon_edge_outbox_backlog", robot_id="robot-e") == 0
    finally:
        agent.db.close()
        agent._lock_file.close()
