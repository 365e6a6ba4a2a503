"""Hostile values the issue found reaching a 500, each answered 4xx with nothing written: integers
beyond 64 bits (body and query), JSON nested 200,000 deep, NaN/Infinity and overflowing floats,
far-future timestamps, labels whose cloud names would not fit a filesystem — on the control plane
(over HTTP) and on the edge agent."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from axon_dagster.api.app import create_app
from axon_dagster.api.server import ApiThread
from axon_dagster.control_plane.persistence import make_engine, upgrade
from axon_dagster.control_plane.persistence.schema import Base

ADMIN = "hostile-admin"
HUGE = 2**64


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    url = f"sqlite:///{root / 'cp.db'}"
    upgrade(url)
    server = ApiThread(create_app(url, admin_token=ADMIN)).start()
    client = httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {ADMIN}"}, timeout=30)
    token = client.post("/api/v1/robots", json={"robot_id": "robot-1"}).json()["token"]
    client.post("/api/v1/orders", json={"order_id": "o1", "scene": "warehouse", "skills": ["pick"]}).raise_for_status()
    client.post("/api/v1/orders/o1/plan", json={"task_count": 1, "duration_seconds": 5}).raise_for_status()
    client.post("/api/v1/orders/o1/dispatch", json={"robot_ids": ["robot-1"]}).raise_for_status()
    robot = httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {token}"}, timeout=30)
    engine = make_engine(url)

    def counts() -> dict[str, int]:
        with engine.connect() as conn:
            return {n: conn.execute(select(func.count()).select_from(t)).scalar_one() for n, t in Base.metadata.tables.items()}

    try:
        yield client, robot, counts
    finally:
        robot.close()
        client.close()
        engine.dispose()
        server.stop()


def _raw(client: httpx.Client, method: str, path: str, body: bytes) -> httpx.Response:
    return client.request(method, path, content=body, headers={"content-type": "application/json"})


BODIES = [
    ("POST", "/api/v1/orders", b'{"order_id": "o2", "scene": "w", "skills": ["a"], "priority": ' + str(HUGE).encode() + b"}", "64-bit"),
    ("POST", "/api/v1/orders", b'{"order_id": "o2", "scene": "w", "skills": ["a"], "priority": 4294967296}', "priority"),
    ("POST", "/api/v1/orders", b'{"order_id": "o2", "scene": "w", "skills": ["a"], "requirements": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", "nested"),
    ("POST", "/api/v1/orders", b'{"order_id": "o2", "scene": "w", "skills": ["a"], "requirements": {"auto_approve": NaN}}', "NaN"),
    ("POST", "/api/v1/orders/o1/plan", b'{"task_count": 1, "duration_seconds": Infinity}', "Infinity"),
    ("POST", "/api/v1/orders/o1/plan", b'{"task_count": 1, "duration_seconds": 1e400}', "finite"),
    ("POST", "/api/v1/orders", b'{"order_id": "o2", "scene": "w", "skills": ["' + b"k" * 120 + b'", "' + b"l" * 120 + b'", "m"]}', "over 255"),
    ("POST", "/api/v1/orders", b'{"order_id": "o2", "scene": "' + b"s" * 128 + b'", "sub_scene": "' + b"t" * 128 + b'", "skills": ["' + b"k" * 128 + b'"]}', None),
]


@pytest.mark.parametrize("method, path, body, words", BODIES, ids=[f"{m} {p} {w}" for m, p, _, w in BODIES])
def test_hostile_bodies_are_refused_and_change_nothing(api, method, path, body, words):
    client, _, counts = api
    before = counts()
    r = _raw(client, method, path, body)
    if words is None:  # long but fitting labels are fine
        assert r.status_code == 201, r.text
        client.request("GET", "/api/v1/orders/o2").raise_for_status()
        return
    assert r.status_code == 422, (r.status_code, r.text[:300])
    assert words in r.json()["detail"], r.json()["detail"]
    assert counts() == before


QUERIES = [
    "/api/v1/orders?offset=" + str(HUGE),
    "/api/v1/tasks?limit=" + str(HUGE),
    "/api/v1/events?after=" + str(HUGE),
    "/api/v1/datasets?offset=9223372036854775808",
    "/api/v1/audit?offset=" + str(HUGE),
    "/api/v1/dataset-search?offset=" + str(HUGE),
    "/api/v1/dataset-search?since=9999-12-31T23:59:59-23:59",
    "/api/v1/dataset-search?until=99999-01-01",
    "/api/v1/review/queue?limit=" + str(HUGE),
    "/api/v1/review/queue?since=9999-12-31T23:59:59-23:59",
]


@pytest.mark.parametrize("path", QUERIES)
def test_hostile_queries_are_4xx(api, path):
    client, _, _ = api
    r = client.get(path)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])


def test_hostile_robot_traffic_is_refused_and_changes_nothing(api):
    client, robot, counts = api
    task_id = client.get("/api/v1/tasks").json()[0]["task_id"]
    before = counts()
    for body in (
        {"events": [{"event_id": "e1", "task_id": task_id, "status": "READY", "occurred_at": "9999-12-31T23:59:59-23:59"}]},
        {"events": [{"event_id": "e1", "task_id": task_id, "status": "READY", "data": {"x": float("inf")}}]},
    ):
        r = robot.post("/api/v1/edge/events", content=_dump(body), headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    r = robot.get("/api/v1/edge/tasks", params={"after": HUGE})
    assert r.status_code == 422
    assert counts() == before


def _dump(body: object) -> bytes:
    import json

    return json.dumps(body).encode()  # json.dumps writes Infinity: what a careless client sends


def test_a_measured_infinity_in_a_qc_report_travels_as_text():
    """The API refuses NaN/Infinity; the client sends a QC report's non-finite numbers as text."""
    from axon_dagster.client.http import _finite

    assert _finite({"checks": [{"value": float("inf")}, {"value": float("nan")}], "score": 0.5}) == {
        "checks": [{"value": "inf"}, {"value": "nan"}], "score": 0.5}


