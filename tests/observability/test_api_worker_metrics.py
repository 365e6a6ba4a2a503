"""An API served by several uvicorn workers answers a scrape with every worker's counts: robots'
requests land on whichever worker accepts the connection, and so does Prometheus's scrape."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from axon_dagster.client import ControlPlaneClient
from axon_dagster.demo.processes import free_port, wait_healthy

ADMIN = "admin-token-for-worker-metrics"


def _applied(text: str, robot: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "axon_events_ingested_total" and s.labels == {"robot_id": robot, "result": "applied"}
    )


def _worker(url: str) -> int:
    # a new connection each time, so the kernel may hand it to either worker
    return httpx.get(f"{url}/readyz", timeout=10, headers={"Connection": "close"}).json()["worker"]


def test_every_worker_reports_the_events_all_workers_ingested(tmp_path: Path):
    port, log_path = free_port(), tmp_path / "api.log"
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AXON_DATABASE_URL": f"sqlite:///{tmp_path / 'cp.db'}", "AXON_ADMIN_TOKEN": ADMIN}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "axon_dagster.api", "--port", str(port), "--workers", "2",
                                 "--upgrade", "--log-level", "warning"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"{url}/readyz", proc, log_path=log_path)
        admin = ControlPlaneClient(url, token=ADMIN)
        token = admin.register_robot("robot-w")["token"]
        admin.create_order("ow", "warehouse", ["pick"], sub_scene="aisle_1")
        tasks = [t["task_id"] for t in admin.plan_order("ow", task_count=12, duration_seconds=1.0, topics=["/imu"])["tasks"]]
        admin.dispatch_order("ow", ["robot-w"])

        for i, task in enumerate(tasks):  # one event per request, each on a fresh connection
            reply = httpx.post(f"{url}/api/v1/edge/events", timeout=10,
                               headers={"Authorization": f"Bearer {token}", "Connection": "close"},
                               json={"events": [{"event_id": f"e{i}", "task_id": task, "status": "READY"}]})
            assert reply.status_code == 200 and reply.json()["results"][0]["result"] == "applied", reply.text

        workers = {_worker(url) for _ in range(40)}
        assert len(workers) == 2, f"the kernel sent every connection to one worker ({workers}): nothing was shared"
        # Whichever worker answers, it counts all twelve.
        for _ in range(10):
            with httpx.Client(headers={"Connection": "close"}) as fresh:
                assert _applied(fresh.get(f"{url}/metrics", timeout=10).text, "robot-w") == len(tasks)
    finally:
        proc.terminate()
        proc.wait(15)
