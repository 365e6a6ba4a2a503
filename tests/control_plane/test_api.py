"""The HTTP API over real HTTP (uvicorn on a free port), on SQLite and PostgreSQL, driven through
the Python clients and raw httpx for what a client would never send."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select

from axon_dagster.api import create_app
from axon_dagster.client import ControlPlaneClient, ControlPlaneError, EdgeSyncClient
from axon_dagster.domain import TASK_TRANSITIONS, TaskStatus
from axon_dagster.control_plane.persistence import SchemaOutOfDateError, make_engine
from axon_dagster.control_plane.persistence.schema import Base

ADMIN_TOKEN = "admin-secret"
_TLS = httpx.create_ssl_context()  # shared: building one per client costs ~50 ms
_raw = httpx.Client(verify=_TLS)  # requests without the admin token
BAD_IDS = ["../x", "a/b", "bad\x01id", "x" * 129, ""]
S = TaskStatus


@dataclass
class Api:
    url: str
    admin: ControlPlaneClient
    http: httpx.Client  # raw, with the admin token
    robots: dict[str, EdgeSyncClient]
    tokens: dict[str, str]
    row_counts: Callable[[], dict[str, int]]  # every table's row count, straight from the database


def _api(database_url: str, serve_app: Callable[[Any], Any]) -> Iterator[Api]:
    server = serve_app(create_app(database_url=database_url, admin_token=ADMIN_TOKEN))
    admin = ControlPlaneClient(server.url, token=ADMIN_TOKEN)
    tokens = {r: admin.register_robot(r)["token"] for r in ("robot-a", "robot-b")}
    robots = {r: EdgeSyncClient(server.url, t) for r, t in tokens.items()}
    http = httpx.Client(base_url=server.url + "/api/v1", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, verify=_TLS)
    engine = make_engine(database_url)

    def row_counts() -> dict[str, int]:
        with engine.connect() as conn:
            return {name: conn.execute(select(func.count()).select_from(t)).scalar_one() for name, t in Base.metadata.tables.items()}

    yield Api(server.url, admin, http, robots, tokens, row_counts)
    for client in (admin, http, *robots.values()):
        client.close()
    engine.dispose()


@pytest.fixture
def api(sqlite_url: str, serve_app: Callable[[Any], Any]) -> Iterator[Api]:
    """The API on SQLite: HTTP behaviour does not depend on the backend (the store and service
    suites run on both)."""
    yield from _api(sqlite_url, serve_app)


@pytest.fixture
def api_both(database_url: str, serve_app: Callable[[Any], Any]) -> Iterator[Api]:
    """The API on SQLite and on PostgreSQL, for the acceptance properties."""
    yield from _api(database_url, serve_app)


def _order(api: Api, order_id: str = "o1", task_count: int = 2, robot_ids: list[str] | None = None) -> dict[str, str]:
    api.admin.create_order(order_id, "warehouse", ["nav", "pick"], sub_scene="aisle_1", requirements={"max_gap_seconds": 2})
    api.admin.plan_order(order_id, task_count=task_count, duration_seconds=5, topics=["/imu"])
    return api.admin.dispatch_order(order_id, robot_ids)


def _ev(task_id: str, status: TaskStatus, **data: Any) -> dict[str, Any]:
    return {"event_id": f"{task_id}.{status.value.lower()}", "task_id": task_id, "status": status.value, "data": data}


# ---------------------------------------------------------------------------- control flow


def test_order_to_robot_round_trip(api: Api) -> None:
    created = api.admin.create_order("o1", "warehouse", ["nav", "pick"], priority=2)
    assert created["status"] == "pending" and created["priority"] == 2
    plan = api.admin.plan_order("o1", task_count=2, duration_seconds=5, topics=["/imu"])
    assert len(plan["batches"]) == 2 and len(plan["tasks"]) == 4 and plan["tasks"][0]["status"] == "PENDING"
    with pytest.raises(ControlPlaneError) as planned_twice:
        api.admin.plan_order("o1", task_count=1)
    assert planned_twice.value.status_code == 409
    assignments = api.admin.dispatch_order("o1")
    assert sorted(assignments.values()) == ["robot-a", "robot-a", "robot-b", "robot-b"]
    page = api.robots["robot-a"].pull_tasks(after=0, limit=10)
    task = page["tasks"][0]
    expected_keys = {
        "task_id", "order_id", "batch_id", "scene", "sub_scene", "skills", "duration_seconds", "topics", "priority", "status",
        "robot_id", "data_collector_id", "config_path", "dataset_path", "failure_reason", "requirements", "created_at",
        "updated_at", "revision", "upload",
    }
    assert set(task) == expected_keys and task["robot_id"] == "robot-a" and task["priority"] == 2
    assert page["cursor"] == max(t["revision"] for t in page["tasks"])
    assert api.robots["robot-a"].pull_tasks(after=page["cursor"])["tasks"] == []
    assert {t["task_id"] for t in api.admin.list_tasks(robot_id="robot-a")} == {t["task_id"] for t in page["tasks"]}
    assert len(api.admin.list_batches("o1")) == 2 and api.admin.get_batch(plan["batches"][0]["batch_id"])["task_count"] == 2
    assert [r["robot_id"] for r in api.admin.list_robots()] == ["robot-a", "robot-b"]


def test_every_illegal_task_transition_is_refused_and_changes_nothing(api_both: Api) -> None:
    api = api_both
    assignments = _order(api, task_count=4, robot_ids=["robot-a"])  # 8 tasks, all on robot-a
    tasks = sorted(assignments)
    edge = api.robots["robot-a"]
    path_to = {
        S.PENDING: [],
        S.READY: [S.READY],
        S.ASSIGNED: [S.READY, S.ASSIGNED],
        S.EXECUTING: [S.READY, S.EXECUTING],
        S.EXECUTED: [S.READY, S.EXECUTING, S.EXECUTED],
        S.UPLOADED: [S.READY, S.EXECUTING, S.EXECUTED, S.UPLOADED],
        S.FAILED: [S.FAILED],
        S.CANCELLED: [S.CANCELLED],
    }
    holder: dict[TaskStatus, str] = {}
    for task_id, (state, path) in zip(tasks, path_to.items()):
        for step in path:
            if step in (S.UPLOADED, S.CANCELLED, S.FAILED):
                api.admin.transition_task(task_id, step.value, reason="test")
            else:
                assert edge.push_events([_ev(task_id, step)])[0]["result"] == "applied"
        assert api.admin.get_task(task_id)["status"] == state.value
        holder[state] = task_id
    refused = 0
    for state, task_id in holder.items():
        before = api.admin.get_task(task_id)
        for target in TaskStatus:
            if target in TASK_TRANSITIONS[state]:
                continue
            response = api.http.post(f"/tasks/{task_id}/transition", json={"status": target.value})
            if target is state:  # a replay of the current state: idempotent no-op
                assert response.status_code == 200, response.text
            else:
                assert response.status_code == 409, (state, target, response.text)
                assert f"{state.value} -> {target.value}" in response.json()["detail"]
                refused += 1
                # and from the robot side: that event alone is rejected
                (result,) = edge.push_events([{**_ev(task_id, target), "event_id": f"x-{task_id}-{target.value}"}])
                assert result["result"] == "rejected" and "illegal transition" in result["error"]
            assert api.admin.get_task(task_id) == before
    assert refused == sum(len(TaskStatus) - 1 - len(TASK_TRANSITIONS[s]) for s in TaskStatus)


def test_bad_ids_are_refused_with_4xx_and_nothing_written(api_both: Api) -> None:
    api = api_both
    assignments = _order(api)
    task = sorted(assignments)[0]
    edge = api.robots[assignments[task]]
    before = api.row_counts()
    for bad in BAD_IDS:
        seg = quote(bad, safe="")  # what a careful client sends; the server decodes it
        attempts = [
            api.http.post("/orders", json={"order_id": bad, "scene": "warehouse", "skills": ["nav"]}),
            api.http.post("/orders", json={"order_id": "ok", "scene": bad, "skills": ["nav"]}),
            api.http.post("/orders", json={"order_id": "ok", "scene": "warehouse", "skills": [bad]}),
            api.http.post("/robots", json={"robot_id": bad}),
            api.http.post("/orders/o1/dispatch", json={"robot_ids": [bad]}),
            api.http.get(f"/tasks/{seg}"),
            api.http.post(f"/tasks/{seg}/transition", json={"status": "CANCELLED"}),
            api.http.post(f"/orders/{seg}/plan", json={"task_count": 1}),
            api.http.post(f"/datasets/{seg}/cached", json={"task_id": task, "cache_path": "/c", "dataset_digest": "d", "size_bytes": 1}),
            api.http.post(f"/datasets/{task}/cached", json={"task_id": bad, "cache_path": "/c", "dataset_digest": "d", "size_bytes": 1}),
            api.http.post(f"/datasets/{seg}/review", json={"reviewer": "bob", "approve": True}),
            api.http.get("/tasks", params={"order_id": bad}),
            _raw.post(
                f"{api.url}/api/v1/edge/events",
                json={"events": [_ev(task, S.READY), {**_ev(task, S.ASSIGNED), "event_id": bad}]},
                headers={"Authorization": f"Bearer {api.tokens[assignments[task]]}"},
            ),
            _raw.post(
                f"{api.url}/api/v1/edge/events",
                json={"events": [{**_ev(task, S.READY), "task_id": bad}]},
                headers={"Authorization": f"Bearer {api.tokens[assignments[task]]}"},
            ),
        ]
        for response in attempts:
            assert 400 <= response.status_code < 500, (bad, response.request.url, response.status_code, response.text)
            assert isinstance(response.json()["detail"], str)
    assert api.row_counts() == before
    assert edge.pull_tasks()["tasks"][0]["status"] == "PENDING"
    # a readable reason, not just a code
    response = api.http.post("/orders", json={"order_id": "a/b", "scene": "warehouse", "skills": ["nav"]})
    assert response.status_code == 422 and "path separator" in response.json()["detail"]


def test_robot_cannot_read_or_change_another_robots_tasks(api_both: Api) -> None:
    api = api_both
    assignments = _order(api)
    a_tasks = sorted(t for t, r in assignments.items() if r == "robot-a")
    b_tasks = sorted(t for t, r in assignments.items() if r == "robot-b")
    seen_by_b = {t["task_id"] for t in api.robots["robot-b"].pull_tasks(limit=100)["tasks"]}
    assert seen_by_b == set(b_tasks) and not seen_by_b & set(a_tasks)
    before = api.row_counts()
    with pytest.raises(ControlPlaneError) as foreign:
        api.robots["robot-b"].push_events([_ev(b_tasks[0], S.READY), _ev(a_tasks[0], S.READY)])
    assert foreign.value.status_code == 404
    with pytest.raises(ControlPlaneError) as ghost:
        api.robots["robot-b"].push_events([_ev("ghost-task", S.READY)])
    assert ghost.value.status_code == 404 and "ghost-task" in ghost.value.detail
    assert api.row_counts() == before
    assert api.admin.get_task(a_tasks[0])["status"] == "PENDING" and api.admin.get_task(b_tasks[0])["status"] == "PENDING"


def test_duplicated_status_event_is_applied_once(api_both: Api) -> None:
    api = api_both
    assignments = _order(api)
    task = sorted(assignments)[0]
    edge = api.robots[assignments[task]]
    before = api.row_counts()["events"]
    ready = _ev(task, S.READY)
    assert [r["result"] for r in edge.push_events([ready, ready])] == ["applied", "duplicate"]
    assert [r["result"] for r in edge.push_events([ready])] == ["duplicate"]
    assert api.row_counts()["events"] == before + 1
    task_json = api.admin.get_task(task)
    assert task_json["status"] == "READY"
    events = api.admin.events_after(0, 100)["events"]
    assert [e["event_id"] for e in events] == [ready["event_id"]]


def test_events_feed_cursor(api: Api) -> None:
    assignments = _order(api)
    for task, robot in sorted(assignments.items()):
        api.robots[robot].push_events([_ev(task, S.READY), _ev(task, S.EXECUTING, config_path="/c.yaml", dataset_path="/d.lance")])
    first = api.admin.events_after(0, 3)
    rest = api.admin.events_after(first["cursor"], 100)
    empty = api.admin.events_after(rest["cursor"], 100)
    events = first["events"] + rest["events"]
    assert len(first["events"]) == 3 and len(events) == 8 and empty == {"events": [], "cursor": rest["cursor"]}
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events) and len({e["seq"] for e in events}) == 8
    assert set(events[0]) == {"seq", "event_id", "task_id", "robot_id", "status", "occurred_at", "received_at", "data"}
    assert events[-1]["status"] == "EXECUTING" and events[-1]["data"]["dataset_path"] == "/d.lance"
    for bad in ({"after": -1}, {"limit": 0}, {"limit": "many"}):
        response = api.http.get("/events", params=bad)
        assert response.status_code == 422, bad


def test_order_roll_up_through_the_api(api: Api) -> None:
    assignments = _order(api)
    tasks = sorted(assignments)
    order = api.admin.get_order("o1")
    assert order["status"] == "pending" and order["task_counts"]["PENDING"] == 4
    for task in tasks:
        api.robots[assignments[task]].push_events([_ev(task, S.READY), _ev(task, S.EXECUTING), _ev(task, S.EXECUTED)])
    assert api.admin.get_order("o1")["status"] == "active"
    for task in tasks[:-1]:
        api.admin.transition_task(task, "UPLOADED")
    api.admin.transition_task(tasks[-1], "FAILED", reason="upload verification failed")
    order = api.admin.get_order("o1")
    assert order["status"] == "failed" and order["task_counts"]["UPLOADED"] == 3 and order["task_counts"]["FAILED"] == 1
    assert [o["status"] for o in api.admin.list_orders()] == ["failed"]
    assert api.admin.get_task(tasks[-1])["failure_reason"] == "upload verification failed"


def test_dataset_review_is_final_through_the_api(api: Api) -> None:
    assignments = _order(api)
    task = sorted(assignments)[0]
    api.robots[assignments[task]].push_events([_ev(task, S.READY), _ev(task, S.EXECUTING), _ev(task, S.EXECUTED, dataset_path="/r.lance")])
    api.admin.dataset_cached(task, cache_path="/cache/r.lance", dataset_digest="d" * 64, size_bytes=10)
    api.admin.dataset_inspected(task, score=0.7, outcome="needs_review", report={"score": 0.7})
    assert api.admin.list_datasets(outcome="needs_review")[0]["dataset_id"] == task
    reviewed = api.admin.review_dataset(task, reviewer="bob", approve=True, comment="ok")
    assert reviewed["qc_outcome"] == "approved"
    again = api.admin.dataset_inspected(task, score=0.1, outcome="rejected")
    assert again["qc_outcome"] == "approved" and again["qc_score"] == 0.1
    with pytest.raises(ControlPlaneError) as second_review:
        api.admin.review_dataset(task, reviewer="carol", approve=False)
    assert second_review.value.status_code == 409
    api.admin.dataset_upload_started(task)
    done = api.admin.dataset_uploaded(task, cloud_uri="file:///cloud/r.lance", dataset_digest="d" * 64)
    assert done["status"] == "UPLOADED" and api.admin.get_dataset(task)["reviewed_by"] == "bob"
    with pytest.raises(ControlPlaneError) as missing:
        api.admin.get_dataset("ghost")
    assert missing.value.status_code == 404


def test_failed_upload_is_reported_through_the_api(api_both: Api) -> None:
    assignments = _order(api_both)
    task = sorted(assignments)[0]
    api_both.robots[assignments[task]].push_events([_ev(task, S.READY), _ev(task, S.EXECUTING), _ev(task, S.EXECUTED, dataset_path="/r.lance")])
    api_both.admin.dataset_cached(task, cache_path="/cache/r.lance", dataset_digest="d" * 64, size_bytes=10)
    api_both.admin.dataset_inspected(task, score=0.9, outcome="approved")
    assert api_both.admin.get_dataset(task)["last_upload_error"] is None
    before = api_both.row_counts()
    with pytest.raises(ControlPlaneError) as not_uploading:  # INSPECTED, never started: illegal
        api_both.admin.dataset_upload_failed(task, "boom")
    assert not_uploading.value.status_code == 409
    with pytest.raises(ControlPlaneError) as missing:
        api_both.admin.dataset_upload_failed("ghost", "boom")
    assert missing.value.status_code == 404
    for body in ({}, {"reason": ""}, {"reason": 3}, {"reason": "x" * 5000}, {"reason": "boom", "retry": True}):
        assert api_both.http.post(f"/datasets/{task}/upload-failed", json=body).status_code == 422, body
    assert api_both.row_counts() == before

    api_both.admin.dataset_upload_started(task)
    failed = api_both.admin.dataset_upload_failed(task, "OSError: bucket gone (run r1)")
    assert (failed["status"], failed["last_upload_error"]) == ("INSPECTED", "OSError: bucket gone (run r1)")
    assert api_both.admin.dataset_upload_failed(task, "OSError: bucket gone (run r1)")["status"] == "INSPECTED"  # replay
    listed = api_both.admin.list_datasets(status="INSPECTED", outcome="approved")  # what the bandwidth sensor lists
    assert [(d["dataset_id"], d["last_upload_error"]) for d in listed] == [(task, "OSError: bucket gone (run r1)")]

    api_both.admin.dataset_upload_started(task)
    done = api_both.admin.dataset_uploaded(task, cloud_uri="file:///cloud/r.lance", dataset_digest="d" * 64)
    assert (done["status"], done["last_upload_error"]) == ("UPLOADED", None)
    with pytest.raises(ControlPlaneError) as late:
        api_both.admin.dataset_upload_failed(task, "late")
    assert late.value.status_code == 409
    assert api_both.admin.get_dataset(task)["status"] == "UPLOADED"


# ---------------------------------------------------------------------------- auth, limits, shape


def test_tokens(api: Api) -> None:
    unauthenticated = _raw.get(f"{api.url}/api/v1/orders")
    assert unauthenticated.status_code == 401 and unauthenticated.headers["www-authenticate"] == "Bearer"
    assert _raw.get(f"{api.url}/api/v1/orders", headers={"Authorization": "Bearer wrong"}).status_code == 401
    # a robot's token is not an admin token, and the admin token is not a robot's
    assert _raw.get(f"{api.url}/api/v1/orders", headers={"Authorization": f"Bearer {api.tokens['robot-a']}"}).status_code == 401
    assert _raw.get(f"{api.url}/api/v1/edge/tasks", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 401
    assert _raw.get(f"{api.url}/api/v1/edge/tasks").status_code == 401
    with pytest.raises(ControlPlaneError) as dup:
        api.admin.register_robot("robot-a")
    assert dup.value.status_code == 409


def test_open_admin_api_when_no_token_is_configured(sqlite_url: str, serve_app: Callable[[Any], Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AXON_ADMIN_TOKEN", "env-token")
    from_env = serve_app(create_app(database_url=sqlite_url))  # admin_token=None: the environment decides
    assert _raw.get(f"{from_env.url}/api/v1/orders").status_code == 401
    assert _raw.get(f"{from_env.url}/api/v1/orders", headers={"Authorization": "Bearer env-token"}).json() == []
    forced_open = serve_app(create_app(database_url=sqlite_url, admin_token=""))
    assert _raw.get(f"{forced_open.url}/api/v1/orders").json() == []
    assert _raw.get(f"{forced_open.url}/api/v1/edge/tasks").status_code == 401  # robots always need their token


def test_request_body_limit(api: Api) -> None:
    before = api.row_counts()
    huge = {"order_id": "big", "scene": "warehouse", "skills": ["nav"], "created_by": "x" * (2 * 1024 * 1024)}
    response = api.http.post("/orders", json=huge)
    assert response.status_code == 413 and "limit" in response.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        yield b'{"order_id": "big", "scene": "warehouse", "skills": ["nav"], "created_by": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    chunked = api.http.post("/orders", content=chunks(), headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413
    assert api.row_counts() == before


def test_malformed_bodies_get_a_readable_422(api: Api) -> None:
    before = api.row_counts()
    cases = [
        api.http.post("/orders", content=b"{not json", headers={"Content-Type": "application/json"}),
        api.http.post("/orders", json={"order_id": "o9", "scene": "warehouse", "skills": ["nav"], "colour": "red"}),
        api.http.post("/orders", json={"order_id": "o9", "scene": "warehouse"}),
        api.http.post("/orders", json={"order_id": "o9", "scene": "warehouse", "skills": ["nav"], "requirements": {"speed": 3}}),
        api.http.post("/orders", json={"order_id": "o9", "scene": "warehouse", "skills": ["nav"], "priority": "high"}),
    ]
    for response in cases:
        assert response.status_code == 422, response.text
        assert isinstance(response.json()["detail"], str) and response.json()["detail"]
    assert "colour" in cases[1].json()["detail"] and "speed" in cases[3].json()["detail"]
    assert api.row_counts() == before


def test_health_and_metrics(api: Api) -> None:
    assignments = _order(api)
    task = sorted(assignments)[0]
    robot = assignments[task]
    api.robots[robot].push_events([_ev(task, S.READY), _ev(task, S.READY)])
    assert _raw.get(f"{api.url}/healthz").json() == {"status": "ok"}
    assert _raw.get(f"{api.url}/api/v1/healthz").status_code == 200
    text = _raw.get(f"{api.url}/metrics").text  # no auth needed
    assert 'axon_tasks{status="READY"} 1.0' in text and 'axon_tasks{status="PENDING"} 3.0' in text
    assert 'axon_orders{status="active"} 1.0' in text
    assert f'axon_events_ingested_total{{result="applied",robot_id="{robot}"}} 1.0' in text
    assert f'axon_events_ingested_total{{result="duplicate",robot_id="{robot}"}} 1.0' in text
    assert f'axon_robot_last_seen_timestamp_seconds{{robot_id="{robot}"}}' in text


def test_unmigrated_database_is_refused_at_startup(tmp_path) -> None:
    with pytest.raises(SchemaOutOfDateError, match="db upgrade"):
        create_app(database_url=f"sqlite:///{tmp_path / 'fresh.db'}", admin_token="x")
