"""Failed uploads are retried by the bandwidth sensor: a new run_key per attempt, after a doubling
backoff, up to max_upload_attempts, then given up with a warning and an alert; a dataset whose
upload run is in flight is never launched twice.

A real control-plane API (uvicorn over HTTP, SQLite store), a real Dagster instance whose runs are
executed the way the daemon does (a run_key launches once), and an upload job that moves the
dataset the way the real one does (UPLOADING, then UPLOADED or a failure that leaves it UPLOADING).
"""

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pytest
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)

from axon_dagster.api.app import create_app
from axon_dagster.client import ControlPlaneClient
from axon_dagster.api.server import ApiThread
from axon_dagster.defs.bandwidth import (
    UPLOAD_JOB_NAME,
    UPLOAD_OP_NAME,
    BandwidthGate,
    evaluate_bandwidth,
)
from axon_dagster.defs.resources import ControlPlaneResource
from axon_dagster.observability import metrics
from axon_dagster.control_plane.persistence import upgrade

REMOTE_ORIGIN = RemoteJobOrigin(RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("axon"), "__repository__"), UPLOAD_JOB_NAME)
FAILING: dict[str, str] = {}  # dataset id -> the error its upload raises


class UploadConfig(dg.Config):
    task_id: str


@dg.op(name=UPLOAD_OP_NAME)
def stub_upload(config: UploadConfig, control_plane: ControlPlaneResource) -> str:
    client = control_plane.client()
    client.dataset_upload_started(config.task_id)  # as the real upload op: UPLOADING first
    if config.task_id in FAILING:
        raise RuntimeError(FAILING[config.task_id])
    client.dataset_uploaded(config.task_id, cloud_uri=f"file:///cloud/{config.task_id}", dataset_digest="a" * 64)
    return config.task_id


@dg.job(name=UPLOAD_JOB_NAME)
def stub_upload_job():
    stub_upload()


class World:
    def __init__(self, url: str):
        self.url = url
        self.client = ControlPlaneClient(url)
        self.instance = dg.DagsterInstance.ephemeral()
        self.cursor: str | None = None
        self._n = 0

    def approved_dataset(self, priority: int = 0) -> str:
        self._n += 1
        order_id = f"o{self._n}"
        self.client.create_order(order_id=order_id, scene="warehouse", skills=["pick"], requirements={}, priority=priority)
        (task,) = self.client.plan_order(order_id, strategy="per_skill", task_count=1, duration_seconds=5, topics=["/imu"])["tasks"]
        tid = task["task_id"]
        self.client.dataset_cached(tid, cache_path=f"/cache/{tid}", dataset_digest="a" * 64, size_bytes=10)
        self.client.dataset_inspected(tid, score=0.9, outcome="approved", report={})
        return tid

    def evaluate(self, gate: BandwidthGate, now: float | None = None):
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources={"control_plane": ControlPlaneResource(url=self.url), "bandwidth": gate}
        )
        result = evaluate_bandwidth(context, ControlPlaneResource(url=self.url), gate, now=now)
        if isinstance(result, dg.SensorResult) and result.cursor is not None:
            self.cursor = result.cursor
        return result

    def tick(self, gate: BandwidthGate, now: float | None = None) -> tuple[list[dg.RunRequest], list[dg.RunRequest]]:
        """One sensor tick, then what the daemon does with it: (requested, actually launched);
        a run_key already used by a run of this instance is not launched again."""
        result = self.evaluate(gate, now)
        requests = list(result.run_requests or []) if isinstance(result, dg.SensorResult) else []
        ran = []
        for request in requests:
            if self.instance.get_runs_count(dg.RunsFilter(tags={"dagster/run_key": request.run_key})):
                continue
            stub_upload_job.execute_in_process(
                run_config=request.run_config,
                instance=self.instance,
                tags={**request.tags, "dagster/run_key": request.run_key},
                resources={"control_plane": ControlPlaneResource(url=self.url)},
                raise_on_error=False,
            )
            ran.append(request)
        return requests, ran

    def status(self, tid: str) -> str:
        return self.client.get_dataset(tid)["status"]


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    upgrade(url)
    server = ApiThread(create_app(url)).start()
    FAILING.clear()
    try:
        yield World(server.url)
    finally:
        FAILING.clear()
        server.stop()


