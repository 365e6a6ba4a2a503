"""The edge agent: keeps the robot's tasks in step with the control plane and drives the recorder.

Its concerns, one module each (mixed into :class:`EdgeAgent`, which holds the state and the threads):

- :mod:`axon_edge.sync`: pull this robot's tasks by cursor, prepare new ones on the recorder, apply
  cloud-side moves;
- :mod:`axon_edge.outbox`: deliver status events to the control plane in order, backing off while
  it is down;
- :mod:`axon_edge.recorder_control`: collector actions (``pickup``, ``teleop`` start/stop), the
  recorder's callbacks, crash recovery of recorder commands, a finished recording into the cache;
- :mod:`axon_edge.supervision`: watch a recording while it runs;
- :mod:`axon_edge.upload`: upload granted recordings from the edge cache;
- :mod:`axon_edge.verification`: check a recording against the recorder's checksum after the report;
- :mod:`axon_edge.cache_upkeep`: the edge cache's retention and eviction on a timer, its usage
  reported to the control plane.

Robots dial out; nothing here listens to the cloud. Every state change is written together with
its outbox event (see :mod:`axon_edge.db`), so a crash or a control-plane outage never loses one.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axon_dagster.domain import TaskStatus, validate_id
from axon_dagster.recorder.protocol import RecorderClient, RecorderError, RecorderStatus
from axon_dagster.storage.bandwidth import RateLimiter
from axon_dagster.storage.edge_cache import EdgeCache, EdgeCacheError

from .cache_upkeep import CacheUpkeep
from .db import EdgeDB, LocalTask
from .errors import DataDirLocked
from .metrics import EdgeMetrics
from .recorder_report import DEFAULT_HEARTBEAT as DEFAULT_RECORDER_REPORT_HEARTBEAT
from .recorder_report import DEFAULT_INTERVAL as DEFAULT_RECORDER_REPORT_INTERVAL
from .recorder_report import RecorderReporter
from .recordings import FinishReports, RecordingIntake
from .settings import DataPathSettings
from .supervision import DEFAULT_INTERVAL as DEFAULT_SUPERVISION_INTERVAL
from .supervision import DEFAULT_UNREACHABLE_POLLS, RecordingSupervisor
from .outbox import DeliveryReport, Outbox
from .recorder_control import (
    CALLBACK_PATH,
    DEFAULT_COMPLETE_WAIT_SECONDS,
    DEFAULT_OUTPUT_WAIT_SECONDS,
    TELEOP_COMMANDS,
    RecorderControl,
    _task_id,
)
from .sync import DEFAULT_LONG_POLL_SECONDS, MAX_LONG_POLL_SECONDS, CloudSync, ControlPlaneSync
from .upload import PartSender, UploadApi, Uploader, UploadState
from .upload.worker import UploadWorker
from .verification import RecordingChecks

log = logging.getLogger(__name__)

__all__ = [
    "CALLBACK_PATH", "DEFAULT_LONG_POLL_SECONDS", "MAX_LONG_POLL_SECONDS", "TELEOP_COMMANDS", "DeliveryReport", "EdgeAgent",
    "LoopHealth",
]


@dataclass
class LoopHealth:
    """What the loops last saw; read by /status and /metrics."""

    last_sync_at: float | None = None
    last_sync_error: str | None = None
    last_delivery_at: float | None = None
    last_delivery_error: str | None = None
    delivery_failures_in_a_row: int = 0
    recorder_reachable: bool | None = None
    recorder_status: RecorderStatus | None = None
    recorder_error: str | None = None
    last_prepare_error: str | None = None
    rejected_event_ids: list[str] = field(default_factory=list)


class EdgeAgent(CloudSync, RecorderControl, Outbox):
    def __init__(
        self,
        robot_id: str,
        control_plane: ControlPlaneSync,
        recorder: RecorderClient,
        data_dir: str | os.PathLike,
        *,
        poll_interval: float = 2.0,
        pull_page_size: int = 100,
        outbox_batch_size: int = 100,
        retry_base_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
        operator_name: str = "",
        factory: str = "",
        supervision_interval: float = DEFAULT_SUPERVISION_INTERVAL,
        unreachable_polls: int = DEFAULT_UNREACHABLE_POLLS,
        callback_base_url: str = "",
        long_poll_seconds: float = DEFAULT_LONG_POLL_SECONDS,
        recorder_output_dir: str | os.PathLike | None = None,
        output_wait_seconds: float = DEFAULT_OUTPUT_WAIT_SECONDS,
        complete_wait_seconds: float = DEFAULT_COMPLETE_WAIT_SECONDS,
        data_path: DataPathSettings | None = None,
        recorder_report_interval: float = DEFAULT_RECORDER_REPORT_INTERVAL,
        recorder_report_heartbeat: float = DEFAULT_RECORDER_REPORT_HEARTBEAT,
    ):
        self.robot_id = validate_id(robot_id, "robot_id")
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval!r}")
        if not 0 <= long_poll_seconds <= MAX_LONG_POLL_SECONDS:
            raise ValueError(f"long_poll_seconds must be between 0 and {MAX_LONG_POLL_SECONDS}, got {long_poll_seconds!r}")
        # > 0: a pull thread long-polls the control plane (an idle robot asks once per this many
        # seconds and hears of new work at once); 0: the sync loop polls every poll_interval.
        self.long_poll_seconds = long_poll_seconds
        self.control_plane = control_plane
        # Every recorder RPC is timed into the agent's metrics (axon_edge.metrics).
        self.metrics = EdgeMetrics(self.robot_id)
        self.recorder = self.metrics.instrument(recorder)
        self.data_dir = Path(data_dir)
        self.config_dir = self.data_dir / "configs"
        self.poll_interval = poll_interval
        self.pull_page_size = pull_page_size
        self.outbox_batch_size = outbox_batch_size
        self.retry_base_seconds = retry_base_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.operator_name = operator_name
        self.factory = factory
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = _lock_data_dir(self.data_dir)
        try:
            self.db = EdgeDB(self.data_dir / "edge.db")
        except BaseException:
            self._lock_file.close()
            raise
        self.health = LoopHealth()
        # One recorder command at a time: a config push from the sync loop must never land
        # between a teleop start's config and begin.
        self._recorder_lock = threading.RLock()
        self._stop = threading.Event()
        self._outbox_wake = threading.Event()
        self._sync_wake = threading.Event()
        self._pull_lock = threading.Lock()  # a pull's store vs. stop() closing the database
        self._threads: list[threading.Thread] = []
        self.supervisor = RecordingSupervisor(self, interval=supervision_interval, unreachable_polls=unreachable_polls)
        # What the cloud knows of the recorder (its sensors' only source): sent from its own thread.
        self.recorder_reporter = RecorderReporter(
            self._cloud_recorder_report, lambda report: self.upload_api.report_recorder(report),
            interval=recorder_report_interval, heartbeat=recorder_report_heartbeat,
        )
        # Axon HTTP callbacks: where the recorder reports start/finish (this agent's own HTTP
        # surface; "" = none) and the bearer token it must present (kept across restarts, as
        # configs already on the recorder carry it).
        self.callback_base_url = callback_base_url
        self.callback_token = _callback_token(self.data_dir)
        # Where the recorder writes (Axon's dataset.path): found by naming, <dir>/<task_id>.mcap.
        self.recorder_output_dir = Path(recorder_output_dir) if recorder_output_dir else None
        if output_wait_seconds < 0 or complete_wait_seconds < 0:
            raise ValueError("output_wait_seconds and complete_wait_seconds must not be negative")
        self.output_wait_seconds = output_wait_seconds
        self.complete_wait_seconds = complete_wait_seconds
        self._finish_reports = FinishReports()
        # The robot's side of the bytes' path: edge cache, gate, uploader (CONTRACT-13).
        self.data_path = data_path or DataPathSettings()
        try:
            self.cache = EdgeCache(
                self.data_path.cache_root(self.data_dir), self.data_path.cache_max_gb, self.data_path.cache_policy,
                retention_days=self.data_path.cache_retention_days,
            )
        except BaseException:
            self.db.close()
            self._lock_file.close()
            raise
        self.metrics.edge_cache_probe = self.cache.usage
        # Axon's checksum of a recording, read once after the report (axon_edge.verification).
        self.checks = RecordingChecks(self.db, lambda task_id, name: self.cache.get(task_id).entry_dir / name,
                                      self._recording_corrupt, self._stop)
        self.cache_upkeep = CacheUpkeep(
            self.cache, control_plane, self.robot_id, upkeep_seconds=self.data_path.cache_upkeep_seconds,
            report_seconds=self.data_path.cache_report_seconds, heartbeat_seconds=self.data_path.cache_report_heartbeat_seconds,
            registry=self.metrics.registry,
        )
        self.intake = RecordingIntake(self.cache, gate_rejected=self.data_path.gate_rejected, checks=self.checks)
        self.upload_api = UploadApi(control_plane)
        limiter = RateLimiter(self.data_path.upload_max_bytes_per_second)
        self._part_sender = PartSender(
            acquire=limiter.acquire, capped=limiter.capped, control_plane_origin=self.upload_api.origin,
            control_plane_auth=self.upload_api.auth_headers(), concurrency=self.data_path.upload_concurrency,
        )
        self.uploads = UploadWorker(
            self.db, self.cache,
            Uploader(self.upload_api, UploadState(self.db), self._part_sender, concurrency=self.data_path.upload_concurrency,
                     retry_base_seconds=retry_base_seconds, observer=self.metrics, stop=self._stop, checks=self.checks),
            self.upload_api, self.data_path, stop=self._stop, poll_interval=poll_interval,
            retry_base_seconds=retry_base_seconds, max_backoff_seconds=max_backoff_seconds,
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Settle what a previous run left in flight, then start the loops."""
        if self._threads:
            raise RuntimeError("agent already started")
        self._refresh_recorder_health()
        self.reconcile()
        loops = [
            ("axon-edge-sync", self._sync_loop),
            ("axon-edge-outbox", self._outbox_loop),
            ("axon-edge-supervision", lambda: self.supervisor.run(self._stop)),
            ("axon-edge-upload", self.uploads.run),
            ("axon-edge-verify", self.checks.run),
            ("axon-edge-recorder-report", lambda: self.recorder_reporter.run(self._stop)),
            ("axon-edge-cache", lambda: self.cache_upkeep.run(self._stop)),
        ]
        if self.long_poll_seconds > 0:
            loops.append(("axon-edge-pull", self._pull_loop))
        for name, target in loops:
            thread = threading.Thread(target=target, name=f"{name}-{self.robot_id}", daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info(
            "edge agent %s started (data dir %s, cursor %d, outbox backlog %d)",
            self.robot_id,
            self.data_dir,
            self.db.pull_cursor(),
            self.db.outbox_backlog().count,
        )

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._outbox_wake.set()
        self._sync_wake.set()
        self.uploads.wake.set()
        self.checks.wake.set()
        self.cache_upkeep.wake.set()
        for thread in self._threads:
            # A long-poll in flight is not waited for: it finds the stop flag when it returns
            # and stores nothing (the pull lock orders that against closing the database).
            thread.join(0.5 if thread.name.startswith("axon-edge-pull") else timeout)
            if thread.is_alive() and not thread.name.startswith("axon-edge-pull"):
                log.warning("thread %s did not stop within %.1fs", thread.name, timeout)
        self._threads.clear()
        with self._pull_lock:
            self.db.close()
        self._part_sender.close()
        self._lock_file.close()  # releases the flock
        log.info("edge agent %s stopped", self.robot_id)

    @property
    def running(self) -> bool:
        return bool(self._threads) and not self._stop.is_set()

    def wake(self) -> None:
        """Run both loops now instead of at their next tick (e.g. after a collector action)."""
        self._sync_wake.set()
        self._outbox_wake.set()

    def _release_cached(self, task_id: str, status: TaskStatus) -> None:
        super()._release_cached(task_id, status)
        if status in (TaskStatus.UPLOADED, TaskStatus.FAILED):
            self.cache_upkeep.released()  # retention, eviction and the usage report now

    # ------------------------------------------------------------------ queries

    def get_task(self, task_id: str) -> LocalTask:
        return self.db.get_task(_task_id(task_id))

    def list_tasks(self, status: TaskStatus | None = None) -> list[LocalTask]:
        return self.db.list_tasks(status)

    def status(self, *, probe_recorder: bool = True) -> dict[str, Any]:
        if probe_recorder:
            self._refresh_recorder_health()
        backlog = self.db.outbox_backlog()
        return {
            "robot_id": self.robot_id,
            "recorder": self.recorder_report(),
            "recording_task_id": next((t.task_id for t in self.db.list_tasks(TaskStatus.EXECUTING)), None),
            "outbox": {
                "backlog": backlog.count,
                "oldest_undelivered_at": backlog.oldest_occurred_at.isoformat() if backlog.oldest_occurred_at else None,
                "rejected": backlog.rejected,
                "last_error": self.health.last_delivery_error,
            },
            "sync": {
                "cursor": self.db.pull_cursor(),
                "last_sync_error": self.health.last_sync_error,
                "seconds_since_sync": (time.time() - self.health.last_sync_at) if self.health.last_sync_at else None,
            },
            "tasks": {s.value: n for s, n in self.db.status_counts().items()},
            "edge_cache": self.cache.disk_usage(),
            "edge_cache_upkeep": self.cache_upkeep.status(),
            "uploads": self.uploads.status(),
            "recording_checks": self.checks.status(),
        }

    def _recording_corrupt(self, task_id: str, reason: str) -> None:
        """A recording failed its check against the recorder's checksum: the task FAILED with the
        reason (unless it already ended), the cached copy rejected (kept, evictable; never uploaded)."""
        with self._recorder_lock:
            task = self.db.get_task(task_id)
            if task.status is TaskStatus.EXECUTED:
                self._fail(task_id, reason)
        try:
            self.cache.mark_rejected(task_id)
        except EdgeCacheError as exc:
            log.warning("task %s: its corrupt recording could not be marked rejected in the edge cache: %s", task_id, exc)

    # ------------------------------------------------------------------ recorder health

    def recorder_report(self) -> dict[str, Any]:
        """What the agent last saw of its recorder (``/status``'s ``recorder``)."""
        rec = self.health.recorder_status
        return {
            "reachable": self.health.recorder_reachable,
            "error": self.health.recorder_error,
            "is_recording": rec.is_recording if rec else None,
            "dataset_path": rec.dataset_path if rec else None,
            "active_topics": list(rec.active_topics) if rec else [],
            "last_error": rec.last_error if rec else None,
            "state": rec.state if rec else None,
            "subscribed_topics": list(rec.subscribed_topics) if rec else [],
            "topic_counts": dict(rec.topic_counts) if rec else {},
            "disk_usage_gb": rec.disk_usage_gb if rec else None,
            "disk_state": rec.disk_state if rec else None,
        }

    def _cloud_recorder_report(self) -> dict[str, Any] | None:
        """:meth:`recorder_report` as the cloud takes it (``PUT /edge/recorder``: no nulls); None
        until the recorder was probed once."""
        if self.health.recorder_reachable is None:
            return None
        return {k: v for k, v in self.recorder_report().items() if v is not None}

    def _refresh_recorder_health(self) -> None:
        try:
            status = self.recorder.get_status()
        except RecorderError as exc:
            if self.health.recorder_reachable is not False:
                log.warning("recorder not reachable: %s", exc)
            self.health.recorder_reachable = False
            self.health.recorder_error = str(exc)
            return
        if self.health.recorder_reachable is False:
            log.info("recorder reachable again")
        self.health.recorder_reachable = True
        self.health.recorder_error = None
        self.health.recorder_status = status



def _callback_token(data_dir: Path) -> str:
    path = data_dir / "callback.token"
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if not token:
        token = secrets.token_urlsafe(24)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
    return token


def _lock_data_dir(data_dir: Path):
    """One agent per data dir: two would fight over the recorder and the outbox. The lock is an
    flock, so it goes away with the process, however it dies."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fh = open(data_dir / "agent.lock", "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise DataDirLocked(str(data_dir)) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


