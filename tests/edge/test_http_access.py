"""Who may use the edge agent's HTTP surface: loopback by default; from another machine only with
the robot-local collector PIN (bearer for devices, an HttpOnly cookie for the page, lockout after
wrong PINs); no cross-site or non-JSON writes; bodies capped; no debug routes unless asked for;
an OpenAPI document. Starlette's TestClient calls from the address "testclient": another machine."""

from __future__ import annotations

import subprocess
import sys

import pytest
from starlette.testclient import TestClient

from axon_edge.access import HttpAccess
from axon_edge.http import create_app

PIN = "246810"


@pytest.fixture
def agent(edge_env):
    return edge_env.build_agent()


def remote(agent, access: HttpAccess | None = None) -> TestClient:
    return TestClient(create_app(agent, access), base_url="http://robot-7.local:8090")


def test_without_a_pin_other_machines_get_nothing_but_health_metrics_and_the_document(agent):
    client = remote(agent)
    for method, path in (("GET", "/tasks"), ("GET", "/status"), ("GET", "/outbox"), ("GET", "/collector/live"),
                         ("POST", "/teleop"), ("POST", "/tasks/t1/pickup")):
        r = client.request(method, path, json={"task_id": "t1", "command": "start"} if method == "POST" else None)
        assert r.status_code == 403 and "loopback only" in r.json()["detail"], (path, r.text)
    assert client.get("/healthz").status_code == 200 and client.get("/metrics").status_code == 200
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.") and {"/teleop", "/tasks/{task_id}/pickup", "/collector/login"} <= set(doc["paths"])
    # Debug routes: not served unless asked for (and then behind the same rules).
    auth = {"authorization": f"Bearer {PIN}"}
    assert remote(agent, HttpAccess(collector_credential=PIN)).get("/debug/modules", headers=auth).status_code == 404
    assert "axon_edge" in remote(agent, HttpAccess(collector_credential=PIN, debug_routes=True)).get(
        "/debug/modules", headers=auth).json()["modules"]
    assert remote(agent, HttpAccess(debug_routes=True)).get("/debug/modules").status_code == 403


def test_with_a_pin_devices_send_it_and_the_page_signs_in(agent):
    client = remote(agent, HttpAccess(collector_credential=PIN))
    assert client.get("/tasks").status_code == 401
    assert client.get("/tasks", headers={"authorization": "Bearer 999999"}).status_code == 401
    assert client.get("/tasks", headers={"authorization": f"Bearer {PIN}"}).json() == {"tasks": []}
    # The page: the PIN buys an HttpOnly, SameSite=Strict session cookie.
    assert client.get("/collector").status_code == 200  # the page itself (no robot data) shows the PIN form
    signed = client.post("/collector/login", json={"pin": PIN})
    assert signed.status_code == 200
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.get("/tasks").status_code == 200  # the client now sends the cookie
    assert TestClient(create_app(agent, HttpAccess(collector_credential=PIN))).get(
        "/tasks", cookies={"axon_collector": "forged"}).status_code == 401


def test_wrong_pins_lock_the_address_out(agent):
    client = remote(agent, HttpAccess(collector_credential=PIN))
    codes = [client.post("/collector/login", json={"pin": f"00000{i}"}).status_code for i in range(5)]
    assert codes == [401] * 5
    locked = client.post("/collector/login", json={"pin": PIN})  # even the right PIN, for a minute
    assert locked.status_code == 429 and locked.headers["retry-after"] == "60"
    assert client.get("/tasks").status_code == 401


def test_cross_site_and_non_json_writes_are_refused_before_anything_runs(agent):
    client = remote(agent, HttpAccess(collector_credential=PIN))
    auth = {"authorization": f"Bearer {PIN}"}
    body = '{"task_id": "t1", "command": "start"}'
    for headers, words in (
        ({"origin": "http://evil.example", "content-type": "application/json"}, "cross-origin"),
        ({"sec-fetch-site": "cross-site", "content-type": "application/json"}, "cross-site"),
        ({"content-type": "text/plain"}, "application/json"),
    ):
        r = client.post("/teleop", content=body, headers={**auth, **headers})
        assert r.status_code == 403 and words in r.json()["detail"], headers
    # The same request from this site reaches the agent (which knows no task t1).
    r = client.post("/teleop", content=body, headers={**auth, "content-type": "application/json", "origin": "http://robot-7.local:8090"})
    assert r.status_code == 404


def test_bodies_over_the_limit_are_refused(agent):
    client = remote(agent, HttpAccess(collector_credential=PIN, max_body_bytes=1024))
    r = client.post("/teleop", content=b"{" + b" " * 2048 + b"}", headers={"authorization": f"Bearer {PIN}", "content-type": "application/json"})
    assert r.status_code == 413
    assert client.post("/collector/login", content=b'{"pin": "' + b"1" * 5000 + b'"}',
                       headers={"content-type": "application/json"}).status_code == 413


def test_hostile_json_is_refused(agent):
    client = remote(agent, HttpAccess(collector_credential=PIN))
    headers = {"authorization": f"Bearer {PIN}", "content-type": "application/json"}
    for body, words in ((b"[" * 200_000 + b"]" * 200_000, "nested"), (b'{"task_id": "t1", "command": NaN}', "NaN"),
                        (b'{"task_id": "t1", "command": 1e999}', "finite"), (b'{"collector_id": 123456789012345678901234}', "64-bit")):
        r = client.post("/tasks/t1/pickup" if b"collector" in body else "/teleop", content=body[:60_000], headers=headers)
        assert r.status_code == 422 and words in r.json()["detail"], (words, r.text[:200])


def test_security_headers_on_the_page(agent):
    headers = remote(agent).get("/collector").headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("extra, words", [(["--host", "0.0.0.0"], "collector PIN"), (["--host", "0.0.0.0", "--collector-pin-file", "SHORT"], "at least 6")])
def test_the_cli_will_not_expose_an_agent_without_a_pin(tmp_path, extra, words):
    short = tmp_path / "pin"
    short.write_text("123")
    argv = [sys.executable, "-m", "axon_edge.cli", "run", "--robot-id", "r1", "--control-plane-url", "http://127.0.0.1:9",
            "--token", "t", "--data-dir", str(tmp_path), "--recorder-url", "http://127.0.0.1:9",
            *[str(short) if a == "SHORT" else a for a in extra]]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and words in done.stderr, done.stderr
