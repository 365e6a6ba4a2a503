"""Robots upload their own recordings (issue 13): manifest in the EXECUTED event, upload grants,
upload plans over the file store's signed ingest endpoint, completion with SHA-256 checks, grant
expiry and re-issue. Real HTTP (uvicorn), real SQLite and PostgreSQL, a real local staging store."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from axon_dagster.api import create_app
from axon_dagster.client import ControlPlaneClient, ControlPlaneError, EdgeSyncClient
from axon_dagster import control_plane as cp
from axon_dagster.control_plane import uploads
from axon_dagster.control_plane.persistence import UnitOfWorkFactory, make_engine
from axon_dagster.control_plane.persistence.schema import Base
from axon_dagster.domain import utcnow
from axon_dagster.settings.uploads import UploadApiSettings
from axon_dagster.storage.object_stores import LocalDirObjectStore

try:
    from tests.s3_fixture import s3_bucket, s3_client, s3_server  # noqa: F401  (fixtures)
except ImportError:  # run from inside tests/
    from s3_fixture import s3_bucket, s3_client, s3_server  # type: ignore[no-redef]  # noqa: F401

ADMIN = "uploads-admin-token"
PART = 1024  # small parts: several per file


@dataclass
class Fleet:
    url: str
    admin: ControlPlaneClient
    robots: dict[str, EdgeSyncClient]
    tokens: dict[str, str]
    store: LocalDirObjectStore
    uow: UnitOfWorkFactory
    row_counts: Callable[[], dict[str, int]]
    tasks: list[str]


@pytest.fixture
def fleet(database_url: str, serve_app: Callable[[Any], Any], tmp_path: Path) -> Iterator[Fleet]:
    store = LocalDirObjectStore(tmp_path / "cloud")
    settings = UploadApiSettings(object_store_url=f"file://{tmp_path / 'cloud'}", signing_key="s" * 40, part_size=PART)
    server = serve_app(create_app(database_url=database_url, admin_token=ADMIN, staging_store=store, upload_settings=settings))
    admin = ControlPlaneClient(server.url, token=ADMIN)
    tokens = {r: admin.register_robot(r)["token"] for r in ("robot-a", "robot-b")}
    robots = {r: EdgeSyncClient(server.url, t) for r, t in tokens.items()}
    admin.create_order("o-1", "warehouse", ["pick"], priority=3)
    admin.plan_order("o-1", task_count=3)
    tasks = sorted(admin.dispatch_order("o-1", ["robot-a"]))
    engine = make_engine(database_url)

    def row_counts() -> dict[str, int]:
        with engine.connect() as conn:
            return {name: conn.execute(select(func.count()).select_from(t)).scalar_one() for name, t in Base.metadata.tables.items()}

    yield Fleet(server.url, admin, robots, tokens, store, UnitOfWorkFactory(engine), row_counts, tasks)
    for client in (admin, *robots.values()):
        client.close()
    engine.dispose()


def _recording(task_id: str, size: int = 2500, seed: bytes = b"x") -> dict[str, bytes]:
    mcap = (hashlib.sha256(seed).digest() * (size // 32 + 1))[:size]
    return {f"{task_id}.mcap": mcap, f"{task_id}.json": b'{"version": "1.0"}'}


def _manifest(files: dict[str, bytes], task_id: str) -> dict[str, Any]:
    return {
        "files": [{"name": n, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()} for n, b in files.items()],
        "dataset_digest": hashlib.sha256(files[f"{task_id}.mcap"]).hexdigest(),
    }


def _execute(robot: EdgeSyncClient, task_id: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    events = [{"event_id": f"{task_id}-{s}", "task_id": task_id, "status": s} for s in ("READY", "EXECUTING")]
    events.append({"event_id": f"{task_id}-EXECUTED", "task_id": task_id, "status": "EXECUTED", "data": data})
    return robot.push_events(events)


def _passed() -> dict[str, Any]:
    return {"passed": True, "reasons": [], "checks": {"topics": {"ok": True}}}


def _upload(robot: EdgeSyncClient, plan: dict[str, Any], files: dict[str, bytes], skip: set[tuple[str, int]] = frozenset()) -> dict[str, list]:
    done: dict[str, list] = {}
    for f in plan["files"]:
        held = {p["number"]: p["etag"] for p in f["done_parts"]}
        parts = []
        for p in f["parts"]:
            if (f["name"], p["number"]) in skip:
                continue
            etag = held.get(p["number"]) or robot.put_part(p, files[f["name"]][p["offset"]:p["offset"] + p["size"]])
            parts.append({"number": p["number"], "etag": etag})
        done[f["name"]] = parts
    return done


def _pull_upload(robot: EdgeSyncClient, task_id: str) -> Any:
    return {t["task_id"]: t for t in robot.pull_tasks(0, 1000)["tasks"]}[task_id]["upload"]


def test_a_recording_goes_from_the_robot_to_staging_verified(fleet: Fleet) -> None:
    task = fleet.tasks[0]
    robot = fleet.robots["robot-a"]
    files = _recording(task)
    assert all(r["result"] == "applied" for r in _execute(robot, task, {"recording_format": "mcap", "manifest": _manifest(files, task),
                                                                           "gate": _passed(), "dataset_path": "/robot/only"}))
    dataset = fleet.admin.get_dataset(task)
    assert (dataset["status"], dataset["recording_format"], dataset["gate"]["passed"]) == ("RECORDED", "mcap", True)
    robot.report_uplink(42.5, [{"start": "22:00", "end": "06:00"}], "Europe/Berlin")
    queue = fleet.admin.upload_queue()
    assert [c["dataset_id"] for c in queue["candidates"]] == [task]
    assert queue["candidates"][0]["priority"] == 3 and queue["candidates"][0]["size_bytes"] == sum(map(len, files.values()))
    assert {r["robot_id"]: (r["uplink"] or {}).get("mbps") for r in queue["robots"]} == {"robot-a": 42.5, "robot-b": None}

    cursor = robot.pull_tasks(0, 1000)["cursor"]
    grant = fleet.admin.grant_upload(task, ttl_seconds=600)
    assert fleet.admin.grant_upload(task, ttl_seconds=600)["grant_id"] == grant["grant_id"]  # asked twice: the same grant
    changed = robot.pull_tasks(cursor, 1000)["tasks"]  # the grant moved the task's revision
    assert [t["task_id"] for t in changed] == [task] and changed[0]["upload"]["grant_id"] == grant["grant_id"]
    assert fleet.admin.get_dataset(task)["status"] == "GRANTED"
    gauges = cp.metrics_snapshot(fleet.uow())  # /metrics: axon_datasets{status}, axon_active_upload_grants
    assert (gauges.datasets_by_status["GRANTED"], gauges.active_upload_grants) == (1, 1)

    plan = robot.upload_plan(task, grant["grant_id"])
    assert {f["name"] for f in plan["files"]} == set(files) and len(plan["files"][0]["parts"]) == 3
    staged = robot.complete_upload(task, grant["grant_id"], _upload(robot, plan, files))
    assert staged["status"] == "STAGED"
    assert robot.complete_upload(task, grant["grant_id"], {})["status"] == "STAGED"  # a replay: the same answer
    gauges = cp.metrics_snapshot(fleet.uow())
    assert (gauges.datasets_by_status["STAGED"], gauges.datasets_by_status["GRANTED"], gauges.active_upload_grants) == (1, 0, 0)
    for name, data in files.items():
        assert fleet.store.get_bytes(f"staging/robot-a/{task}/{name}") == data
    assert _pull_upload(robot, task) is None
    assert fleet.admin.upload_queue()["active_grants"] == []
    metrics = httpx.get(f"{fleet.url}/metrics").text
    assert 'axon_staging_completions_total{result="staged",robot_id="robot-a"} 2.0' in metrics  # with the replay
    assert f'axon_ingested_part_bytes_total{{robot_id="robot-a"}} {float(sum(map(len, files.values())))}' in metrics
    assert 'axon_datasets{status="STAGED"} 1.0' in metrics
    assert fleet.admin.dataset_publish_attempt(task)["publish_attempts"] == 1
    assert fleet.admin.dataset_publish_attempt(task)["publish_attempts"] == 2


@pytest.mark.parametrize("bad", [
    {"files": "../etc/passwd"},
    "name:../x.mcap", "name:/abs/t.mcap", "name:other-task.mcap", "name:sub\\x.mcap", "name:a\x00b",
    "sha:xyz", "size:-1", "size:1e3", "digest:" + "0" * 64, "no-gate", "extra-field",
])
def test_a_manifest_naming_anything_but_the_tasks_own_files_is_refused_and_nothing_changes(fleet: Fleet, bad: Any) -> None:
    task = fleet.tasks[0]
    robot = fleet.robots["robot-a"]
    files = _recording(task)
    manifest = _manifest(files, task)
    data: dict[str, Any] = {"manifest": manifest, "gate": _passed()}
    if isinstance(bad, dict):
        data["manifest"] = {**manifest, **bad}
    elif bad == "no-gate":
        del data["gate"]
    elif bad == "extra-field":
        manifest["files"][0]["path"] = "/robot/x"
    else:
        what, _, value = bad.partition(":")
        entry = manifest["files"][0]
        if what == "name":
            entry["name"] = value
        elif what == "sha":
            entry["sha256"] = value
        elif what == "size":
            entry["size"] = float(value) if "e" in value else int(value)
        elif what == "digest":
            manifest["dataset_digest"] = value
    before = fleet.row_counts()
    events = [{"event_id": f"{task}-{s}", "task_id": task, "status": s} for s in ("READY", "EXECUTING")]
    events.append({"event_id": f"{task}-EXECUTED", "task_id": task, "status": "EXECUTED", "data": data})
    with pytest.raises(ControlPlaneError) as refused:
        robot.push_events(events)
    assert refused.value.status_code == 422, refused.value.detail
    assert refused.value.detail
    assert fleet.row_counts() == before
    assert fleet.store.list_keys("staging/") == []


def test_another_robots_recording_and_forged_part_urls_are_refused(fleet: Fleet) -> None:
    task = fleet.tasks[0]
    files = _recording(task)
    data = {"manifest": _manifest(files, task), "gate": _passed()}
    with pytest.raises(ControlPlaneError) as foreign:  # robot-b reports robot-a's recording
        _execute(fleet.robots["robot-b"], task, data)
    assert foreign.value.status_code == 404
    _execute(fleet.robots["robot-a"], task, data)
    grant = fleet.admin.grant_upload(task)
    with pytest.raises(ControlPlaneError) as other:
        fleet.robots["robot-b"].upload_plan(task, grant["grant_id"])
    assert other.value.status_code == 404
    plan = fleet.robots["robot-a"].upload_plan(task, grant["grant_id"])
    target = plan["files"][0]["parts"][0]
    chunk = files[f"{task}.mcap"][:PART]
    url = target["url"]
    with httpx.Client() as http:
        # robot-b's token with robot-a's signed URL: the URL is signed for robot-a only (the same
        # answer as any forged URL: nothing said about whose task it is).
        stolen = http.put(url, content=chunk, headers={"Authorization": f"Bearer {fleet.tokens['robot-b']}"})
        assert stolen.status_code == 403 and "bad signature" in stolen.text
        own = {"Authorization": f"Bearer {fleet.tokens['robot-a']}"}
        assert http.put(url, content=chunk).status_code == 401  # a signed URL alone is not enough
        query = parse_qs(urlsplit(url).query)
        forged = url.replace(f"sig={query['sig'][0]}", "sig=" + "0" * 64)
        assert http.put(forged, content=chunk, headers=own).status_code == 403
        bigger = url.replace(f"size={query['size'][0]}", f"size={PART * 2}")
        assert http.put(bigger, content=chunk * 2, headers=own).status_code == 403  # the size is signed too
        expired = url.replace(f"expires={query['expires'][0]}", "expires=1")
        assert http.put(expired, content=chunk, headers=own).status_code == 403
        too_big = http.put(url, content=chunk + b"!", headers=own)
        assert too_big.status_code == 413, too_big.text
        ok = http.put(url, content=chunk, headers=own)
        assert ok.status_code == 200 and ok.headers["etag"] == ok.json()["etag"]
        assert fleet.store.list_parts(f"staging/robot-a/{task}/{task}.mcap", query["upload_id"][0]) == {1: ok.headers["etag"]}


def test_a_digest_that_does_not_match_the_upload_is_refused_nothing_staged_and_regranted(fleet: Fleet) -> None:
    task = fleet.tasks[0]
    robot = fleet.robots["robot-a"]
    files = _recording(task)
    _execute(robot, task, {"manifest": _manifest(files, task), "gate": _passed()})
    grant = fleet.admin.grant_upload(task)
    plan = robot.upload_plan(task, grant["grant_id"])
    tampered = {**files, f"{task}.mcap": _recording(task, seed=b"other")[f"{task}.mcap"]}  # same size, other bytes
    with pytest.raises(ControlPlaneError) as refused:
        robot.complete_upload(task, grant["grant_id"], _upload(robot, plan, tampered))
    assert refused.value.status_code == 409
    assert f"digest of staged {task}.mcap is" in refused.value.detail and "the robot reported" in refused.value.detail
    assert fleet.store.list_keys("staging/") == []
    assert 'axon_staging_completions_total{result="refused",robot_id="robot-a"} 1.0' in httpx.get(f"{fleet.url}/metrics").text
    dataset = fleet.admin.get_dataset(task)
    assert dataset["status"] == "RECORDED" and "digest of staged" in dataset["last_upload_error"]
    with pytest.raises(ControlPlaneError) as used:
        robot.upload_plan(task, grant["grant_id"])
    assert used.value.status_code == 409 and "expired" in used.value.detail
    again = fleet.admin.grant_upload(task)
    assert again["grant_id"] != grant["grant_id"]
    plan = robot.upload_plan(task, again["grant_id"])
    assert robot.complete_upload(task, again["grant_id"], _upload(robot, plan, files))["status"] == "STAGED"


def test_an_offline_robots_grant_expires_and_the_reissued_grant_resumes_its_uploads(fleet: Fleet) -> None:
    task = fleet.tasks[0]
    robot = fleet.robots["robot-a"]
    files = _recording(task)
    _execute(robot, task, {"manifest": _manifest(files, task), "gate": _passed()})
    grant = fleet.admin.grant_upload(task, ttl_seconds=30)
    plan = robot.upload_plan(task, grant["grant_id"])
    name = f"{task}.mcap"
    _upload(robot, plan, files, skip={(name, 2), (name, 3)})  # part 1 only, then the robot goes offline
    assert uploads.expire_grants(fleet.uow(), now=utcnow() + timedelta(seconds=31)) == 1
    assert fleet.admin.get_dataset(task)["status"] == "RECORDED" and _pull_upload(robot, task) is None
    with pytest.raises(ControlPlaneError) as expired:
        robot.upload_plan(task, grant["grant_id"])
    assert expired.value.status_code == 409 and "expired" in expired.value.detail
    assert [c["dataset_id"] for c in fleet.admin.upload_queue()["candidates"]] == [task]  # to be granted again
    again = fleet.admin.grant_upload(task)
    resumed = robot.upload_plan(task, again["grant_id"])
    mcap = next(f for f in resumed["files"] if f["name"] == name)
    assert [p["number"] for p in mcap["done_parts"]] == [1]  # the same multipart upload, part 1 kept
    sent: list[int] = []
    real_put = robot.put_part
    robot.put_part = lambda target, data: (sent.append(target["number"]), real_put(target, data))[1]  # type: ignore[method-assign]
    done = _upload(robot, resumed, files)
    assert 1 not in [n for n in sent[:2]]  # part 1 of the MCAP is not sent again
    assert robot.complete_upload(task, again["grant_id"], done)["status"] == "STAGED"
    assert fleet.store.get_bytes(f"staging/robot-a/{task}/{name}") == files[name]


def test_a_failed_edge_gate_fails_the_task_and_is_never_granted(fleet: Fleet) -> None:
    task = fleet.tasks[0]
    robot = fleet.robots["robot-a"]
    files = _recording(task)
    gate = {"passed": False, "reasons": ["topic /imu missing", "duration 3 s < 10 s"], "checks": {}}
    cursor = robot.pull_tasks(0, 1000)["cursor"]
    _execute(robot, task, {"manifest": _manifest(files, task), "gate": gate})
    failed = fleet.admin.get_task(task)
    assert failed["status"] == "FAILED" and failed["failure_reason"] == "edge gate: topic /imu missing; duration 3 s < 10 s"
    assert [t["status"] for t in robot.pull_tasks(cursor, 1000)["tasks"]] == ["FAILED"]  # the robot learns it
    before = fleet.row_counts()
    with pytest.raises(ControlPlaneError) as refused:
        fleet.admin.grant_upload(task)
    assert refused.value.status_code == 409 and "edge gate" in refused.value.detail
    assert fleet.row_counts() == before and fleet.admin.upload_queue()["candidates"] == []


def test_bad_upload_requests_get_clear_4xx_and_change_nothing(fleet: Fleet) -> None:
    task = fleet.tasks[0]
    robot = fleet.robots["robot-a"]
    files = _recording(task)
    _execute(robot, task, {"manifest": _manifest(files, task), "gate": _passed()})
    grant = fleet.admin.grant_upload(task)
    before = fleet.row_counts()
    calls = [
        (lambda: robot.report_uplink(-1, []), 422),
        (lambda: robot.report_uplink(10, [{"start": "25:00", "end": "06:00"}]), 422),
        (lambda: robot.report_uplink(10, [], "Mars/Olympus"), 422),
        (lambda: robot.upload_plan(task, "g-unknown"), 409),
        (lambda: robot.upload_plan("no-such-task", grant["grant_id"]), 404),
        (lambda: robot.complete_upload(task, grant["grant_id"], {"x.mcap": [{"number": 1, "etag": "e"}]}), 422),  # not its files
        (lambda: fleet.admin.grant_upload("no-such-task"), 404),
        (lambda: fleet.admin.grant_upload(task, ttl_seconds=1), 422),
        (lambda: fleet.admin.grant_upload(fleet.tasks[1]), 404),  # no recording reported
        (lambda: fleet.admin.dataset_publish_attempt(task), 409),  # nothing staged yet
    ]
    for call, status in calls:
        with pytest.raises(ControlPlaneError) as refused:
            call()
        assert refused.value.status_code == status, (status, refused.value.detail)
        assert refused.value.detail
    assert fleet.row_counts() == before
    plan = robot.upload_plan(task, grant["grant_id"])
    with pytest.raises(ControlPlaneError) as wrong_files:
        robot.complete_upload(task, grant["grant_id"], {"x.mcap": [{"number": 1, "etag": "e"}]})
    assert wrong_files.value.status_code == 422 and "missing" in wrong_files.value.detail
    with pytest.raises(ControlPlaneError) as unsent:  # completing parts never sent
        robot.complete_upload(task, grant["grant_id"], {f["name"]: [{"number": 1, "etag": '"' + "0" * 32 + '"'}] for f in plan["files"]})
    assert unsent.value.status_code == 409
    assert fleet.admin.get_dataset(task)["status"] == "GRANTED"


def test_uploads_into_an_s3_staging_area_through_presigned_urls_resume_after_expiry(
    sqlite_url: str, serve_app: Callable[[Any], Any], s3_server: Any, s3_client: Any, s3_bucket: str
) -> None:
    """The same path against a real S3 endpoint (moto over HTTP): the robot PUTs parts to pre-signed
    UploadPart URLs (never with its token), a re-issued grant finds part 1 through ListParts."""
    from axon_dagster.storage.object_stores import S3ObjectStore

    store = S3ObjectStore(s3_bucket, prefix="cloud", client=s3_client)
    five_mib = 5 * 1024 * 1024
    settings = UploadApiSettings(object_store_url=f"s3://{s3_bucket}/cloud", part_size=five_mib)
    server = serve_app(create_app(database_url=sqlite_url, admin_token=ADMIN, staging_store=store, upload_settings=settings))
    admin = ControlPlaneClient(server.url, token=ADMIN)
    robot = EdgeSyncClient(server.url, admin.register_robot("robot-a")["token"])
    admin.create_order("o-1", "warehouse", ["pick"])
    admin.plan_order("o-1", task_count=1)
    (task,) = admin.dispatch_order("o-1", ["robot-a"])
    files = _recording(task, size=five_mib + 123_456)
    _execute(robot, task, {"manifest": _manifest(files, task), "gate": _passed()})
    grant = admin.grant_upload(task, ttl_seconds=60)
    plan = robot.upload_plan(task, grant["grant_id"])
    name = f"{task}.mcap"
    mcap = next(f for f in plan["files"] if f["name"] == name)
    assert [p["size"] for p in mcap["parts"]] == [five_mib, 123_456] and mcap["parts"][0]["url"].startswith(s3_server.url)
    _upload(robot, plan, files, skip={(name, 2)})  # part 1 only; then the robot is offline past the grant
    engine = make_engine(sqlite_url)
    try:
        assert uploads.expire_grants(UnitOfWorkFactory(engine)(), now=utcnow() + timedelta(seconds=61)) == 1
    finally:
        engine.dispose()
    again = admin.grant_upload(task)
    resumed = robot.upload_plan(task, again["grant_id"])
    mcap = next(f for f in resumed["files"] if f["name"] == name)
    assert [p["number"] for p in mcap["done_parts"]] == [1]  # ListParts: the same multipart upload
    staged = robot.complete_upload(task, again["grant_id"], _upload(robot, resumed, files))
    assert staged["status"] == "STAGED"
    body = s3_client.get_object(Bucket=s3_bucket, Key=f"cloud/staging/robot-a/{task}/{name}")["Body"].read()
    assert body == files[name]
    admin.close()
    robot.close()


def test_a_grant_wakes_the_robots_long_poll_and_the_api_expires_it_on_its_own(
    sqlite_url: str, serve_app: Callable[[Any], Any], tmp_path: Path
) -> None:
    import threading
    import time

    from sqlalchemy import update

    from axon_dagster.control_plane.persistence.schema import UploadGrantRow

    store = LocalDirObjectStore(tmp_path / "cloud")
    settings = UploadApiSettings(object_store_url=f"file://{tmp_path / 'cloud'}", signing_key="s" * 40, part_size=PART, grant_sweep_seconds=0.2)
    server = serve_app(create_app(database_url=sqlite_url, admin_token=ADMIN, staging_store=store, upload_settings=settings))
    admin = ControlPlaneClient(server.url, token=ADMIN)
    robot = EdgeSyncClient(server.url, admin.register_robot("robot-a")["token"])
    admin.create_order("o-1", "warehouse", ["pick"])
    admin.plan_order("o-1", task_count=1)
    (task,) = admin.dispatch_order("o-1", ["robot-a"])
    files = _recording(task)
    _execute(robot, task, {"manifest": _manifest(files, task), "gate": _passed()})
    cursor = robot.pull_tasks(0, 100)["cursor"]
    woken: dict[str, Any] = {}

    def long_poll() -> None:
        started = time.monotonic()
        woken["page"] = robot.pull_tasks(cursor, 100, wait=20)
        woken["seconds"] = time.monotonic() - started

    waiter = threading.Thread(target=long_poll)
    waiter.start()
    time.sleep(0.5)  # the pull is waiting on the revision watch
    grant = admin.grant_upload(task)
    waiter.join(15)
    assert woken["seconds"] < 10, woken  # woken by the grant, not by the 20 s timeout
    assert [t["upload"]["grant_id"] for t in woken["page"]["tasks"]] == [grant["grant_id"]]

    engine = make_engine(sqlite_url)
    try:
        with engine.begin() as conn:  # the robot stayed offline: its grant's time is up
            conn.execute(update(UploadGrantRow).values(expires_at=utcnow() - timedelta(seconds=1)))
    finally:
        engine.dispose()
    deadline = time.monotonic() + 10
    while admin.get_dataset(task)["status"] != "RECORDED" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert admin.get_dataset(task)["status"] == "RECORDED"  # the API's own sweep expired it
    assert _pull_upload(robot, task) is None
    assert [c["dataset_id"] for c in admin.upload_queue()["candidates"]] == [task]
    admin.close()
    robot.close()


def test_a_completion_retried_after_the_store_finished_it_still_stages(fleet: Fleet) -> None:
    """The robot's completion timed out after the store completed the multipart upload (the
    database never heard): the retried completion finds the object there, checks it, stages."""
    task = fleet.tasks[0]
    robot = fleet.robots["robot-a"]
    files = _recording(task)
    _execute(robot, task, {"manifest": _manifest(files, task), "gate": _passed()})
    grant = fleet.admin.grant_upload(task)
    plan = robot.upload_plan(task, grant["grant_id"])
    done = _upload(robot, plan, files)
    with fleet.uow().reading() as uow:
        upload_ids = uow.grants.get(grant["grant_id"]).upload_ids
    name = f"{task}.mcap"
    fleet.store.complete_multipart(f"staging/robot-a/{task}/{name}", upload_ids[name], {p["number"]: p["etag"] for p in done[name]})
    assert fleet.admin.get_dataset(task)["status"] == "GRANTED"
    assert robot.complete_upload(task, grant["grant_id"], done)["status"] == "STAGED"
    assert fleet.store.get_bytes(f"staging/robot-a/{task}/{name}") == files[name]


def test_a_robot_reports_its_recorder_and_the_fleet_sees_it_with_when(fleet: Fleet) -> None:
    robot = fleet.robots["robot-a"]
    report = {"state": "idle", "disk_usage_gb": 12.5, "disk_state": "normal", "topic_counts": {"/imu": {"received": 40, "written": 40, "dropped": 0}},
              "subscribed_topics": ["/imu"], "last_error": ""}
    echoed = robot.report_recorder(report)
    seen = {r["robot_id"]: r["recorder"] for r in fleet.admin.list_robots()}
    assert seen["robot-b"] is None
    assert seen["robot-a"]["disk_usage_gb"] == 12.5 and seen["robot-a"]["topic_counts"]["/imu"]["written"] == 40
    assert seen["robot-a"]["reported_at"] == echoed["reported_at"] and seen["robot-a"]["reachable"] is True
    assert (utcnow() - datetime.fromisoformat(echoed["reported_at"])).total_seconds() < 60
    robot.report_recorder({"reachable": False, "error": "connection refused"})  # the next report replaces it
    again = {r["robot_id"]: r["recorder"] for r in fleet.admin.list_robots()}["robot-a"]
    assert (again["reachable"], again["error"], again["topic_counts"]) == (False, "connection refused", {})


@pytest.mark.parametrize("bad", [
    {"disk_usage_gb": -1.0},
    {"disk_usage_gb": "12"},  # strict: not a number
    {"reachable": "yes"},
    {"unknown_field": 1},
    {"topic_counts": {"/imu": {"written": -3}}},
    {"subscribed_topics": ["/t"] * 1001},  # bounded
    {"last_error": "x" * 2001},
])
def test_a_bad_recorder_report_is_422_and_changes_nothing(fleet: Fleet, bad: dict[str, Any]) -> None:
    robot = fleet.robots["robot-a"]
    robot.report_recorder({"state": "idle", "disk_usage_gb": 3.0})
    before, robots_before = fleet.row_counts(), fleet.admin.list_robots()
    with pytest.raises(ControlPlaneError) as refused:
        robot.report_recorder(bad)
    assert refused.value.status_code == 422 and refused.value.detail
    assert fleet.row_counts() == before and fleet.admin.list_robots() == robots_before
