"""A real Prometheus (started here: free port, temp storage, 1 s scrape interval, our alert
rules loaded) scrapes a running simulated fleet — control-plane API, one edge agent and its
recorder simulator, each its own process — plus this process's Dagster-side endpoint while a
real multipart upload runs into a real (moto) S3 endpoint. The test then asks Prometheus, over its
HTTP API, for non-zero task and upload series.

Upload series come from the process that uploads (here: this test process, exposed through
:func:`axon_dagster.observability.serve_metrics`, the same endpoint the code location serves);
the edge agent and the API do not upload in this deployment, so their upload series stay at 0.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from obs_support import RULES

from axon_dagster.client import ControlPlaneClient
from axon_dagster.demo.collectors import SimulatedCollector
from axon_dagster.demo.fleet import SimulatedFleet
from axon_dagster.demo.processes import free_port
from axon_dagster.observability import serve_metrics
try:
    from tests.s3_fixture import s3_bucket, s3_client, s3_server  # noqa: F401  (fixtures)
except ModuleNotFoundError:  # pytest started without the repository root on sys.path
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.s3_fixture import s3_bucket, s3_client, s3_server  # noqa: F401

WAIT = 60.0
MiB = 1024 * 1024


@pytest.fixture
def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        pytest.fail("prometheus is not installed: run scripts/prometheus-deps.sh (Debian package prometheus)")
    return path


def _start_prometheus(binary: str, workdir: Path, targets: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    jobs = "\n".join(
        f"  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']" for job, target in targets.items()
    )
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {RULES}\n"
        f"scrape_configs:\n{jobs}\n"
    )
    log = open(workdir / "prometheus.log", "wb")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited: {(workdir / 'prometheus.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise TimeoutError("prometheus not ready")


def _query(url: str, promql: str) -> list[dict]:
    reply = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert reply["status"] == "success", reply
    return reply["data"]["result"]


def _wait_for(url: str, promql: str, what: str) -> list[dict]:
    """Poll Prometheus until ``promql`` returns a non-zero sample (bounded by WAIT)."""
    deadline = time.monotonic() + WAIT
    result: list[dict] = []
    while time.monotonic() < deadline:
        result = _query(url, promql)
        if result and any(float(r["value"][1]) > 0 for r in result):
            return result
        time.sleep(0.5)
    pytest.fail(f"{what}: no non-zero sample for {promql!r} within {WAIT}s (last: {result})")


def test_prometheus_scrapes_fleet_and_upload_series(tmp_path, prometheus_binary, s3_client, s3_bucket):  # noqa: F811
    from axon_dagster.storage.bandwidth import RateLimiter, UploadQueue
    from axon_dagster.storage.object_stores.s3_multipart import MultipartUploader

    dagster_port = serve_metrics(0, "127.0.0.1")
    with SimulatedFleet(tmp_path / "fleet", robots=1) as fleet:
        robot = fleet.robot_processes[0]
        targets = {
            "axon-api": fleet.control_plane_url.removeprefix("http://"),
            "axon-edge": robot.edge_url.removeprefix("http://"),
            "axon-dagster": f"127.0.0.1:{dagster_port}",
        }
        prom, url = _start_prometheus(prometheus_binary, tmp_path, targets)
        stop = threading.Event()
        collector = SimulatedCollector(robot.edge_url, "collector-1", stop_event=stop, recording_seconds=0.5)
        try:
            admin = ControlPlaneClient(fleet.control_plane_url, token=fleet.admin_token)
            admin.create_order("obs1", "warehouse", ["pick"], sub_scene="aisle_1")
            admin.plan_order("obs1", task_count=1, duration_seconds=1.0, topics=["/imu"])
            admin.dispatch_order("obs1", [robot.robot_id])
            collector.start()

            # A real upload in this process: the uploader's own counters move.
            path = tmp_path / "dataset.bin"
            path.write_bytes(bytes(range(256)) * (6 * MiB // 256))
            import hashlib

            uploader = MultipartUploader(s3_client, state_dir=tmp_path / "upload-state", part_size=5 * MiB,
                                         rate_limiter=RateLimiter(None), queue=UploadQueue())
            uploader.upload_file(path, s3_bucket, "obs/dataset.bin", sha256=hashlib.sha256(path.read_bytes()).hexdigest())

            for job in targets:
                _wait_for(url, f'up{{job="{job}"}}', f"{job} scraped")
            # Task series from both sides of the control flow.
            _wait_for(url, 'sum(axon_edge_tasks{job="axon-edge",status=~"EXECUTED|UPLOADED"})', "edge: task recorded")
            _wait_for(url, 'sum(axon_tasks{job="axon-api",status=~"EXECUTED|UPLOADED"})', "control plane: task recorded")
            _wait_for(url, 'axon_edge_teleop_commands_total{command="stop",result="ok",robot_id="robot-1"}', "teleop counted")
            _wait_for(url, 'sum(axon_edge_recorder_call_duration_seconds_count{method="start_recording"})', "recorder latency")
            _wait_for(url, 'sum(axon_events_ingested_total{robot_id="robot-1",result="applied"})', "events ingested")
            _wait_for(url, 'axon_robot_last_seen_timestamp_seconds{robot_id="robot-1"}', "robot last seen")
            _wait_for(url, 'axon_edge_recorder_reachable{robot_id="robot-1"}', "recorder reachable")
            # Upload series, from the uploading process.
            uploaded = _wait_for(url, 'axon_upload_bytes_total{job="axon-dagster"}', "upload bytes")
            assert float(uploaded[0]["value"][1]) >= path.stat().st_size
            assert _query(url, 'axon_upload_queue_length{job="axon-dagster"}'), "upload queue series missing"
            # The agent and API re-export the uploader's series when its module is loaded, but they
            # do not upload in this deployment: whatever they show is zero.
            assert all(float(r["value"][1]) == 0 for r in _query(url, 'axon_upload_bytes_total{job=~"axon-api|axon-edge"}'))

            # The alert rules loaded into this Prometheus evaluate cleanly against real series.
            groups = httpx.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            assert len(rules) >= 9 and all(r["health"] in ("ok", "unknown") for r in rules), rules
            firing = [r["name"] for r in rules if r.get("state") == "firing"]
            assert "AxonRecorderUnreachable" not in firing and "AxonRobotOffline" not in firing
        finally:
            stop.set()
            collector.join(timeout=10)
            prom.terminate()
            try:
                prom.wait(timeout=15)
            except subprocess.TimeoutExpired:
                prom.kill()
        assert not collector.errors, collector.errors
