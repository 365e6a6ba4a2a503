"""PUT /api/v1/edge/cache-usage (a robot, with its own token) and GET /api/v1/edge-caches (admins)
against the real API on SQLite and PostgreSQL: a real ``EdgeCache.disk_usage()`` report is kept
under the reporting robot's id, a robot cannot report another robot's cache, bad input is refused
with 422 and changes nothing, and /metrics exports the last report per robot_id."""

from __future__ import annotations

import copy

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from axon_dagster.client import ControlPlaneError
from axon_dagster.storage.edge_cache import EdgeCache

from .conftest import ADMIN_TOKEN


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"{url}/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("axon_edge_cache_")
    }


@pytest.fixture
def report(tmp_path, stage) -> dict:
    cache = EdgeCache(tmp_path / "cache", max_size_gb=0.001, retention_days=7)
    stage(cache, "pending-1", 1_200_000)
    stage(cache, "gone-1", 10_000, state="rejected")
    return cache.disk_usage()


def _put(control_plane, body, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.put(f"{control_plane.url}/api/v1/edge/cache-usage", json=body, headers=headers)


def test_a_robots_report_is_kept_under_its_own_id_and_replaces_its_previous_one(control_plane, report):
    assert control_plane.list_cache_usage() == []
    with control_plane.robot("robot-1") as robot:
        stored = robot.report_cache_usage(report)
    assert stored["robot_id"] == stored["cache_id"] == "robot-1"
    assert stored["used_bytes"] == report["used_bytes"] > 1_200_000
    assert stored["quota_bytes"] == 1_000_000 and stored["pressure"] is True
    assert stored["datasets"]["cached"] == report["datasets"]["cached"]
    assert stored["datasets"]["rejected"]["count"] == 1
    assert stored["report"]["policy"] == "lru" and stored["report"]["retention_days"] == 7
    assert stored["report"]["pending_upload_bytes"] == report["pending_upload_bytes"]
    assert stored["report"]["filesystem"] == report["filesystem"]
    [listed] = control_plane.list_cache_usage()
    assert listed == stored

    # A newer report of the same robot replaces it; another robot gets its own row.
    smaller = dict(report, used_bytes=0, pressure=False, datasets={s: {"count": 0, "bytes": 0} for s in report["datasets"]})
    with control_plane.robot("robot-1") as robot:
        robot.report_cache_usage(smaller)
    with control_plane.robot("robot-2") as robot:
        robot.report_cache_usage(dict(smaller, quota_bytes=None))
    listed = {c["robot_id"]: c for c in control_plane.list_cache_usage()}
    assert set(listed) == {"robot-1", "robot-2"}
    assert listed["robot-1"]["used_bytes"] == 0 and listed["robot-1"]["pressure"] is False
    assert listed["robot-2"]["quota_bytes"] is None


def test_a_robot_cannot_report_another_robots_cache(control_plane, report):
    with control_plane.robot("robot-2") as robot:
        robot.report_cache_usage(dict(report, quota_bytes=None, pressure=False))
    before = {c["robot_id"]: c for c in control_plane.list_cache_usage()}
    token = control_plane.tokens["robot-1"]
    # Ids in the body are not the control plane's to take: the row is robot-1's own.
    stored = _put(control_plane, dict(report, robot_id="robot-2", cache_id="robot-2"), token).json()
    assert stored["robot_id"] == "robot-1"
    # No route names a cache: the old admin route and an id in the path are not there for robots.
    for path in ("/api/v1/edge/cache-usage/robot-2", "/api/v1/edge-caches/robot-2/usage"):
        response = httpx.put(f"{control_plane.url}{path}", json=report, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code in (401, 404, 405), (path, response.status_code)
    after = {c["robot_id"]: c for c in control_plane.list_cache_usage()}
    assert after["robot-2"] == before["robot-2"]  # untouched
    assert set(after) == {"robot-1", "robot-2"}


def test_only_a_robots_own_valid_token_reports(control_plane, report):
    for token in (None, "wrong", ADMIN_TOKEN):  # the admin token is no robot's
        assert _put(control_plane, report, token).status_code == 401, token
        assert _put(control_plane, {"bad": 1}, token).status_code == 401, token  # who asks comes first
    revoked = httpx.post(f"{control_plane.url}/api/v1/robots/robot-2/revoke", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert revoked.status_code == 200, revoked.text
    assert _put(control_plane, report, control_plane.tokens["robot-2"]).status_code == 401
    assert control_plane.list_cache_usage() == []
    # The listing is the admins'.
    assert httpx.get(f"{control_plane.url}/api/v1/edge-caches").status_code == 401
    robot_token = {"Authorization": f"Bearer {control_plane.tokens['robot-1']}"}
    assert httpx.get(f"{control_plane.url}/api/v1/edge-caches", headers=robot_token).status_code in (401, 403)


def test_metrics_export_the_last_report_per_robot(control_plane, report):
    assert not scrape(control_plane.url)  # absent, not 0, before any report
    with control_plane.robot("robot-1") as robot:
        robot.report_cache_usage(report)
    with control_plane.robot("robot-2") as robot:
        robot.report_cache_usage(dict(report, quota_bytes=None, pressure=False))
    samples = scrape(control_plane.url)
    a, b = (("robot_id", "robot-1"),), (("robot_id", "robot-2"),)
    assert samples[("axon_edge_cache_used_bytes", a)] == report["used_bytes"]
    assert samples[("axon_edge_cache_quota_bytes", a)] == 1_000_000
    assert samples[("axon_edge_cache_pressure", a)] == 1
    assert samples[("axon_edge_cache_used_bytes", b)] == report["used_bytes"]
    assert ("axon_edge_cache_quota_bytes", b) not in samples  # no quota: absent
    assert samples[("axon_edge_cache_pressure", b)] == 0
    # The alert's expression over these series: used / quota > 0.9 or pressure == 1.
    assert samples[("axon_edge_cache_used_bytes", a)] / samples[("axon_edge_cache_quota_bytes", a)] > 0.9
    assert not [labels for (_, labels) in samples if "cache_id" in dict(labels)]


def _bad_bodies(good: dict) -> list[tuple[str, object]]:
    def with_(**changes):
        body = copy.deepcopy(good)
        for key, value in changes.items():
            if value is KeyError:
                body.pop(key)
            else:
                body[key] = value
        return body

    datasets_unknown = copy.deepcopy(good["datasets"])
    datasets_unknown["lost"] = {"count": 1, "bytes": 0}
    datasets_negative = copy.deepcopy(good["datasets"])
    datasets_negative["cached"]["count"] = -1
    return [
        ("not an object", [good]),
        ("a string", "usage"),
        ("empty", {}),
        ("no used_bytes", with_(used_bytes=KeyError)),
        ("no datasets", with_(datasets=KeyError)),
        ("no pressure", with_(pressure=KeyError)),
        ("negative used", with_(used_bytes=-1)),
        ("used past 64 bits", with_(used_bytes=2**63)),
        ("used as string", with_(used_bytes="1200000")),
        ("used as float", with_(used_bytes=1.5)),
        ("quota as bool", with_(quota_bytes=True)),
        ("pressure as string", with_(pressure="yes")),
        ("pressure contradicts the quota", with_(pressure=False)),
        ("pressure without a quota", with_(quota_bytes=None)),
        ("unknown state", with_(datasets=datasets_unknown)),
        ("negative count", with_(datasets=datasets_negative)),
        ("used differs from the states' bytes", with_(used_bytes=good["used_bytes"] + 1, quota_bytes=good["used_bytes"] + 10, pressure=False)),
        ("filesystem not an object", with_(filesystem=5)),
        ("control characters in root", with_(root="/x\x00y")),
        ("root too long", with_(root="/" + "x" * 5000)),
        ("retention_days zero", with_(retention_days=0)),
        ("retention_days beyond a century", with_(retention_days=1e9)),
    ]


def test_bad_bodies_are_refused_with_422_and_nothing_changes(control_plane, report):
    with control_plane.robot("robot-1") as robot:
        robot.report_cache_usage(report)
    before = control_plane.list_cache_usage()
    metrics_before = scrape(control_plane.url)
    for robot_id in ("robot-1", "robot-2"):  # one with a report, one without
        token = control_plane.tokens[robot_id]
        for name, body in _bad_bodies(report):
            response = _put(control_plane, body, token)
            assert response.status_code == 422, (name, robot_id, response.text)
            assert response.json()["detail"], name
        not_json = httpx.put(f"{control_plane.url}/api/v1/edge/cache-usage", content=b"{not json",
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        assert not_json.status_code in (400, 422), not_json.text
    with control_plane.robot("robot-2") as robot, pytest.raises(ControlPlaneError) as refused:
        robot.report_cache_usage(dict(report, used_bytes=-5))
    assert refused.value.status_code == 422 and "used_bytes" in str(refused.value)
    assert control_plane.list_cache_usage() == before  # the earlier good report is untouched, nothing new
    assert scrape(control_plane.url) == metrics_before


def test_a_body_over_the_size_limit_is_refused(control_plane, report):
    huge = dict(report, note="x" * (2 << 20))  # unknown keys are dropped, but not read past the limit
    response = _put(control_plane, huge, control_plane.tokens["robot-1"])
    assert response.status_code == 413, response.text
    assert control_plane.list_cache_usage() == []


def test_the_route_is_documented_with_its_body(control_plane):
    spec = httpx.get(f"{control_plane.url}/openapi.json").json()
    operation = spec["paths"]["/api/v1/edge/cache-usage"]["put"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert {"used_bytes", "pressure", "datasets"} <= set(schema["required"])
    assert "$defs" not in str(schema)
    assert {"401", "413", "422"} <= set(operation["responses"])
    assert "put" not in spec["paths"].get("/api/v1/edge-caches/{cache_id}/usage", {})