def gate(**kwargs) -> BandwidthGate:
    return BandwidthGate(probe_command=f'{sys.executable} -c "print(50)"', max_concurrent_uploads=10, **kwargs)


def keys(requests) -> list[str]:
    return [r.run_key for r in requests]


def test_a_failed_upload_is_relaunched_after_the_backoff_with_a_new_run_key(world):
    tid = world.approved_dataset()
    FAILING[tid] = "object store down"
    policy = gate(retry_backoff_seconds=100, max_upload_attempts=5)

    _, ran = world.tick(policy)
    assert keys(ran) == [f"upload:{tid}"]
    # The failed run left the dataset UPLOADING (the op had started the upload).
    assert world.status(tid) == "UPLOADING"
    (failed,) = world.instance.get_runs(dg.RunsFilter(tags={"axon/upload": tid}))
    assert failed.status is dg.DagsterRunStatus.FAILURE

    # Within the backoff: nothing requested, and the skip reason says when it will be retried.
    early = world.evaluate(policy, now=time.time() + 50)
    assert isinstance(early, dg.SensorResult) and not early.run_requests
    assert f"backing off after a failed upload: {tid} (attempt 2 in" in early.skip_reason.skip_message

    # After the backoff: attempt 2, with its own run_key, actually launched.
    FAILING.clear()
    requested, ran = world.tick(policy, now=time.time() + 101)
    assert keys(requested) == keys(ran) == [f"upload:{tid}:attempt-2"]
    assert ran[0].tags["axon/upload_attempt"] == "2" and ran[0].tags["axon/upload"] == tid
    assert world.status(tid) == "UPLOADED"
    assert world.tick(policy, now=time.time() + 1000) == ([], [])


def test_the_backoff_doubles_with_each_failure_measured_from_the_last_failed_run(world):
    tid = world.approved_dataset()
    FAILING[tid] = "digest mismatch"
    policy = gate(retry_backoff_seconds=100, max_upload_attempts=5)
    world.tick(policy)
    _, ran = world.tick(policy, now=time.time() + 101)
    assert keys(ran) == [f"upload:{tid}:attempt-2"]
    # Two failures: 200 s after the second one ended, not 100 s.
    assert world.tick(policy, now=time.time() + 150) == ([], [])
    requested, _ = world.tick(policy, now=time.time() + 201)
    assert keys(requested) == [f"upload:{tid}:attempt-3"]


RECEIVED: list[dict] = []  # what the alert webhook got


class _Webhook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        RECEIVED.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def _warnings_about(text: str, dataset_id: str) -> list[str]:
    return [line for line in text.splitlines() if " - WARNING - " in line and dataset_id in line]


