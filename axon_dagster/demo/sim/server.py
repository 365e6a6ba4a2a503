"""The simulated Axon recorder: Axon's HTTP RPC (v0.4) and state machine over synthetic sensors.

``SimulatedRecorder`` is the recorder (state machine, statistics, faults, callbacks); its ``app``
is a Starlette application speaking the RPC; :func:`serve_in_thread` runs one on a localhost port
for tests and the demo; ``axon-sim`` (:mod:`.cli`) runs one as a process.

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
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from axon_dagster import __version__
from axon_dagster.domain import InvalidIdError, validate_id
from axon_dagster.recorder.config import AXON_TASK_CONFIG_FIELDS, PRIVATE_TASK_CONFIG_FIELDS
from axon_dagster.storage.recording import RECORDING_FORMATS, sidecar_path

from .synthetic import DEFAULT_TOPICS, Faults, TopicSpec

logger = logging.getLogger(__name__)

IDLE, READY, RECORDING, PAUSED = "idle", "ready", "recording", "paused"
SERVICE_NAME = "axon-sim"
CALLBACK_TIMEOUT_SECONDS = 30.0  # Axon's callback client timeout
DEFAULT_PORT = 8080  # Axon's HTTP RPC port
# Axon re-scans the closed file (to patch its size) and SHA-256s it: seconds per GB of recording.
DEFAULT_FINISH_SECONDS_PER_GB = 2.0
DEFAULT_DISK_HARD_LIMIT_GB = 100.0
# What each RPC sends over HTTP, as Axon does (rpc_handlers.cpp); None = everything.
WIRE_FIELDS: dict[str, tuple[str, ...] | None] = {
    "config": ("state", "task_id"),
    "begin": ("state", "task_id"),
    "finish": ("state", "task_id"),
    "pause": ("state",),
    "resume": ("state",),
    "cancel": ("state",),
    "clear": ("state",),
    "state": ("version", "state", "task_config", "running", "duration_sec", "message_count", "bytes_written"),
    "stats": (
        "state",
        "messages_received",
        "messages_written",
        "messages_dropped",
        "bytes_written",
        "bytes_received",
        "receive_rate_mbps",
        "write_rate_mbps",
        "duration_sec",
        "message_count",
        "topic_message_counts",
        "disk_usage",
        "metadata",
    ),
}
WIRE_FIELDS["status"] = WIRE_FIELDS["stats"]
_SIM_FAULTS = ("die_after_seconds", "disk_full_after_seconds", "finish_delay_seconds", "finish_callback_delay_seconds")


class FaultsError(ValueError):
    """A faults specification the simulator cannot apply."""


@dataclass(frozen=True)
class SimFaults:
    """What the simulator should get wrong: data faults for the recording, plus recorder faults."""

    recording: Faults = Faults()
    die_after_seconds: float | None = None
    disk_full_after_seconds: float | None = None
    finish_delay_seconds: float = 0.0
    finish_callback_delay_seconds: float = 0.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "SimFaults":
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise FaultsError(f"faults must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        known = sorted({f.name for f in dataclasses.fields(Faults)} | set(_SIM_FAULTS))
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise FaultsError(f"unknown fault(s): {', '.join(map(str, unknown))}; known: {', '.join(known)}")
        sim = {name: data.pop(name, None) for name in _SIM_FAULTS}
        for name, value in sim.items():
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0
            ):
                raise FaultsError(f"fault {name} must be a non-negative number of seconds, got {value!r}")
        try:
            recording = Faults.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise FaultsError(str(exc)) from None
        return cls(
            recording=recording,
            die_after_seconds=sim["die_after_seconds"],
            disk_full_after_seconds=sim["disk_full_after_seconds"],
            finish_delay_seconds=float(sim["finish_delay_seconds"] or 0.0),
            finish_callback_delay_seconds=float(sim["finish_callback_delay_seconds"] or 0.0),
        )

    def to_dict(self) -> dict[str, Any]:
        return {**self.recording.to_dict(), **{name: getattr(self, name) for name in _SIM_FAULTS}}


class RpcRefusal(Exception):
    """An RPC the state machine refuses. Over HTTP it becomes ``{success: false, message, data}``
    with HTTP 200, as Axon answers (``data``: the state, and ``validation_errors`` for a config);
    other transports (the ROS service nodes) map it their own way."""

    def __init__(self, message: str, status: int = 200, **data: Any):
        errors = data.get("validation_errors") or []
        details = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        super().__init__(f"{message}: {details}" if details else message)  # what non-HTTP transports show
        self.message = message
        self.status = status
        self.data = data


@dataclass
class _Session:
    """The task a recorder records from begin to finish/cancel."""

    task_config: dict[str, Any]
    output_path: Path
    faults: SimFaults
    started_ns: int  # time.time_ns() at begin: the recording's first log time
    started_mono: float
    pauses: list[list[float]] = field(default_factory=list)  # [start offset s, length s] (wall clock)
    paused_since: float | None = None

    @property
    def task_id(self) -> str:
        return self.task_config["task_id"]

    def wall_seconds(self, now_mono: float) -> float:
        return max(0.0, now_mono - self.started_mono)

    def paused_seconds(self, now_mono: float) -> float:
        done = sum(length for _start, length in self.pauses)
        return done + (now_mono - self.paused_since if self.paused_since is not None else 0.0)

    def recorded_seconds(self, now_mono: float) -> float:
        """Wall-clock time since begin, minus time spent paused."""
        return max(0.0, self.wall_seconds(now_mono) - self.paused_seconds(now_mono))

    def pause(self, now_mono: float) -> None:
        self.paused_since = now_mono

    def resume(self, now_mono: float) -> None:
        if self.paused_since is not None:
            self.pauses.append([self.paused_since - self.started_mono, now_mono - self.paused_since])
            self.paused_since = None


@dataclass(frozen=True)
class FinishedRecording:
    """What the last ``finish`` wrote (the ``metadata`` of ``/rpc/stats``, and more)."""

    task_id: str
    output_path: str
    sidecar_path: str | None
    checksum_sha256: str | None
    message_count: int
    file_size_bytes: int
    flushed_batches: int
    recording_format: str


class SimulatedRecorder:
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
        self._session: _Session | None = None
        self._last: FinishedRecording | None = None
        self._last_error = ""
        self._disk_reason = ""  # set while the disk guard has tripped
        self._crash_timer: threading.Timer | None = None
        self._disk_timer: threading.Timer | None = None
        self._warmed_up = False
        self.crashed = threading.Event()
        self.quit_requested = threading.Event()
        self.on_quit: Callable[[], None] | None = None  # set by whoever serves it: stop serving
        self.app = _build_app(self)

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
        task_id = _require_task_id(body, self._state)
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
            self._discard(output)  # re-recording a task id overwrites, as Axon does
            if self.recording_format == "mcap":
                # the file exists from begin on, without a footer until finish closes it
                output.write_bytes(b"\x89MCAP0\r\n")
            session = _Session(
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
        self._callback(
            session,
            "start_callback_url",
            {
                "task_id": task_id,
                "device_id": session.task_config.get("device_id", ""),
                "status": "recording",
                "started_at": _callback_time(session.started_ns),
                "topics": topic_names(session.task_config.get("topics") or []),
            },
        )
        return "Recording started successfully", {"state": RECORDING, "task_id": task_id, "dataset_path": str(output)}

    def rpc_finish(self, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        task_id = _require_task_id(body, self._state)
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
        self._callback(
            session,
            "finish_callback_url",
            {
                "task_id": task_id,
                "device_id": config.get("device_id", ""),
                "status": "finished",
                "started_at": _callback_time(session.started_ns),
                "finished_at": _callback_time(time.time_ns()),
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

    def _write(self, session: _Session, wall_s: float, active_s: float) -> FinishedRecording:
        task_id = session.task_id
        seed = _seed_for(task_id)
        if self.recording_format == "lance":
            from .synthetic import write_recording

            sidecar = write_recording(
                session.output_path,
                task_id=task_id,
                robot_id=self.robot_id,
                start_ns=session.started_ns,
                # a begin/finish within the same millisecond still records one message per topic
                duration_s=max(active_s, 1e-3),
                topics=self.subscriptions,
                faults=session.faults.recording,
                metadata=_dataset_metadata(session.task_config),
                seed=seed,
            )
            size = sum((session.output_path / rel).stat().st_size for rel in sidecar.files if (session.output_path / rel).exists())
            return FinishedRecording(
                task_id=task_id,
                output_path=str(session.output_path),
                sidecar_path=str(sidecar_path(session.output_path)),
                checksum_sha256=None,
                message_count=sidecar.row_count,
                file_size_bytes=size,
                flushed_batches=sum(1 for rel in sidecar.files if rel.startswith("data/")),
                recording_format="lance",
            )
        from .axon_mcap import write_axon_recording

        duration = max(wall_s, 1e-3)
        pauses = [(min(start, duration), max(0.0, min(length, duration - min(start, duration)))) for start, length in session.pauses]
        result = write_axon_recording(
            self.data_dir,
            task_config=session.task_config,
            device_id=session.task_config.get("device_id") or self.robot_id,
            started_at_ns=session.started_ns,
            duration_s=duration,
            pauses=pauses,
            topics=self.subscriptions,
            faults=session.faults.recording,
            seed=seed,
            encoding=self.encoding,
            schema=self.schema,
            sidecar_mode=self.sidecar_mode,
        )
        return FinishedRecording(
            task_id=task_id,
            output_path=str(result.mcap_path),
            sidecar_path=str(result.sidecar_path) if result.sidecar_path else None,
            checksum_sha256=result.checksum_sha256,
            message_count=result.message_count,
            file_size_bytes=result.file_size_bytes,
            flushed_batches=0,
            recording_format="mcap",
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
            self._discard(session.output_path)
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

    def rpc_state(self) -> tuple[str, dict[str, Any]]:
        with self._lock:
            _message, stats = self.rpc_stats()
            data: dict[str, Any] = {
                "version": recorder_version(),
                "state": self._state,
                "running": stats["messages_written"] > 0 or stats["messages_received"] > 0,
                "duration_sec": stats["duration_sec"],
                "message_count": stats["messages_written"],
                "bytes_written": stats["bytes_written"],
            }
            if self._state in (READY, RECORDING, PAUSED) and self._config is not None:
                data["task_config"] = _public_task_config(self._session.task_config if self._session else self._config)
                data["task_id"] = data["task_config"]["task_id"]
            if self._session is not None:
                data["dataset_path"] = str(self._session.output_path)
            data["last_dataset_path"] = self._last.output_path if self._last else ""
            data["last_error"] = self._last_error
        return "State retrieved successfully", data

    def rpc_stats(self) -> tuple[str, dict[str, Any]]:
        """Axon's statistics: totals, ``topic_message_counts`` (every subscription; zero when
        idle: counts reset at finish), ``disk_usage`` and the last finished file's ``metadata``."""
        with self._lock:
            now = time.monotonic()
            session = self._session
            counts = self._topic_counts(session, now)
            elapsed = session.recorded_seconds(now) if session else 0.0
            written = sum(c["written"] for c in counts.values())
            received = sum(c["received"] for c in counts.values())
            bytes_written = sum(c["written"] * self.subscriptions[t].payload_bytes for t, c in counts.items())
            used = _directory_bytes(self.data_dir) + (bytes_written if self.recording_format == "mcap" else 0)
            limit = round(self.disk_hard_limit_gb * 1e9)
            if self._disk_reason:
                used = max(used, limit)
            rate = bytes_written / elapsed / 1e6 if elapsed > 0 else 0.0
            data: dict[str, Any] = {
                "state": self._state,
                "messages_received": received,
                "messages_written": written,
                "messages_dropped": received - written,
                "bytes_written": bytes_written,
                "bytes_received": sum(c["received"] * self.subscriptions[t].payload_bytes for t, c in counts.items()),
                "receive_rate_mbps": rate,
                "write_rate_mbps": rate,
                "duration_sec": elapsed,
                "message_count": written,
                "topic_message_counts": counts,
                "disk_usage": {
                    "enabled": True,
                    "state": "hard_limit" if self._disk_reason else "normal",
                    "reason": self._disk_reason,
                    "total_used_bytes": used,
                    "total_used_gb": used / 1e9,
                    "warn_usage_gb": self.disk_hard_limit_gb * 0.9,
                    "hard_limit_bytes": limit,
                    "hard_limit_gb": self.disk_hard_limit_gb,
                    "current_task_bytes": bytes_written,
                    "current_task_gb": bytes_written / 1e9,
                },
                "metadata": self._metadata(),
                # the simulator's own (not on the wire): for the ROS service nodes
                "topics": {
                    name: {
                        "message_type": self.subscriptions[name].message_type,
                        "rate_hz": self.subscriptions[name].rate_hz,
                        "messages": c["written"],
                        "messages_dropped": c["dropped"],
                        "bytes": c["written"] * self.subscriptions[name].payload_bytes,
                    }
                    for name, c in counts.items()
                    if session is not None and c["received"] > 0
                },
                "pending_batches": 0,
                "disk_usage_gb": used / 1e9,
                "last_error": self._last_error,
                "available_topics": sorted(self.subscriptions),
            }
        return "Statistics retrieved successfully", data

    def rpc_tasks(self) -> tuple[str, dict[str, Any]]:
        """``GET /rpc/tasks``: the current task (a config held or being recorded), if any."""
        with self._lock:
            task = self._task_snapshot()
            return "Tasks retrieved successfully", {"tasks": [task] if task else [], "count": 1 if task else 0, "state": self._state}

    def rpc_task_status(self, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """``POST /rpc/task_status {task_id}``: found only for the current task."""
        task_id = _require_task_id(body, self._state)
        with self._lock:
            task = self._task_snapshot()
            data: dict[str, Any] = {"task_id": task_id, "state": self._state}
            if task and task["task_id"] == task_id:
                data.update(found=True, task=task)
            else:
                data.update(found=False, status="unknown")
        return "Task status retrieved successfully", data

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
                results.append({"task_id": task_id, "success": True, "message": message, "data": _on_wire(action, data)})
            except RpcRefusal as refusal:
                results.append({"task_id": task_id, "success": False, "message": refusal.message, "data": {"state": self._state}})
        succeeded = sum(1 for r in results if r["success"])
        data = {"results": results, "succeeded": succeeded, "failed": len(results) - succeeded, "state": self._state}
        if succeeded < len(results):
            raise RpcRefusal(f"Batch {action} completed with errors", state=self._state, batch=data)
        return f"Batch {action} completed successfully", data

    def rpc_drop_stats(self) -> tuple[str, dict[str, Any]]:
        _message, stats = self.rpc_stats()
        keys = ("state", "messages_received", "messages_written", "messages_dropped", "topic_message_counts")
        return "Drop statistics retrieved successfully", {k: stats[k] for k in keys}

    def rpc_latency_stats(self) -> tuple[str, dict[str, Any]]:
        return "Latency statistics retrieved successfully", {"enabled": False, "topics": {}}

    def rpc_log_levels(self) -> tuple[str, dict[str, Any]]:
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
        return "Log levels retrieved successfully", {
            "console_enabled": True,
            "file_enabled": False,
            "console_level": level,
            "file_level": level,
            "effective_console_level": level,
            "effective_file_level": level,
        }

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

    def _task_snapshot(self) -> dict[str, Any] | None:
        if self._state not in (READY, RECORDING, PAUSED) or not self._config:
            return None
        _message, stats = self.rpc_stats()
        config = self._session.task_config if self._session else self._config
        return {
            "task_id": config["task_id"],
            "state": self._state,
            "active": True,
            "task_config": _public_task_config(config),
            "duration_sec": stats["duration_sec"],
            "message_count": stats["messages_written"],
            "bytes_written": stats["bytes_written"],
        }

    def rpc_health(self) -> dict[str, Any]:
        """``/health``: a bare object, not the envelope (as Axon's http_server answers)."""
        return {"status": "ok", "service": SERVICE_NAME, "version": recorder_version(), "running": True, "state": self._state}

    # -- helpers -----------------------------------------------------------------------------

    def _topic_counts(self, session: _Session | None, now_mono: float) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for name, spec in sorted(self.subscriptions.items()):
            received = written = 0
            if session is not None and name not in session.faults.recording.missing_topics:
                received = math.ceil(session.recorded_seconds(now_mono) * spec.rate_hz - 1e-9)
                written = received - round(received * session.faults.recording.drop_rate)
            counts[name] = {"received": received, "written": written, "dropped": received - written}
        return counts

    def _metadata(self) -> dict[str, Any]:
        last = self._last
        return {
            "output_path": last.output_path if last else None,
            "sidecar_enabled": self.sidecar_mode != "none",
            "sidecar_generation_mode": self.sidecar_mode,
            "sidecar_generated": bool(last and last.sidecar_path),
            "sidecar_path": last.sidecar_path if last else None,
            "checksum_sha256": last.checksum_sha256 if last else None,
            "incident_bundle_enabled": False,
            "incident_bundle_created": False,
            "incident_bundle_path": None,
            "incident_bundle_error": None,
        }

    def _discard(self, output: Path) -> None:
        """Delete a recording's files: ``.mcap`` (or the ``.lance`` directory), ``.json``, ``.done``."""
        for path in (output, sidecar_path(output), output.with_name(output.name + ".done")):
            for candidate in (path, path.with_name(path.name + ".tmp")):
                if candidate.is_dir():
                    shutil.rmtree(candidate, ignore_errors=True)
                else:
                    candidate.unlink(missing_ok=True)

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

    def _callback(self, session: _Session, url_field: str, payload: dict[str, Any], delay: float = 0.0) -> None:
        """POST ``payload`` to the task's callback URL on a thread of its own, once, with
        ``Authorization: Bearer <user_token>``, as Axon's callback client does: a slow or broken
        receiver never holds up the recording, and the finish callback may arrive after the
        finish reply."""
        url = session.task_config.get(url_field)
        if not url:
            return
        token = session.task_config.get("user_token")
        headers = {"Authorization": f"Bearer {token}"} if token else {}

        def post() -> None:
            if delay > 0:
                time.sleep(delay)
            try:
                response = httpx.post(url, json=payload, headers=headers, timeout=CALLBACK_TIMEOUT_SECONDS)
                if response.status_code >= 400:
                    logger.warning("%s %s for task %s answered HTTP %d", url_field, url, payload["task_id"], response.status_code)
                else:
                    logger.info("%s delivered for task %s (%s)", url_field, payload["task_id"], payload["status"])
            except httpx.HTTPError as exc:
                logger.warning("%s %s for task %s failed: %s", url_field, url, payload["task_id"], exc)

        threading.Thread(target=post, name=f"axon-sim-callback-{payload['task_id']}", daemon=True).start()


# task_config fields validate_task_config checks on their own; every other Axon field is a string
_NON_STRING_OR_CHECKED = frozenset({"task_id", "device_id", "skills", "topics"})


def validate_task_config(task_config: Any) -> list[dict[str, str]]:
    """Axon's ``validate_task_config_json``: ``[{field, code, message}]``, empty when valid. The
    simulator also refuses a task id or device id that is not a safe file name."""
    if not isinstance(task_config, dict):
        return [{"field": "task_config", "code": "invalid_type", "message": "task_config must be an object"}]
    errors: list[dict[str, str]] = []

    def err(name: str, code: str, message: str) -> None:
        errors.append({"field": name, "code": code, "message": message})

    for name in ("task_id", "device_id"):
        if name not in task_config:
            err(name, "missing_required", f"{name} is required")
        elif not isinstance(task_config[name], str):
            err(name, "invalid_type", f"{name} must be a string")
        elif not task_config[name]:
            err(name, "empty", f"{name} must not be empty")
        else:
            try:
                validate_id(task_config[name], name)
            except InvalidIdError as exc:
                err(name, "invalid_value", str(exc))
    for name in AXON_TASK_CONFIG_FIELDS:
        if name not in _NON_STRING_OR_CHECKED and name in task_config and not isinstance(task_config[name], str):
            err(name, "invalid_type", f"{name} must be a string")
    skills = task_config.get("skills")
    if "skills" in task_config:
        if not isinstance(skills, list):
            err("skills", "invalid_type", "skills must be an array of strings")
        else:
            for i, skill in enumerate(skills):
                if not isinstance(skill, str):
                    err(f"skills[{i}]", "invalid_type", "skills entries must be strings")
    if "topics" in task_config:
        topics = task_config["topics"]
        if not isinstance(topics, list):
            err("topics", "invalid_type", "topics must be an array")
        else:
            for i, item in enumerate(topics):
                if isinstance(item, str):
                    continue
                if not isinstance(item, dict):
                    err(f"topics[{i}]", "invalid_type", "topics entries must be strings or objects")
                elif not (item.get("name") or item.get("topic")):
                    err(f"topics[{i}].name", "missing_required", f"topics[{i}].name is required")
                elif not isinstance(item.get("name", item.get("topic")), str):
                    err(f"topics[{i}].name", "invalid_type", f"topics[{i}].name must be a string")
    return errors


def topic_names(topics: Any) -> list[str]:
    """Topic names of a task config's ``topics`` (strings, or objects with ``name``/``topic``)."""
    names = []
    for item in topics or []:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, dict) and isinstance(item.get("name") or item.get("topic"), str):
            names.append(item.get("name") or item.get("topic"))
    return names


