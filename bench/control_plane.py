#!/usr/bin/env python
"""Control-plane scale benchmark (``make bench-control``).

    python bench/control_plane.py [--backend sqlite|postgres|both] [--repeats N] [--big-store N]

Per backend (PostgreSQL is a throwaway server this script starts, like the tests do):

1. Fan-out: one order -> 10,000 tasks (2 skills x 5,000) dispatched across 100 robots, through
   the HTTP API (create + plan + dispatch, the plan's full JSON answer included). Target <= 5 s.
2. The task-status sensor's tick: ``GET /events?after=CURSOR&limit=1000`` returning 100 new
   events, on a store of 1,000 tasks and on one of 200,000 tasks (each old task with its event
   history, built with bulk inserts). The tick must cost what its new events cost, not what the
   store holds: ratio = median tick at 200k / median tick at 1k, target <= 1.5. The robot's pull
   (``GET /edge/tasks`` returning 100 changed tasks) is measured the same way.

Then the edge agent's resident memory when idle (target <= 100 MB), if ``axon_edge.cli`` exists.
The last line is ``ratio: X.XX``: the worst backend's tick ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable as a plain script from a checkout
    sys.path.insert(0, str(REPO))

from sqlalchemy import func, select, text, update  # noqa: E402

from axon_dagster.client import ControlPlaneClient, ControlPlaneUnavailable, EdgeSyncClient  # noqa: E402
from axon_dagster.domain import TaskEvent, TaskStatus, utcnow  # noqa: E402
from axon_dagster import control_plane as cp  # noqa: E402
from axon_dagster.control_plane.persistence import UnitOfWorkFactory, make_engine, upgrade  # noqa: E402
from axon_dagster.control_plane.persistence.bulk import insert_rows  # noqa: E402
from axon_dagster.control_plane.persistence.ephemeral_postgres import EphemeralPostgres  # noqa: E402
from axon_dagster.control_plane.persistence.schema import BatchRow, EventRow, OrderRow, RobotRow, TaskRow, EVENT_SEQ_COUNTER, RevisionCounterRow  # noqa: E402

FAN_OUT_TASKS = 10_000
ROBOTS = 100
SMALL_STORE = 1_000
NEW_EVENTS = 100
# Tasks kept open in the benchmark stores so every tick has 100 legal new events to report:
# 5 groups of 100, each can move READY -> ASSIGNED -> EXECUTING -> EXECUTED (20 rounds).
RESERVED_GROUPS = 5
ROBOT_SIDE_STEPS = (TaskStatus.READY, TaskStatus.ASSIGNED, TaskStatus.EXECUTING, TaskStatus.EXECUTED)
WARMUP_ROUNDS = 2
FAN_OUT_TARGET_S = 5.0
RATIO_TARGET = 1.5
RSS_TARGET_MB = 100.0
BENCH_ROBOT_TOKEN = "bench-robot-token"


@dataclass
class BackendFigures:
    backend: str
    fan_out_s: list[float] = field(default_factory=list)
    fan_out_steps: dict[str, float] = field(default_factory=dict)
    build_s: dict[int, float] = field(default_factory=dict)
    tick_ms: dict[int, list[float]] = field(default_factory=dict)
    tick_service_ms: dict[int, list[float]] = field(default_factory=dict)
    pull_ms: dict[int, list[float]] = field(default_factory=dict)

    def ratio(self, big: int) -> float:
        return statistics.median(self.tick_ms[big]) / statistics.median(self.tick_ms[SMALL_STORE])


# ------------------------------------------------------------------------------ databases


class Databases:
    """Fresh, migrated databases on demand: SQLite files copied from a migrated template, or
    PostgreSQL databases created from a migrated template database."""

    def __init__(self, backend: str, workdir: Path, postgres: EphemeralPostgres | None):
        self.backend = backend
        self._workdir = workdir
        self._postgres = postgres
        self._count = 0
        if backend == "sqlite":
            self._template = workdir / "template.db"
            upgrade(f"sqlite:///{self._template}")
        else:
            assert postgres is not None
            upgrade(postgres.create_database("bench_template"))

    def fresh(self) -> str:
        self._count += 1
        if self.backend == "sqlite":
            target = self._workdir / f"bench-{self._count}.db"
            shutil.copyfile(self._template, target)
            return f"sqlite:///{target}"
        assert self._postgres is not None
        return self._postgres.create_database(f"bench_{self._count}", template="bench_template")


@dataclass
class ApiProcess:
    url: str


@contextlib.contextmanager
def api_on(url: str) -> Iterator[tuple[ApiProcess, UnitOfWorkFactory]]:
    """The API in its own process, as deployed (sharing the benchmark's GIL would blur the figures)."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "axon_dagster.api", "--host", "127.0.0.1", "--port", str(port), "--database-url", url, "--log-level", "warning"],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = ApiProcess(f"http://127.0.0.1:{port}")
    engine = make_engine(url)
    try:
        deadline = time.monotonic() + 60
        with ControlPlaneClient(server.url, timeout=2) as probe:
            while True:
                try:
                    probe.healthz()
                    break
                except ControlPlaneUnavailable:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"the API did not start: {(proc.stderr.read() if proc.stderr else '')[-1000:]}")
                    time.sleep(0.1)
        yield server, UnitOfWorkFactory(engine)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        engine.dispose()


