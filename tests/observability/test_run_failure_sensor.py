"""The run-failure alert sensor against real Dagster runs on an ephemeral instance: it counts
each finished run once, derives stage durations and QC from what Dagster recorded, and alerts
(log, metric, webhook) only on crossing the failure-ratio threshold."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pytest
from prometheus_client import REGISTRY

from axon_dagster.defs import observability as observability_area
from axon_dagster.observability import RunFailureAlertResource, run_failure_alert_sensor

DATASET = dg.AssetKey("obs_test_dataset")


@dg.op(config_schema={"fail": bool})
def ingest_staged_recording(context) -> int:
    if context.op_config["fail"]:
        raise RuntimeError("staging failed (test)")
    return 1


@dg.op
def inspect_staged_dataset(context, staged: int) -> int:
    context.log_event(
        dg.AssetCheckEvaluation(
            asset_key=DATASET,
            check_name="qc",
            passed=False,
            metadata={"qc_score": 0.42, "outcome": "rejected", "check.frame_rate": False, "check.duration": True},
        )
    )
    return staged


@dg.op
def settle_dataset(staged: int) -> None:
    pass


@dg.job(name="data_flow")
def fake_data_flow():  # same job and step names as axon_dagster.defs.data_flow; ops are stand-ins
    settle_dataset(inspect_staged_dataset(ingest_staged_recording()))


def _value(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Hook.received
    server.shutdown()


def _run(instance, fail: bool) -> None:
    fake_data_flow.execute_in_process(
        instance=instance, run_config={"ops": {"ingest_staged_recording": {"config": {"fail": fail}}}}, raise_on_error=False
    )


def _tick(instance, cursor, policy):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"run_failure_alert": policy})
    result = run_failure_alert_sensor(ctx)
    return ctx.cursor, result


def test_counts_runs_once_derives_data_flow_metrics_and_alerts_on_crossing(webhook):
    url, received = webhook
    policy = RunFailureAlertResource(failure_ratio_threshold=0.5, window_seconds=600, min_runs=3, webhook_url=url)
    before = {
        "ok": _value("axon_dagster_runs_finished_total", {"dagster_job": "data_flow", "status": "success"}),
        "fail": _value("axon_dagster_run_failures_total", {"dagster_job": "data_flow"}),
        "rejected": _value("axon_qc_outcomes_total", {"outcome": "rejected"}),
        "frame": _value("axon_qc_check_failures_total", {"check": "frame_rate"}),
        "upload": _value("axon_dataflow_stage_duration_seconds_count", {"stage": "upload", "outcome": "ok"}),
        "alerts": _value("axon_dagster_alerts_total", {"dagster_job": "data_flow"}),
    }
    with dg.instance_for_test() as instance:
        cursor = json.dumps({"after": time.time() - 5})
        _run(instance, fail=False)
        _run(instance, fail=True)
        cursor, _ = _tick(instance, cursor, policy)
        # 1 of 2 failed: under min_runs, no alert yet.
        assert received == []
        assert _value("axon_dagster_runs_finished_total", {"dagster_job": "data_flow", "status": "success"}) == before["ok"] + 1
        assert _value("axon_dagster_run_failures_total", {"dagster_job": "data_flow"}) == before["fail"] + 1
        assert _value("axon_qc_outcomes_total", {"outcome": "rejected"}) == before["rejected"] + 1
        assert _value("axon_qc_check_failures_total", {"check": "frame_rate"}) == before["frame"] + 1
        assert _value("axon_qc_check_failures_total", {"check": "duration"}) == 0
        assert _value("axon_dataflow_stage_duration_seconds_count", {"stage": "upload", "outcome": "ok"}) == before["upload"] + 1
        assert _value("axon_dataflow_stage_duration_seconds_count", {"stage": "stage", "outcome": "error"}) >= 1

        # The same runs on the next tick are not counted again.
        cursor, _ = _tick(instance, cursor, policy)
        assert _value("axon_dagster_run_failures_total", {"dagster_job": "data_flow"}) == before["fail"] + 1

        _run(instance, fail=True)  # 2 of 3 failed: ratio 0.67 > 0.5 with 3 runs -> alert
        cursor, _ = _tick(instance, cursor, policy)
        assert len(received) == 1 and received[0]["job"] == "data_flow"
        assert received[0]["failed"] == 2 and received[0]["finished"] == 3 and received[0]["runbook"]
        assert _value("axon_dagster_alerts_total", {"dagster_job": "data_flow"}) == before["alerts"] + 1
        assert _value("axon_dagster_alert_firing", {"dagster_job": "data_flow"}) == 1

        cursor, _ = _tick(instance, cursor, policy)  # still firing: no second alert
        assert len(received) == 1

        for _ in range(3):
            _run(instance, fail=False)  # 2 of 6 failed: 0.33 -> recovered
        cursor, _ = _tick(instance, cursor, policy)
        assert _value("axon_dagster_alert_firing", {"dagster_job": "data_flow"}) == 0
        assert json.loads(cursor)["firing"] == []
        assert len(received) == 1


def test_first_tick_does_not_recount_history():
    policy = RunFailureAlertResource(min_runs=1)
    with dg.instance_for_test() as instance:
        _run(instance, fail=True)
        before = _value("axon_dagster_run_failures_total", {"dagster_job": "data_flow"})
        _tick(instance, None, policy)
        assert _value("axon_dagster_run_failures_total", {"dagster_job": "data_flow"}) == before


def test_observability_defs_load_into_definitions():
    defs = dg.Definitions.merge(
        observability_area.defs,
        dg.Definitions(jobs=[fake_data_flow], resources={"run_failure_alert": RunFailureAlertResource.from_env()}),
    )
    assert defs.resolve_sensor_def("run_failure_alert_sensor")
