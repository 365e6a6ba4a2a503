"""Recording supervision: while a task is EXECUTING, keep asking the recorder how it is doing.

The agent runs :meth:`RecordingSupervisor.run` in a thread of its own. Every ``interval`` it looks
at the task it believes is recording and

- stops it (EXECUTED, exactly as a collector's stop) once its ``duration_seconds`` are up;
- fails it when the recorder is unreachable for ``unreachable_polls`` polls in a row (it died);
- fails it when Axon's disk guard paused the recording itself (``disk_usage.state: hard_limit``),
  with the guard's reason, and cancels the recorder's session — only when it is this task's;
- fails it when the recorder reports ``last_error``;
- fails it when the recorder is not recording although the task is EXECUTING (stopped behind the
  agent's back) and stays so on the next poll too — one poll of grace, so that a recorder's finish
  callback that is on its way (Axon HTTP) settles the task first.

Every move goes through the agent (and so through the outbox): the cloud sees each FAILED reason.
The supervisor takes the agent's recorder lock for each check, so it never races a teleop start or
stop, and it leaves alone a task with a recorder command in flight (the sync loop settles those).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from axon_dagster.domain import TaskStatus
from axon_dagster.recorder.health import recording_problem
from axon_dagster.recorder.protocol import RecorderError

from .errors import EdgeError, RecorderFailure



class SupervisedAgent(Protocol):
    """What supervision needs of the agent (``axon_edge.agent.EdgeAgent``; a protocol, so that this
    module does not import the agent that imports it)."""

    db: Any
    recorder: Any
    _recorder_lock: Any

    def stop_recording(self, task_id: str) -> Any: ...
    def release_recorder(self, task_id: str) -> bool: ...
    def _fail(self, task_id: str, reason: str) -> Any: ...

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 1.0
DEFAULT_UNREACHABLE_POLLS = 3


@dataclass
class _Watch:
    task_id: str
    unreachable: int = 0
    not_recording: int = 0


class RecordingSupervisor:
    def __init__(
        self,
        agent: SupervisedAgent,
        *,
        interval: float = DEFAULT_INTERVAL,
        unreachable_polls: int = DEFAULT_UNREACHABLE_POLLS,
        clock=time.time,
    ):
        if interval <= 0:
            raise ValueError(f"supervision interval must be positive, got {interval!r}")
        if unreachable_polls < 1:
            raise ValueError(f"unreachable_polls must be at least 1, got {unreachable_polls!r}")
        self.agent = agent
        self.interval = interval
        self.unreachable_polls = unreachable_polls
        self._clock = clock
        self._watch: _Watch | None = None

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.check_once()
            except Exception:  # the loop must survive anything
                log.exception("supervision tick failed")
            stop.wait(self._next_wait())

    def _next_wait(self) -> float:
        """Sleep ``interval``, but wake in time for a recording's duration to end."""
        watch = self._watch
        if watch is None:
            return self.interval
        try:
            task = self.agent.db.get_task(watch.task_id)
        except Exception:
            return self.interval
        left = self._seconds_left(task)
        if left is None:
            return self.interval
        return max(0.01, min(self.interval, left))

    def _seconds_left(self, task) -> float | None:
        if not task.duration_seconds or task.executing_at is None:
            return None
        return task.executing_at.timestamp() + float(task.duration_seconds) - self._clock()

    def check_once(self) -> str | None:
        """One look at the recording task. Returns what was done: None (nothing to do / all well),
        "stopped" (duration up), "failed" (with the reason on the task), "waiting" (a bad sign
        seen, not yet conclusive)."""
        executing = self.agent.db.list_tasks(TaskStatus.EXECUTING)
        if not executing:
            self._watch = None
            return None
        task = executing[0]
        if self._watch is None or self._watch.task_id != task.task_id:
            self._watch = _Watch(task.task_id)
        watch = self._watch
        left = self._seconds_left(task)
        if left is not None and left <= 0:
            return self._auto_stop(task.task_id)
        with self.agent._recorder_lock:
            task = self.agent.db.get_task(task.task_id)
            if task.status is not TaskStatus.EXECUTING or task.pending_command:
                return None  # moved meanwhile, or a command in flight the sync loop settles
            try:
                status = self.agent.recorder.get_status()
            except RecorderError as exc:
                watch.unreachable += 1
                log.warning(
                    "task %s: recorder status poll %d/%d failed: %s", task.task_id, watch.unreachable, self.unreachable_polls, exc
                )
                if watch.unreachable >= self.unreachable_polls:
                    return self._fail(
                        task.task_id, f"recorder unreachable for {watch.unreachable} consecutive status polls: {exc}"
                    )
                return "waiting"
            watch.unreachable = 0
            problem = recording_problem(status)  # the shared policy: the cloud judges reports by it too
            if problem and status.disk_state == "hard_limit" and not status.paused_by_disk_guard:
                # Axon's disk guard notes its error and pauses in one step, but the state and the
                # stats are two requests: the pause may fall between them. Read again before naming
                # the cause, or the paused session would not be released.
                try:
                    status = self.agent.recorder.get_status()
                    problem = recording_problem(status) or problem
                except RecorderError:
                    pass
            if problem:
                self._fail(task.task_id, problem)
                if status.paused_by_disk_guard and self.agent.release_recorder(task.task_id):
                    log.info("task %s: cancelled the recorder's paused session (disk guard)", task.task_id)
                return "failed"
            if not status.is_recording:
                watch.not_recording += 1
                if watch.not_recording >= 2:
                    return self._fail(
                        task.task_id,
                        "recorder stopped recording unexpectedly (not recording while the task is EXECUTING"
                        + (f"; last dataset {status.dataset_path}" if status.dataset_path else "")
                        + ")",
                    )
                return "waiting"
            watch.not_recording = 0
        return None

    def _auto_stop(self, task_id: str) -> str | None:
        log.info("task %s: duration is up, stopping the recording", task_id)
        try:
            task = self.agent.stop_recording(task_id)
        except RecorderFailure as exc:
            log.warning("task %s: automatic stop at duration failed: %s", task_id, exc)
            watch = self._watch
            if exc.unreachable and watch is not None and not exc.task_failed:
                watch.unreachable += 1
                if watch.unreachable >= self.unreachable_polls:
                    current = self.agent.db.get_task(task_id)
                    if current.status is TaskStatus.EXECUTING and not current.pending_command:
                        return self._fail(
                            task_id, f"recorder unreachable for {watch.unreachable} consecutive attempts to stop at duration: {exc}"
                        )
            return None
        except EdgeError as exc:  # NotRecording: a stop won the race
            log.info("task %s: automatic stop at duration not needed: %s", task_id, exc)
            return None
        return "stopped" if task.status is TaskStatus.EXECUTED else None

    def _fail(self, task_id: str, reason: str) -> str:
        self.agent._fail(task_id, reason)
        self._watch = None
        return "failed"