# ------------------------------------------------------------------------------ 1. fan-out


def measure_fan_out(dbs: Databases, figures: BackendFigures, repeats: int) -> None:
    for _ in range(repeats):
        with api_on(dbs.fresh()) as (server, _uow):
            with ControlPlaneClient(server.url, timeout=300) as client:
                for i in range(ROBOTS):
                    client.register_robot(f"robot-{i:03d}")
                t0 = time.perf_counter()
                client.create_order("fan-out", "warehouse", ["navigation", "pick_place"], sub_scene="aisle_1")
                t1 = time.perf_counter()
                plan = client.plan_order("fan-out", task_count=FAN_OUT_TASKS // 2, duration_seconds=30, topics=["/imu"])
                t2 = time.perf_counter()
                assignments = client.dispatch_order("fan-out")
                t3 = time.perf_counter()
        per_robot: dict[str, int] = {}
        for robot in assignments.values():
            per_robot[robot] = per_robot.get(robot, 0) + 1
        if len(plan["tasks"]) != FAN_OUT_TASKS or len(assignments) != FAN_OUT_TASKS or len(per_robot) != ROBOTS:
            raise SystemExit(f"fan-out produced {len(plan['tasks'])} tasks, {len(assignments)} assignments over {len(per_robot)} robots")
        figures.fan_out_s.append(t3 - t0)
        for name, seconds in (("create", t1 - t0), ("plan", t2 - t1), ("dispatch", t3 - t2)):
            figures.fan_out_steps[name] = figures.fan_out_steps.get(name, 0.0) + seconds / repeats


# ------------------------------------------------------------------------------ 2. sensor tick


def build_store(uow_factory: UnitOfWorkFactory, n_tasks: int) -> int:
    """A store of ``n_tasks`` tasks on ``ROBOTS`` robots, built with bulk inserts: the reserved
    tasks open (PENDING, all on robot-000 so one request moves 100 of them), every other task
    UPLOADED with an event in the history. Returns the number of tasks."""
    reserved = RESERVED_GROUPS * NEW_EVENTS
    now = utcnow()
    per_order = 10_000
    with uow_factory().writing() as uow:
        session = uow.session  # bulk build: straight to the tables
        if session.get_bind().dialect.name == "postgresql":
            # Rows are consistent by construction: skip the per-row foreign-key triggers for the
            # load, as pg_restore --disable-triggers does (the benchmark's server is ours: superuser).
            session.execute(text("SET LOCAL session_replication_role = replica"))
        insert_rows(
            session,
            RobotRow.__table__,
            [
                {"robot_id": f"robot-{i:03d}", "name": "", "token_hash": cp.hash_token(f"{BENCH_ROBOT_TOKEN}-{i}"), "created_at": now, "last_seen_at": None,
                 "task_revision": n_tasks}  # tasks below carry revisions up to n_tasks
                for i in range(ROBOTS)
            ],
        )
        orders = (n_tasks + per_order - 1) // per_order
        insert_rows(
            session,
            OrderRow.__table__,
            [
                {"order_id": f"order-{o}", "scene": "warehouse", "sub_scene": "aisle_1", "skills": ["navigation"], "requirements": {},
                 "priority": 0, "created_by": "bench", "created_at": now}
                for o in range(orders)
            ],
        )
        insert_rows(
            session,
            BatchRow.__table__,
            [
                {"batch_id": f"order-{o}_batch_1", "order_id": f"order-{o}", "scene": "warehouse", "sub_scene": "aisle_1",
                 "skills": ["navigation"], "task_count": per_order, "duration_seconds": 30.0, "topics": ["/imu"], "created_at": now}
                for o in range(orders)
            ],
        )
        chunk = 20_000
        seq = 0
        for start in range(0, n_tasks, chunk):
            tasks, events = [], []
            for i in range(start, min(start + chunk, n_tasks)):
                open_task = i < reserved
                order = f"order-{i // per_order}"
                task_id = f"{order}_batch_1_task_{i % per_order + 1}"
                tasks.append(
                    {"task_id": task_id, "order_id": order, "batch_id": f"{order}_batch_1", "scene": "warehouse", "sub_scene": "aisle_1",
                     "skills": ["navigation"], "duration_seconds": 30.0, "topics": ["/imu"], "priority": 0,
                     "status": "PENDING" if open_task else "UPLOADED", "robot_id": "robot-000" if open_task else f"robot-{i % ROBOTS:03d}",
                     "data_collector_id": None, "config_path": None, "dataset_path": None, "failure_reason": None,
                     "created_at": now, "updated_at": now, "revision": i + 1}
                )
                if not open_task:
                    seq += 1  # published already (as the publisher would have)
                    events.append(
                        {"seq": seq, "event_id": f"{task_id}.uploaded", "task_id": task_id, "robot_id": f"robot-{i % ROBOTS:03d}", "status": "UPLOADED",
                         "occurred_at": now, "received_at": now, "data": {"source": "cloud"}}
                    )
            insert_rows(session, TaskRow.__table__, tasks)
            insert_rows(session, EventRow.__table__, events)
        session.execute(update(RevisionCounterRow).where(RevisionCounterRow.name == EVENT_SEQ_COUNTER).values(value=seq))
        uow.commit()
    if uow_factory.engine.dialect.name == "postgresql":
        with uow_factory.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))  # what autovacuum would do after a bulk load
    return n_tasks


