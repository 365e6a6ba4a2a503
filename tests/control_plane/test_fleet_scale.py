"""Many robots on one control plane (issue 17): idle polls cost no write and next to no read,
long-polls answer when work comes, concurrent writers never make the sensor's cursor skip or
repeat an event, and two API processes on one PostgreSQL agree."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
from sqlalchemy import event

from axon_dagster.api import create_app
from axon_dagster.api.fleet_sync import RobotTokens
from axon_dagster.client import ControlPlaneClient, EdgeSyncClient
from axon_dagster.domain import TaskEvent, TaskStatus, TaskTemplate
from axon_dagster.demo.processes import free_port, wait_healthy
from axon_dagster import control_plane as cp
from axon_dagster.control_plane.errors import AuthenticationError
from axon_dagster.control_plane.persistence import UnitOfWorkFactory

S = TaskStatus
# The edge's order of events for a task; every robot pushes these, a task at a time.
LIFECYCLE = (S.READY, S.ASSIGNED, S.EXECUTING, S.EXECUTED)


class StatementLog:
    """Every SQL statement an engine runs (to prove what an idle poll costs)."""

    def __init__(self, engine: Any):
        self.statements: list[str] = []
        self._engine = engine
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        self.statements.append(" ".join(statement.split()))

    def writes(self) -> list[str]:
        return [s for s in self.statements if s.split()[0].upper() in ("INSERT", "UPDATE", "DELETE")]

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)


def test_an_idle_poll_costs_no_write_and_one_indexed_read(database_url: str, serve_app: Callable[[Any], Any]) -> None:
    app = create_app(database_url=database_url, admin_token="")
    server = serve_app(app)
    admin = ControlPlaneClient(server.url)
    robot = EdgeSyncClient(server.url, admin.register_robot("robot-a")["token"])
    try:
        cursor = robot.pull_tasks()["cursor"]  # first request: the token is resolved (one read)
        log = StatementLog(app.state.uow_factory.engine)
        try:
            for _ in range(20):
                assert robot.pull_tasks(after=cursor) == {"tasks": [], "cursor": cursor}
        finally:
            log.close()
        assert log.writes() == []
        selects = [s for s in log.statements if s.upper().startswith("SELECT")]
        assert len(selects) == 20, log.statements  # one per poll: the robot's revision by primary key
        assert all("FROM robots WHERE robots.robot_id =" in s for s in selects), selects
    finally:
        admin.close()
        robot.close()


def test_long_poll_answers_when_work_is_dispatched_and_waits_for_free_otherwise(sqlite_url: str, serve_app: Callable[[Any], Any]) -> None:
    app = create_app(database_url=sqlite_url, admin_token="")
    server = serve_app(app)
    admin = ControlPlaneClient(server.url)
    token = admin.register_robot("robot-a")["token"]
    robot = EdgeSyncClient(server.url, token)
    try:
        cursor = robot.pull_tasks()["cursor"]
        started = time.monotonic()
        idle = httpx.get(f"{server.url}/api/v1/edge/tasks", params={"after": cursor, "wait": 0.6},
                         headers={"Authorization": f"Bearer {token}"})
        assert idle.json() == {"tasks": [], "cursor": cursor}
        assert 0.55 < time.monotonic() - started < 5
        assert idle.headers["server-timing"].startswith("wait;dur=")
        assert float(idle.headers["server-timing"].split("dur=")[1]) >= 550

        got: dict[str, Any] = {}

        def long_poll() -> None:
            began = time.monotonic()
            got["page"] = robot.pull_tasks(after=cursor, wait=20)
            got["seconds"] = time.monotonic() - began

        waiter = threading.Thread(target=long_poll)
        waiter.start()
        time.sleep(0.5)
        log = StatementLog(app.state.uow_factory.engine)
        try:
            time.sleep(0.5)  # the waiting pull and the watch: no writes, at most a few watch reads
            assert log.writes() == [] and len(log.statements) <= 4 * 2, log.statements
        finally:
            log.close()
        admin.create_order("o1", "warehouse", ["nav"])
        admin.plan_order("o1", task_count=3, duration_seconds=5)
        admin.dispatch_order("o1")
        waiter.join(10)
        assert [t["status"] for t in got["page"]["tasks"]] == ["PENDING"] * 3
        assert got["seconds"] < 5  # woken by the dispatch, not by the 20 s timeout
        with pytest.raises(Exception, match="wait must be between"):
            robot.pull_tasks(after=0, wait=61)
    finally:
        admin.close()
        robot.close()


def test_a_write_through_this_api_wakes_waiting_pulls_at_once_not_at_the_next_watch_read(sqlite_url: str, serve_app: Callable[[Any], Any]) -> None:
    """A grant or a dispatch made through the API a robot waits on reaches it in milliseconds: the
    watch reads again after a successful write, instead of at its next interval (2 s here)."""
    app = create_app(database_url=sqlite_url, admin_token="")
    app.state.revision_watch._interval = 2.0
    server = serve_app(app)
    admin = ControlPlaneClient(server.url)
    robot = EdgeSyncClient(server.url, admin.register_robot("robot-a")["token"])
    try:
        cursor = robot.pull_tasks()["cursor"]
        latencies = []
        for n in range(3):
            admin.create_order(f"o{n}", "warehouse", ["nav"])
            admin.plan_order(f"o{n}", task_count=1, duration_seconds=5)
            woke: dict[str, Any] = {}
            waiter = threading.Thread(target=lambda: woke.update(page=robot.pull_tasks(after=cursor, wait=20), at=time.monotonic()))
            waiter.start()
            time.sleep(0.3)  # the pull is waiting
            admin.dispatch_order(f"o{n}")
            dispatched = time.monotonic()
            waiter.join(10)
            assert [t["status"] for t in woke["page"]["tasks"]] == ["PENDING"]
            cursor = woke["page"]["cursor"]
            latencies.append(woke["at"] - dispatched)
        assert max(latencies) < 0.3, latencies  # the watch's own reads come 2 s apart
    finally:
        admin.close()
        robot.close()


def test_a_malformed_push_or_pull_is_refused_clearly_and_changes_nothing(database_url: str, serve_app: Callable[[Any], Any], row_counts) -> None:
    server = serve_app(create_app(database_url=database_url, admin_token=""))
    admin = ControlPlaneClient(server.url)
    token = admin.register_robot("robot-a")["token"]
    admin.create_order("o1", "warehouse", ["nav"])
    admin.plan_order("o1", task_count=1, duration_seconds=5)
    (task,) = admin.dispatch_order("o1")
    auth = {"Authorization": f"Bearer {token}"}
    good = {"event_id": "e1", "task_id": task, "status": "READY"}
    before = row_counts()
    try:
        for body, expected in [
            (b"not json", "not JSON"),
            (b"[]", '{"events"'),
            (b'{"events": [], "more": 1}', '{"events"'),
            (b'{"events": [1]}', "events[0] must be an object"),
            (b'{"events": [{"event_id": "e1", "task_id": "%s", "status": "READY", "colour": "red"}]}' % task.encode(), "unknown fields ['colour']"),
            (b'{"events": [{"event_id": "e1", "task_id": "%s", "status": "SLEEPING"}]}' % task.encode(), "events[0].status"),
        ]:
            response = httpx.post(f"{server.url}/api/v1/edge/events", content=body, headers=auth)
            assert response.status_code == 422 and expected in response.json()["detail"], (body, response.text)
        for params, expected in [({"after": "x"}, "after must be a 64-bit integer"), ({"after": str(2**63)}, "after must be a 64-bit"),
                                 ({"wait": "soon"}, "wait must be a finite number"), ({"wait": "nan"}, "wait must be a finite"),
                                 ({"wait": "-1"}, "wait must be between"), ({"limit": "0"}, "limit"), ({"after": "-1"}, "cursor")]:
            response = httpx.get(f"{server.url}/api/v1/edge/tasks", params=params, headers=auth)
            assert response.status_code == 422 and expected in response.json()["detail"], (params, response.text)
        assert row_counts() == before
        ok = httpx.post(f"{server.url}/api/v1/edge/events", json={"events": [good]}, headers=auth)
        assert ok.json() == {"results": [{"event_id": "e1", "result": "applied", "error": None}]}
    finally:
        admin.close()


def _fleet(uow_factory: UnitOfWorkFactory, robots: int, tasks_per_robot: int) -> dict[str, list[str]]:
    for i in range(robots):
        cp.register_robot(uow_factory(), f"r{i:02d}")
    cp.create_order(uow_factory(), "o1", "warehouse", ["nav"])
    cp.plan_order(uow_factory(), "o1", "per_skill", TaskTemplate(task_count=robots * tasks_per_robot, duration_seconds=5))
    per_robot: dict[str, list[str]] = defaultdict(list)
    for task_id, robot in cp.dispatch_order(uow_factory(), "o1").items():
        per_robot[robot].append(task_id)
    return per_robot


def _server_transaction(uow: Any) -> Any:
    """psycopg's view of the server: IDLE (no transaction open) or INTRANS (after a BEGIN)."""
    return uow.session.connection().connection.dbapi_connection.info.transaction_status


