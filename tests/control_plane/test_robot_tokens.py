"""Robot tokens over HTTP: stored as hashes only, rotated with an overlap (both work until it
ends), revoked (none works until a new one is issued), and the robot's last-seen time."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from axon_dagster.api.app import create_app
from axon_dagster.store import make_engine
from axon_dagster.store.schema import RobotRow

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
