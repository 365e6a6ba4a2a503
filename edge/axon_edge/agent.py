"""The edge agent: keeps the robot's tasks in step with the control plane and drives the recorder.

Two background loops and a handful of collector actions:

- sync loop: pull this robot's tasks by cursor, store them, prepare each new one (write its
  recorder config, push it to the recorder, mark READY), apply cloud-side moves (UPLOADED,
  CANCELLED, FAILED), and settle recorder commands a crash left in flight;
- outbox loop: deliver status events to the control plane in order, backing off while it is down;
- collector actions: ``pickup`` and ``teleop`` (start/stop), called by the HTTP surface.

Robots dial out; nothing here listens to the cloud. Every state change is written together with
its outbox event (see :mod:`axon_edge.db`), so a crash or a control-plane outage never loses one.
"""

from __future__ import annotations

import fcntl
import logging
import os
import random
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from axon_dagster.client import ControlPlaneError, ControlPlaneUnavailable
from axon_dagster.domain import IllegalTransitionError, TaskStatus, validate_id
from axon_dagster.recorder.config import RecordingConfig, RecordingConfigError
from axon_dagster.recorder.protocol import (
    RecorderClient,
    RecorderError,
    RecorderRefused,
    RecorderStatus,
    RecorderTimeout,
    RecorderUnreachable,
)
from axon_dagster.storage.axon_recording import (
    AxonRecordingError,
    AxonRecordingFiles,
    find_recording,
    verify_checksum,
    wait_complete,
)
from axon_dagster.storage.recording import LANCE, MCAP, sidecar_path

from .db import EdgeDB, LocalTask, OutboxEvent
from .errors import Conflict, DataDirLocked, InvalidRequest, NotRecording, RecorderBusy, RecorderFailure
from .metrics import EdgeMetrics
from .supervision import DEFAULT_INTERVAL as DEFAULT_SUPERVISION_INTERVAL
from .supervision import DEFAULT_UNREACHABLE_POLLS, RecordingSupervisor

log = logging.getLogger(__name__)

# An idle robot asks the control plane once per this many seconds (it answers at once when work
# comes); 0 turns long-polling off (poll every poll_interval).
DEFAULT_LONG_POLL_SECONDS = 20.0
MAX_LONG_POLL_SECONDS = 60.0

TELEOP_COMMANDS = ("start", "stop")
# The recorder's start/finish callbacks land here (served by axon_edge.http).
CALLBACK_PATH = "/callbacks/recording"
CALLBACK_STATUSES = ("recording", "finished", "failed", "cancelled")
# Recorder commands that may have taken effect although we never heard back.
_UNCERTAIN = (RecorderTimeout,)
# After a finish, how long to wait for the recorder to say where it wrote (the finish callback can
# come after the reply) and for the files to be complete (.mcap.done / sidecar).
DEFAULT_OUTPUT_WAIT_SECONDS = 30.0
DEFAULT_COMPLETE_WAIT_SECONDS = 300.0
# ... but a recording that ended without our stop (crash, restart) gets only this long.
_ENDED_PATIENCE_SECONDS = 2.0
# ... and a file the recorder said it finished (its sidecar and .mcap.done come before it says so).
_VOUCHED_PATIENCE_SECONDS = 10.0


class _TryLater(Exception):
    """The recorder cannot take a config right now (down or busy); the next tick tries again."""


class ControlPlaneSync(Protocol):
    """What the agent needs of ``axon_dagster.client.EdgeSyncClient``."""

    def pull_tasks(self, after: int, limit: int) -> Any: ...  # and ``wait=`` seconds (long-poll), when used

    def push_events(self, events: Sequence[Mapping[str, Any]]) -> Any: ...


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


@dataclass(frozen=True)
class DeliveryReport:
    sent: int
    delivered: int
    rejected: int
    error: str | None = None