def test_a_read_sends_no_begin_on_postgres_and_a_write_is_still_one_transaction(uow_factory: UnitOfWorkFactory) -> None:
    """A robot's idle pull is one statement on the wire, not BEGIN + SELECT + ROLLBACK; the pooled
    connection it used serves the next write as a transaction again (rolled back unless committed)."""
    if uow_factory.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no round trips to save")
    from psycopg.pq import TransactionStatus

    cp.register_robot(uow_factory(), "robot-a")
    reader = uow_factory()
    with reader.reading():
        assert reader.robots.get("robot-a") is not None
        assert _server_transaction(reader) is TransactionStatus.IDLE  # no BEGIN was sent
        read_connection = reader.session.connection().connection.dbapi_connection
    writer = uow_factory()
    with writer.writing():
        writer.robots.touch_many({"robot-a": datetime.now(timezone.utc)})
        assert writer.session.connection().connection.dbapi_connection is read_connection
        assert _server_transaction(writer) is TransactionStatus.INTRANS
    assert [r.last_seen_at for r in cp.list_robots(uow_factory())] == [None]  # left without commit: nothing kept


def test_a_robots_first_request_to_a_worker_reads_no_token_and_revocations_still_reach_it(uow_factory: UnitOfWorkFactory) -> None:
    """Each uvicorn worker knows every robot's token from one bulk read: a fleet whose connections
    the kernel spreads over N workers costs no token read per robot and worker. Rotations and
    revocations made elsewhere arrive with the next refresh; an overlap's end is checked per request."""
    tokens_of = {r: cp.register_robot(uow_factory(), r).token for r in ("robot-a", "robot-b", "robot-c")}
    tokens = RobotTokens(uow_factory)
    assert tokens.cached(tokens_of["robot-a"]) is None  # nothing read yet
    assert tokens.refresh() == 3
    log = StatementLog(uow_factory.engine)
    try:
        assert {tokens.resolve(t): t for t in tokens_of.values()}.keys() == tokens_of.keys()
        with pytest.raises(AuthenticationError):
            tokens.resolve("not-a-robot-token")  # unknown: asks the store (a robot registered since)
    finally:
        log.close()
    assert [s for s in log.statements if s.startswith("SELECT")] == log.statements[-1:], log.statements  # that one read

    rotated = cp.rotate_robot_token(uow_factory(), "robot-a", overlap_seconds=3600)
    short = cp.rotate_robot_token(uow_factory(), "robot-c", overlap_seconds=0.3)
    cp.revoke_robot_tokens(uow_factory(), "robot-b")  # by another process: this one still accepts it...
    assert tokens.cached(tokens_of["robot-b"]) == "robot-b"
    assert tokens.refresh() == 4  # ...until the next refresh: a's new and old token, c's new and (for now) old
    assert tokens.cached(tokens_of["robot-b"]) is None
    with pytest.raises(AuthenticationError):
        tokens.resolve(tokens_of["robot-b"])
    assert tokens.cached(rotated.token) == tokens.cached(tokens_of["robot-a"]) == "robot-a"
    assert tokens.cached(tokens_of["robot-c"]) == "robot-c"
    time.sleep(0.4)
    assert tokens.cached(tokens_of["robot-c"]) is None and tokens.cached(short.token) == "robot-c"

    # A revocation in this process while a refresh is reading: the stale read is not installed.
    racing: dict[str, RobotTokens] = {}

    def revoke_during_the_read() -> Any:
        cp.revoke_robot_tokens(uow_factory(), "robot-a")
        racing["tokens"].forget("robot-a")
        return uow_factory()

    racing["tokens"] = RobotTokens(uow_factory)
    assert racing["tokens"].refresh() == 3
    racing["tokens"]._uow_factory = revoke_during_the_read  # the next refresh's read races a revocation
    racing["tokens"].refresh()
    assert racing["tokens"].cached(rotated.token) is None and racing["tokens"].cached(tokens_of["robot-a"]) is None