def test_hostile_upload_traffic_is_refused_and_changes_nothing(api):
    """Issue 13's robot routes: uplink reports, upload plans, part PUTs and manifests, each 4xx."""
    client, robot, counts = api
    task_id = client.get("/api/v1/tasks").json()[0]["task_id"]
    before = counts()
    json_headers = {"content-type": "application/json"}
    for body in (b'{"mbps": 1e400}', b'{"mbps": NaN}', b'{"mbps": -1}', b'{"mbps": 5, "windows": [{"start": "24:00", "end": "01:00"}]}',
                 b'{"mbps": 5, "timezone": "../../etc/localtime"}', b'{"mbps": 5, "windows": [' + b'{"start": "01:00", "end": "02:00"},' * 60 + b'{"start": "01:00", "end": "02:00"}]}'):
        r = robot.put("/api/v1/edge/uplink", content=body, headers=json_headers)
        assert r.status_code == 422, (body[:60], r.status_code, r.text[:300])
    for body in (b'{"disk_usage_gb": 1e400}', b'{"disk_usage_gb": NaN}', b'{"state": 7}', b'{"topic_counts": {"/a": 3}}',
                 b'{"active_topics": ["' + b'x' * 300 + b'"]}', b"[]", b'{"reachable": false, "extra": 1}'):
        r = robot.put("/api/v1/edge/recorder", content=body, headers=json_headers)
        assert r.status_code == 422, (body[:60], r.status_code, r.text[:300])
    for body in (b'{"grant_id": 123}', b'{"grant_id": "g", "extra": 1}', b"[]"):
        r = robot.post(f"/api/v1/edge/uploads/{task_id}/plan", content=body, headers=json_headers)
        assert r.status_code == 422, (body, r.status_code, r.text[:300])
    r = robot.post(f"/api/v1/edge/uploads/{task_id}/plan", json={"grant_id": "g-none"})
    assert r.status_code == 404, r.text  # no recording reported for the task yet
    for query in (f"size={HUGE}&expires=1&file=x&upload_id=u&sig=s", "size=1&expires=-1&file=x&upload_id=u&sig=s",
                  "size=1&expires=1&file=../x&upload_id=u&sig=" + "0" * 64):
        r = robot.put(f"/api/v1/edge/uploads/{task_id}/parts/1?{query}", content=b"x")
        assert 400 <= r.status_code < 500, (query, r.status_code, r.text[:300])
    files = [{"name": f"{task_id}.lance/data/{i}.lance", "size": 1, "sha256": "0" * 64} for i in range(10_001)]
    manifest = {"events": [{"event_id": "e9", "task_id": task_id, "status": "EXECUTED",
                            "data": {"recording_format": "lance", "manifest": {"files": files, "dataset_digest": "0" * 64},
                                     "gate": {"passed": True, "reasons": [], "checks": {}}}}]}
    r = robot.post("/api/v1/edge/events", content=_dump(manifest), headers=json_headers)
    assert r.status_code in (413, 422), (r.status_code, r.text[:300])
    assert counts() == before
