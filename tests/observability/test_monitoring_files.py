"""The alert rules and dashboards against real tools and the real code: promtool checks and unit
tests, every PromQL expression parses, and names only metrics the code exports."""

from __future__ import annotations

import json
import re
import subprocess

import yaml
from obs_support import CHART_FILES, DASHBOARDS, METRIC_TOKEN, MONITORING, RULE_TESTS, RULES, defined_metric_names

REQUIRED_ALERTS = {
    "AxonRobotOffline", "AxonRecorderUnreachable", "AxonOutboxBacklogGrowing", "AxonEdgeCacheNearQuota",
    "AxonUploadStalled", "AxonQcRejectionRateHigh", "AxonReviewQueueTooOld", "AxonDataFlowFailureRateHigh",
}
# Label names are not metrics; everything else starting with axon_ in a query must be exported.
KNOWN_UPLOAD_NAMES = {"axon_upload_bytes_total", "axon_upload_rate_bytes_per_second", "axon_upload_queue_length"}


def _alerts() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]


def _dashboard_exprs() -> list[tuple[str, str, str]]:
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for p in board["panels"]:
            for t in p.get("targets", []):
                out.append((path.name, p["title"], t["expr"]))
    return out


def test_promtool_check_rules(promtool):
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len([r for g in yaml.safe_load(RULES.read_text())['groups'] for r in g['rules']])} rules found" in result.stdout


def test_promtool_unit_tests_pass(promtool):
    assert RULE_TESTS
    result = subprocess.run([promtool, "test", "rules", *map(str, RULE_TESTS)], capture_output=True, text=True, timeout=120,
                            cwd=MONITORING / "rules" / "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_runbook_and_a_firing_and_a_quiet_unit_test():
    alerts = {r["alert"]: r for r in _alerts()}
    assert REQUIRED_ALERTS <= set(alerts)
    fired, quiet = set(), set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    for name, rule in alerts.items():
        assert rule["annotations"].get("runbook", "").strip(), f"{name}: no runbook annotation"
        assert rule["annotations"].get("summary"), f"{name}: no summary"
        assert name in fired, f"{name}: no unit test fires it"
        assert name in quiet, f"{name}: no unit test where it stays quiet"


def test_alert_and_dashboard_queries_name_only_exported_metrics():
    defined = defined_metric_names()
    assert KNOWN_UPLOAD_NAMES <= defined, "the uploader's metric names changed: update dashboards and alerts"
    assert {"axon_edge_tasks", "axon_tasks", "axon_edge_teleop_commands_total", "axon_qc_score_bucket"} <= defined
    used = [("rules", r["alert"], r["expr"]) for r in _alerts()] + _dashboard_exprs()
    unknown = [(where, what, name) for where, what, expr in used for name in METRIC_TOKEN.findall(expr) if name not in defined]
    assert not unknown, f"queries name metrics no code exports: {unknown}"
    # And the other way round: the names we show are most of what we export (catches a renamed family).
    shown = {name for _, _, expr in used for name in METRIC_TOKEN.findall(expr)}
    assert len(shown) >= 30


def test_dashboard_queries_parse_as_promql(promtool, tmp_path):
    """promtool parses every panel query (Grafana's $-variables replaced by plain values)."""
    subs = {"$__rate_interval": "5m", "$__range": "6h", "$robot": "robot-1"}
    rules = []
    for i, (board, title, expr) in enumerate(_dashboard_exprs()):
        for k, v in subs.items():
            expr = expr.replace(k, v)
        assert "$" not in expr, f"{board} / {title}: unhandled variable in {expr}"
        rules.append({"record": f"dashboard:q{i}", "expr": expr})
    path = tmp_path / "dashboards-as-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboards_are_grafana_json_with_the_four_views():
    titles = {}
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert board["uid"] and board["panels"] and "__inputs" not in board
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for p in board["panels"]:
            assert p["targets"] and all(t["refId"] and t["expr"] for t in p["targets"]), f"{path.name}: {p['title']}"
            assert p["datasource"]["uid"] == "${datasource}"
        titles[board["uid"]] = board
    assert set(titles) == {"axon-fleet", "axon-data-flow", "axon-quality", "axon-robot"}
    robot_vars = {v["name"] for v in titles["axon-robot"]["templating"]["list"]}
    assert "robot" in robot_vars


def test_the_chart_ships_the_same_rules_and_dashboards():
    assert (CHART_FILES / "axon-alerts.yml").read_bytes() == RULES.read_bytes(), "copy monitoring/rules/axon-alerts.yml into the chart"
    chart = {p.name: p.read_bytes() for p in (CHART_FILES / "dashboards").glob("*.json")}
    assert chart == {p.name: p.read_bytes() for p in DASHBOARDS}, "copy monitoring/dashboards/*.json into the chart"


def test_metric_names_and_labels_follow_prometheus_conventions():
    from axon_dagster.api.metrics import ControlPlaneMetrics
    from axon_dagster.observability import metrics as dagster_metrics
    from axon_edge.metrics import EdgeMetrics

    names = defined_metric_names()
    for name in names:
        assert re.fullmatch(r"axon_[a-z0-9_]+", name), name
    # Base units only: seconds and bytes.
    assert not [n for n in names if re.search(r"_(ms|milliseconds|minutes|hours|kb|mb|gb|kib|mib)(_|$)", n)]
    edge, api = EdgeMetrics("robot-x"), ControlPlaneMetrics(uow_factory=None)  # type: ignore[arg-type]
    instruments = [edge.recorder_call_seconds, edge.teleop_commands, api.events_ingested, api.ingest_lag,
                   *dagster_metrics._COLLECTORS]
    for instrument in instruments:
        labels = set(instrument._labelnames)
        # Bounded cardinality: per robot yes, per task/dataset/run never; `job` is Prometheus' own.
        assert not labels & {"task_id", "dataset_id", "run_id", "order_id", "job"}, (instrument, labels)
