"""Kill the edge agent (a real ``axon-edge run`` process, SIGKILL) at random points of its uploads
to S3 through pre-signed part URLs (moto's server over HTTP), restart it, and check that every
upload completes, that no part the store had finished is ever sent again, and that the staged
bytes are the robot's. And a robot that is offline for a grant's whole lifetime: the grant
expires, is re-issued, nothing is lost."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
from edge_support import RECORDER_TIMEOUT, edge_environment, wait_for

from axon_dagster.demo.sim.axon_mcap import axon_default_topics
from axon_dagster.settings.uploads import UploadApiSettings
from axon_dagster.storage.object_stores import S3ObjectStore

try:
    from tests.s3_fixture import make_s3_client, s3_server  # noqa: F401
except ModuleNotFoundError:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.s3_fixture import make_s3_client, s3_server  # noqa: F401

MiB = 1 << 20
KILLS = 20
UPLINK_MBPS = 64  # the robot's cap: 8 MB/s, so each ~20 MB upload takes a few seconds to kill into
CAMERA_BYTES = 600_000  # random image payloads: MCAPs of ~20 MB for a 1.2 s recording


class PartLog:
    """WSGI middleware in front of moto: every UploadPart the store finished (answered 2xx)."""

    def __init__(self, app):
        self.app = app
        self.finished: Counter = Counter()  # (upload_id, part number) -> 2xx answers
        self.started: Counter = Counter()  # object key -> part PUTs begun
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        query = parse_qs(environ.get("QUERY_STRING", ""))
        part = environ["REQUEST_METHOD"] == "PUT" and "partNumber" in query
        if not part:
            return self.app(environ, start_response)
        key = (query["uploadId"][0], int(query["partNumber"][0]))
        with self.lock:
            self.started[environ["PATH_INFO"]] += 1
        status = {}

        def recording_start_response(code, headers, *args):
            status["code"] = int(code.split()[0])
            return start_response(code, headers, *args)

        body = list(self.app(environ, recording_start_response))
        if 200 <= status.get("code", 500) < 300:
            with self.lock:
                self.finished[key] += 1
        return body

    def parts_begun(self, task_id: str) -> int:
        with self.lock:
            return sum(n for path, n in self.started.items() if f"/{task_id}/" in path)


@pytest.fixture
def s3_env(tmp_path, _migrated_control_plane_db, s3_server):
    s3 = make_s3_client(s3_server)
    bucket = f"kill-{random.randrange(1 << 30):x}"
    s3.create_bucket(Bucket=bucket)
    store = S3ObjectStore(bucket, endpoint_url=s3_server.url, client=s3)
    settings = UploadApiSettings(object_store_url=f"s3://{bucket}", endpoint_url=s3_server.url, signing_key="k" * 40, part_size=5 * MiB)
    log = PartLog(s3_server.inflight.app)
    s3_server.inflight.app = log
    try:
        with edge_environment(tmp_path, _migrated_control_plane_db, "kill robot", staging_store=store, upload_settings=settings,
                              topics=axon_default_topics(CAMERA_BYTES)) as env:
            yield env, s3, bucket, log
    finally:
        s3_server.inflight.app = log.app
        s3.close()


def record(agent_url: str, task_id: str, seconds: float = 1.2) -> dict:
    with httpx.Client(base_url=agent_url, timeout=RECORDER_TIMEOUT) as http:
        assert http.post(f"/tasks/{task_id}/pickup", json={"collector_id": "alice"}).status_code == 200
        assert http.post("/teleop", json={"task_id": task_id, "command": "start"}).status_code == 200
        time.sleep(seconds)
        stopped = http.post("/teleop", json={"task_id": task_id, "command": "stop"})
        assert stopped.status_code == 200, stopped.text
        return stopped.json()


def staged_matches_cache(env, s3, bucket: str, task_id: str) -> None:
    entry = env.data_dir / "cache" / "datasets" / task_id
    names = [p.name for p in entry.iterdir() if p.name.endswith((".mcap", ".json")) and not p.name.startswith(".")]
    assert sorted(names) == sorted([f"{task_id}.mcap", f"{task_id}.json"])
    for name in names:
        staged = s3.get_object(Bucket=bucket, Key=f"staging/{env.robot_id}/{task_id}/{name}")["Body"].read()
        local = (entry / name).read_bytes()
        assert hashlib.sha256(staged).digest() == hashlib.sha256(local).digest(), f"{name} staged differs"


def kill_once_during_each_upload(env, kills: int, seed: int, upload_begun, staged_is_the_cache) -> tuple[int, int]:
    """Record ``kills`` tasks; for each, grant its upload, kill the agent at a random point of it
    (``upload_begun(task_id)`` says it has started), restart it and wait for STAGED, then
    ``staged_is_the_cache(task_id)`` checks the staged bytes. Returns (kills that landed before
    STAGED, parts planned)."""
    rng = random.Random(seed)
    task_ids = env.dispatch_order(task_count=kills, duration=30.0)
    extra = {"AXON_EDGE_UPLOAD_MAX_MBPS": str(UPLINK_MBPS)}
    agent = env.agent_process(extra_env=extra)
    wait_for(lambda: all(env.admin.get_task(t)["status"] == "READY" for t in task_ids), timeout=60, what="READY")
    mid_upload_kills, parts_total = 0, 0
    for task_id in task_ids:
        record(agent.url, task_id)
        wait_for(lambda: env.admin.get_task(task_id)["status"] == "EXECUTED", timeout=30, what="EXECUTED in the cloud")
        files = env.admin.get_dataset(task_id)["manifest"]["files"]
        estimate = sum(f["size"] for f in files) / (UPLINK_MBPS * 1e6 / 8)
        env.admin.grant_upload(task_id, ttl_seconds=600)
        wait_for(lambda: upload_begun(task_id), timeout=30, what=f"the upload of {task_id} to begin")
        time.sleep(rng.uniform(0.05, 0.7) * estimate)
        mid_upload_kills += env.admin.get_dataset(task_id)["status"] != "STAGED"
        agent.kill()
        agent = env.agent_process(extra_env=extra)
        wait_for(lambda: env.admin.get_dataset(task_id)["status"] == "STAGED", timeout=90, what=f"{task_id} STAGED after the restart")
        staged_is_the_cache(task_id)
        parts_total += sum(max(1, -(-f["size"] // (5 * MiB))) for f in files)
    agent.terminate()
    return mid_upload_kills, parts_total


def test_kill_the_agent_at_random_points_of_its_uploads(s3_env):
    env, s3, bucket, log = s3_env
    mid_upload_kills, parts_total = kill_once_during_each_upload(
        env, KILLS, 13, lambda task_id: log.parts_begun(task_id) > 0, lambda task_id: staged_matches_cache(env, s3, bucket, task_id))
    begun = sum(log.started.values())
    print(f"{KILLS} uploads, each killed once mid-upload: {parts_total} parts planned, {sum(log.finished.values())} part PUTs "
          f"finished by the store, {begun} begun ({begun - sum(log.finished.values())} cut by a kill and sent again)")
    twice = {k: n for k, n in log.finished.items() if n > 1}
    assert twice == {}, f"finished parts sent again: {twice}"
    assert mid_upload_kills == KILLS, f"only {mid_upload_kills} of {KILLS} kills landed mid-upload"
    assert sum(log.finished.values()) == parts_total, "every part finished by the store exactly once"


@pytest.fixture
def file_env(tmp_path, _migrated_control_plane_db, monkeypatch):
    """The embedded store (``file://``, the control plane's ingest endpoint, in this process), every
    part the store finished counted at its commit."""
    from axon_dagster.storage.object_stores import LocalDirObjectStore, local_parts

    finished: Counter = Counter()  # (upload_id, part number) -> commits
    real_commit = local_parts.PartWriter.commit

    def counted_commit(writer):
        etag = real_commit(writer)
        finished[(writer.upload_dir.name, writer.number)] += 1
        return etag

    monkeypatch.setattr(local_parts.PartWriter, "commit", counted_commit)
    store = LocalDirObjectStore(tmp_path / "cloud")
    settings = UploadApiSettings(object_store_url=f"file://{tmp_path / 'cloud'}", signing_key="k" * 40, part_size=5 * MiB)
    with edge_environment(tmp_path, _migrated_control_plane_db, "kill robot", staging_store=store, upload_settings=settings,
                          topics=axon_default_topics(CAMERA_BYTES)) as env:
        yield env, store, finished


def test_kill_the_agent_at_random_points_of_its_uploads_to_the_file_store(file_env):
    """The same through the embedded store's ingest endpoint: parts written into one file at their
    offsets, the running digest and the journal of held parts survive the robot's kills."""
    env, store, finished = file_env
    kills = KILLS // 2

    def staged_is_the_cache(task_id: str) -> None:
        entry = env.data_dir / "cache" / "datasets" / task_id
        for f in env.admin.get_dataset(task_id)["manifest"]["files"]:
            assert store.get_bytes(f"staging/{env.robot_id}/{task_id}/{f['name']}") == (entry / f["name"]).read_bytes()

    mid_upload_kills, parts_total = kill_once_during_each_upload(
        env, kills, 31, lambda _task_id: any(store.root.glob(".axon-uploads/*/part-*.lock")), staged_is_the_cache)
    print(f"{kills} uploads to the file store, each killed once: {parts_total} parts planned, "
          f"{sum(finished.values())} finished by the store")
    assert {k: n for k, n in finished.items() if n > 1} == {}, "a finished part was sent again"
    assert mid_upload_kills == kills and sum(finished.values()) == parts_total


def test_a_robot_offline_for_a_grants_whole_lifetime_loses_nothing(s3_env):
    env, s3, bucket, log = s3_env
    [task_id] = env.dispatch_order()
    agent = env.agent_process()
    wait_for(lambda: env.admin.get_task(task_id)["status"] == "READY", timeout=30, what="READY")
    record(agent.url, task_id, seconds=0.5)
    wait_for(lambda: env.admin.get_task(task_id)["status"] == "EXECUTED", timeout=30, what="EXECUTED in the cloud")
    agent.kill()  # the robot goes offline

    first = env.admin.grant_upload(task_id, ttl_seconds=10)
    time.sleep(11)
    assert env.admin.expire_upload_grants() >= 0
    assert env.admin.get_dataset(task_id)["status"] == "RECORDED", "the grant expired unused: back in the queue"
    second = env.admin.grant_upload(task_id, ttl_seconds=600)
    assert second["grant_id"] != first["grant_id"]

    agent = env.agent_process()  # back online: it sees the new grant on its first pull
    wait_for(lambda: env.admin.get_dataset(task_id)["status"] == "STAGED", timeout=60, what="STAGED under the new grant")
    staged_matches_cache(env, s3, bucket, task_id)
    assert log.parts_begun(task_id) >= 1
    agent.terminate()