class EdgeAgent:
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
        # What finish callbacks said (task_id -> output), kept outside the recorder lock: the
        # callback may arrive while a stop holds the lock and waits for exactly this.
        self._finish_reports: dict[str, dict[str, str]] = {}
        self._finish_reports_lock = threading.Lock()

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
        for thread in self._threads:
            # A long-poll in flight is not waited for: it finds the stop flag when it returns
            # and stores nothing (the pull lock orders that against closing the database).
            thread.join(0.5 if thread.name.startswith("axon-edge-pull") else timeout)
            if thread.is_alive() and not thread.name.startswith("axon-edge-pull"):
                log.warning("thread %s did not stop within %.1fs", thread.name, timeout)
        self._threads.clear()
        with self._pull_lock:
            self.db.close()
        self._lock_file.close()  # releases the flock
        log.info("edge agent %s stopped", self.robot_id)

    @property
    def running(self) -> bool:
        return bool(self._threads) and not self._stop.is_set()

    def wake(self) -> None:
        """Run both loops now instead of at their next tick (e.g. after a collector action)."""
        self._sync_wake.set()
        self._outbox_wake.set()

    # ------------------------------------------------------------------ queries

    def get_task(self, task_id: str) -> LocalTask:
        return self.db.get_task(_task_id(task_id))

    def list_tasks(self, status: TaskStatus | None = None) -> list[LocalTask]:
        return self.db.list_tasks(status)

    def status(self, *, probe_recorder: bool = True) -> dict[str, Any]:
        if probe_recorder:
            self._refresh_recorder_health()
        backlog = self.db.outbox_backlog()
        rec = self.health.recorder_status
        return {
            "robot_id": self.robot_id,
            "recorder": {
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
            },
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
        }

    # ------------------------------------------------------------------ sync loop

    def _sync_loop(self) -> None:
        while not self._stop.is_set():
            try:
                # With long-polling the pull thread pulls (and wakes this loop when tasks came).
                self.sync_once(pull=self.long_poll_seconds <= 0)
            except Exception:  # the loop must survive anything; the error is visible in /status
                log.exception("sync tick failed")
            self._sync_wake.wait(self.poll_interval)
            self._sync_wake.clear()

    def sync_once(self, pull: bool = True) -> None:
        """One tick: pull (unless the pull thread does), settle in-flight recorder commands,
        prepare new tasks."""
        if pull:
            self._pull_step(wait=0)
        self._refresh_recorder_health()
        self.reconcile()
        self.prepare_pending()

    def _pull_loop(self) -> None:
        """Long-poll the control plane: one request per ``long_poll_seconds`` while idle, new
        work as soon as it is dispatched. Exactly-once, in-order delivery is the cursor's (the
        same ``pull``); a robot offline for an hour catches up page by page when it returns."""
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                count = self._pull_step(wait=self.long_poll_seconds)
            except Exception:  # the loop must survive anything; the error is visible in /status
                log.exception("pull failed unexpectedly")
                count = 0
            if count:
                self._sync_wake.set()  # prepare the new tasks now
            elif self.health.last_sync_error is not None or time.monotonic() - started < min(1.0, self.long_poll_seconds / 2):
                # The control plane is down, or it answered an empty page at once (one that does
                # not long-poll): fall back to the poll interval instead of spinning.
                self._stop.wait(self.poll_interval)

    def _pull_step(self, wait: float) -> int:
        try:
            count = self.pull(wait=wait)
            if self.health.last_sync_error is not None:
                log.info("pulling tasks works again")
            self.health.last_sync_error = None
            if self.health.delivery_failures_in_a_row:
                self._outbox_wake.set()  # the control plane is back: do not sit out the backoff
        except (ControlPlaneUnavailable, ControlPlaneError, InvalidRequest) as exc:
            # Work already on the robot goes on without the control plane.
            if self.health.last_sync_error != str(exc):
                log.warning("pulling tasks failed: %s", exc)
            self.health.last_sync_error = str(exc)
            count = 0
        self.health.last_sync_at = time.time()
        return count

    def pull(self, wait: float = 0) -> int:
        """Pull every page of tasks changed since the cursor; returns how many tasks came. With
        ``wait`` the first request long-polls; further pages come at once."""
        total = 0
        while True:
            cursor = self.db.pull_cursor()
            if wait > 0:
                page = self.control_plane.pull_tasks(after=cursor, limit=self.pull_page_size, wait=wait)  # type: ignore[call-arg]
                wait = 0
            else:
                page = self.control_plane.pull_tasks(after=cursor, limit=self.pull_page_size)
            tasks, next_cursor = _page(page)
            with self._pull_lock:
                if self._stop.is_set():
                    return total  # stop() may be closing the database
                recording = {t.task_id for t in self.db.list_tasks(TaskStatus.EXECUTING)}
                outcome = self.db.store_pulled(tasks, next_cursor, self.robot_id)
            total += len(tasks)
            if outcome.new_task_ids:
                log.info("pulled %d new task(s): %s", len(outcome.new_task_ids), ", ".join(outcome.new_task_ids))
            for task_id, status in outcome.cloud_moves:
                if task_id in recording and status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
                    # Failed in the cloud while this robot records it: stop the recorder's session —
                    # only if it is still this task's (Axon's cancel would end any recording).
                    with self._recorder_lock:
                        if self.release_recorder(task_id):
                            log.info("task %s %s in the cloud: its recording was cancelled", task_id, status.value)
            if len(tasks) < self.pull_page_size or next_cursor <= cursor:
                return total

    def prepare_pending(self) -> list[str]:
        """Write and push the recorder config of every PENDING task, marking it READY. Returns the
        ids made READY. While the recorder records, configs wait: pushing one would disturb it."""
        readied: list[str] = []
        pending = self.db.list_tasks(TaskStatus.PENDING)
        if pending and self.health.recorder_reachable is False:
            return readied  # the health probe of this tick already failed; do not pile up retries
        for task in pending:
            if self._stop.is_set():
                break
            with self._recorder_lock:
                if self.db.list_tasks(TaskStatus.EXECUTING):
                    return readied
                try:
                    if self._prepare(task):
                        readied.append(task.task_id)
                except _TryLater as exc:
                    if self.health.last_prepare_error != str(exc):
                        log.warning("%d task(s) stay PENDING: %s", len(pending), exc)
                    self.health.last_prepare_error = str(exc)
                    return readied
        self.health.last_prepare_error = None
        if readied:
            self._outbox_wake.set()
        return readied

    def _prepare(self, task: LocalTask) -> bool:
        config_path = self.config_dir / f"{task.task_id}.yaml"
        try:
            self._recording_config(task).write(config_path)
        except RecordingConfigError as exc:
            self._fail(task.task_id, f"cannot build the recorder config: {exc}")
            return False
        self.db.set_config_path(task.task_id, str(config_path))
        try:
            response = self.recorder.update_config(str(config_path))
        except RecorderRefused as exc:
            if self._recorder_busy():
                # Busy with a session the agent does not know of: try again next tick.
                log.warning("recorder busy, task %s stays PENDING: %s", task.task_id, exc.recorder_message)
                raise _TryLater(f"recorder busy: {exc.recorder_message}") from None
            self._fail(task.task_id, f"recorder refused the config: {exc.recorder_message}")
            return False
        except (RecorderUnreachable, RecorderTimeout) as exc:
            raise _TryLater(f"recorder unavailable: {exc}") from None
        except RecorderError as exc:
            self._fail(task.task_id, f"recorder could not take the config: {exc}")
            return False
        if not response.success:
            self._fail(task.task_id, f"recorder refused the config: {response.message}")
            return False
        outcome = self.db.transition(
            task.task_id,
            TaskStatus.READY,
            changes={"config_path": str(config_path)},
            event_data={"config_path": str(config_path)},
        )
        return outcome.changed

    def _recorder_busy(self) -> bool:
        try:
            return self.recorder.get_status().is_recording
        except RecorderError:
            return True  # cannot tell: do not fail a task on a guess

    def _recording_config(self, task: LocalTask) -> RecordingConfig:
        return RecordingConfig(
            task_id=task.task_id,
            device_id=self.robot_id,
            data_collector_id=task.data_collector_id or "",
            order_id=task.order_id,
            operator_name=self.operator_name,
            scene=task.scene,
            subscene=task.sub_scene,
            skills=task.skills,
            factory=self.factory,
            topics=task.topics,
            duration_seconds=task.duration_seconds,
            batch_id=task.batch_id,
            **self._callback_fields(),
        )

    def _callback_fields(self) -> dict[str, str]:
        if not self.callback_base_url:
            return {}
        url = self.callback_base_url.rstrip("/") + CALLBACK_PATH
        return {"start_callback_url": url, "finish_callback_url": url, "user_token": self.callback_token}

    def recording_callback(
        self,
        task_id: str,
        status: str,
        dataset_path: str | None = None,
        error: str | None = None,
        *,
        sidecar_path: str | None = None,
    ) -> LocalTask:
        """The recorder's start/finish callback (Axon HTTP). ``finished`` tells where the recording
        is (``output_path``): a stop waiting for it picks it up; otherwise (a finish the agent did
        not ask for) the task being recorded moves to EXECUTED once the files are complete and
        verified. ``failed`` and ``cancelled`` (older peers; Axon sends no callback for them) fail
        it; ``recording`` (the start callback) only confirms. Raises UnknownTask for a task this
        robot does not hold. The caller checked the bearer token."""
        task_id = _task_id(task_id)
        if status not in CALLBACK_STATUSES:
            raise InvalidRequest(f"unknown callback status {status!r}; expected one of {', '.join(CALLBACK_STATUSES)}")
        if status == "finished" and dataset_path:
            with self._finish_reports_lock:
                self._finish_reports[task_id] = {"output_path": dataset_path, "sidecar_path": sidecar_path or ""}
        with self._recorder_lock:
            task = self.db.get_task(task_id)
            if task.status is not TaskStatus.EXECUTING or task.pending_command:
                log.info("recorder callback %s for task %s (%s): nothing to do", status, task_id, task.status.value)
                return task
            if status == "recording":
                return task
            if status == "finished":
                log.info("recorder reports task %s finished (%s)", task_id, dataset_path or "no path")
                updated = self._settle_finished(task, why="the recorder's finish callback")
            else:
                updated = self._fail(task_id, f"recorder reports the recording {status}" + (f": {error}" if error else ""))
        self._outbox_wake.set()
        return updated

    def _fail(self, task_id: str, reason: str) -> LocalTask:
        log.error("task %s failed: %s", task_id, reason)
        outcome = self.db.transition(
            task_id, TaskStatus.FAILED, reason=reason, event_data={"reason": reason}, clear_pending_command=True
        )
        self._outbox_wake.set()
        return outcome.task

    # ------------------------------------------------------------------ crash recovery

    def reconcile(self) -> None:
        """Settle recorder commands that were in flight when the agent last stopped (crash, or a
        recorder timeout): ask the recorder what actually happened and record that."""
        in_flight = self.db.tasks_with_pending_command()
        if not in_flight:
            return
        with self._recorder_lock:
            try:
                status = self.recorder.get_status()
            except RecorderError as exc:
                log.warning("cannot settle %d in-flight recorder command(s) yet: %s", len(in_flight), exc)
                return
            for task in in_flight:
                task = self.db.get_task(task.task_id)
                if task.pending_command == "start" and task.status in (TaskStatus.READY, TaskStatus.ASSIGNED):
                    if status.is_recording:
                        log.info("recorder is recording: the start of task %s took effect", task.task_id)
                        self._record_started(task, status.dataset_path or None)
                    else:
                        log.info("recorder is idle: the start of task %s did not take effect", task.task_id)
                        self.db.set_pending_command(task.task_id, None)
                elif task.pending_command == "stop" and task.status is TaskStatus.EXECUTING:
                    if status.is_recording:
                        log.info("recorder still records: the stop of task %s did not take effect", task.task_id)
                        self.db.set_pending_command(task.task_id, None)
                    else:
                        self._settle_ended_recording(task, "the recorder stopped while the agent was not looking")
                else:
                    self.db.set_pending_command(task.task_id, None)

    # ------------------------------------------------------------------ collector actions

    def pickup(self, task_id: str, collector_id: str) -> LocalTask:
        """A data collector takes a READY task (READY -> ASSIGNED). The same collector picking it
        up again is harmless; another collector gets a conflict."""
        task_id = _task_id(task_id)
        collector_id = _valid(collector_id, "collector_id")
        with self._recorder_lock:
            task = self.db.get_task(task_id)
            if task.status is TaskStatus.ASSIGNED:
                if task.data_collector_id == collector_id:
                    return task
                raise Conflict(f"task {task_id} was already picked up by {task.data_collector_id}")
            missing = self._unrecordable_topics(task) if task.status is TaskStatus.READY else None
            if missing:
                missing_topics, subscribed = missing
                failed = self._fail(
                    task_id,
                    f"the recorder does not subscribe to required topic(s) {', '.join(missing_topics)}; "
                    f"it records only {', '.join(subscribed)} (Axon records its own subscriptions, not the task's topics)",
                )
                raise Conflict(f"cannot pick up task {task_id}: task FAILED: {failed.failure_reason}")
            try:
                outcome = self.db.transition(
                    task_id,
                    TaskStatus.ASSIGNED,
                    changes={"data_collector_id": collector_id},
                    event_data={"data_collector_id": collector_id},
                )
            except IllegalTransitionError as exc:
                raise Conflict(f"cannot pick up task {task_id}: it is {task.status.value}, not READY ({exc})") from None
        self._outbox_wake.set()
        return outcome.task

    def _unrecordable_topics(self, task: LocalTask) -> tuple[list[str], list[str]] | None:
        """The task's topics the recorder will not record, and what it does record — when the
        recorder says what it subscribes to (Axon: the topics of ``topic_message_counts``). None
        when all are covered, or when the recorder cannot tell (or cannot be asked right now)."""
        if not task.topics:
            return None
        try:
            status = self.recorder.get_status()
        except RecorderError as exc:
            log.warning("cannot check the topics of task %s against the recorder: %s", task.task_id, exc)
            return None
        subscribed = list(status.subscribed_topics)
        if not subscribed:
            return None
        missing = sorted(set(task.topics) - set(subscribed))
        return (missing, sorted(subscribed)) if missing else None

    def teleop(self, task_id: str, command: str) -> LocalTask:
        with self.metrics.teleop(command):  # counted by command and result
            task_id = _task_id(task_id)
            if command not in TELEOP_COMMANDS:
                raise InvalidRequest(f"unknown teleop command {command!r}; expected one of {', '.join(TELEOP_COMMANDS)}")
            return self.start_recording(task_id) if command == "start" else self.stop_recording(task_id)

    def start_recording(self, task_id: str) -> LocalTask:
        with self._recorder_lock:
            task = self.db.get_task(task_id)
            if task.status in (TaskStatus.EXECUTING, TaskStatus.EXECUTED, TaskStatus.UPLOADED):
                log.info("duplicate start for task %s (already %s): ignored", task_id, task.status.value)
                return task
            busy = [t for t in self.db.list_tasks(TaskStatus.EXECUTING) if t.task_id != task_id]
            if busy:
                raise RecorderBusy(task_id, busy[0].task_id)
            if task.status not in (TaskStatus.READY, TaskStatus.ASSIGNED) or not task.config_path:
                hint = " (its recorder config is not on the robot yet)" if task.status is TaskStatus.PENDING else ""
                raise Conflict(f"cannot start task {task_id}: it is {task.status.value}{hint}")
            config_path = task.config_path
            if task.data_collector_id:
                # The collector is known only now: put them into the recording's metadata.
                self._recording_config(task).write(config_path)
            self.db.set_pending_command(task_id, "start")
            try:
                response = self.recorder.start_recording(config_path)
            except _UNCERTAIN as exc:
                # The recorder may have started; the sync loop asks it and settles (reconcile).
                self._sync_wake.set()
                raise RecorderFailure(f"recorder did not answer the start of task {task_id}: {exc}", unreachable=True) from None
            except RecorderUnreachable as exc:
                self.db.set_pending_command(task_id, None)
                raise RecorderFailure(f"recorder unreachable, task {task_id} not started: {exc}", unreachable=True) from None
            except RecorderError as exc:
                self.db.set_pending_command(task_id, None)
                raise RecorderFailure(f"recorder could not start task {task_id}: {exc}", unreachable=False) from None
            if not response.success:
                self.db.set_pending_command(task_id, None)
                raise RecorderFailure(f"recorder refused to start task {task_id}: {response.message}", unreachable=False)
            dataset_path = None
            try:
                dataset_path = self.recorder.get_status().dataset_path or None
            except RecorderError as exc:
                # Recording runs; the path is asked for again at stop.
                log.warning("task %s started but its dataset path is unknown yet: %s", task_id, exc)
            updated = self._record_started(task, dataset_path)
        self._outbox_wake.set()
        return updated

    def _record_started(self, task: LocalTask, dataset_path: str | None) -> LocalTask:
        outcome = self.db.transition(
            task.task_id,
            TaskStatus.EXECUTING,
            changes={"dataset_path": dataset_path},
            event_data={"config_path": task.config_path, "dataset_path": dataset_path},
            clear_pending_command=True,
        )
        return outcome.task

    def stop_recording(self, task_id: str) -> LocalTask:
        with self._recorder_lock:
            task = self.db.get_task(task_id)
            if task.status in (TaskStatus.EXECUTED, TaskStatus.UPLOADED):
                log.info("duplicate stop for task %s (already %s): ignored", task_id, task.status.value)
                return task
            if task.status is not TaskStatus.EXECUTING:
                raise NotRecording(task_id, task.status.value)
            self.db.set_pending_command(task_id, "stop")
            dataset_path = task.dataset_path
            try:
                if not dataset_path:
                    dataset_path = self.recorder.get_status().dataset_path or None
                response = self.recorder.stop_recording()
                if not response.success:
                    raise RecorderRefused("stop_recording", response.message)
            except _UNCERTAIN as exc:
                self._sync_wake.set()  # reconcile asks the recorder whether it stopped
                raise RecorderFailure(f"recorder did not answer the stop of task {task_id}: {exc}", unreachable=True) from None
            except RecorderUnreachable as exc:
                self.db.set_pending_command(task_id, None)
                raise RecorderFailure(
                    f"recorder unreachable, task {task_id} still recording as far as the agent knows: {exc}",
                    unreachable=True,
                ) from None
            except RecorderError as exc:
                updated = self._after_refused_stop(task, exc)
                if updated.status is TaskStatus.EXECUTED:
                    self._outbox_wake.set()
                    return updated
                raise RecorderFailure(
                    f"recorder could not stop task {task_id}: {exc}"
                    + (f"; task FAILED: {updated.failure_reason}" if updated.status is TaskStatus.FAILED else ""),
                    unreachable=False,
                    task_failed=updated.status is TaskStatus.FAILED,
                ) from None
            updated = self._settle_finished(task, response=response, hint=dataset_path)
            if updated.status is TaskStatus.FAILED:
                self._outbox_wake.set()
                raise RecorderFailure(
                    f"task {task_id} stopped but its recording is not usable: {updated.failure_reason}",
                    unreachable=False,
                    task_failed=True,
                )
        self._outbox_wake.set()
        return updated

    def _after_refused_stop(self, task: LocalTask, exc: RecorderError) -> LocalTask:
        """The recorder refused to stop. If it is still recording, nothing changed; if it is not,
        the recording ended without us and is either on disk (EXECUTED) or lost (FAILED)."""
        try:
            status = self.recorder.get_status()
        except RecorderError:
            self.db.set_pending_command(task.task_id, None)
            return self.db.get_task(task.task_id)
        if status.is_recording:
            self.db.set_pending_command(task.task_id, None)
            return self.db.get_task(task.task_id)
        return self._settle_ended_recording(task, f"recorder refused stop: {exc}")

    def _settle_ended_recording(self, task: LocalTask, why: str) -> LocalTask:
        """The recording ended without a stop of ours: EXECUTED if its files are there and
        verified, FAILED (recording lost) otherwise. No long waits: a recorder that is idle again
        has written all it will write (a crashed one left an unfinished file)."""
        return self._settle_finished(task, why=why, lost_if_missing=True, patience=_ENDED_PATIENCE_SECONDS)

    def _settle_finished(
        self,
        task: LocalTask,
        *,
        response: Any = None,
        hint: str | None = None,
        why: str = "finish",
        lost_if_missing: bool = False,
        patience: float | None = None,
    ) -> LocalTask:
        """Find the finished recording of ``task``, wait until it is complete and verify Axon's
        checksum, then EXECUTED with ``{dataset_path, sidecar_path, recording_format,
        checksum_sha256}``; FAILED with the reason when it cannot be found or verified."""
        output_wait = self.output_wait_seconds if patience is None else min(patience, self.output_wait_seconds)
        complete_wait = self.complete_wait_seconds if patience is None else min(patience, self.complete_wait_seconds)
        found = self._locate_recording(task, response, hint, output_wait)
        if found is None:
            where = f" or {self.recorder_output_dir}/{task.task_id}.mcap" if self.recorder_output_dir else ""
            prefix = "recording lost" if lost_if_missing else "recording not found"
            return self._fail(
                task.task_id,
                f"{prefix} ({why}): no output path from the finish callback, the recorder's stats{where} "
                f"within {output_wait:g}s",
            )
        path, sidecar_hint, checksum_hint, vouched = found
        if vouched:
            # The recorder said it finished this file (reply, stats or callback): Axon writes the
            # sidecar and .mcap.done before it says so, so an incomplete file will stay so.
            complete_wait = min(complete_wait, _VOUCHED_PATIENCE_SECONDS)
        try:
            data = self._verified_recording(path, sidecar_hint, checksum_hint, complete_wait)
        except (AxonRecordingError, OSError, ValueError) as exc:
            prefix = "recording lost" if lost_if_missing else "recording not usable"
            return self._fail(task.task_id, f"{prefix} ({why}): {path}: {exc}")
        with self._finish_reports_lock:
            self._finish_reports.pop(task.task_id, None)
        log.info(
            "task %s: %s recording %s verified%s",
            task.task_id,
            data["recording_format"],
            data["dataset_path"],
            f" (sha256 {data['checksum_sha256'][:12]}…)" if data.get("checksum_sha256") else "",
        )
        return self._record_stopped(task.task_id, data)

    def _locate_recording(
        self, task: LocalTask, response: Any, hint: str | None, wait: float
    ) -> tuple[str, str, str, bool] | None:
        """``(path, sidecar_path, checksum, vouched)`` of the task's recording from whichever source tells
        first: the stop's reply (Axon: ``/rpc/stats`` ``metadata``), the finish callback, the
        recorder's output directory (``<dir>/<task_id>.mcap``), the path the recorder reported
        while recording (ROS services, Lance-era peers). Polls for ``output_wait_seconds``: the
        finish callback may come after the finish reply. ``vouched``: the recorder itself said
        it finished that file (not just a name found on disk)."""
        task_id = task.task_id
        if response is not None and getattr(response, "output_path", ""):
            return response.output_path, response.sidecar_path, response.checksum_sha256, True
        deadline = time.monotonic() + wait
        last_output = getattr(self.recorder, "last_output", None)
        while True:
            with self._finish_reports_lock:
                report = self._finish_reports.get(task_id)
            if report:
                return report["output_path"], report.get("sidecar_path", ""), "", True
            if callable(last_output):
                try:
                    written = last_output(task_id)
                except RecorderError as exc:
                    log.debug("task %s: recorder stats unreadable while looking for the recording: %s", task_id, exc)
                    written = {}
                if written.get("output_path"):
                    return written["output_path"], written.get("sidecar_path", ""), written.get("checksum_sha256", ""), True
            if self.recorder_output_dir is not None:
                files = find_recording(self.recorder_output_dir, task_id)
                if files is not None:
                    return str(files.mcap_path), "", "", False
                lance = self.recorder_output_dir / f"{task_id}.lance"
                if lance.exists():
                    return str(lance), "", "", False
            for path in (hint, task.dataset_path):
                if path and Path(path).exists():
                    return path, "", "", False
            if time.monotonic() >= deadline or self._stop.is_set():
                return None
            time.sleep(0.1)

    def _verified_recording(self, path: str, sidecar_hint: str, checksum_hint: str, complete_wait: float) -> dict[str, Any]:
        """The EXECUTED event's data for the recording at ``path``: an Axon MCAP (waited for until
        complete, SHA-256 checked against the sidecar and the recorder's own checksum) or a
        Lance-era dataset (its sidecar, written last, must be there)."""
        p = Path(path)
        if p.suffix == ".mcap":
            files = AxonRecordingFiles.for_mcap(p)
            wait_complete(files, complete_wait, poll_s=0.2)
            checksum = verify_checksum(files, expected=checksum_hint or None)
            has_sidecar = files.sidecar_path.exists()
            return {
                "dataset_path": str(p),
                "sidecar_path": str(files.sidecar_path) if has_sidecar else None,
                "recording_format": MCAP,
                # Axon's checksum when it gave one (sidecar or stats); None when nothing vouches for the file
                "checksum_sha256": checksum if (has_sidecar or checksum_hint) else None,
            }
        sidecar = Path(sidecar_hint) if sidecar_hint else sidecar_path(p)
        if not p.exists():
            raise FileNotFoundError(f"no recording at {p}")
        deadline = time.monotonic() + complete_wait
        while not sidecar.exists():
            if time.monotonic() >= deadline:
                raise FileNotFoundError(f"the sidecar {sidecar} of {p} did not appear within {complete_wait:g}s")
            time.sleep(0.1)
        return {"dataset_path": str(p), "sidecar_path": str(sidecar), "recording_format": LANCE, "checksum_sha256": None}

    def _record_stopped(self, task_id: str, data: Mapping[str, Any]) -> LocalTask:
        outcome = self.db.transition(
            task_id,
            TaskStatus.EXECUTED,
            changes={"dataset_path": data["dataset_path"], "sidecar_path": data["sidecar_path"]},
            event_data=dict(data),
            clear_pending_command=True,
        )
        return outcome.task

    def release_recorder(self, task_id: str) -> bool:
        """Cancel the recorder's session if (and only if) it is recording ``task_id``: Axon's
        cancel ignores the task id, so a blind cancel could destroy another task's recording."""
        cancel_task = getattr(self.recorder, "cancel_task", None)
        if not callable(cancel_task):
            return False
        try:
            return bool(cancel_task(task_id))
        except RecorderError as exc:
            log.warning("could not cancel the recorder's session of task %s: %s", task_id, exc)
            return False

    # ------------------------------------------------------------------ outbox loop

    def _outbox_loop(self) -> None:
        while not self._stop.is_set():
            try:
                report = self.deliver_once()
            except Exception:  # never let the loop die; the backlog is visible in /status and /metrics
                log.exception("outbox delivery failed unexpectedly")
                report = DeliveryReport(sent=0, delivered=0, rejected=0, error="unexpected error")
            if report.error:
                delay = self._backoff()
                self._outbox_wake.wait(delay)
            elif report.sent == 0:
                self._outbox_wake.wait(self.poll_interval)
            # else: more may be waiting, go again right away
            self._outbox_wake.clear()

    def _backoff(self) -> float:
        failures = max(1, self.health.delivery_failures_in_a_row)
        delay = min(self.max_backoff_seconds, self.retry_base_seconds * 2 ** (failures - 1))
        # Jitter: a fleet coming back online must not hit the control plane in lockstep.
        return delay * random.uniform(0.8, 1.0)

    def deliver_once(self) -> DeliveryReport:
        """Send the oldest undelivered events (one batch, in order) and record the answers."""
        events = self.db.undelivered_events(self.outbox_batch_size)
        if not events:
            return DeliveryReport(sent=0, delivered=0, rejected=0)
        try:
            results = self._push(events)
        except ControlPlaneError as exc:
            if exc.status_code in (400, 404, 422) and len(events) > 1:
                # The control plane refuses the whole request for one bad event: find it.
                return self._deliver_one_by_one(events)
            if exc.status_code in (400, 404, 422):
                return self._reject_locally(events[0], f"{exc.status_code}: {exc.detail}")
            return self._delivery_failed(events, f"control plane error {exc.status_code}: {exc.detail}")
        except ControlPlaneUnavailable as exc:
            return self._delivery_failed(events, f"control plane unavailable: {exc}")
        self.db.record_delivery(results)
        rejected = [(event_id, error) for event_id, result, error in results if result == "rejected"]
        for event_id, error in rejected:
            log.error("control plane rejected event %s: %s", event_id, error)
            self.health.rejected_event_ids.append(event_id)
        if self.health.delivery_failures_in_a_row:
            log.info("control plane reachable again; delivering the outbox backlog")
        self.health.delivery_failures_in_a_row = 0
        self.health.last_delivery_error = None
        self.health.last_delivery_at = time.time()
        log.info("delivered %d event(s) (%d rejected)", len(results), len(rejected))
        return DeliveryReport(sent=len(events), delivered=len(results), rejected=len(rejected))

    def _push(self, events: list[OutboxEvent]) -> list[tuple[str, str, str | None]]:
        reply = self.control_plane.push_events([e.wire() for e in events])
        raw = reply.get("results") if isinstance(reply, Mapping) else reply
        if not isinstance(raw, list):
            raise ControlPlaneError(502, f"unexpected reply to push_events: {reply!r}")
        sent_ids = {e.event_id for e in events}
        results = []
        for item in raw:
            if isinstance(item, Mapping):
                event_id, result, error = item.get("event_id"), item.get("result"), item.get("error")
            else:
                event_id, result, error = getattr(item, "event_id", None), getattr(item, "result", None), getattr(item, "error", None)
            result = getattr(result, "value", result)
            if event_id not in sent_ids or result not in ("applied", "duplicate", "rejected"):
                raise ControlPlaneError(502, f"unexpected result in reply to push_events: {item!r}")
            results.append((str(event_id), str(result), error))
        return results

    def _deliver_one_by_one(self, events: list[OutboxEvent]) -> DeliveryReport:
        delivered = rejected = 0
        for event in events:
            try:
                results = self._push([event])
            except ControlPlaneError as exc:
                if exc.status_code in (400, 404, 422):
                    self._reject_locally(event, f"{exc.status_code}: {exc.detail}")
                    rejected += 1
                    continue
                return self._delivery_failed([event], f"control plane error {exc.status_code}: {exc.detail}")
            except ControlPlaneUnavailable as exc:
                return self._delivery_failed([event], f"control plane unavailable: {exc}")
            self.db.record_delivery(results)
            delivered += 1
        return DeliveryReport(sent=len(events), delivered=delivered, rejected=rejected)

    def _reject_locally(self, event: OutboxEvent, error: str) -> DeliveryReport:
        # Retrying would get the same answer forever; keep the event for inspection and move on.
        log.error("control plane refused event %s for good: %s", event.event_id, error)
        self.db.record_delivery([(event.event_id, "rejected", error)])
        self.health.rejected_event_ids.append(event.event_id)
        return DeliveryReport(sent=1, delivered=0, rejected=1)

    def _delivery_failed(self, events: list[OutboxEvent], error: str) -> DeliveryReport:
        self.db.record_delivery_failure([e.event_id for e in events], error)
        self.health.delivery_failures_in_a_row += 1
        if self.health.delivery_failures_in_a_row == 1 or self.health.last_delivery_error != error:
            log.warning("cannot deliver %d event(s), will retry with backoff: %s", len(events), error)
        self.health.last_delivery_error = error
        return DeliveryReport(sent=len(events), delivered=0, rejected=0, error=error)

    # ------------------------------------------------------------------ recorder health

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


def _page(reply: Any) -> tuple[list[Mapping[str, Any]], int]:
    if isinstance(reply, Mapping):
        tasks, cursor = reply.get("tasks"), reply.get("cursor")
    else:
        tasks, cursor = getattr(reply, "tasks", None), getattr(reply, "cursor", None)
    if not isinstance(tasks, list) or not isinstance(cursor, int) or isinstance(cursor, bool):
        raise InvalidRequest(f"unexpected reply to pull_tasks: {reply!r}")
    return [t if isinstance(t, Mapping) else vars(t) for t in tasks], cursor


def _task_id(value: object) -> str:
    return _valid(value, "task_id")


def _valid(value: object, kind: str) -> str:
    try:
        return validate_id(value, kind)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


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

