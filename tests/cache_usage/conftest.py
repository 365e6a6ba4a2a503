"""A real control plane (uvicorn over HTTP, admin token required) on SQLite and on a real
PostgreSQL, two registered robots with their own tokens, and a real edge cache in tmp: for the
robots' edge-cache usage reports and the edge agent's cache upkeep."""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

try:
    from tests.pg_fixture import _migrated_postgres_template, migrated_postgres_url, postgres_server, postgres_url  # noqa: F401
except ModuleNotFoundError:  # pytest started without the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.pg_fixture import _migrated_postgres_template, migrated_postgres_url, postgres_server, postgres_url  # noqa: F401

from axon_dagster.api.app import create_app
from axon_dagster.api.server import ApiThread
from axon_dagster.client import ControlPlaneClient, EdgeSyncClient
from axon_dagster.control_plane.persistence import upgrade
from axon_dagster.storage.digest import digest_of_files, file_digests
from axon_dagster.storage.edge_cache import EdgeCache
from axon_dagster.storage.recording import Sidecar, TopicSummary, sidecar_path

ADMIN_TOKEN = "cache-usage-admin-token"
ROBOTS = ("robot-1", "robot-2")


@dataclass
class ControlPlane:
    url: str
    database_url: str
    admin: ControlPlaneClient
    tokens: dict[str, str]  # robot id -> its bearer token

    def robot(self, robot_id: str) -> EdgeSyncClient:
        return EdgeSyncClient(self.url, self.tokens[robot_id])

    def list_cache_usage(self) -> list[dict]:
        """``GET /edge-caches`` on a connection of its own (a pooled one idle past the test server's
        5 s keep-alive may be reset under load)."""
        with ControlPlaneClient(self.url, token=ADMIN_TOKEN) as admin:
            return admin.list_cache_usage()


@pytest.fixture(scope="session")
def _migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cache-usage-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, _migrated_sqlite_template: Path) -> str:
    if request.param == "sqlite":
        target = tmp_path / "cp.db"
        target.write_bytes(_migrated_sqlite_template.read_bytes())
        return f"sqlite:///{target}"
    return request.getfixturevalue("migrated_postgres_url")


def serve(database_url: str) -> Iterator[ControlPlane]:
    server = ApiThread(create_app(database_url, admin_token=ADMIN_TOKEN)).start()
    admin = ControlPlaneClient(server.url, token=ADMIN_TOKEN)
    try:
        tokens = {robot: admin.register_robot(robot, f"{robot} (cache usage suite)")["token"] for robot in ROBOTS}
        yield ControlPlane(server.url, database_url, admin, tokens)
    finally:
        admin.close()
        server.stop()


@pytest.fixture
def control_plane(database_url: str) -> Iterator[ControlPlane]:
    """The API over SQLite, then over PostgreSQL."""
    yield from serve(database_url)


@pytest.fixture
def sqlite_control_plane(tmp_path: Path, _migrated_sqlite_template: Path) -> Iterator[ControlPlane]:
    """The API over SQLite only (the edge-agent tests: the store is not what they test)."""
    target = tmp_path / "cp.db"
    target.write_bytes(_migrated_sqlite_template.read_bytes())
    yield from serve(f"sqlite:///{target}")


def write_dataset(parent: Path, name: str, size: int) -> Path:
    """A recording as the cache sees it: a ``.lance`` directory of ``size`` bytes and its sidecar."""
    dataset = parent / f"{name}.lance"
    (dataset / "data").mkdir(parents=True)
    (dataset / "data" / "0.lance").write_bytes(bytes(i % 251 for i in range(size)))
    files = file_digests(dataset)
    Sidecar(
        task_id=name,
        robot_id="robot-1",
        metadata={"order_id": "order-1", "scene": "warehouse"},
        topics={"/imu": TopicSummary(1, "sensor_msgs/Imu", 0, 0)},
        start_ns=0,
        end_ns=0,
        files=files,
        dataset_digest=digest_of_files(files),
    ).write(sidecar_path(dataset))
    return dataset


StageFn = Callable[..., str]


@pytest.fixture
def stage(tmp_path: Path) -> StageFn:
    """``stage(cache, dataset_id, size, state="cached"|"published"|"rejected", age_days=0)``: a
    recording in the cache, in that state since ``age_days`` ago."""

    def do(cache: EdgeCache, dataset_id: str, size: int, state: str = "cached", age_days: float = 0) -> str:
        cache.stage(write_dataset(tmp_path / "recorder", dataset_id, size), dataset_id)
        if state == "published":
            cache.mark_published(dataset_id)
        elif state == "rejected":
            cache.mark_rejected(dataset_id)
        if age_days:
            # The cache takes no clock: age the row's last state change instead.
            with sqlite3.connect(cache.root / "index.db") as db:
                db.execute("UPDATE entries SET updated_at = ? WHERE dataset_id = ?", (time.time() - age_days * 86400, dataset_id))
        return dataset_id

    return do