def test_concurrent_pushes_never_make_the_sensor_skip_or_repeat_an_event(uow_factory: UnitOfWorkFactory) -> None:
    """Robots push concurrently (in random-sized batches, some repeated) while a sensor walks the
    cursor; the sensor sees every applied event exactly once, with consecutive seqs, and each
    task's events in the order its robot sent them."""
    per_robot = _fleet(uow_factory, robots=12, tasks_per_robot=4)
    errors: list[BaseException] = []
    done = threading.Event()
    seen: list[Any] = []

    def robot_work(robot: str, tasks: list[str]) -> None:
        rng = random.Random(robot)
        events = [TaskEvent(f"{t}.{s.value}", t, s) for t in tasks for s in LIFECYCLE]
        try:
            i = 0
            while i < len(events):
                n = rng.randint(1, 5)
                batch = events[i : i + n]
                if rng.random() < 0.2 and i:
                    batch = events[i - 1 : i + n]  # a retried batch: its first event again
                cp.apply_events(uow_factory(), robot, batch)
                i += n
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def sensor() -> None:
        cursor = 0
        try:
            while True:
                finished = done.is_set()
                page = cp.events_after(uow_factory(), cursor, 7)  # small pages: many ticks mid-run
                seen.extend(page.events)
                cursor = page.cursor
                if finished and not page.events:
                    return
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    reader = threading.Thread(target=sensor)
    reader.start()
    writers = [threading.Thread(target=robot_work, args=(r, ts)) for r, ts in per_robot.items()]
    for t in writers:
        t.start()
    for t in writers:
        t.join(120)
    done.set()
    reader.join(60)
    assert errors == []
    expected = {f"{t}.{s.value}" for ts in per_robot.values() for t in ts for s in LIFECYCLE}
    assert [e.seq for e in seen] == list(range(1, len(expected) + 1))  # no skip, no repeat, no hole
    assert sorted(e.event_id for e in seen) == sorted(expected)
    by_task: dict[str, list[str]] = defaultdict(list)
    for e in seen:
        by_task[e.task_id].append(e.status)
    assert all(statuses == [s.value for s in LIFECYCLE] for statuses in by_task.values())


