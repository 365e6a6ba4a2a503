"""PUT /api/v1/edge-caches/{cache_id}/usage and GET /api/v1/edge-caches against a real API: a real
``EdgeCache.disk_usage()`` report round-trips, bad input is refused with 422 and stores nothing,
and /metrics exports the last report per cache_id."""

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
    cache = EdgeCache(tmp_path / "cache", max_size_gb=0.001)
    stage(cache, "pending-1", 1_200_000)
    stage(cache, "gone-1", 10_000, state="rejected")
    return cache.disk_usage()


def test_a_real_disk_usage_report_round_trips_and_replaces_the_previous_one(control_plane, report):
    client = control_plane.client
    assert client.list_cache_usage() == []
    stored = client.report_cache_usage("site-a", report)
    assert stored["cache_id"] == "site-a"
    assert stored["used_bytes"] == report["used_bytes"] > 1_200_000
    assert stored["quota_bytes"] == 1_000_000
    assert stored["pressure"] is True
    assert stored["datasets"]["cached"] == report["datasets"]["cached"]
    assert stored["datasets"]["rejected"]["count"] == 1
    assert stored["report"]["policy"] == "lru"
    assert stored["report"]["pending_upload_bytes"] == report["pending_upload_bytes"]
    assert stored["report"]["filesystem"] == report["filesystem"]
    [listed] = client.list_cache_usage()
    assert listed == stored

    # A newer report of the same cache replaces it; another cache gets its own row.
    smaller = dict(report, used_bytes=0, pressure=False, datasets={s: {"count": 0, "bytes": 0} for s in report["datasets"]})
    client.report_cache_usage("site-a", smaller)
    client.report_cache_usage("site-b", dict(smaller, quota_bytes=None))
    listed = {c["cache_id"]: c for c in client.list_cache_usage()}
    assert set(listed) == {"site-a", "site-b"}
    assert listed["site-a"]["used_bytes"] == 0 and listed["site-a"]["pressure"] is False
    assert listed["site-b"]["quota_bytes"] is None


def test_metrics_export_the_last_report_per_cache_id(control_plane, report):
    assert not scrape(control_plane.url)  # absent, not 0, before any report
    control_plane.client.report_cache_usage("site-a", report)
    control_plane.client.report_cache_usage("site-b", dict(report, quota_bytes=None, pressure=False))
    samples = scrape(control_plane.url)
    a, b = (("cache_id", "site-a"),), (("cache_id", "site-b"),)
    assert samples[("axon_edge_cache_used_bytes", a)] == report["used_bytes"]
    assert samples[("axon_edge_cache_quota_bytes", a)] == 1_000_000
    assert samples[("axon_edge_cache_pressure", a)] == 1
    assert samples[("axon_edge_cache_used_bytes", b)] == report["used_bytes"]
    assert ("axon_edge_cache_quota_bytes", b) not in samples  # no quota: absent
    assert samples[("axon_edge_cache_pressure", b)] == 0
    # The alert's expression over these series: used / quota > 0.9 or pressure == 1.
    assert samples[("axon_edge_cache_used_bytes", a)] / samples[("axon_edge_cache_quota_bytes", a)] > 0.9


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
        ("empty", {}),
        ("no used_bytes", with_(used_bytes=KeyError)),
        ("no datasets", with_(datasets=KeyError)),
        ("no pressure", with_(pressure=KeyError)),
        ("negative used", with_(used_bytes=-1)),
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
        ("retention_days zero", with_(retention_days=0)),
    ]


def test_bad_usage_bodies_are_refused_with_422_and_nothing_is_stored(control_plane, report):
    client = control_plane.client
    client.report_cache_usage("site-a", report)
    before = client.list_cache_usage()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for name, body in _bad_bodies(report):
        for cache_id in ("site-a", "site-new"):
            response = httpx.put(f"{control_plane.url}/api/v1/edge-caches/{cache_id}/usage", json=body, headers=headers)
            assert response.status_code == 422, (name, cache_id, response.text)
            assert response.json()["detail"], name
    # Bad cache ids, with a good body.
    for bad_id in ("-leading-dash", "a b", "x" * 129, "a..b", "%2e%2e"):
        response = httpx.put(f"{control_plane.url}/api/v1/edge-caches/{bad_id}/usage", json=report, headers=headers)
        assert response.status_code in (404, 422), (bad_id, response.status_code)
        assert response.status_code == 422 or "/" in bad_id, (bad_id, response.text)
    with pytest.raises(ControlPlaneError) as refused:
        client.report_cache_usage("a b", report)
    assert refused.value.status_code == 422
    assert client.list_cache_usage() == before  # the earlier good report is untouched, nothing new
    assert {labels for (_, labels) in scrape(control_plane.url)} == {(("cache_id", "site-a"),)}


def test_usage_routes_are_admin_only(control_plane, report):
    url = f"{control_plane.url}/api/v1/edge-caches"
    assert httpx.put(f"{url}/site-a/usage", json=report).status_code == 401
    assert httpx.get(url).status_code == 401
    assert httpx.put(f"{url}/site-a/usage", json=report, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert control_plane.client.list_cache_usage() == []
