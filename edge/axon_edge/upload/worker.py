"""The agent's upload loop: uploads the recording of a task the control plane granted, and
reports the robot's uplink (measured throughput, configured windows) to the control plane.

A task is uploaded when it is EXECUTED on the robot, its pulled view carries an upload grant
(``upload: {grant_id, expires_at}``), its recording sits in the edge cache waiting (state
``cached``: not rejected, not published) and no earlier attempt completed that grant. One upload at
a time: the control plane grants at most one per robot anyway. A grant the control plane no longer
honours (expired, used) is dropped until a new one comes with a pull; a failed attempt is retried
with backoff while its grant is valid.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from datetime import datetime, timezone
from typing import Any

from axon_dagster.client import ControlPlaneError, ControlPlaneUnavailable
from axon_dagster.domain import TaskStatus
from axon_dagster.storage.edge_cache import CacheState, EdgeCache

from ..db import EdgeDB, LocalTask
from ..settings import DataPathSettings
from .api import UploadApi
from .plan import PlanError
from ..verification import RecordingCorrupt
from .uploader import GrantUnusable, UploadFailed, Uploader, UploadStopped

log = logging.getLogger(__name__)

UPLINK_REPORT_SECONDS = 300.0  # the windows and the last measured rate, again this often
# A measurement older than this is forgotten (reported as not measured). The cloud grants uploads
# only to robots whose measured uplink reaches its minimum, and a robot measures only by
# uploading: a low figure (a small recording is mostly round trips, a bad hour) must not keep a
# robot from ever uploading again. Unmeasured, it is granted one upload, which measures anew.
MEASUREMENT_MAX_AGE_SECONDS = 900.0


class UploadWorker:
    def __init__(
        self,
        db: EdgeDB,
        cache: EdgeCache,
        uploader: Uploader,
        api: UploadApi,
        settings: DataPathSettings,
        *,
        stop: threading.Event,
        poll_interval: float = 2.0,
        retry_base_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
    ):
        self.db, self.cache, self.uploader, self.api, self.settings = db, cache, uploader, api, settings
        self.stop = stop
        self.wake = threading.Event()
        self.poll_interval = poll_interval
        self.retry_base_seconds = retry_base_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.measured_mbps: float | None = None
        self.measured_at: float | None = None  # time.monotonic() of the upload that measured it
        self.measurement_max_age_seconds = MEASUREMENT_MAX_AGE_SECONDS
        self.last_error: str | None = None
        self.current_task: str | None = None
        self._dropped_grants: set[str] = set()
        self._failures: dict[str, int] = {}  # grant -> failed attempts in a row
        self._retry_at: dict[str, float] = {}
        self._uplink_due = 0.0

    # ------------------------------------------------------------------ loop

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.report_uplink_if_due()
                busy = self.run_once()
            except Exception:  # the loop must survive anything; the error is visible in /status
                log.exception("upload tick failed unexpectedly")
                busy = False
            if not busy:
                self.wake.wait(self.poll_interval)
                self.wake.clear()

    def candidates(self) -> list[tuple[LocalTask, str]]:
        """(task, grant_id) of every task ready to upload, most urgent first."""
        out = []
        now = time.monotonic()
        for task in self.db.list_tasks(TaskStatus.EXECUTED):
            grant = task.metadata.get("upload")
            if not isinstance(grant, dict) or not isinstance(grant.get("grant_id"), str):
                continue
            grant_id = grant["grant_id"]
            if grant_id in self._dropped_grants or self._retry_at.get(grant_id, 0) > now:
                continue
            if _expired(grant.get("expires_at")):
                continue
            if self.uploader.state.completed(task.task_id, grant_id):
                continue
            out.append((task, grant_id))
        return out

    def run_once(self) -> bool:
        """Upload one granted recording; True when one was tried (look again at once)."""
        for task, grant_id in self.candidates():
            entry = self._cached(task.task_id)
            if entry is None:
                continue
            self.current_task = task.task_id
            try:
                result = self.uploader.upload(task.task_id, grant_id, entry.entry_dir, entry.manifest)
            except UploadStopped:
                return False
            except RecordingCorrupt as exc:  # the verification fails the task; no attempt again
                log.error("task %s: upload abandoned: %s", task.task_id, exc)
                self._dropped_grants.add(grant_id)
                self.last_error = str(exc)
            except GrantUnusable as exc:
                log.info("task %s: grant %s no longer usable (%s); waiting for a new grant", task.task_id, grant_id, exc)
                self._dropped_grants.add(grant_id)
                self.last_error = str(exc)
            except (UploadFailed, PlanError, ControlPlaneUnavailable, ControlPlaneError) as exc:
                failures = self._failures[grant_id] = self._failures.get(grant_id, 0) + 1
                delay = min(self.max_backoff_seconds, self.retry_base_seconds * 2 ** (failures - 1)) * random.uniform(0.8, 1.0)
                self._retry_at[grant_id] = time.monotonic() + delay
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("task %s: upload attempt %d failed (%s); retrying in %.1fs", task.task_id, failures, exc, delay)
            else:
                self._failures.pop(grant_id, None)
                self.last_error = None
                if result.bytes_sent and result.seconds > 0:
                    self.measured_mbps = result.throughput_bytes_per_second * 8 / 1e6
                    self.measured_at = time.monotonic()
                    self._uplink_due = 0.0  # report the new measurement now
            finally:
                self.current_task = None
            return True
        return False

    def _cached(self, task_id: str):
        try:
            entry = self.cache.get(task_id)
        except KeyError:
            log.warning("task %s is granted an upload but its recording is not in the edge cache", task_id)
            return None
        if entry.state is not CacheState.CACHED or not entry.manifest:
            return None  # rejected (never uploaded) or already published
        return entry

    # ------------------------------------------------------------------ uplink

    def report_uplink_if_due(self) -> None:
        if time.monotonic() < self._uplink_due:
            return
        if self.measured_at is not None and time.monotonic() - self.measured_at > self.measurement_max_age_seconds:
            log.info("uplink measurement of %.1f Mbit/s is older than %.0fs: reported as not measured until the next upload",
                     self.measured_mbps or 0.0, self.measurement_max_age_seconds)
            self.measured_mbps = self.measured_at = None
        try:
            self.api.report_uplink(self.measured_mbps, [w.wire() for w in self.settings.upload_windows], "UTC")
        except (ControlPlaneUnavailable, ControlPlaneError) as exc:
            log.debug("uplink report failed (%s); trying again later", exc)
            self._uplink_due = time.monotonic() + min(60.0, UPLINK_REPORT_SECONDS)
            return
        log.info(
            "reported uplink: %s, windows %s",
            f"{self.measured_mbps:.1f} Mbit/s measured" if self.measured_mbps is not None else "not measured yet",
            ", ".join(f"{w.start}-{w.end}" for w in self.settings.upload_windows) or "any time",
        )
        self._uplink_due = time.monotonic() + UPLINK_REPORT_SECONDS

    def status(self) -> dict[str, Any]:
        return {
            **self.uploader.state.totals(),
            "current_task": self.current_task,
            "measured_mbps": self.measured_mbps,
            "max_mbps": self.settings.upload_max_mbps,
            "windows": [w.wire() for w in self.settings.upload_windows],
            "last_error": self.last_error,
        }


def _expired(expires_at: Any) -> bool:
    if not isinstance(expires_at, str) or not expires_at:
        return False
    try:
        at = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    except ValueError:
        return False
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at <= datetime.now(timezone.utc)