# ---------------------------------------------------------------------------- two API processes


@pytest.fixture
def two_api_processes(migrated_postgres_url: str, tmp_path: Path) -> Iterator[list[str]]:
    """Two `python -m axon_dagster.api` processes (one worker each) on one PostgreSQL database."""
    procs, urls = [], []
    env = {**os.environ, "AXON_DATABASE_URL": migrated_postgres_url, "AXON_ADMIN_TOKEN": ""}
    try:
        for i in range(2):
            port, log_path = free_port(), tmp_path / f"api-{i}.log"
            with open(log_path, "w") as log:
                procs.append(subprocess.Popen([sys.executable, "-m", "axon_dagster.api", "--port", str(port), "--workers", "1",
                                               "--log-level", "warning"], env=env, stdout=log, stderr=subprocess.STDOUT))
            urls.append(f"http://127.0.0.1:{port}")
            wait_healthy(f"{urls[-1]}/readyz", procs[-1], log_path=log_path)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(15)


def test_two_api_processes_on_one_postgres_agree(two_api_processes: list[str]) -> None:
    a_url, b_url = two_api_processes
    admin_a, admin_b = ControlPlaneClient(a_url), ControlPlaneClient(b_url)
    tokens = {f"r{i}": (admin_a if i % 2 else admin_b).register_robot(f"r{i}")["token"] for i in range(6)}
    # Each robot talks to both processes, as behind a load balancer.
    clients = {r: [EdgeSyncClient(a_url, t), EdgeSyncClient(b_url, t)] for r, t in tokens.items()}
    try:
        cursors = {r: c[0].pull_tasks()["cursor"] for r, c in clients.items()}
        woke: dict[str, Any] = {}

        def long_poll(robot: str) -> None:  # waits on process B ...
            woke[robot] = clients[robot][1].pull_tasks(after=cursors[robot], wait=20)

        waiters = [threading.Thread(target=long_poll, args=(r,)) for r in clients]
        for t in waiters:
            t.start()
        time.sleep(0.5)
        admin_a.create_order("o1", "warehouse", ["nav"])  # ... while the work is made on process A
        admin_a.plan_order("o1", task_count=12, duration_seconds=5)
        assignments = admin_a.dispatch_order("o1")
        for t in waiters:
            t.join(15)
        assert sorted(t["task_id"] for page in woke.values() for t in page["tasks"]) == sorted(assignments)

        errors: list[BaseException] = []

        def robot_work(robot: str) -> None:
            try:
                mine = sorted(t for t, r in assignments.items() if r == robot)
                for n, status in enumerate(LIFECYCLE):
                    events = [{"event_id": f"{t}.{status.value}", "task_id": t, "status": status.value} for t in mine]
                    results = clients[robot][n % 2].push_events(events)  # alternate between the processes
                    assert {r["result"] for r in results} == {"applied"}, results
                    again = clients[robot][(n + 1) % 2].push_events(events)  # a retry lands on the other one
                    assert {r["result"] for r in again} == {"duplicate"}
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        workers = [threading.Thread(target=robot_work, args=(r,)) for r in clients]
        for t in workers:
            t.start()
        for t in workers:
            t.join(60)
        assert errors == []
        # Both processes serve the same feed: consecutive seqs, every event once.
        feed_a = admin_a.events_after(0, 1000)["events"]
        feed_b = admin_b.events_after(0, 1000)["events"]
        assert feed_a == feed_b
        assert [e["seq"] for e in feed_a] == list(range(1, len(assignments) * len(LIFECYCLE) + 1))
        # And the same tasks, whichever process is asked.
        assert admin_a.list_tasks(order_id="o1", limit=100) == admin_b.list_tasks(order_id="o1", limit=100)
        assert {t["status"] for t in admin_b.list_tasks(order_id="o1", limit=100)} == {"EXECUTED"}
        # Each robot's pull, from either process, ends at the same cursor with its tasks EXECUTED.
        for robot, (via_a, via_b) in clients.items():
            page_a, page_b = via_a.pull_tasks(after=cursors[robot]), via_b.pull_tasks(after=cursors[robot])
            assert page_a == page_b and {t["status"] for t in page_a["tasks"]} == {"EXECUTED"}
    finally:
        for c in (admin_a, admin_b, *(x for pair in clients.values() for x in pair)):
            c.close()