def recorder_version() -> str:
    from .axon_mcap import RECORDER_VERSION

    return f"{RECORDER_VERSION}-sim+{__version__}"


def _callback_time(ns: int) -> str:
    """The callbacks' time format: whole seconds, UTC (``YYYY-MM-DDTHH:MM:SSZ``)."""
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- HTTP ------------------------------------------------------------------------------------


def _on_wire(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """The fields Axon sends for RPC ``name`` (:data:`WIRE_FIELDS`)."""
    keep = WIRE_FIELDS.get(name)
    return dict(data) if keep is None else {k: data[k] for k in keep if k in data}


def _build_app(recorder: SimulatedRecorder) -> Starlette:
    def envelope(success: bool, message: str, data: dict[str, Any] | None = None, status: int = 200) -> JSONResponse:
        return JSONResponse({"success": success, "message": message, "data": data or {}}, status_code=status)

    async def rpc(request: Request) -> JSONResponse:
        """Axon's router: ``/rpc/<method>`` by (method, HTTP verb); anything else is a 404."""
        method = request.path_params["method"]
        handler = routes.get((method, request.method))
        if handler is None:
            return envelope(False, f"Unknown RPC method or invalid HTTP method: {method}", None, 404)
        if request.method == "GET":
            message, data = await run_in_threadpool(handler)
            return envelope(True, message, _on_wire(method, data))
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            return JSONResponse({"success": False, "message": f"JSON parse error: {exc}"}, status_code=400)
        if not isinstance(body, dict):
            body = {}  # Axon reads parameters from an object; anything else has none
        try:
            message, data = await run_in_threadpool(handler, body)
        except RpcRefusal as refusal:
            logger.info("simulator %s refused %s: %s", recorder.robot_id, request.url.path, refusal.message)
            refused = {"state": recorder.state}
            if "validation_errors" in refusal.data:
                refused["validation_errors"] = refusal.data["validation_errors"]
            refused.update(refusal.data.get("batch") or {})
            # Axon answers a refusal with HTTP 200 and success=false
            return envelope(False, refusal.message, refused)
        return envelope(True, message, _on_wire(method, data))

    routes: dict[tuple[str, str], Callable[..., tuple[str, dict[str, Any]]]] = {
        ("config", "POST"): recorder.rpc_config,
        ("begin", "POST"): recorder.rpc_begin,
        ("finish", "POST"): recorder.rpc_finish,
        ("pause", "POST"): recorder.rpc_pause,
        ("resume", "POST"): recorder.rpc_resume,
        ("cancel", "POST"): recorder.rpc_cancel,
        ("clear", "POST"): recorder.rpc_clear,
        ("quit", "POST"): recorder.rpc_quit,
        ("task_status", "POST"): recorder.rpc_task_status,
        ("begin_batch", "POST"): lambda body: recorder.rpc_batch("begin", body),
        ("finish_batch", "POST"): lambda body: recorder.rpc_batch("finish", body),
        ("cancel_batch", "POST"): lambda body: recorder.rpc_batch("cancel", body),
        ("log_levels", "POST"): lambda body: recorder.rpc_log_levels(),
        ("state", "GET"): recorder.rpc_state,
        ("stats", "GET"): recorder.rpc_stats,
        ("status", "GET"): lambda: ("Status retrieved successfully", recorder.rpc_stats()[1]),
        ("drop_stats", "GET"): recorder.rpc_drop_stats,
        ("latency_stats", "GET"): recorder.rpc_latency_stats,
        ("tasks", "GET"): recorder.rpc_tasks,
        ("log_levels", "GET"): recorder.rpc_log_levels,
    }

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(recorder.rpc_health())

    async def faults_endpoint(request: Request) -> JSONResponse:
        if request.method == "GET":
            return envelope(True, "current faults", recorder.faults.to_dict())
        try:
            body = await request.json()
        except ValueError:
            return envelope(False, "request body is not valid JSON", None, 400)
        try:
            faults = recorder.set_faults(body)
        except FaultsError as exc:
            return envelope(False, str(exc), recorder.faults.to_dict(), 400)
        return envelope(True, "faults set", faults.to_dict())

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code in (404, 405):
            return JSONResponse({"success": False, "message": "Not found"}, status_code=404)
        return envelope(False, str(exc.detail), {"state": recorder.state}, exc.status_code)

    return Starlette(
        routes=[
            Route("/rpc/{method}", rpc, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
            Route("/health", health, methods=["GET"]),
            Route("/", health, methods=["GET"]),
            Route("/sim/faults", faults_endpoint, methods=["GET", "POST"]),
        ],
        exception_handlers={HTTPException: http_error},
    )


# -- running it ------------------------------------------------------------------------------


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening-ready TCP socket; port 0 picks a free one (read it back from getsockname)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve_app_in_thread(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, sock: socket.socket | None = None, startup_timeout: float = 10.0
) -> tuple[str, Callable[[], None], Any]:
    """Serve an ASGI ``app`` with uvicorn in a daemon thread; return ``(url, stop, server)``.
    ``sock`` may be a socket bound earlier (and not yet listening): connections are refused
    until the server starts, which lets a caller reserve a port race-free."""
    import uvicorn

    sock = sock or bind_socket(host, port)
    url = url_of(sock)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            # stop() must not hang behind a request that never finishes
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{url}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"server did not start on {url}")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    return url, stop, server


def serve_in_thread(
    port: int = 0,
    data_dir: str | os.PathLike | None = None,
    *,
    robot_id: str = "sim-robot",
    faults: SimFaults | Mapping[str, Any] | None = None,
    host: str = "127.0.0.1",
    recorder: SimulatedRecorder | None = None,
) -> tuple[str, Callable[[], None]]:
    """Serve a simulated recorder on ``host:port`` in a background thread; return its base URL
    and a ``stop()`` that shuts it down (idempotent). Pass ``recorder`` to keep a handle on it
    (faults, state); otherwise one is built from ``data_dir``, ``robot_id`` and ``faults``.
    With the fault ``die_after_seconds`` the server shuts itself down, as a crashed recorder."""
    if recorder is None:
        if data_dir is None:
            raise ValueError("serve_in_thread needs data_dir (or a recorder)")
        recorder = SimulatedRecorder(data_dir, robot_id, faults=faults)
    url, stop, server = serve_app_in_thread(recorder.app, host=host, port=port)
    previous_on_crash = recorder.on_crash

    def crash() -> None:
        server.should_exit = True
        if previous_on_crash is not None:
            previous_on_crash()

    recorder.on_crash = crash
    recorder.on_quit = lambda: setattr(server, "should_exit", True)
    logger.info("simulated recorder %s serving on %s (data in %s)", recorder.robot_id, url, recorder.data_dir)
    return url, stop


# -- small pure helpers ----------------------------------------------------------------------


def _require_task_id(body: Mapping[str, Any], state: str) -> str:
    if "task_id" not in body:
        raise RpcRefusal("Missing required parameter: task_id", state=state)
    value = body["task_id"]
    if not isinstance(value, str):
        raise RpcRefusal("task_id must be a string", state=state)
    return value


def _public_task_config(task_config: Mapping[str, Any]) -> dict[str, Any]:
    """Axon never echoes callback URLs or the user token (``task_config_to_public_json``)."""
    return {k: v for k, v in task_config.items() if k not in PRIVATE_TASK_CONFIG_FIELDS}


def _dataset_metadata(task_config: Mapping[str, Any]) -> dict[str, Any]:
    """The task's labels for the sidecar, which travels to cloud storage: no secrets, and the
    sub-scene also under the domain's spelling ``sub_scene``."""
    metadata = _public_task_config(task_config)
    if "subscene" in metadata:
        metadata.setdefault("sub_scene", metadata["subscene"])
    return metadata


def _seed_for(task_id: str) -> int:
    """A stable seed per task: recordings differ between tasks, and a task's is reproducible."""
    return int.from_bytes(hashlib.sha256(task_id.encode()).digest()[:4], "big")


def _directory_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:  # a dataset being renamed into place
                pass
    return total