def test_after_max_attempts_the_dataset_is_given_up_with_a_warning_and_an_alert(world, monkeypatch, capfd):
    server = HTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AXON_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/alert")
    RECEIVED.clear()
    alerts = metrics.ALERTS_TOTAL.labels(UPLOAD_JOB_NAME)
    alerts_before = alerts._value.get()
    try:
        tid, other = world.approved_dataset(priority=5), world.approved_dataset(priority=0)
        FAILING[tid] = "object store down: 503 Slow Down"
        policy = gate(retry_backoff_seconds=0, max_upload_attempts=2)

        _, ran = world.tick(policy)
        assert keys(ran) == [f"upload:{tid}", f"upload:{other}"]
        _, ran = world.tick(policy)
        assert keys(ran) == [f"upload:{tid}:attempt-2"]
        assert world.status(other) == "UPLOADED"

        capfd.readouterr()
        given_up = world.evaluate(policy, now=time.time() + 10_000)
        assert isinstance(given_up, dg.SensorResult) and not given_up.run_requests
        assert f"given up after 2 failed attempts: {tid}" in given_up.skip_reason.skip_message
        warning = _warnings_about(capfd.readouterr().err, tid)  # the sensor's log (Dagster's console logger)
        assert len(warning) == 1, warning
        assert "given up after 2 failed attempt(s)" in warning[0] and "object store down: 503 Slow Down" in warning[0]
        # The run-failure alert path: the alerts counter and its webhook, once.
        assert alerts._value.get() == alerts_before + 1
        (posted,) = RECEIVED
        assert posted["dataset_id"] == tid and posted["job"] == UPLOAD_JOB_NAME and "503 Slow Down" in posted["last_failure"]

        # Later ticks keep naming it (skip reason) but neither relaunch it nor alert again.
        assert world.tick(policy, now=time.time() + 100_000) == ([], [])
        again = world.evaluate(policy)
        assert f"given up after 2 failed attempts: {tid}" in again.skip_reason.skip_message
        assert not _warnings_about(capfd.readouterr().err, tid)
        assert alerts._value.get() == alerts_before + 1 and len(RECEIVED) == 1
        assert len(world.instance.get_runs(dg.RunsFilter(tags={"axon/upload": tid}))) == 2
    finally:
        server.shutdown()


@pytest.mark.parametrize("status", [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTED])
def test_an_upload_in_flight_is_not_launched_again(world, status):
    policy = gate(retry_backoff_seconds=0)
    # `retried` failed once: its next attempt has a new run_key, so only the in-flight check holds it back.
    retried = world.approved_dataset(priority=5)
    FAILING[retried] = "store down"
    world.tick(policy)
    FAILING.clear()
    fresh = world.approved_dataset(priority=5)

    for tid, attempt in ((fresh, 1), (retried, 2)):
        run = world.instance.create_run_for_job(
            stub_upload_job,
            run_config={"ops": {UPLOAD_OP_NAME: {"config": {"task_id": tid}}}},
            status=status,
            tags={"axon/upload": tid, "axon/upload_attempt": str(attempt)},
            remote_job_origin=REMOTE_ORIGIN,  # what the daemon's run queue needs to hold a run
        )
        assert world.instance.get_run_by_id(run.run_id).status is status
    # While a run is queued the dataset is still INSPECTED (the op moves it to UPLOADING when it starts).
    assert world.status(fresh) == "INSPECTED" and world.status(retried) == "UPLOADING"
    other = world.approved_dataset(priority=0)
    requested, _ = world.tick(policy, now=time.time() + 1000)
    assert keys(requested) == [f"upload:{other}"]  # neither in-flight dataset, and the slot goes to the next one


def test_retry_settings_come_from_the_environment_and_bad_values_are_named(monkeypatch):
    from axon_dagster.defs.bandwidth import bandwidth_resource_from_env

    for name in ("AXON_MIN_BANDWIDTH_MBPS", "AXON_MAX_UPLOAD_ATTEMPTS", "AXON_UPLOAD_RETRY_BACKOFF_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    default = bandwidth_resource_from_env()
    assert (default.max_upload_attempts, default.retry_backoff_seconds) == (5, 60.0)
    monkeypatch.setenv("AXON_MAX_UPLOAD_ATTEMPTS", "3")
    monkeypatch.setenv("AXON_UPLOAD_RETRY_BACKOFF_SECONDS", "2.5")
    gate = bandwidth_resource_from_env()
    assert (gate.max_upload_attempts, gate.retry_backoff_seconds) == (3, 2.5)
    monkeypatch.setenv("AXON_MAX_UPLOAD_ATTEMPTS", "0")
    with pytest.raises(ValueError, match="AXON_MAX_UPLOAD_ATTEMPTS .*greater than or equal to 1"):
        bandwidth_resource_from_env()
    monkeypatch.setenv("AXON_MAX_UPLOAD_ATTEMPTS", "three")
    with pytest.raises(ValueError, match="AXON_MAX_UPLOAD_ATTEMPTS must be an integer, got 'three'"):
        bandwidth_resource_from_env()
