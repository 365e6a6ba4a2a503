"""The recorder, driven by the robot's people: pickup, teleop start/stop, the recorder's callbacks,
settling commands a crash left in flight, and a finished recording's way into the edge cache
(:mod:`axon_edge.recordings`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from axon_dagster.domain import IllegalTransitionError, TaskStatus, validate_id
from axon_dagster.recorder.config import RecordingConfig
from axon_dagster.recorder.protocol import RecorderError, RecorderRefused, RecorderTimeout, RecorderUnreachable
from axon_dagster.storage.axon_recording import AxonRecordingError
from axon_dagster.storage.digest import DigestMismatch
from axon_dagster.storage.edge_cache import EdgeCacheError

from .db import LocalTask
from .errors import Conflict, InvalidRequest, NotRecording, RecorderBusy, RecorderFailure
from .recordings import locate_recording

log = logging.getLogger(__name__)

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


class RecorderControl:
    """Mixed into :class:`axon_edge.agent.EdgeAgent` (its state: ``db``, ``recorder``, ``health``, locks, wake events)."""

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
            self._finish_reports.put(task_id, dataset_path, sidecar_path or "")
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
        found = locate_recording(
            task, response, hint, output_wait, reports=self._finish_reports, recorder=self.recorder,
            output_dir=self.recorder_output_dir, stopping=self._stop.is_set,
        )
        if found is None:
            where = f" or {self.recorder_output_dir}/{task.task_id}.mcap" if self.recorder_output_dir else ""
            prefix = "recording lost" if lost_if_missing else "recording not found"
            return self._fail(
                task.task_id,
                f"{prefix} ({why}): no output path from the finish callback, the recorder's stats{where} "
                f"within {output_wait:g}s",
            )
        if found.vouched:
            # The recorder said it finished this file (reply, stats or callback): Axon writes the
            # sidecar and .mcap.done before it says so, so an incomplete file will stay so.
            complete_wait = min(complete_wait, _VOUCHED_PATIENCE_SECONDS)
        try:
            data = self.intake.take(task, found, complete_wait)
        except (AxonRecordingError, DigestMismatch, EdgeCacheError, OSError, ValueError) as exc:
            prefix = "recording lost" if lost_if_missing else "recording not usable"
            return self._fail(task.task_id, f"{prefix} ({why}): {found.path}: {exc}")
        self._finish_reports.pop(task.task_id)
        log.info(
            "task %s: %s recording in the edge cache at %s%s; edge gate %s",
            task.task_id,
            data["recording_format"],
            data["dataset_path"],
            f" (sha256 {data['checksum_sha256'][:12]}…)" if data.get("checksum_sha256") else "",
            "passed" if data["gate"]["passed"] else "rejected: " + "; ".join(data["gate"]["reasons"]),
        )
        return self._record_stopped(task.task_id, data)

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


def _task_id(value: object) -> str:
    return _valid(value, "task_id")


def _valid(value: object, kind: str) -> str:
    try:
        return validate_id(value, kind)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


