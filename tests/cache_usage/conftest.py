"""A real control plane (uvicorn over HTTP, SQLite store in tmp, admin token required) and a real
edge cache in tmp, for the edge-cache retention job and the usage reports."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from axon_dagster.api.app import create_app
from axon_dagster.client import ControlPlaneClient
from axon_dagster.api.server import ApiThread
from axon_dagster.defs.resources import ControlPlaneResource
from axon_dagster.storage.digest import digest_of_files, file_digests
from axon_dagster.storage.edge_cache import EdgeCache
from axon_dagster.storage.recording import Sidecar, TopicSummary, sidecar_path
from axon_dagster.control_plane.persistence import upgrade

ADMIN_TOKEN = "cache-usage-admin-token"
TOKEN_ENV = "AXON_CACHE_USAGE_TEST_TOKEN"


@dataclass
class ControlPlane:
    url: str
    database_url: str
    client: ControlPlaneClient

    def resource(self) -> ControlPlaneResource:
        return ControlPlaneResource(url=self.url, token_env_var=TOKEN_ENV)


@pytest.fixture
def control_plane(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ControlPlane]:
    database_url = f"sqlite:///{tmp_path / 'cp.db'}"
    upgrade(database_url)
    monkeypatch.setenv(TOKEN_ENV, ADMIN_TOKEN)
    server = ApiThread(create_app(database_url, admin_token=ADMIN_TOKEN)).start()
    client = ControlPlaneClient(server.url, token=ADMIN_TOKEN)
    try:
        yield ControlPlane(server.url, database_url, client)
    finally:
        client.close()
        server.stop()


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
def stage(tmp_path: Path) -> Callable[[EdgeCache, str, int], str]:
    """``stage(cache, dataset_id, size, state="cached"|"uploaded"|"rejected", age_days=0)``"""

    def do(cache: EdgeCache, dataset_id: str, size: int, state: str = "cached", age_days: float = 0) -> str:
        entry = cache.stage(write_dataset(tmp_path / "recorder", dataset_id, size), dataset_id)
        if state == "uploaded":
            cache.mark_uploaded(dataset_id, f"file:///cloud/{dataset_id}", entry.dataset_digest)
        elif state == "rejected":
            cache.mark_rejected(dataset_id)
        if age_days:
            # The cache has no clock to inject through the job: age the row's last state change.
            with sqlite3.connect(cache.root / "index.db") as db:
                db.execute("UPDATE entries SET updated_at = ? WHERE dataset_id = ?", (time.time() - age_days * 86400, dataset_id))
        return dataset_id

    return do