def reserved_task_ids() -> list[str]:
    return [f"order-0_batch_1_task_{i + 1}" for i in range(RESERVED_GROUPS * NEW_EVENTS)]


@dataclass
class TickStore:
    """One benchmark store with its own API process and cursors."""

    size: int
    url: str
    uow_factory: UnitOfWorkFactory
    sensor: ControlPlaneClient
    robot: EdgeSyncClient
    cursor: int
    revision_cursor: int


def measure_ticks(dbs: Databases, figures: BackendFigures, sizes: tuple[int, ...], repeats: int) -> None:
    """Both stores are served at once and their ticks are taken back to back, alternating which
    goes first, so load from anything else on the machine hits both alike."""
    rounds = WARMUP_ROUNDS + repeats
    if rounds > RESERVED_GROUPS * len(ROBOT_SIDE_STEPS):
        raise SystemExit(f"at most {RESERVED_GROUPS * len(ROBOT_SIDE_STEPS) - WARMUP_ROUNDS} repeats")
    urls = {}
    for size in sizes:
        print(f"[{dbs.backend}] building a store of {size:,} tasks ...", file=sys.stderr, flush=True)
        urls[size] = dbs.fresh()
        engine = make_engine(urls[size])
        try:
            t0 = time.perf_counter()
            build_store(UnitOfWorkFactory(engine), size)
            figures.build_s[size] = time.perf_counter() - t0
        finally:
            engine.dispose()
    reserved = reserved_task_ids()
    with contextlib.ExitStack() as stack:
        stores = []
        for size in sizes:
            server, uow_factory = stack.enter_context(api_on(urls[size]))
            sensor = stack.enter_context(ControlPlaneClient(server.url, timeout=60))
            robot = stack.enter_context(EdgeSyncClient(server.url, f"{BENCH_ROBOT_TOKEN}-0", timeout=60))
            # The sensor and the robot are up to date with the history: ticks start at the head.
            stores.append(TickStore(size, urls[size], uow_factory, sensor, robot, _head_of_feed(uow_factory), size))
            figures.tick_ms[size], figures.tick_service_ms[size], figures.pull_ms[size] = [], [], []
        print(f"[{dbs.backend}] sensor ticks ...", file=sys.stderr, flush=True)
        for r in range(rounds):
            group = reserved[(r % RESERVED_GROUPS) * NEW_EVENTS : (r % RESERVED_GROUPS + 1) * NEW_EVENTS]
            status = ROBOT_SIDE_STEPS[r // RESERVED_GROUPS]
            events = [TaskEvent(f"{t}.{status.value.lower()}", t, status) for t in group]
            for store in stores:
                results = cp.apply_events(store.uow_factory(), "robot-000", events)
                if any(res.result != "applied" for res in results):
                    raise SystemExit(f"round {r}: events not applied: {results[:3]}")
            for store in stores if r % 2 == 0 else reversed(stores):
                _tick(store, figures, record=r >= WARMUP_ROUNDS)


def _tick(store: TickStore, figures: BackendFigures, record: bool) -> None:
    started = time.perf_counter()
    page = store.sensor.events_after(store.cursor, 1000)
    tick = time.perf_counter() - started
    started = time.perf_counter()
    cp.events_after(store.uow_factory(), store.cursor, 1000)
    service_tick = time.perf_counter() - started
    started = time.perf_counter()
    pulled = store.robot.pull_tasks(store.revision_cursor, 1000)
    pull = time.perf_counter() - started
    if len(page["events"]) != NEW_EVENTS or len(pulled["tasks"]) != NEW_EVENTS:
        raise SystemExit(f"store {store.size}: tick saw {len(page['events'])} events, pull {len(pulled['tasks'])} tasks; expected {NEW_EVENTS}")
    store.cursor, store.revision_cursor = page["cursor"], pulled["cursor"]
    if record:
        figures.tick_ms[store.size].append(tick * 1000)
        figures.tick_service_ms[store.size].append(service_tick * 1000)
        figures.pull_ms[store.size].append(pull * 1000)


def _head_of_feed(uow_factory: UnitOfWorkFactory) -> int:
    with uow_factory.engine.connect() as conn:
        return conn.execute(select(func.max(EventRow.seq))).scalar_one() or 0


# ------------------------------------------------------------------------------ 3. edge agent RSS


def measure_edge_rss(workdir: Path, settle_seconds: float = 5.0) -> str:
    try:
        import importlib.util

        if importlib.util.find_spec("axon_edge") is None or importlib.util.find_spec("axon_edge.cli") is None:
            return "edge agent RSS: not measured (axon_edge not available)"
    except ImportError:
        return "edge agent RSS: not measured (axon_edge not available)"
    url = f"sqlite:///{workdir / 'edge-rss.db'}"
    upgrade(url)
    with api_on(url) as (server, uow_factory):
        token = cp.register_robot(uow_factory(), "rss-robot").token
        data_dir = workdir / "edge-data"
        data_dir.mkdir()
        argv = [
            sys.executable, "-m", "axon_edge.cli", "run", "--robot-id", "rss-robot", "--control-plane-url", server.url,
            "--token", token, "--data-dir", str(data_dir), "--recorder-url", f"http://127.0.0.1:{_free_port()}",
            "--host", "127.0.0.1", "--port", str(_free_port()), "--log-level", "WARNING",
        ]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=workdir)
        try:
            time.sleep(settle_seconds)  # started, synced once or more, now idle
            if proc.poll() is not None:
                return f"edge agent RSS: not measured (agent exited with {proc.returncode}: {(proc.stderr.read() if proc.stderr else '')[-300:].strip()})"
            rss_kb = _rss_kb(proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    rss_mb = rss_kb / 1024
    verdict = "ok" if rss_mb <= RSS_TARGET_MB else "MISSED"
    return f"edge agent RSS: {rss_mb:.1f} MB idle (target <= {RSS_TARGET_MB:.0f} MB: {verdict})"


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------ report


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ms"


def report(figures: BackendFigures, big: int) -> list[str]:
    fan = statistics.median(figures.fan_out_s)
    verdict = "ok" if fan <= FAN_OUT_TARGET_S else "MISSED"
    steps = ", ".join(f"{k} {v:.2f} s" for k, v in figures.fan_out_steps.items())
    ratio = figures.ratio(big)
    lines = [
        f"[{figures.backend}]",
        f"  fan-out {FAN_OUT_TASKS:,} tasks / {ROBOTS} robots over HTTP: median {fan:.2f} s of {len(figures.fan_out_s)} "
        f"({', '.join(f'{s:.2f}' for s in figures.fan_out_s)}) [{steps}] (target <= {FAN_OUT_TARGET_S:.0f} s: {verdict})",
        f"  store build (bulk): {SMALL_STORE:,} tasks {figures.build_s[SMALL_STORE]:.2f} s, {big:,} tasks + {big - RESERVED_GROUPS * NEW_EVENTS:,} events {figures.build_s[big]:.2f} s",
        f"  sensor tick, {NEW_EVENTS} new events (GET /events, median of {len(figures.tick_ms[big])}): "
        f"{SMALL_STORE:,} tasks {_ms(figures.tick_ms[SMALL_STORE])}, {big:,} tasks {_ms(figures.tick_ms[big])}, "
        f"ratio {ratio:.2f} (target <= {RATIO_TARGET}: {'ok' if ratio <= RATIO_TARGET else 'MISSED'})",
        f"    service call alone: {SMALL_STORE:,} tasks {_ms(figures.tick_service_ms[SMALL_STORE])}, {big:,} tasks {_ms(figures.tick_service_ms[big])}",
        f"  robot pull, {NEW_EVENTS} changed tasks (GET /edge/tasks): {SMALL_STORE:,} tasks {_ms(figures.pull_ms[SMALL_STORE])}, "
        f"{big:,} tasks {_ms(figures.pull_ms[big])}",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=18, help="timed sensor ticks per store size (median reported; at most 18)")
    parser.add_argument("--fan-out-repeats", type=int, default=3)
    parser.add_argument("--big-store", type=int, default=200_000, help="tasks in the big store")
    parser.add_argument("--skip-rss", action="store_true", help="do not measure the edge agent")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.big_store < SMALL_STORE:
        parser.error(f"--big-store must be at least {SMALL_STORE}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    all_figures: list[BackendFigures] = []
    lines: list[str] = []
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="axon-bench-")))
        postgres = stack.enter_context(EphemeralPostgres()) if "postgres" in backends else None
        for backend in backends:
            backend_dir = workdir / backend
            backend_dir.mkdir()
            dbs = Databases(backend, backend_dir, postgres)
            figures = BackendFigures(backend)
            print(f"[{backend}] fan-out ...", file=sys.stderr, flush=True)
            measure_fan_out(dbs, figures, args.fan_out_repeats)
            measure_ticks(dbs, figures, (SMALL_STORE, args.big_store), args.repeats)
            all_figures.append(figures)
            for line in report(figures, args.big_store):
                print(line, flush=True)
                lines.append(line)
        rss_line = "edge agent RSS: not measured (--skip-rss)" if args.skip_rss else measure_edge_rss(workdir)
    print(rss_line)
    worst = max(f.ratio(args.big_store) for f in all_figures)
    missed = worst > RATIO_TARGET or any(statistics.median(f.fan_out_s) > FAN_OUT_TARGET_S for f in all_figures) or "MISSED" in rss_line
    print(f"ratio: {worst:.2f}")
    return 1 if (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
