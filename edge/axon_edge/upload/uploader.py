"""The robot's uploader: plan -> parts -> complete, resumable, part-verified, rate-capped.

For one recording held in the edge cache and one upload grant:

1. ask the control plane for a plan (pre-signed part URLs, and the parts the backend already holds);
2. skip every part the agent's database recorded as verified, and every part the plan lists as done
   whose ETag is the MD5 of the robot's own bytes (checked locally: no byte goes on the wire);
3. send the rest, ``concurrency`` at a time, each verified (:mod:`.transfer`) and recorded before
   the next step counts on it; transient failures are retried with backoff; an expired URL or a
   vanished multipart upload asks for a new plan (same grant);
4. complete: the control plane assembles the objects and checks every SHA-256 against the manifest.

A SIGKILL anywhere loses at most the parts in flight: a restart re-plans and sends only what no
record (local, or the backend's) shows as done.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axon_dagster.client import ControlPlaneError

from .api import UploadApi
from .plan import PlanFile, PlanPart, UploadPlan, parse_plan
from .state import UploadState, VerifiedPart
from ..verification import RecordingCorrupt
from .transfer import FileRange, PartCorrupted, PartRejected, PartSender, PartTransient, PartUrlExpired, etag_md5, md5_hex, read_part

log = logging.getLogger(__name__)


class UploadStopped(Exception):
    """The agent is stopping: the upload resumes at the next start."""


class GrantUnusable(Exception):
    """The control plane will not take this upload under this grant (expired, used, no grant, already
    staged): wait for the next grant."""


class UploadFailed(Exception):
    """This attempt failed (store unreachable, refused part, digest refused at completion); the
    next grant (or the next tick, while this one is valid) tries again."""


@dataclass(frozen=True)
class UploadResult:
    task_id: str
    grant_id: str
    bytes_total: int
    bytes_sent: int
    parts_sent: int
    parts_skipped: int
    retries: int
    plans: int
    seconds: float
    reply: Any = None

    @property
    def throughput_bytes_per_second(self) -> float:
        return self.bytes_sent / self.seconds if self.seconds > 0 else 0.0


class UploadObserver:
    """Hooks for metrics and tests; the defaults do nothing."""

    def part_sent(self, size: int, seconds: float) -> None: ...
    def part_skipped(self, size: int) -> None: ...
    def retry(self, reason: str) -> None: ...
    def finished(self, result: UploadResult | None, outcome: str) -> None: ...


class Uploader:
    def __init__(
        self,
        api: UploadApi,
        state: UploadState,
        sender: PartSender,
        *,
        concurrency: int = 4,
        max_part_attempts: int = 5,
        retry_base_seconds: float = 0.5,
        max_plans: int = 4,
        progress_interval: float = 5.0,
        observer: UploadObserver | None = None,
        stop: threading.Event | None = None,
        checks: Any = None,
    ):
        """``checks``: an :class:`axon_edge.verification.RecordingChecks`: no part goes once the
        recording is known not to match its recorder's checksum, and completion waits for the verdict."""
        if concurrency < 1:
            raise ValueError(f"upload concurrency must be at least 1, got {concurrency!r}")
        self.api, self.state, self.sender = api, state, sender
        self.concurrency = concurrency
        self.max_part_attempts = max_part_attempts
        self.retry_base_seconds = retry_base_seconds
        self.max_plans = max_plans
        self.progress_interval = progress_interval
        self.observer = observer or UploadObserver()
        self.stop = stop or threading.Event()
        self.checks = checks

    def upload(self, task_id: str, grant_id: str, root: str | os.PathLike, manifest: Mapping[str, Any]) -> UploadResult:
        """Upload the manifest's files (under ``root``) for ``task_id`` under ``grant_id``."""
        root = Path(root)
        files = {f["name"]: (int(f["size"]), str(f["sha256"]).lower()) for f in manifest["files"]}
        self.state.begin(task_id, grant_id)
        progress = _Progress(task_id, sum(size for size, _ in files.values()), self.progress_interval)
        started = time.perf_counter()
        plans = 0
        try:
            while True:
                plans += 1
                plan = self._plan(task_id, grant_id, files)
                try:
                    etags = self._send(task_id, plan, root, progress)
                    break
                except PartUrlExpired as exc:
                    if plans >= self.max_plans:
                        raise UploadFailed(f"part URLs kept expiring ({plans} plans): {exc}") from None
                    log.info("task %s: %s; asking for a new plan", task_id, exc)
                    self.observer.retry("replan")
            self._require_intact(task_id, wait=True)
            reply = self._complete(task_id, grant_id, etags)
        except GrantUnusable as exc:
            self.state.failed(task_id, str(exc))
            self.observer.finished(None, "grant_unusable")
            raise
        except RecordingCorrupt as exc:
            self.state.failed(task_id, str(exc))
            self.observer.finished(None, "corrupt")
            raise
        except UploadStopped:
            self.observer.finished(None, "stopped")
            raise
        except (UploadFailed, OSError) as exc:
            self.state.failed(task_id, str(exc))
            self.observer.finished(None, "failed")
            raise UploadFailed(str(exc)) from None
        self.state.complete(task_id)
        result = UploadResult(
            task_id=task_id, grant_id=grant_id, bytes_total=progress.total, bytes_sent=progress.sent_bytes,
            parts_sent=progress.sent_parts, parts_skipped=progress.skipped_parts, retries=progress.retries,
            plans=plans, seconds=time.perf_counter() - started, reply=reply,
        )
        log.info(
            "task %s uploaded: %d bytes, %d part(s) sent, %d skipped (done before), %d retries, %d plan(s), %.1f s, %.2f MB/s",
            task_id, result.bytes_total, result.parts_sent, result.parts_skipped, result.retries, plans, result.seconds,
            result.throughput_bytes_per_second / 1e6,
        )
        self.observer.finished(result, "completed")
        return result

    def _require_intact(self, task_id: str, wait: bool = False) -> None:
        if self.checks is not None:
            self.checks.require(task_id, wait=wait)
            if wait and self.stop.is_set():
                raise UploadStopped(f"task {task_id}: the agent stopped while the recording was verified")

    # ------------------------------------------------------------------ control plane

    def _plan(self, task_id: str, grant_id: str, files: Mapping[str, tuple[int, str]]) -> UploadPlan:
        try:
            raw = self.api.plan(task_id, grant_id)
        except ControlPlaneError as exc:
            if exc.status_code in (403, 404, 409):
                raise GrantUnusable(f"plan refused ({exc.status_code}): {exc.detail}") from None
            raise UploadFailed(f"plan failed ({exc.status_code}): {exc.detail}") from None
        return parse_plan(raw, files, grant_id)

    def _complete(self, task_id: str, grant_id: str, etags: Mapping[str, Mapping[int, str]]) -> Any:
        body = {name: [{"number": n, "etag": e} for n, e in sorted(parts.items())] for name, parts in etags.items()}
        try:
            return self.api.complete(task_id, grant_id, body)
        except ControlPlaneError as exc:
            if exc.status_code == 409 and "digest" in exc.detail.lower():
                # The staged objects were deleted with the refusal: nothing of them can be resumed.
                self.state.forget_parts(task_id)
                raise UploadFailed(f"the control plane refused the upload: {exc.detail}") from None
            if exc.status_code == 409 and "cannot complete" in exc.detail.lower():
                # The store does not hold a part this robot sent (lost before completion): the
                # next attempt, under the same grant, plans again and sends what is missing.
                raise UploadFailed(f"the store is missing parts: {exc.detail}") from None
            if exc.status_code in (403, 404, 409):
                raise GrantUnusable(f"complete refused ({exc.status_code}): {exc.detail}") from None
            raise UploadFailed(f"complete failed ({exc.status_code}): {exc.detail}") from None

    # ------------------------------------------------------------------ parts

    def _send(self, task_id: str, plan: UploadPlan, root: Path, progress: "_Progress") -> dict[str, dict[int, str]]:
        """Every part of the plan verified; returns ``{file: {number: etag}}``."""
        etags: dict[str, dict[int, str]] = {}
        jobs: list[tuple[PlanFile, PlanPart, int]] = []
        fds: dict[str, int] = {}
        try:
            # Small files first (Axon's sidecar before its MCAP): the cloud can read a recording's
            # description at once and ingest the MCAP while its parts arrive.
            for f in sorted(plan.files, key=lambda f: f.size):
                path = root / f.name
                fd = fds[f.name] = os.open(path, os.O_RDONLY)
                if os.fstat(fd).st_size != f.size:
                    raise UploadFailed(f"{path} is {os.fstat(fd).st_size} bytes, the manifest says {f.size}")
                etags[f.name] = {}
                verified = self.state.verified_parts(task_id, f.name, f.upload_id)
                for part in f.parts:
                    known = verified.get(part.number)
                    # A part recorded here counts while the store still holds it (its listing is the
                    # truth: a part it lost — a crash of its host before completion — is sent again).
                    if known is not None and known.size == part.size and (
                        f.done_parts.get(part.number) == known.etag or not f.upload_id
                    ):
                        etags[f.name][part.number] = known.etag
                        progress.skipped(part.size)
                        self.observer.part_skipped(part.size)
                        continue
                    done_etag = f.done_parts.get(part.number)
                    if done_etag is not None and self._done_part_matches(fd, part, done_etag):
                        md5 = etag_md5(done_etag) or ""
                        self.state.part_verified(task_id, f.name, f.upload_id, VerifiedPart(part.number, part.size, md5, done_etag), sent=False)
                        etags[f.name][part.number] = done_etag
                        progress.skipped(part.size)
                        self.observer.part_skipped(part.size)
                        continue
                    jobs.append((f, part, fd))
            if jobs:
                log.info(
                    "task %s: sending %d part(s), %d bytes (%d already done)",
                    task_id, len(jobs), sum(p.size for _, p, _ in jobs), progress.skipped_parts,
                )
            self._run_jobs(task_id, jobs, etags, progress)
        finally:
            for fd in fds.values():
                os.close(fd)
        return etags

    def _done_part_matches(self, fd: int, part: PlanPart, etag: str) -> bool:
        """A part the backend says it holds: believed when its ETag is the MD5 of the robot's bytes
        (or states no MD5: an Azure block id, verified by the store when it was sent)."""
        stated = etag_md5(etag)
        if stated is None:
            return True
        if md5_hex(read_part(fd, part.offset, part.size)) == stated:
            return True
        log.warning("part %d: the store holds other bytes (ETag %s) than the robot's; sending it again", part.number, etag)
        return False

    def _run_jobs(self, task_id: str, jobs: list, etags: dict[str, dict[int, str]], progress: "_Progress") -> None:
        if not jobs:
            return
        abort = threading.Event()
        lock = threading.Lock()

        def one(job: tuple[PlanFile, PlanPart, int]) -> None:
            f, part, fd = job
            if abort.is_set() or self.stop.is_set():
                return
            self._require_intact(task_id)  # a recording known to be corrupt stops using the uplink
            sent = self._send_part(task_id, f, part, fd, abort, progress)
            with lock:
                etags[f.name][part.number] = sent.etag

        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(jobs)), thread_name_prefix=f"upload-{task_id}") as pool:
            futures = [pool.submit(one, job) for job in jobs]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in done if f.exception() is not None), None)
            if failed is not None:
                abort.set()
                wait(futures)
                raise failed.exception()  # type: ignore[misc]
        if self.stop.is_set():
            raise UploadStopped(f"task {task_id}: the agent is stopping")

    def _send_part(self, task_id: str, f: PlanFile, part: PlanPart, fd: int, abort: threading.Event, progress: "_Progress"):
        if self.sender.checks_by_size(part):
            # The control plane's own ingest endpoint: the part streams from the file unhashed (the
            # endpoint takes exactly its size and checks the whole file's SHA-256 at completion).
            body: Any = FileRange(fd, part.offset, part.size)
            md5 = ""
        else:
            body = read_part(fd, part.offset, part.size)
            md5 = md5_hex(body)
        attempt = 0
        while True:
            attempt += 1
            try:
                sent = self.sender.send(part, body, md5)
            except (PartTransient, PartCorrupted) as exc:
                if attempt >= self.max_part_attempts:
                    raise UploadFailed(f"{f.name} {exc} (after {attempt} attempts)") from None
                self.state.retried(task_id, str(exc))
                progress.retried()
                self.observer.retry("part")
                delay = min(10.0, self.retry_base_seconds * 2 ** (attempt - 1)) * random.uniform(0.8, 1.0)
                log.warning("task %s: %s %s; retry %d in %.1fs", task_id, f.name, exc, attempt, delay)
                if self.stop.wait(delay) or abort.is_set():
                    raise UploadStopped(f"task {task_id}: stopped while retrying") from None
                continue
            except PartRejected as exc:
                raise UploadFailed(f"{f.name} {exc}") from None
            break
        self.state.part_verified(task_id, f.name, f.upload_id, VerifiedPart(part.number, part.size, md5, sent.etag), sent=True)
        progress.sent(part.size)
        self.observer.part_sent(part.size, sent.seconds)
        return sent


