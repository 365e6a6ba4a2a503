"""Cloud -> robot: pull this robot's tasks by cursor (long-poll), store them, prepare each new one
(write its recorder config, push it to the recorder, mark READY) and apply cloud-side moves
(UPLOADED, CANCELLED, FAILED; the first and last release the recording's cached copy).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from axon_dagster.client import ControlPlaneError, ControlPlaneUnavailable
from axon_dagster.domain import TaskStatus
from axon_dagster.recorder.config import RecordingConfigError
from axon_dagster.recorder.protocol import RecorderError, RecorderRefused, RecorderTimeout, RecorderUnreachable
from axon_dagster.storage.edge_cache import EdgeCacheError, UnknownDataset

from .db import LocalTask
from .errors import InvalidRequest

log = logging.getLogger(__name__)

# An idle robot asks the control plane once per this many seconds (it answers at once when work
# comes); 0 turns long-polling off (poll every poll_interval).
DEFAULT_LONG_POLL_SECONDS = 20.0
MAX_LONG_POLL_SECONDS = 60.0


class _TryLater(Exception):
    """The recorder cannot take a config right now (down or busy); the next tick tries again."""


class ControlPlaneSync(Protocol):
    """What the agent needs of ``axon_dagster.client.EdgeSyncClient``."""

    def pull_tasks(self, after: int, limit: int) -> Any: ...  # and ``wait=`` seconds (long-poll), when used

    def push_events(self, events: Sequence[Mapping[str, Any]]) -> Any: ...



class CloudSync:
    """Mixed into :class:`axon_edge.agent.EdgeAgent` (its state: ``db``, ``recorder``, ``health``, locks, wake events)."""

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
                self._release_cached(task_id, status)
                if task_id in recording and status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
                    # Failed in the cloud while this robot records it: stop the recorder's session —
                    # only if it is still this task's (Axon's cancel would end any recording).
                    with self._recorder_lock:
                        if self.release_recorder(task_id):
                            log.info("task %s %s in the cloud: its recording was cancelled", task_id, status.value)
            if tasks:
                self.uploads.wake.set()  # a grant may have come
            if len(tasks) < self.pull_page_size or next_cursor <= cursor:
                return total

    def _release_cached(self, task_id: str, status: TaskStatus) -> None:
        """The cloud moved a task: UPLOADED (published, digest-verified in the lake) lets the
        robot's cached copy go; FAILED (rejected: the gate, QC or a reviewer) too. Nothing else ever
        makes a recording evictable."""
        if status not in (TaskStatus.UPLOADED, TaskStatus.FAILED):
            return
        try:
            if status is TaskStatus.UPLOADED:
                self.cache.mark_published(task_id)
            else:
                self.cache.mark_rejected(task_id)
            self.cache.evict()
        except UnknownDataset:
            return  # nothing cached for it (failed before recording, or evicted already)
        except EdgeCacheError as exc:
            log.warning("task %s %s in the cloud, but its cached recording stays: %s", task_id, status.value, exc)

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



def _page(reply: Any) -> tuple[list[Mapping[str, Any]], int]:
    if isinstance(reply, Mapping):
        tasks, cursor = reply.get("tasks"), reply.get("cursor")
    else:
        tasks, cursor = getattr(reply, "tasks", None), getattr(reply, "cursor", None)
    if not isinstance(tasks, list) or not isinstance(cursor, int) or isinstance(cursor, bool):
        raise InvalidRequest(f"unexpected reply to pull_tasks: {reply!r}")
    return [t if isinstance(t, Mapping) else vars(t) for t in tasks], cursor


