"""What keeps a thousand idle robots cheap for one API process: robot tokens resolved from
memory, "last seen" written in batches off the request path, and long-polling pulls that wait on
one shared revision watch instead of the database.

Nothing here is shared between processes, and nothing needs to be: every piece is a cache of
the store (tokens never change once issued; revisions only grow) or bookkeeping that the store
merges (``LastSeen`` never moves a time backwards). Two replicas, or two uvicorn workers, each
keep their own and agree through the database.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from contextlib import suppress
from datetime import datetime, timezone
from typing import Any, Callable

from starlette.concurrency import run_in_threadpool

from axon_dagster import control_plane as cp
from axon_dagster.control_plane.persistence import SqlAlchemyUnitOfWork

log = logging.getLogger(__name__)

# How long a token stays resolved in memory, and how often every robot's token hashes are
# re-read: a rotation's end of overlap or a revocation reaches the other API processes within
# this (the process that made it forgets at once; an overlap's end is checked on every request).
TOKEN_TTL_SECONDS = 60.0
TOKEN_INDEX_SECONDS = 30.0
MAX_CACHED_TOKENS = 100_000
LAST_SEEN_FLUSH_SECONDS = 5.0
# How often a process re-reads every robot's revision while at least one pull is waiting: one
# query for all waiting robots, whatever their number.
WATCH_INTERVAL_SECONDS = 0.5
MAX_WAIT_SECONDS = 60.0
# At most this many waiting pulls are woken per second and process: a dispatch to 1,000 robots
# reaches them all within ~5 s on one two-worker replica (each replica adds as much) instead of
# arriving as 1,000 pulls and 1,000 READY pushes in the same instant.
WAKE_RATE = 100.0


class RobotTokens:
    """bearer token -> robot id from memory: every robot's token hashes are read in one query at
    start and every ``TOKEN_INDEX_SECONDS`` (:meth:`refresh`), so a robot's first request to a
    worker costs no database read either. (With only a per-token cache, each of N uvicorn workers
    read each robot once: the kernel spreads a robot's connections over all workers, and those
    reads came in the bursts that matter -- a fleet coming up, a dispatch waking it.) A token not
    in the index (a robot registered since) is read once and cached for ``ttl``."""

    def __init__(self, uow_factory: Callable[[], SqlAlchemyUnitOfWork], ttl: float = TOKEN_TTL_SECONDS):
        self._uow_factory = uow_factory
        self._ttl = ttl
        self._known: dict[str, tuple[str, float]] = {}
        self._index: dict[str, tuple[str, datetime | None]] = {}  # token hash -> (robot, valid until)
        self._forgotten = 0  # bumped by forget(): a refresh that read before it is not installed
        self._lock = threading.Lock()

    def cached(self, token: str | None) -> str | None:
        if not token:
            return None
        hit = self._known.get(token)
        if hit is not None and hit[1] >= time.monotonic():
            return hit[0]
        entry = self._index.get(cp.hash_token(token))
        if entry is None or (entry[1] is not None and entry[1] <= datetime.now(timezone.utc)):
            return None
        return entry[0]

    def refresh(self) -> int:
        """Re-read every robot's accepted token hashes (one query); returns how many."""
        with self._lock:
            generation = self._forgotten
        index = cp.robot_token_index(self._uow_factory())
        with self._lock:
            if generation != self._forgotten:
                return 0  # a rotation or revocation raced this read: the next refresh installs it
            self._index = index
        return len(index)

    def forget(self, robot_id: str) -> None:
        """Drop every cached token of ``robot_id`` (after a rotation or revocation)."""
        with self._lock:
            self._forgotten += 1
            for token in [t for t, (robot, _) in self._known.items() if robot == robot_id]:
                self._known.pop(token, None)
            self._index = {h: entry for h, entry in self._index.items() if entry[0] != robot_id}

    def resolve(self, token: str | None) -> str:
        """The robot of ``token`` (AuthenticationError if none); reads the store on a miss."""
        robot = self.cached(token)
        if robot is not None:
            return robot
        robot = cp.authenticate_robot(self._uow_factory(), token)
        with self._lock:
            if len(self._known) >= MAX_CACHED_TOKENS:
                self._known.clear()
            self._known[token] = (robot, time.monotonic() + self._ttl)  # type: ignore[index]
        return robot


async def refresh_tokens_forever(tokens: RobotTokens, interval: float = TOKEN_INDEX_SECONDS) -> None:
    """The API's token index: read at start, then every ``interval``."""
    while True:
        try:
            await run_in_threadpool(tokens.refresh)
        except Exception:  # the store is down: tokens resolve one by one (and fail) until it is back
            log.warning("could not read the robots' tokens; resolving them one by one", exc_info=True)
        await asyncio.sleep(interval)