class _Progress:
    """Counts and a progress line every ``interval`` seconds."""

    def __init__(self, task_id: str, total: int, interval: float, clock: Callable[[], float] = time.monotonic):
        self.task_id, self.total, self.interval, self._clock = task_id, total, interval, clock
        self.sent_bytes = self.sent_parts = self.skipped_bytes = self.skipped_parts = self.retries = 0
        self._lock = threading.Lock()
        self._started = self._last = clock()

    def sent(self, n: int) -> None:
        with self._lock:
            self.sent_bytes += n
            self.sent_parts += 1
        self._maybe_log()

    def skipped(self, n: int) -> None:
        with self._lock:
            self.skipped_bytes += n
            self.skipped_parts += 1

    def retried(self) -> None:
        with self._lock:
            self.retries += 1

    def _maybe_log(self) -> None:
        now = self._clock()
        with self._lock:
            if now - self._last < self.interval:
                return
            self._last = now
            done = self.sent_bytes + self.skipped_bytes
            rate = self.sent_bytes / max(now - self._started, 1e-9)
        log.info(
            "task %s: %.1f of %.1f MB uploaded (%d part(s) sent, %d skipped, %d retries), %.2f MB/s",
            self.task_id, done / 1e6, self.total / 1e6, self.sent_parts, self.skipped_parts, self.retries, rate / 1e6,
        )
