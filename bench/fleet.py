#!/usr/bin/env python
"""Fleet-scale benchmark (``make bench-fleet``): how many robots one control plane holds.

    python bench/fleet.py [--backends sqlite,postgres] [--robots 100,500,1000,2000] [--workers N]
                          [--scale-out-robots 250,500,...] [--no-scale-out] [--record-seconds S]

Each robot is an async client (not a process) that behaves like the edge agent's sync and
outbox loops: it long-polls ``GET /edge/tasks`` (``wait`` = the agent's default), and for each of
its 5 tasks pushes the real event sequence through ``POST /edge/events`` -- READY for every new
task at once (the agent prepares them), then per task a simulated collector: pickup (ASSIGNED)
after 2-4 s, teleop start (EXECUTING) 1 s later, stop (EXECUTED) after the recording. A failed
request is retried like the agent does (same event ids) and counted as an error.

Per backend and fleet size N (a fresh database; PostgreSQL is a throwaway server with fsync ON,
the API runs as ``python -m axon_dagster.api`` with the default worker count):

1. the fleet connects and sits idle for a while (long-polls only);
2. an order of 5 x N tasks is planned and dispatched over HTTP (its wall time is printed);
3. robots work until every task is EXECUTED (``dispatch->EXECUTED`` seconds).

Printed per N: requests/s, p50/p99 of pull (server-held long-poll time excluded, from the
``Server-Timing`` header) and of push, errors, CPU of the API processes (% of one core over the run;
in brackets each API process's and worker's share: how the kernel spread the robots) and of the
database, dispatch->all EXECUTED. ``max_robots: N`` (last line) is the largest
N on PostgreSQL with the default worker count whose pull and push p99 are under 1 s, with no
error and every task EXECUTED. ``scale_out: R`` compares two single-worker API processes (robots
split between them, as behind a load balancer) with one, on PostgreSQL: the ratio of the
largest N each holds over ``--scale-out-robots``.

The machine's load average is printed before and after each run: figures from a busy machine
are not comparable with a quiet one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable as a plain script from a checkout
    sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402  (an async HTTP client that keeps up with 2,000 robots on one core)
import httpx  # noqa: E402

from axon_dagster.client import ControlPlaneClient  # noqa: E402
from axon_dagster.api.server import default_workers  # noqa: E402
from axon_dagster.domain import utcnow  # noqa: E402
from axon_dagster.demo.processes import free_port, wait_healthy  # noqa: E402
from axon_dagster import control_plane as cp  # noqa: E402
from axon_dagster.control_plane.persistence import make_engine, upgrade  # noqa: E402
from axon_dagster.control_plane.persistence.bulk import insert_rows  # noqa: E402
from axon_dagster.control_plane.persistence.ephemeral_postgres import EphemeralPostgres  # noqa: E402
from axon_dagster.control_plane.persistence.schema import RobotRow  # noqa: E402

try:
    from axon_edge.agent import DEFAULT_LONG_POLL_SECONDS
except ImportError:  # the edge package not installed: the same default
    DEFAULT_LONG_POLL_SECONDS = 20.0

TASKS_PER_ROBOT = 5
PICKUP_SECONDS = (2.0, 4.0)  # READY -> a collector picks the task up
START_SECONDS = 1.0  # pickup -> teleop start
RECORD_SECONDS = 5.0  # start -> stop (the order's duration_seconds)
CLIENT_TIMEOUT = 10.0  # EdgeSyncClient's default
IDLE_SECONDS = 10.0
STAGGER_SECONDS = 2.0  # robots come up over this long (as after a control-plane restart)
WORK_TIMEOUT = 240.0
P99_TARGET_MS = 1000.0
LADDER = (100, 500, 1000, 2000)
SCALE_OUT_LADDER = (250, 500, 750, 1000, 1500, 2000)
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------ measuring


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _stat(pid: int) -> tuple[int, float, float] | None:
    """(parent pid, own cpu seconds, reaped children's cpu seconds) from /proc/<pid>/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    ppid, utime, stime, cutime, cstime = int(fields[1]), *(int(fields[i]) for i in (11, 12, 13, 14))
    return ppid, (utime + stime) / CLK_TCK, (cutime + cstime) / CLK_TCK


def tree_cpu_seconds(roots: list[int]) -> float:
    """CPU seconds of the process trees under ``roots``: live processes' own time, plus what the
    roots reaped (PostgreSQL backends that exited, uvicorn workers that restarted)."""
    return sum(tree_cpu_by_process(roots).values())


def tree_cpu_by_process(roots: list[int]) -> dict[int, float]:
    """CPU seconds of each live process in the trees under ``roots`` (a root's entry includes what
    it reaped): how the API's work spreads over its processes and workers."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                stats[int(entry)] = st
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    cpu: dict[int, float] = {}
    for root in roots:
        if root not in stats:
            continue
        cpu[root] = stats[root][2]
        stack = [root]
        while stack:
            pid = stack.pop()
            cpu[pid] = cpu.get(pid, 0.0) + stats[pid][1]
            stack.extend(children.get(pid, ()))
    return cpu


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


@dataclass
class Figures:
    backend: str
    robots: int
    processes: int
    workers: int
    pull_ms: list[float] = field(default_factory=list)
    push_ms: list[float] = field(default_factory=list)
    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    dispatch_s: float = float("nan")
    executed_s: float | None = None  # dispatch -> all EXECUTED; None: not reached
    api_cpu: float = 0.0  # % of one core
    api_split: list[float] = field(default_factory=list)  # % of one core of each API process busier than 1 %
    db_cpu: float | None = None
    bench_cpu: float = 0.0
    load_before: str = ""
    load_after: str = ""

    @property
    def held(self) -> bool:
        return (
            self.executed_s is not None
            and not self.errors
            and pct(self.pull_ms, 0.99) < P99_TARGET_MS
            and pct(self.push_ms, 0.99) < P99_TARGET_MS
        )

    def line(self) -> str:
        errors = sum(self.errors.values())
        detail = f" ({', '.join(f'{k} {v}' for k, v in self.errors.most_common(3))})" if errors else ""
        db = f"{self.db_cpu:5.0f}%" if self.db_cpu is not None else "  (in)"
        done = f"{self.executed_s:6.1f} s" if self.executed_s is not None else "  NEVER"
        return (
            f"  N={self.robots:5d}  {self.requests / self.seconds:7.1f} req/s  "
            f"pull p50/p99 {pct(self.pull_ms, 0.5):6.1f}/{pct(self.pull_ms, 0.99):7.1f} ms  "
            f"push p50/p99 {pct(self.push_ms, 0.5):6.1f}/{pct(self.push_ms, 0.99):7.1f} ms  "
            f"errors {errors}{detail}  cpu api {self.api_cpu:4.0f}% ({'+'.join(f'{c:.0f}' for c in self.api_split)}) "
            f"db {db} bench {self.bench_cpu:4.0f}%  "
            f"dispatch {self.dispatch_s:5.2f} s  dispatch->EXECUTED {done}  "
            f"{'held' if self.held else 'NOT held'}  [load {self.load_before} -> {self.load_after}]"
        )


# ------------------------------------------------------------------------------ the fleet


class Robot:
    """One simulated edge agent: a long-polling pull loop and an outbox, plus its collector."""

    def __init__(self, robot_id: str, token: str, base_url: str, session: aiohttp.ClientSession, figures: Figures, stop: asyncio.Event):
        self.robot_id = robot_id
        self.headers = {"Authorization": f"Bearer {token}"}
        self.base = base_url + "/api/v1"
        self.session = session
        self.figures = figures
        self.stop = stop
        self.cursor = 0
        self.known: set[str] = set()
        self.new_tasks: asyncio.Queue[str] = asyncio.Queue()
        self.executed = 0

    async def run(self, start_delay: float) -> None:
        await asyncio.sleep(start_delay)
        await asyncio.gather(self.pull_loop(), self.collector())

    async def pull_loop(self) -> None:
        wait = DEFAULT_LONG_POLL_SECONDS
        while not self.stop.is_set():
            params = {"after": str(self.cursor), "limit": "100", "wait": str(wait)}
            started = time.perf_counter()
            try:
                timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT + wait)
                async with self.session.get(f"{self.base}/edge/tasks", params=params, headers=self.headers, timeout=timeout) as r:
                    body = await r.json() if r.status == 200 else None
                    held = _held_seconds(r.headers.get("Server-Timing", ""))
                    status = r.status
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                if self.stop.is_set():
                    return
                self.figures.errors[f"pull {exc.__class__.__name__}"] += 1
                await asyncio.sleep(2.0)  # the agent's poll interval
                continue
            self.figures.requests += 1
            if status != 200 or body is None:
                self.figures.errors[f"pull HTTP {status}"] += 1
                await asyncio.sleep(2.0)
                continue
            self.figures.pull_ms.append((time.perf_counter() - started - held) * 1000)
            for task in body["tasks"]:
                if task["task_id"] not in self.known and task["status"] == "PENDING":
                    self.known.add(task["task_id"])
                    await self.new_tasks.put(task["task_id"])
            self.cursor = body["cursor"]
            wait = 0 if len(body["tasks"]) == 100 else DEFAULT_LONG_POLL_SECONDS  # drain pages at once

    async def push(self, events: list[dict[str, str]]) -> None:
        """The outbox: deliver, retrying (same event ids) until the control plane took them."""
        while True:
            started = time.perf_counter()
            try:
                timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
                async with self.session.post(f"{self.base}/edge/events", json={"events": events}, headers=self.headers, timeout=timeout) as r:
                    await r.read()
                    status = r.status
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                self.figures.errors[f"push {exc.__class__.__name__}"] += 1
                await asyncio.sleep(1.0)
                continue
            self.figures.requests += 1
            self.figures.push_ms.append((time.perf_counter() - started) * 1000)
            if status == 200:
                return
            self.figures.errors[f"push HTTP {status}"] += 1
            await asyncio.sleep(1.0)

    async def collector(self) -> None:
        rng = random.Random(self.robot_id)
        while not self.stop.is_set():
            first = await self.new_tasks.get()
            batch = [first]
            while not self.new_tasks.empty():
                batch.append(self.new_tasks.get_nowait())
            # The agent prepares every new task (recorder config) and reports READY in one push.
            await self.push([_event(t, "READY") for t in batch])
            for task_id in batch:
                await asyncio.sleep(rng.uniform(*PICKUP_SECONDS))
                await self.push([_event(task_id, "ASSIGNED")])
                await asyncio.sleep(START_SECONDS)
                await self.push([_event(task_id, "EXECUTING")])
                await asyncio.sleep(RECORD_SECONDS)
                await self.push([_event(task_id, "EXECUTED")])
                self.executed += 1


def _event(task_id: str, status: str) -> dict[str, str]:
    return {"event_id": f"{task_id}.{status.lower()}", "task_id": task_id, "status": status, "occurred_at": utcnow().isoformat()}


def _held_seconds(server_timing: str) -> float:
    for part in server_timing.split(","):
        name, _, rest = part.strip().partition(";")
        if name == "wait" and rest.startswith("dur="):
            return float(rest[4:]) / 1000
    return 0.0


# ------------------------------------------------------------------------------ one run


@contextlib.contextmanager
def api_processes(database_url: str, processes: int, workers: int, workdir: Path) -> Iterator[tuple[list[str], list[int]]]:
    procs, urls = [], []
    env = {**os.environ, "AXON_DATABASE_URL": database_url, "AXON_ADMIN_TOKEN": ""}
    try:
        for i in range(processes):
            port, log_path = free_port(), workdir / f"api-{i}.log"
            with open(log_path, "w") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "axon_dagster.api", "--port", str(port), "--workers", str(workers), "--log-level", "warning"],
                    env=env, stdout=log, stderr=subprocess.STDOUT,
                ))
            urls.append(f"http://127.0.0.1:{port}")
            wait_healthy(f"{urls[-1]}/readyz", procs[-1], log_path=log_path)
        for url in urls:  # every worker up (their start-up is not part of the measurement)
            answered: set[int] = set()
            deadline = time.monotonic() + 120
            while len(answered) < workers and time.monotonic() < deadline:
                with contextlib.suppress(Exception):
                    answered.add(httpx.get(f"{url}/readyz", timeout=2).json()["worker"])
                time.sleep(0.05)
        yield urls, [p.pid for p in procs]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def register_fleet(database_url: str, n: int) -> dict[str, str]:
    """N robots with their tokens, written in one bulk insert (as N registrations would)."""
    tokens = {f"robot-{i:05d}": secrets.token_urlsafe(24) for i in range(n)}
    engine = make_engine(database_url)
    try:
        from sqlalchemy.orm import Session

        with Session(engine) as session:
            now = utcnow()
            insert_rows(session, RobotRow.__table__, [
                {"robot_id": r, "name": "", "token_hash": cp.hash_token(t), "created_at": now, "last_seen_at": None, "task_revision": 0}
                for r, t in tokens.items()
            ])
            session.commit()
    finally:
        engine.dispose()
    return tokens


async def drive(urls: list[str], tokens: dict[str, str], figures: Figures) -> None:
    stop = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
    async with aiohttp.ClientSession(connector=connector) as session:
        robots = [Robot(r, t, urls[i % len(urls)], session, figures, stop) for i, (r, t) in enumerate(tokens.items())]
        rng = random.Random(17)
        tasks = [asyncio.create_task(r.run(rng.uniform(0, STAGGER_SECONDS))) for r in robots]
        await asyncio.sleep(STAGGER_SECONDS + IDLE_SECONDS)
        admin = ControlPlaneClient(urls[0], timeout=120)
        order = f"fleet-{figures.robots}"
        total = TASKS_PER_ROBOT * len(robots)
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        await loop.run_in_executor(None, lambda: admin.create_order(order, "warehouse", ["navigation"], sub_scene="aisle_1"))
        await loop.run_in_executor(None, lambda: admin.plan_order(order, task_count=total, duration_seconds=RECORD_SECONDS))
        await loop.run_in_executor(None, lambda: admin.dispatch_order(order))
        figures.dispatch_s = time.perf_counter() - started
        while time.perf_counter() - started < WORK_TIMEOUT:
            await asyncio.sleep(0.5)
            if sum(r.executed for r in robots) == total:
                # The control plane's own count, not the robots' word for it.
                counts = (await loop.run_in_executor(None, lambda: admin.get_order(order)))["task_counts"]
                if counts.get("EXECUTED", 0) == total:
                    figures.executed_s = time.perf_counter() - started
                    break
        admin.close()
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def run_one(backend: str, n: int, processes: int, workers: int, postgres: EphemeralPostgres | None) -> Figures:
    workdir = Path(tempfile.mkdtemp(prefix=f"axon-bench-fleet-{backend}-{n}-"))
    try:
        if postgres is not None:
            url = postgres.create_database()
        else:
            url = f"sqlite:///{workdir / 'control-plane.db'}"
        upgrade(url)
        tokens = register_fleet(url, n)
        figures = Figures(backend, n, processes, workers, load_before=loadavg())
        with api_processes(url, processes, workers, workdir) as (urls, pids):
            db_roots = [postgres.pid] if postgres is not None and postgres.pid else []
            api0, db0, me0, t0 = tree_cpu_by_process(pids), tree_cpu_seconds(db_roots), _self_cpu(), time.perf_counter()
            asyncio.run(drive(urls, tokens, figures))
            figures.seconds = time.perf_counter() - t0
            api1 = tree_cpu_by_process(pids)
            split = [100 * (api1[pid] - api0.get(pid, 0.0)) / figures.seconds for pid in sorted(api1)]
            figures.api_cpu = sum(split)
            figures.api_split = [c for c in split if c >= 1.0]
            if db_roots:
                figures.db_cpu = 100 * (tree_cpu_seconds(db_roots) - db0) / figures.seconds
            figures.bench_cpu = 100 * (_self_cpu() - me0) / figures.seconds
        figures.load_after = loadavg()
        return figures
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def ladder(backend: str, sizes: tuple[int, ...], processes: int, workers: int, postgres: EphemeralPostgres | None, label: str) -> int:
    """Run each N (stopping after the first N not held); returns the largest N held."""
    print(f"{label}: {backend}, {processes} API process(es) x {workers} worker(s)", flush=True)
    best = 0
    for n in sizes:
        figures = run_one(backend, n, processes, workers, postgres)
        print(figures.line(), flush=True)
        if not figures.held:
            break
        best = n
    return best


def _sizes(raw: str) -> tuple[int, ...]:
    return tuple(int(x) for x in raw.split(",") if x.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--robots", default=",".join(map(str, LADDER)))
    parser.add_argument("--workers", type=int, default=None, help="uvicorn workers of the API (default: the API's own default)")
    parser.add_argument("--scale-out-robots", default=",".join(map(str, SCALE_OUT_LADDER)))
    parser.add_argument("--no-scale-out", action="store_true")
    parser.add_argument("--record-seconds", type=float, default=RECORD_SECONDS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    globals()["RECORD_SECONDS"] = args.record_seconds
    workers = args.workers or default_workers(database_url="postgresql://")  # the API's default on PostgreSQL
    sqlite_workers = args.workers or default_workers(database_url="sqlite://")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    print(
        f"fleet benchmark: {os.cpu_count()} CPUs, load {loadavg()}; robots long-poll {DEFAULT_LONG_POLL_SECONDS:g} s, "
        f"{TASKS_PER_ROBOT} tasks each (pickup {PICKUP_SECONDS[0]:g}-{PICKUP_SECONDS[1]:g} s, start +{START_SECONDS:g} s, "
        f"record {RECORD_SECONDS:g} s), client timeout {CLIENT_TIMEOUT:g} s; held = pull and push p99 < {P99_TARGET_MS:g} ms, "
        "no error, all EXECUTED",
        flush=True,
    )
    max_robots = None
    postgres = None
    try:
        if "postgres" in backends:
            postgres = EphemeralPostgres(durable=True).start()
        for backend in backends:
            on_pg = backend == "postgres"
            best = ladder(backend, _sizes(args.robots), 1, workers if on_pg else sqlite_workers, postgres if on_pg else None, "ladder")
            print(f"  {backend}: held up to N={best}", flush=True)
            if backend == "postgres":
                max_robots = best
        if postgres is not None and not args.no_scale_out:
            one = ladder("postgres", _sizes(args.scale_out_robots), 1, 1, postgres, "scale-out, one process")
            two = ladder("postgres", _sizes(args.scale_out_robots), 2, 1, postgres, "scale-out, two processes")
            ratio = two / one if one else float("inf") if two else float("nan")
            print(f"scale_out: {ratio:.2f}  (two single-worker API processes held N={two}, one held N={one})", flush=True)
    finally:
        if postgres is not None:
            postgres.stop()
    if max_robots is not None:
        print(f"max_robots: {max_robots}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
