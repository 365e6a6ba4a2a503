"""The bandwidth sensor against a real control-plane API (uvicorn over HTTP, SQLite store), a
real probe command and a real throughput log, evaluated the way the Dagster daemon does."""


import sys
import time
from collections.abc import Iterator

import dagster as dg
import pytest

from axon_dagster.api.app import create_app
from axon_dagster.client import ControlPlaneClient
from axon_dagster.api.server import ApiThread
from axon_dagster.defs import bandwidth as bandwidth_area
from axon_dagster.defs.bandwidth import UPLOAD_JOB_NAME, UPLOAD_OP_NAME, BandwidthGate, bandwidth_sensor
from axon_dagster.defs.resources import ControlPlaneResource
from axon_dagster.storage.bandwidth import ThroughputLog
from axon_dagster.control_plane.persistence import upgrade


class UploadConfig(dg.Config):
    task_id: str


@dg.op(name=UPLOAD_OP_NAME)
def stub_upload(config: UploadConfig) -> str:
    return config.task_id


@dg.job(name=UPLOAD_JOB_NAME)
def stub_upload_job():
    stub_upload()


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory) -> Iterator[tuple[str, dict[str, str]]]:
    """Three approved datasets (orders of priority 0 and 5) and one that needs review."""
    url = f"sqlite:///{tmp_path_factory.mktemp('cp') / 'cp.db'}"
    upgrade(url)
    server = ApiThread(create_app(url)).start()
    client = ControlPlaneClient(server.url)
    ids: dict[str, str] = {}
    for order_id, priority, count in (("low", 0, 3), ("high", 5, 1)):
        client.create_order(order_id=order_id, scene="warehouse", skills=["pick"], requirements={}, priority=priority)
        tasks = client.plan_order(order_id, strategy="per_skill", task_count=count, duration_seconds=5, topics=["/imu"])["tasks"]
        for i, task in enumerate(tasks):
            tid = task["task_id"]
            ids[f"{order_id}-{i}"] = tid
            client.dataset_cached(tid, cache_path=f"/cache/{tid}", dataset_digest="a" * 64, size_bytes=10)
            outcome = "needs_review" if (order_id, i) == ("low", 2) else "approved"
            client.dataset_inspected(tid, score=0.9, outcome=outcome, report={})
            time.sleep(0.01)  # distinct ages
    try:
        yield server.url, ids
    finally:
        server.stop()


def evaluate(cp_url: str, gate: BandwidthGate, instance: dg.DagsterInstance | None = None):
    context = dg.build_sensor_context(
        instance=instance or dg.DagsterInstance.ephemeral(),
        resources={"control_plane": ControlPlaneResource(url=cp_url), "bandwidth": gate},
    )
    return bandwidth_sensor(context)


def launched(result) -> list[dg.RunRequest]:
    assert isinstance(result, dg.SensorResult), result
    return list(result.run_requests or [])


def probe(mbps: float) -> str:
    return f'{sys.executable} -c "print({mbps})"'


def test_below_the_threshold_uploads_are_held_back(control_plane):
    url, _ = control_plane
    result = evaluate(url, BandwidthGate(min_bandwidth_mbps=10, probe_command=probe(5)))
    assert isinstance(result, dg.SkipReason)
    assert "Insufficient bandwidth: 5.00 Mbps (required: 10.0 Mbps" in result.skip_message


def test_above_the_threshold_uploads_launch_by_priority_then_age(control_plane):
    url, ids = control_plane
    result = evaluate(url, BandwidthGate(min_bandwidth_mbps=10, probe_command=probe(50), max_concurrent_uploads=3))
    requests = launched(result)
    assert [r.run_key for r in requests] == [f"upload:{ids['high-0']}", f"upload:{ids['low-0']}", f"upload:{ids['low-1']}"]
    assert requests[0].tags["axon/priority"] == "5"
    # The run config fits the upload job's op config.
    ran = stub_upload_job.execute_in_process(run_config=requests[0].run_config, instance=dg.DagsterInstance.ephemeral())
    assert ran.output_for_node(UPLOAD_OP_NAME) == ids["high-0"]