def test_the_watch_wakes_a_whole_fleet_paced_not_as_one_herd() -> None:
    """After a dispatch to every robot, waiting pulls are released at the wake rate (oldest
    first), each exactly once; robots whose revision did not move keep waiting."""
    import asyncio

    from axon_dagster.api.fleet_sync import RevisionWatch

    class Store:  # what RevisionWatch reads through a unit of work: every robot's revision
        current: dict[str, int] = {f"r{i}": 0 for i in range(12)}

        def revisions(self) -> dict[str, int]:
            return dict(self.current)

        def reading(self):  # type: ignore[no-untyped-def]
            return self

        def __enter__(self):  # type: ignore[no-untyped-def]
            self.robots = self
            return self

        def __exit__(self, *exc):  # type: ignore[no-untyped-def]
            return None

    store = Store()

    async def scenario() -> list[tuple[str, float]]:
        watch = RevisionWatch(lambda: store, interval=0.1, wake_rate=30)  # 3 per tick
        runner = asyncio.create_task(watch.run())
        woken: list[tuple[str, float]] = []

        async def pull(robot: str) -> None:
            if await watch.wait(robot, 0, 5):
                woken.append((robot, time.monotonic()))

        waiting = [asyncio.create_task(pull(f"r{i}")) for i in range(12)]
        await asyncio.sleep(0.25)
        assert woken == []  # nothing moved yet
        started = time.monotonic()
        store.current = {**{f"r{i}": 1 for i in range(10)}, "r10": 0, "r11": 0}  # a dispatch to r0..r9
        await asyncio.wait_for(asyncio.gather(*waiting[:10]), 5)
        assert not waiting[10].done() and not waiting[11].done()
        runner.cancel()
        for t in waiting[10:]:
            t.cancel()
        return [(r, at - started) for r, at in woken]

    woken = asyncio.run(scenario())
    assert sorted(r for r, _ in woken) == [f"r{i}" for i in range(10)]
    assert [r for r, _ in woken] == [f"r{i}" for i in range(10)]  # longest waiting first
    assert woken[-1][1] >= 0.25  # 10 robots at 3 per 0.1 s tick: four ticks, not one burst