class RevisionWatch:
    """Long-polling: a pull that finds nothing new waits here, not in the database.

    While anyone waits, one background loop reads every robot's revision (one query) each
    ``interval`` and wakes the waiters whose robot moved past their cursor. Writes made by other
    processes are seen the same way as this process's own, so replicas need no coordination; a
    write through this process (:class:`WakeWatchOnWrites`) has it read again at once (at most
    every ``MIN_READ_GAP_SECONDS``): a grant or a dispatch reaches a waiting robot in
    milliseconds, not up to ``interval`` later.
    """

    MIN_READ_GAP_SECONDS = 0.02

    def __init__(
        self, uow_factory: Callable[[], SqlAlchemyUnitOfWork], interval: float = WATCH_INTERVAL_SECONDS, wake_rate: float = WAKE_RATE
    ):
        self._uow_factory = uow_factory
        self._interval = interval
        self._wake_rate = wake_rate
        self._revisions: dict[str, int] | None = None  # None: not read yet
        self._read_at = 0.0
        self._waiters: dict[str, list[tuple[int, asyncio.Event]]] = {}
        self._poke = asyncio.Event()
        self._written = asyncio.Event()
        self.reads = 0  # how many revision reads the watch made (tests, metrics)

    def written(self) -> None:
        """Something was written through this process that may move a robot's revision."""
        self._written.set()

    def known_changed(self, robot_id: str, after: int) -> bool | None:
        """True/False if the last read says whether ``robot_id`` moved past ``after``; None if the
        watch has not read yet (or not recently): ask the store."""
        if self._revisions is None or time.monotonic() - self._read_at > 2 * self._interval + 1:
            return None
        return self._revisions.get(robot_id, 0) > after

    async def wait(self, robot_id: str, after: int, timeout: float) -> bool:
        """Wait until ``robot_id``'s revision exceeds ``after`` (True) or ``timeout`` passes (False)."""
        event = asyncio.Event()
        entry = (after, event)
        self._waiters.setdefault(robot_id, []).append(entry)
        self._poke.set()
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            waiting = self._waiters.get(robot_id)
            if waiting is not None:
                if entry in waiting:
                    waiting.remove(entry)
                if not waiting:
                    del self._waiters[robot_id]

    async def run(self) -> None:
        """The watch loop (a task of the app's lifespan)."""
        while True:
            if not self._waiters:
                self._poke.clear()
                await self._poke.wait()
            try:
                revisions = await run_in_threadpool(cp.robot_revisions, self._uow_factory())
            except Exception:  # the store is down: waiters time out and robots retry
                log.warning("revision watch could not read the store", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            self.reads += 1
            previous, self._revisions, self._read_at = self._read_at, revisions, time.monotonic()
            # Paced: a dispatch to the whole fleet must not come back as one thundering herd of
            # pulls (and READY pushes). Waiters beyond this tick's budget stay changed, longest
            # waiting first, and are woken on the next ticks.
            since = min(self._interval, self._read_at - previous) if previous else self._interval
            budget = max(1, int(self._wake_rate * since))  # per second, however often a write has it read
            for robot_id, waiting in list(self._waiters.items()):
                current = revisions.get(robot_id, 0)
                for after, event in waiting:
                    if current > after and not event.is_set() and budget > 0:
                        event.set()
                        budget -= 1
            self._written.clear()
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._written.wait(), self._interval)
            await asyncio.sleep(max(0.0, self._read_at + self.MIN_READ_GAP_SECONDS - time.monotonic()))


class WakeWatchOnWrites:
    """ASGI middleware: after a successful write request (not GET/HEAD, status below 400; paths
    matching ``skip`` excepted: robots' part uploads move no revision) the revision watch reads
    again at once."""

    def __init__(self, app: Any, watch: RevisionWatch, skip: re.Pattern[str] | None = None):
        self.app, self.watch, self.skip = app, watch, skip

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS") or (
            self.skip is not None and self.skip.search(scope["path"])
        ):
            await self.app(scope, receive, send)
            return

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                self.watch.written()
            await send(message)

        await self.app(scope, receive, sending)


async def flush_last_seen_forever(last_seen: cp.LastSeen, uow_factory: Callable[[], SqlAlchemyUnitOfWork], interval: float = LAST_SEEN_FLUSH_SECONDS) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(last_seen.flush, uow_factory())
        except Exception:
            log.warning("could not write robots' last-seen times; kept for the next try", exc_info=True)
