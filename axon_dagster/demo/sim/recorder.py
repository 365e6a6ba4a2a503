"""The simulated Axon recorder: Axon's HTTP RPC (v0.4) and state machine over synthetic sensors.

``SimulatedRecorder`` is the recorder's state machine (its read-only RPCs in :mod:`.reports`, what
finish writes in :mod:`.writer`, callbacks in :mod:`.callbacks`, faults in :mod:`.faults`); its
``app`` (:mod:`.http_app`) is a Starlette application speaking the RPC; :func:`.serving.serve_in_thread`
runs one on a localhost port for tests and the demo; ``axon-sim`` (:mod:`.cli`) runs one as a process.

It behaves as the real recorder does (Axon v0.4, GitHub ``archebase/axon``; where they differ, Axon is right):

- it records ITS OWN subscriptions (``topics``), whatever the task's ``topics`` say (those are
  only echoed into the callbacks);
- ``finish`` writes ``<data_dir>/<task_id>.mcap`` + ``<task_id>.json`` (v1.0 sidecar) +
  ``<task_id>.mcap.done`` with :func:`.axon_mcap.write_axon_recording` (``recording_format="lance"``
  keeps the Lance-era layout: ``<task_id>.lance`` + our sidecar), and takes time in proportion to
  the file size (``finish_seconds_per_gb``: Axon re-scans and SHA-256s the file), holding every
  other RPC meanwhile;
- begin/finish reply only ``{state, task_id}``; the output path comes in the finish callback
  (sent on a thread, so it can arrive after the finish reply) and in ``/rpc/stats`` ``metadata``;
- refusals are HTTP 200 with ``success: false`` (config refusals with ``data.validation_errors``);
  only an unknown route (404) or unparsable JSON (400) change the status code;
- ``/rpc/stats``: ``topic_message_counts {received, written, dropped}`` (reset at finish),
  ``disk_usage {...}``, ``metadata {output_path, sidecar_path, checksum_sha256, ...}``;
- ``/rpc/cancel`` ignores the task id and deletes the ``.mcap``, ``.json`` and ``.done``; no callback;
- the disk guard pauses the recorder itself (fault ``disk_full_after_seconds``);
- ``/health`` (and ``/``) answers a bare ``{status, service, version, running, state}``; an unknown
  ``/rpc/<method>`` or verb is a 404 ``Unknown RPC method or invalid HTTP method``; also
  ``begin_batch``/``finish_batch``/``cancel_batch``, ``tasks``, ``task_status`` (a POST),
  ``drop_stats``, ``latency_stats``, ``log_levels``, ``status`` and ``quit`` (finish, then exit).

The transport-independent ``rpc_*`` methods return ``(message, data)``; ``data`` carries the wire
fields plus a few of the simulator's own (``dataset_path``, ``flushed_batches``, per-topic
``topics``) that the ROS service nodes (:mod:`.ros1_node`) use; the HTTP layer sends only what
Axon sends (:data:`WIRE_FIELDS`).

Faults (``POST /sim/faults`` or ``axon-sim --faults``): every field of :class:`.synthetic.Faults`
(``fail_start`` refuses ``begin``; the others shape the written data) plus ``die_after_seconds``
(the server stops answering, as a crashed recorder), ``disk_full_after_seconds`` (the disk guard
trips that long into a recording), ``finish_delay_seconds`` (finish takes that much longer) and
``finish_callback_delay_seconds`` (the finish callback leaves that long after the finish reply).

This module is longer than ~400 lines on purpose: the description above (Axon's behaviour, which
judges the simulator) and every transition of the state machine stay side by side in one class.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from axon_dagster.domain import validate_id
from axon_dagster.storage.recording import RECORDING_FORMATS

from .callbacks import callback_time, send_callback
from .faults import SimFaults
from .http_app import build_app, on_wire
from .reports import RecorderReports
from .session import (
    DEFAULT_DISK_HARD_LIMIT_GB,
    DEFAULT_FINISH_SECONDS_PER_GB,
    IDLE,
    PAUSED,
    READY,
    RECORDING,
    FinishedRecording,
    RpcRefusal,
    Session,
    require_task_id,
)
from .synthetic import DEFAULT_TOPICS, TopicSpec
from .task_config import topic_names, validate_task_config
from .writer import discard, write_session

logger = logging.getLogger(__name__)


class SimulatedRecorder(RecorderReports):
    """A simulated Axon recorder holding one task at a time (IDLE → READY → RECORDING ↔ PAUSED).

    ``topics`` are its subscriptions (what it records, whatever a task asks for); ``recording_format``
    ``mcap`` (Axon v0.4, default) or ``lance`` (the Lance-era layout); ``encoding``/``schema``/
    ``sidecar_mode`` shape the MCAP as Axon's YAML would. Thread-safe: the RPC handlers run in a
    thread pool and serialize on one lock, so ``finish`` (which writes the recording, and takes its
    time) is atomic with respect to every other call — as in Axon, where finish holds the RPC thread.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        robot_id: str = "sim-robot",
        *,
        faults: SimFaults | Mapping[str, Any] | None = None,
        topics: Mapping[str, TopicSpec] | None = None,
        recording_format: str = "mcap",
        encoding: str = "ros2",
        schema: str = "empty",
        sidecar_mode: str = "always",
        finish_seconds_per_gb: float = DEFAULT_FINISH_SECONDS_PER_GB,
        disk_hard_limit_gb: float = DEFAULT_DISK_HARD_LIMIT_GB,
        on_crash: Callable[[], None] | None = None,
    ):
        from .axon_mcap import AXON_DEFAULT_TOPICS

        self.robot_id = validate_id(robot_id, "robot_id")
        problem = self.check_options(
            recording_format=recording_format,
            encoding=encoding,
            schema=schema,
            sidecar_mode=sidecar_mode,
            finish_seconds_per_gb=finish_seconds_per_gb,
            disk_hard_limit_gb=disk_hard_limit_gb,
        )
        if problem:
            raise ValueError(problem)
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.recording_format = recording_format
        self.encoding, self.schema, self.sidecar_mode = encoding, schema, sidecar_mode
        self.finish_seconds_per_gb = float(finish_seconds_per_gb)
        self.disk_hard_limit_gb = float(disk_hard_limit_gb)
        default = AXON_DEFAULT_TOPICS if recording_format == "mcap" else DEFAULT_TOPICS
        self.subscriptions: dict[str, TopicSpec] = dict(topics if topics is not None else default)
        if not self.subscriptions:
            raise ValueError("a recorder needs at least one subscription")
        self.available_topics = self.subscriptions  # the name the ROS nodes and older callers use
        self.on_crash = on_crash
        self._faults = faults if isinstance(faults, SimFaults) else SimFaults.from_dict(faults)
        self._lock = threading.RLock()
        self._state = IDLE
        self._config: dict[str, Any] | None = None  # cached task config (kept, idle, after finish)
        self._session: Session | None = None
        self._last: FinishedRecording | None = None
        self._last_error = ""
        self._disk_reason = ""  # set while the disk guard has tripped
        self._crash_timer: threading.Timer | None = None
        self._disk_timer: threading.Timer | None = None
        self._warmed_up = False
        self.crashed = threading.Event()
        self.quit_requested = threading.Event()
        self.on_quit: Callable[[], None] | None = None  # set by whoever serves it: stop serving
        self.app = build_app(self)

    @staticmethod
    def check_options(
        *,
        recording_format: str = "mcap",
        encoding: str = "ros2",
        schema: str = "empty",
        sidecar_mode: str = "always",
        finish_seconds_per_gb: float = DEFAULT_FINISH_SECONDS_PER_GB,
        disk_hard_limit_gb: float = DEFAULT_DISK_HARD_LIMIT_GB,
        **_others: Any,
    ) -> str | None:
        """What is wrong with these options (one sentence), or None."""
        from .axon_mcap import ENCODINGS, SCHEMA_MODES, SIDECAR_MODES

        if recording_format not in RECORDING_FORMATS:
            return f"recording_format must be one of {RECORDING_FORMATS}, got {recording_format!r}"
        for name, value, allowed in (("encoding", encoding, ENCODINGS), ("schema", schema, SCHEMA_MODES), ("sidecar_mode", sidecar_mode, SIDECAR_MODES)):
            if value not in allowed:
                return f"{name} must be one of {allowed}, got {value!r}"
        if isinstance(finish_seconds_per_gb, bool) or not (isinstance(finish_seconds_per_gb, (int, float)) and 0 <= finish_seconds_per_gb < math.inf):
            return f"finish_seconds_per_gb must be a non-negative number, got {finish_seconds_per_gb!r}"
        if isinstance(disk_hard_limit_gb, bool) or not (isinstance(disk_hard_limit_gb, (int, float)) and 0 < disk_hard_limit_gb < math.inf):
            return f"disk_hard_limit_gb must be a positive number, got {disk_hard_limit_gb!r}"
        return None

    def warm_up(self) -> None:
        """Import the writer's heavy modules in the background (seconds on a cold start), so the
        first ``finish`` does not pay for it while its caller waits. Called at the first config."""
        if self._warmed_up:
            return
        self._warmed_up = True

        def load() -> None:
            try:
                if self.recording_format == "lance":
                    import lance  # noqa: F401
                else:
                    from .axon_mcap import typestore_for

                    typestore_for(self.encoding)
            except ImportError as exc:  # finish will report it; nothing to do here
                logger.warning("simulator %s cannot import its writer: %s", self.robot_id, exc)

        threading.Thread(target=load, name="axon-sim-warm-up", daemon=True).start()

    # -- state -------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    @property
    def faults(self) -> SimFaults:
        return self._faults

    @property
    def last_recording(self) -> FinishedRecording | None:
        return self._last

    def output_path_for(self, task_id: str) -> Path:
        return self.data_dir / f"{task_id}.{self.recording_format}"

    def set_faults(self, faults: SimFaults | Mapping[str, Any] | None) -> SimFaults:
        new = faults if isinstance(faults, SimFaults) else SimFaults.from_dict(faults)
        with self._lock:
            self._faults = new
            logger.info("simulator %s faults set to %s", self.robot_id, new.to_dict())
            if new.die_after_seconds is not None and self._state in (RECORDING, PAUSED):
                self._arm_crash(new.die_after_seconds)
            if new.disk_full_after_seconds is not None and self._state == RECORDING:
                self._arm_disk_guard(new.disk_full_after_seconds)
        return new

    # -- RPCs, transport-independent: each returns the reply's (message, data) or raises RpcRefusal

    def rpc_config(self, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        if "task_config" not in body:
            raise RpcRefusal("Missing 'task_config' in request parameters", state=self._state)
        task_config = body["task_config"]
        errors = validate_task_config(task_config)
        if errors:
            raise RpcRefusal("Task configuration validation failed", state=self._state, validation_errors=errors)
        task_id = task_config["task_id"]
        with self._lock:
            if self._state in (RECORDING, PAUSED):
                raise RpcRefusal(
                    f"Cannot set config in state: {self._state} (task {self._session.task_id!r} is open; "
                    "finish or cancel it first)",
                    state=self._state,
                )
            if self._state == READY and self._config and self._config["task_id"] != task_id:
                logger.info("simulator %s: config of task %s replaces the pending one of %s", self.robot_id, task_id, self._config["task_id"])
            self._config = dict(task_config)
            self._state = READY
        unsubscribed = sorted(set(topic_names(task_config.get("topics") or [])) - set(self.subscriptions))
        if unsubscribed:
            # Axon records its own subscriptions; a task's topics are only echoed into callbacks.
            logger.warning("simulator %s: task %s names topic(s) %s this recorder does not subscribe to", self.robot_id, task_id, unsubscribed)
        if task_config["device_id"] != self.robot_id:
            logger.warning("task %s configured for device %s on robot %s", task_id, task_config["device_id"], self.robot_id)
        self.warm_up()
        logger.info("simulator %s: READY for task %s", self.robot_id, task_id)
        return "Task configuration set successfully", {"state": READY, "task_id": task_id}

    def rpc_begin(self, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        task_id = require_task_id(body, self._state)
        with self._lock:
            if self._config is None:
                raise RpcRefusal("No task configuration cached. Call /rpc/config first.", state=self._state)
            if self._state != READY:
                raise RpcRefusal(
                    f"Cannot start recording from state: {self._state}. Must be in READY state.", state=self._state
                )
            if self._config["task_id"] != task_id:
                raise RpcRefusal(
                    f"Task ID mismatch: cached config is for task {self._config['task_id']!r}, begin asked for {task_id!r}",
                    state=self._state,
                    expected_task_id=self._config["task_id"],
                    provided_task_id=task_id,
                )
            faults = self._faults
            if faults.recording.fail_start:
                self._last_error = "Failed to start recording: simulated start failure (fault fail_start)"
                raise RpcRefusal(self._last_error, state=self._state, task_id=task_id)
            output = self.output_path_for(task_id)
            discard(output)  # re-recording a task id overwrites, as Axon does
            if self.recording_format == "mcap":
                # the file exists from begin on, without a footer until finish closes it
                output.write_bytes(b"\x89MCAP0\r\n")
            session = Session(
                task_config=dict(self._config), output_path=output, faults=faults, started_ns=time.time_ns(), started_mono=time.monotonic()
            )
            self._session = session
            self._state = RECORDING
            self._last_error = ""
            self._disk_reason = ""
            if faults.die_after_seconds is not None:
                self._arm_crash(faults.die_after_seconds)
            if faults.disk_full_after_seconds is not None:
                self._arm_disk_guard(faults.disk_full_after_seconds)
        logger.info("simulator %s: RECORDING task %s to %s", self.robot_id, task_id, output)
        send_callback(
            session,
            "start_callback_url",
            {
                "task_id": task_id,
                "device_id": session.task_config.get("device_id", ""),
                "status": "recording",
                "started_at": callback_time(session.started_ns),
                "topics": topic_names(session.task_config.get("topics") or []),
            },
        )
        return "Recording started successfully", {"state": RECORDING, "task_id": task_id, "dataset_path": str(output)}

    def rpc_finish(self, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        task_id = require_task_id(body, self._state)
        with self._lock:
            if self._state not in (RECORDING, PAUSED):
                raise RpcRefusal(
                    f"Cannot finish recording from state: {self._state}. Must be in RECORDING or PAUSED state.",
                    state=self._state,
                )
            session = self._session
            if session.task_id != task_id:
                raise RpcRefusal(
                    f"Task ID mismatch: recording task {session.task_id!r}, finish asked for {task_id!r}",
                    state=self._state,
                    expected_task_id=session.task_id,
                    provided_task_id=task_id,
                )
            now = time.monotonic()
            session.resume(now)  # a pause open at finish ends here
            wall_s, active_s = session.wall_seconds(now), session.recorded_seconds(now)
            counted = sum(c["written"] for c in self._topic_counts(session, now).values())  # before the final flush
            self._disarm_timers()
            try:
                finished = self._write(session, wall_s, active_s)
            except Exception as exc:  # the recorder must survive any write failure and say why
                self._last_error = f"Failed to finish recording of task {task_id}: {exc}"
                logger.exception("simulator %s: %s", self.robot_id, self._last_error)
                self._state, self._session = IDLE, None
                raise RpcRefusal(self._last_error, state=IDLE) from None
            # Axon re-scans the closed file and SHA-256s it; every other RPC waits meanwhile.
            delay = finished.file_size_bytes / 1e9 * self.finish_seconds_per_gb + session.faults.finish_delay_seconds
            if delay > 0:
                time.sleep(delay)
            self._last = finished
            # finished: idle, with the config still cached; per-topic counts start again from zero
            self._state, self._session = IDLE, None
        logger.info(
            "simulator %s: finished task %s: %d messages, %.2f s recorded (%.2f s wall) in %s",
            self.robot_id,
            task_id,
            finished.message_count,
            active_s,
            wall_s,
            finished.output_path,
        )
        config = session.task_config
        send_callback(
            session,
            "finish_callback_url",
            {
                "task_id": task_id,
                "device_id": config.get("device_id", ""),
                "status": "finished",
                "started_at": callback_time(session.started_ns),
                "finished_at": callback_time(time.time_ns()),
                "duration_sec": round(active_s, 3),  # pauses excluded
                "message_count": counted,
                "file_size_bytes": finished.file_size_bytes,
                "output_path": finished.output_path,
                "sidecar_path": finished.sidecar_path,
                "sidecar_enabled": finished.sidecar_path is not None,
                "sidecar_generated": finished.sidecar_path is not None,
                "topics": topic_names(config.get("topics") or []),
                "metadata": {
                    "scene": config.get("scene", ""),
                    "subscene": config.get("subscene", ""),
                    "skills": list(config.get("skills") or []),
                    "factory": config.get("factory", ""),
                },
                "error": None,
            },
            delay=session.faults.finish_callback_delay_seconds,
        )
        return "Recording finished successfully", {
            "state": IDLE,
            "task_id": task_id,
            # the simulator's own (not on the wire): for the ROS service nodes
            "dataset_path": finished.output_path,
            "sidecar_path": finished.sidecar_path,
            "checksum_sha256": finished.checksum_sha256,
            "message_count": finished.message_count,
            "duration_sec": active_s,
            "flushed_batches": finished.flushed_batches,
        }

    def _write(self, session: Session, wall_s: float, active_s: float) -> FinishedRecording:
        return write_session(
            session,
            wall_s,
            active_s,
            data_dir=self.data_dir,
            robot_id=self.robot_id,
            recording_format=self.recording_format,
            subscriptions=self.subscriptions,
            encoding=self.encoding,
            schema=self.schema,
            sidecar_mode=self.sidecar_mode,
        )

    def rpc_pause(self, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        with self._lock:
            if self._state != RECORDING:
                raise RpcRefusal(f"Cannot pause from state: {self._state}. Must be in RECORDING state.", state=self._state)
            self._session.pause(time.monotonic())
            self._state = PAUSED
            task_id = self._session.task_id
        logger.info("simulator %s: PAUSED task %s", self.robot_id, task_id)
        return "Recording paused successfully", {"state": PAUSED, "task_id": task_id}

    def rpc_resume(self, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        with self._lock:
            if self._state != PAUSED:
                raise RpcRefusal(f"Cannot resume from state: {self._state}. Must be in PAUSED state.", state=self._state)
            session = self._session
            session.resume(time.monotonic())
            self._state = RECORDING
        logger.info("simulator %s: RECORDING task %s again", self.robot_id, session.task_id)
        return "Recording resumed successfully", {"state": RECORDING, "task_id": session.task_id}

    def rpc_cancel(self, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """Axon's cancel ignores the task id: it cancels whatever is recording, deletes the
        ``.mcap``, ``.json`` and ``.done`` files, drops the config, and sends no callback."""
        with self._lock:
            if self._state not in (RECORDING, PAUSED):
                raise RpcRefusal(
                    f"Cannot cancel recording from state: {self._state}. Must be in RECORDING or PAUSED state.",
                    state=self._state,
                )
            session = self._session
            self._disarm_timers()
            discard(session.output_path)
            self._state, self._session, self._config = IDLE, None, None
        asked = body.get("task_id")
        logger.info(
            "simulator %s: cancelled task %s%s; its files are deleted",
            self.robot_id,
            session.task_id,
            f" (cancel named {asked!r})" if asked and asked != session.task_id else "",
        )
        return "Recording cancelled successfully", {"state": IDLE, "task_id": session.task_id}

    def rpc_clear(self, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        with self._lock:
            if self._state != READY:
                raise RpcRefusal(f"Cannot clear config from state: {self._state}. Must be in READY state.", state=self._state)
            task_id = self._config["task_id"]
            self._state, self._config = IDLE, None
        logger.info("simulator %s: cleared pending config of task %s", self.robot_id, task_id)
        return "Configuration cleared successfully", {"state": IDLE, "task_id": task_id}

    def rpc_batch(self, action: str, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """``begin_batch`` / ``finish_batch`` / ``cancel_batch {task_ids: [...]}``: the single-task
        RPC for each id in turn (cancel only for the current task's id); a refusal if any failed."""
        task_ids = body.get("task_ids")
        if "task_ids" not in body:
            raise RpcRefusal("Missing required parameter: task_ids", state=self._state)
        if not isinstance(task_ids, list):
            raise RpcRefusal("task_ids must be an array of strings", state=self._state)
        if not task_ids:
            raise RpcRefusal("task_ids must not be empty", state=self._state)
        if not all(isinstance(t, str) for t in task_ids):
            raise RpcRefusal("task_ids entries must be strings", state=self._state)
        results = []
        for task_id in task_ids:
            try:
                if action == "cancel":
                    current = self._config["task_id"] if self._config else None
                    if current != task_id:
                        raise RpcRefusal(
                            f"task_id mismatch: expected '{current}' but got '{task_id}'" if current else "No task configuration cached",
                            state=self._state,
                        )
                    message, data = self.rpc_cancel({})
                else:
                    message, data = (self.rpc_begin if action == "begin" else self.rpc_finish)({"task_id": task_id})
                results.append({"task_id": task_id, "success": True, "message": message, "data": on_wire(action, data)})
            except RpcRefusal as refusal:
                results.append({"task_id": task_id, "success": False, "message": refusal.message, "data": {"state": self._state}})
        succeeded = sum(1 for r in results if r["success"])
        data = {"results": results, "succeeded": succeeded, "failed": len(results) - succeeded, "state": self._state}
        if succeeded < len(results):
            raise RpcRefusal(f"Batch {action} completed with errors", state=self._state, batch=data)
        return f"Batch {action} completed successfully", data


    def rpc_quit(self, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """``POST /rpc/quit``: finish what records (the data is saved), then the program exits."""
        with self._lock:
            if self._state in (RECORDING, PAUSED):
                self.rpc_finish({"task_id": self._session.task_id})
            state = self._state
        self.quit_requested.set()
        if self.on_quit is not None:
            threading.Timer(0.2, self.on_quit).start()  # after this reply has gone out
        return "Program quitting. Recording stopped and data saved.", {"state": state}

    # -- helpers -----------------------------------------------------------------------------

    def _arm(self, name: str, after_seconds: float, action: Callable[[], None]) -> None:
        """(Re)start the one-shot timer ``name`` (``_crash_timer``, ``_disk_timer``)."""
        previous = getattr(self, name)
        if previous is not None:
            previous.cancel()
        timer = threading.Timer(after_seconds, action)
        timer.daemon = True
        setattr(self, name, timer)
        timer.start()

    def _arm_crash(self, after_seconds: float) -> None:
        self._arm("_crash_timer", after_seconds, self._crash)
        logger.warning("simulator %s will stop answering in %.2f s (fault die_after_seconds)", self.robot_id, after_seconds)

    def _arm_disk_guard(self, after_seconds: float) -> None:
        self._arm("_disk_timer", after_seconds, self._trip_disk_guard)

    def _trip_disk_guard(self) -> None:
        """Axon's ``trip_disk_hard_limit``: note the error and pause the recording itself."""
        with self._lock:
            if self._state != RECORDING:
                return
            self._disk_reason = (
                f"total used {self.disk_hard_limit_gb:.1f} GB reached the hard limit of {self.disk_hard_limit_gb:.1f} GB "
                "(fault disk_full_after_seconds)"
            )
            self._last_error = f"Disk hard limit reached: {self._disk_reason}"
            self._session.pause(time.monotonic())
            self._state = PAUSED
            task_id = self._session.task_id
        logger.error("simulator %s: %s; task %s PAUSED by the recorder", self.robot_id, self._last_error, task_id)

    def _disarm_timers(self) -> None:
        for name in ("_crash_timer", "_disk_timer"):
            timer = getattr(self, name)
            if timer is not None:
                timer.cancel()
                setattr(self, name, None)

    def _crash(self) -> None:
        logger.error("simulator %s: simulated crash (fault die_after_seconds); no longer answering", self.robot_id)
        self.crashed.set()
        if self.on_crash is not None:
            self.on_crash()
