"""Robot tokens over HTTP: stored as hashes only, rotated with an overlap (both work until it
ends), revoked (none works until a new one is issued), and the robot's last-seen time."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from axon_dagster.api.app import create_app
from axon_dagster.control_plane.persistence import make_engine
from axon_dagster.control_plane.persistence.schema import RobotRow

ADMIN = "tokens-admin"


@pytest.fixture
def api(database_url, serve_app):
    server = serve_app(create_app(database_url=database_url, admin_token=ADMIN))
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {ADMIN}"}) as admin:
        token = admin.post("/api/v1/robots", json={"robot_id": "robot-1"}).json()["token"]
        yield server.url, admin, token, database_url


def pull(url: str, token: str) -> int:
    return httpx.get(f"{url}/api/v1/edge/tasks", headers={"authorization": f"Bearer {token}"}).status_code


def test_rotation_overlaps_then_revocation_ends_every_token(api):
    url, admin, first, db = api
    assert pull(url, first) == 200
    rotated = admin.post("/api/v1/robots/robot-1/token", json={"overlap_seconds": 600})
    assert rotated.status_code == 200 and rotated.json()["previous_token_valid_until"] is not None
    second = rotated.json()["token"]
    assert second != first and pull(url, second) == 200 and pull(url, first) == 200  # the overlap
    third = admin.post("/api/v1/robots/robot-1/token", json={"overlap_seconds": 0}).json()["token"]
    assert [pull(url, t) for t in (first, second, third)] == [401, 401, 200]

    revoked = admin.post("/api/v1/robots/robot-1/revoke")
    assert revoked.status_code == 200 and revoked.json()["tokens_revoked_at"] is not None
    assert pull(url, third) == 401
    # A new token after a revocation: it works, and no old one comes back (no overlap after a revocation).
    fourth = admin.post("/api/v1/robots/robot-1/token", json={"overlap_seconds": 600})
    assert fourth.json()["previous_token_valid_until"] is None
    assert [pull(url, t) for t in (third, fourth.json()["token"])] == [401, 200]
    robot = admin.get("/api/v1/robots").json()[0]
    assert robot["tokens_revoked_at"] is None

    # Only hashes are stored.
    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(RobotRow.__table__)).one()
    finally:
        engine.dispose()
    stored = " ".join(str(v) for v in row)
    assert not any(t in stored for t in (first, second, third, fourth.json()["token"]))


def test_bad_rotation_requests_change_nothing(api):
    url, admin, first, _ = api
    for body, status in (({"overlap_seconds": -1}, 422), ({"overlap_seconds": 10**9}, 422), ({"overlap": 5}, 422)):
        assert admin.post("/api/v1/robots/robot-1/token", json=body).status_code == status
    assert admin.post("/api/v1/robots/nobody/token", json={}).status_code == 404
    assert admin.post("/api/v1/robots/nobody/revoke").status_code == 404
    assert pull(url, first) == 200


def test_last_seen_is_recorded(api):
    url, admin, first, _ = api
    assert admin.get("/api/v1/robots").json()[0]["last_seen_at"] is None
    assert pull(url, first) == 200
    httpx.get(f"{url}/metrics")  # a scrape flushes the batched last-seen times
    assert admin.get("/api/v1/robots").json()[0]["last_seen_at"] is not None


def test_a_robot_cannot_squat_another_robots_event_id(api):
    """Event ids are scoped per robot: robot-2 sending robot-1's next event id (for its own task)
    does not turn robot-1's real event into a "duplicate"."""
    url, admin, first, _ = api
    other = admin.post("/api/v1/robots", json={"robot_id": "robot-2"}).json()["token"]
    admin.post("/api/v1/orders", json={"order_id": "o1", "scene": "warehouse", "skills": ["a", "b"]}).raise_for_status()
    tasks = admin.post("/api/v1/orders/o1/plan", json={"task_count": 1, "duration_seconds": 5}).json()["tasks"]
    mine, theirs = tasks[0]["task_id"], tasks[1]["task_id"]
    admin.post("/api/v1/orders/o1/dispatch", json={"robot_ids": ["robot-1"]}).raise_for_status()
    admin.post(f"/api/v1/tasks/{theirs}/transition", json={"status": "CANCELLED"}).raise_for_status()  # robot-1 keeps one
    admin.post("/api/v1/orders/o1/dispatch", json={}).raise_for_status()
    owner = {t["task_id"]: t["robot_id"] for t in admin.get("/api/v1/tasks", params={"order_id": "o1"}).json()}
    assert owner[mine] == "robot-1"

    def push(token: str, task_id: str, event_id: str) -> dict:
        r = httpx.post(f"{url}/api/v1/edge/events", headers={"authorization": f"Bearer {token}"},
                       json={"events": [{"event_id": event_id, "task_id": task_id, "status": "READY"}]})
        return r

    # robot-2 owns no task here: it cannot even name robot-1's task.
    assert push(other, mine, f"{mine}.ready").status_code == 404
    # Give robot-2 a task of its own and let it send robot-1's next event id for it.
    admin.post("/api/v1/orders", json={"order_id": "o2", "scene": "warehouse", "skills": ["c"]}).raise_for_status()
    (squat_task,) = [t["task_id"] for t in admin.post("/api/v1/orders/o2/plan", json={"task_count": 1, "duration_seconds": 5}).json()["tasks"]]
    admin.post("/api/v1/orders/o2/dispatch", json={"robot_ids": ["robot-2"]}).raise_for_status()
    squatted = push(other, squat_task, f"{mine}.ready")
    assert squatted.status_code == 200 and squatted.json()["results"][0]["result"] == "applied"
    real = push(first, mine, f"{mine}.ready")
    assert real.json()["results"][0]["result"] == "applied"  # not a "duplicate"
    assert admin.get(f"/api/v1/tasks/{mine}").json()["status"] == "READY"
    assert push(first, mine, f"{mine}.ready").json()["results"][0]["result"] == "duplicate"  # its own replay still is