def test_a_tick_ranks_candidates_from_the_search_alone(control_plane, monkeypatch):
    """Priority comes with each dataset of the search: a tick asks the control plane twice (one
    search per status), never once per candidate."""
    from axon_dagster.client import ControlPlaneClient

    url, ids = control_plane
    calls: list[str] = []
    real_request = ControlPlaneClient._request

    def counted(self, method, path, **kwargs):
        calls.append(f"{method} {path}")
        return real_request(self, method, path, **kwargs)

    monkeypatch.setattr(ControlPlaneClient, "_request", counted)
    requests = launched(evaluate(url, BandwidthGate(min_bandwidth_mbps=10, probe_command=probe(50), max_concurrent_uploads=3)))
    assert [r.run_key for r in requests] == [f"upload:{ids['high-0']}", f"upload:{ids['low-0']}", f"upload:{ids['low-1']}"]
    assert calls == ["GET /dataset-search", "GET /dataset-search"]


def test_runs_in_flight_count_against_the_concurrency_limit(control_plane):
    url, ids = control_plane
    instance = dg.DagsterInstance.ephemeral()
    instance.create_run_for_job(stub_upload_job, run_config={"ops": {UPLOAD_OP_NAME: {"config": {"task_id": "x"}}}})
    result = evaluate(url, BandwidthGate(probe_command=probe(50), max_concurrent_uploads=2), instance)
    assert [r.run_key for r in launched(result)] == [f"upload:{ids['high-0']}"]
    instance.create_run_for_job(stub_upload_job, run_config={"ops": {UPLOAD_OP_NAME: {"config": {"task_id": "y"}}}})
    held = evaluate(url, BandwidthGate(probe_command=probe(50), max_concurrent_uploads=2), instance)
    assert isinstance(held, dg.SkipReason) and "2 upload run(s) in flight" in held.skip_message


def test_a_failing_probe_holds_uploads_back_and_says_why(control_plane):
    url, _ = control_plane
    result = evaluate(url, BandwidthGate(probe_command=f'{sys.executable} -c "print(\'down\')"'))
    assert isinstance(result, dg.SkipReason) and result.skip_message.startswith("Bandwidth check unavailable")


def test_measured_throughput_gates_uploads(control_plane, tmp_path):
    url, ids = control_plane
    log_path = tmp_path / "throughput.json"
    gate = BandwidthGate(min_bandwidth_mbps=10, throughput_log=str(log_path), max_concurrent_uploads=5)

    # Nothing measured yet: one upload goes through to measure the link.
    first = evaluate(url, gate)
    assert [r.run_key for r in launched(first)] == [f"upload:{ids['high-0']}"]

    ThroughputLog(log_path).record(500_000, 1.0)  # 4 Mbps
    slow = evaluate(url, gate)
    assert isinstance(slow, dg.SkipReason) and "Insufficient bandwidth: 4.00 Mbps" in slow.skip_message

    ThroughputLog(log_path).record(20_000_000, 1.0)  # brings the window to ~81 Mbps
    assert len(launched(evaluate(url, gate))) == 3


def test_bandwidth_defs_merge_with_an_upload_job():
    defs = dg.Definitions.merge(
        bandwidth_area.defs,
        dg.Definitions(jobs=[stub_upload_job], resources={"control_plane": ControlPlaneResource(), "bandwidth": BandwidthGate()}),
    )
    assert defs.resolve_sensor_def("bandwidth_sensor").job_name == UPLOAD_JOB_NAME
    assert defs.resources["bandwidth"].min_bandwidth_mbps == 10.0


def test_bad_gate_settings_are_refused():
    with pytest.raises(Exception, match="min_bandwidth_mbps"):
        BandwidthGate(min_bandwidth_mbps=-1)
    with pytest.raises(Exception, match="max_uploads_per_tick"):
        BandwidthGate(max_uploads_per_tick=0)
