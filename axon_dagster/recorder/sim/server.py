"""The simulated Axon recorder: Axon's HTTP RPC (v0.4) and state machine over synthetic sensors.

``SimulatedRecorder`` is the recorder (state machine, statistics, faults, callbacks); its ``app``
is a Starlette application speaking the RPC; :func:`serve_in_thread` runs one on a localhost port
for tests and the demo; ``axon-sim`` (:mod:`.cli`) runs one as a process.

At ``finish`` it writes ``<data_dir>/<task_id>.lance`` and the sidecar ``<task_id>.json`` with
:func:`.synthetic.write_recording`, covering the recorded wall-clock interval minus paused time.
It is a test peer and the embedded default, never a stand-in inside production code paths.

Faults (``POST /sim/faults`` or ``axon-sim --faults``): every field of :class:`.synthetic.Faults`
(``fail_start`` refuses ``begin``; the others shape the written data) plus ``die_after_seconds``:
that long after ``begin`` (or after being set, when a session is already open) the server stops
answering, as a crashed recorder does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import socket
import threading
import time
from dataclasses import dataclass
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
from axon_dagster.recorder.config import PRIVATE_TASK_CONFIG_FIELDS
from axon_dagster.storage.recording import sidecar_path

from .synthetic import DEFAULT_TOPICS, Faults, TopicSpec, write_recording

logger = logging.getLogger(__name__)

IDLE, READY, RECORDING, PAUSED = "idle", "ready", "recording", "paused"
SERVICE_NAME = "axon-sim"
CALLBACK_TIMEOUT_SECONDS = 5.0


class FaultsError(ValueError):
    """A faults specification the simulator cannot apply."""


@dataclass(frozen=True)
class SimFaults:
    """What the simulator should get wrong: data faults for the recording, plus a crash."""

    recording: Faults = Faults()
    die_after_seconds: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "SimFaults":
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise FaultsError(f"faults must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        known = sorted({f.name for f in dataclasses.fields(Faults)} | {"die_after_seconds"})
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise FaultsError(f"unknown fault(s): {', '.join(map(str, unknown))}; known: {', '.join(known)}")
        die_after = data.pop("die_after_seconds", None)
        if die_after is not None and (
            isinstance(die_after, bool)
            or not isinstance(die_after, (int, float))
            or not math.isfinite(die_after)
            or die_after < 0
        ):
            raise FaultsError(f"fault die_after_seconds must be a non-negative number of seconds, got {die_after!r}")
        try:
            recording = Faults.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise FaultsError(str(exc)) from None
        return cls(recording=recording, die_after_seconds=die_after)

    def to_dict(self) -> dict[str, Any]:
        return {**self.recording.to_dict(), "die_after_seconds": self.die_after_seconds}


class RpcRefusal(Exception):
    """An RPC the state machine refuses. Over HTTP it becomes ``{success: false, message}`` with
    HTTP ``status``; other transports (the ROS modes of a later issue) map it their own way."""

    def __init__(self, message: str, status: int = 400, **data: Any):
        super().__init__(message)
        self.message = message
        self.status = status
        self.data = data


@dataclass
class _Session:
    """The task a recorder holds from config to finish."""

    task_config: dict[str, Any]
    topics: dict[str, TopicSpec]
    dataset_path: Path
    faults: SimFaults | None = None  # snapshot taken at begin
    started_wall: datetime | None = None
    started_ns: int = 0  # time.time_ns() at begin: the recording's first log time
    started_mono: float = 0.0
    paused_total: float = 0.0
    paused_since: float | None = None

    @property
    def task_id(self) -> str:
        return self.task_config["task_id"]

    def recorded_seconds(self, now_mono: float) -> float:
        """Wall-clock time since begin, minus time spent paused."""
        paused = self.paused_total + (now_mono - self.paused_since if self.paused_since is not None else 0.0)
        return max(0.0, now_mono - self.started_mono - paused)


class SimulatedRecorder:
    """A simulated Axon recorder holding one task at a time (IDLE → READY → RECORDING ↔ PAUSED).

    Thread-safe: the RPC handlers run in a thread pool and serialize on one lock, so ``finish``
    (which writes the dataset) is atomic with respect to every other call.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        robot_id: str = "sim-robot",
        *,
        faults: SimFaults | Mapping[str, Any] | None = None,
        topics: Mapping[str, TopicSpec] = DEFAULT_TOPICS,
        on_crash: Callable[[], None] | None = None,
    ):
        self.robot_id = validate_id(robot_id, "robot_id")
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.available_topics = dict(topics)
        self.on_crash = on_crash
        self._faults = faults if isinstance(faults, SimFaults) else SimFaults.from_dict(faults)
        self._lock = threading.RLock()
        self._state = IDLE
        self._session: _Session | None = None
        self._last_dataset_path = ""
        self._last_error = ""
        self._crash_timer: threading.Timer | None = None
        self._warmed_up = False
        self.crashed = threading.Event()
        self.app = _build_app(self)

    def warm_up(self) -> None:
        """Import the Lance writer in the background (it takes seconds on a cold start), so the
        first ``finish`` does not pay for it while its caller waits. Called at the first config:
        a simulator that never records never loads it."""
        if self._warmed_up:
            return
        self._warmed_up = True

        def load() -> None:
            try:
                import lance  # noqa: F401
            except ImportError as exc:  # finish will report it; nothing to do here
                logger.warning("simulator %s cannot import lance: %s", self.robot_id, exc)

        threading.Thread(target=load, name="axon-sim-warm-up", daemon=True).start()

    # -- state -------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    @property
    def faults(self) -> SimFaults:
        return self._faults

    def set_faults(self, faults: SimFaults | Mapping[str, Any] | None) -> SimFaults:
        new = faults if isinstance(faults, SimFaults) else SimFaults.from_dict(faults)
        with self._lock:
            self._faults = new
            logger.info("simulator %s faults set to %s", self.robot_id, new.to_dict())
            if new.die_after_seconds is not None and self._state in (RECORDING, PAUSED):
                self._arm_crash(new.die_after_seconds)
        return new

    # -- RPCs, transport-independent: each returns the reply's (message, data) or raises RpcRefusal

    def rpc_config(self, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        task_config = body.get("task_config")
        if not isinstance(task_config, dict):
            raise RpcRefusal("Missing 'task_config' in request parameters (expected a JSON object)")
        task_id = _require_id(task_config, "task_id")
        _require_id(task_config, "device_id")
        for name in ("topics", "skills"):
            value = task_config.get(name, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise RpcRefusal(f"task_config.{name} must be a list of strings")
        with self._lock:
            if self._state in (RECORDING, PAUSED):
                raise RpcRefusal(
                    f"Cannot set config in state: {self._state} (task {self._session.task_id!r} is open; "
                    "finish or cancel it first)",
                    state=self._state,
                )
            if self._state == READY and self._session.task_id != task_id:
                raise RpcRefusal(
                    f"a config for task {self._session.task_id!r} is pending; call /rpc/clear before "
                    f"configuring task {task_id!r}",
                    state=self._state,
                    pending_task_id=self._session.task_id,
                )
            topics = self._select_topics(task_config.get("topics") or [])
            dataset_path = self.data_dir / f"{task_id}.lance"
            if dataset_path.exists() or sidecar_path(dataset_path).exists():
                raise RpcRefusal(f"a recording of task {task_id!r} already exists at {dataset_path}", state=self._state)
            if task_config["device_id"] != self.robot_id:
                logger.warning("task %s configured for device %s on robot %s", task_id, task_config["device_id"], self.robot_id)
            self._session = _Session(task_config=dict(task_config), topics=topics, dataset_path=dataset_path)
            self._state = READY
        self.warm_up()
        logger.info("simulator %s: READY for task %s (topics %s)", self.robot_id, task_id, sorted(topics))
        return "Task configuration set successfully", {"state": READY, "task_id": task_id, "dataset_path": str(dataset_path)}

    def rpc_begin(self, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        task_id = _require_task_id(body, self._state)
        with self._lock:
            if self._state != READY:
                raise RpcRefusal(
                    f"Cannot start recording from state: {self._state}. Must be in READY state "
                    "(call /rpc/config first).",
                    state=self._state,
                )
            session = self._session
            self._check_task(session, task_id)
            faults = self._faults
            if faults.recording.fail_start:
                self._last_error = "failed to start recording: simulated start failure (fault fail_start)"
                raise RpcRefusal(self._last_error, status=500, state=self._state, task_id=task_id)
            if session.dataset_path.exists():
                raise RpcRefusal(f"a recording of task {task_id!r} already exists at {session.dataset_path}", state=self._state)
            session.faults = faults
            session.started_wall = datetime.now(timezone.utc)
            session.started_ns = time.time_ns()
            session.started_mono = time.monotonic()
            self._state = RECORDING
            self._last_error = ""
            if faults.die_after_seconds is not None:
                self._arm_crash(faults.die_after_seconds)
        logger.info("simulator %s: RECORDING task %s to %s", self.robot_id, task_id, session.dataset_path)
        self._callback(session, "start_callback_url", {"status": "recording", **self._callback_base(session)})
        return "Recording started successfully", {
            "state": RECORDING,
            "task_id": task_id,
            "dataset_path": str(session.dataset_path),
            "started_at": session.started_wall.isoformat(),
        }

    def rpc_finish(self, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        task_id = _require_task_id(body, self._state)
        with self._lock:
            if self._state not in (RECORDING, PAUSED):
                raise RpcRefusal(
                    f"Cannot finish recording from state: {self._state}. Must be in RECORDING or PAUSED state.",
                    state=self._state,
                )
            session = self._session
            self._check_task(session, task_id)
            duration_s = session.recorded_seconds(time.monotonic())
            self._disarm_crash()
            # Whatever happens next, the session is over: a recorder that failed to write returns to IDLE.
            self._state, self._session = IDLE, None
            try:
                sidecar = write_recording(
                    session.dataset_path,
                    task_id=task_id,
                    robot_id=self.robot_id,
                    start_ns=session.started_ns,
                    # a begin/finish within the same millisecond still records one message per topic
                    duration_s=max(duration_s, 1e-3),
                    topics=session.topics,
                    faults=session.faults.recording,
                    metadata=_dataset_metadata(session.task_config),
                    seed=_seed_for(task_id),
                )
            except Exception as exc:  # the recorder must survive any write failure and say why
                self._last_error = f"failed to write recording of task {task_id}: {exc}"
                logger.exception("simulator %s: %s", self.robot_id, self._last_error)
                self._callback(
                    session, "finish_callback_url", {**self._callback_base(session), "status": "failed", "error": self._last_error}
                )
                raise RpcRefusal(self._last_error, status=500, state=IDLE, task_id=task_id) from None
            self._last_dataset_path = str(session.dataset_path)
        flushed = sum(1 for rel in sidecar.files if rel.startswith("data/"))
        logger.info(
            "simulator %s: finished task %s: %d messages over %.2f s in %s",
            self.robot_id,
            task_id,
            sidecar.row_count,
            duration_s,
            session.dataset_path,
        )
        size = sum((session.dataset_path / rel).stat().st_size for rel in sidecar.files)
        self._callback(
            session,
            "finish_callback_url",
            {
                **self._callback_base(session),
                "status": "finished",
                "finished_at": datetime.now(timezone.utc).isoformat(),
                "duration_sec": duration_s,
                "message_count": sidecar.row_count,
                "file_size_bytes": size,
                "sidecar_path": str(sidecar_path(session.dataset_path)),
                "error": None,
            },
        )
        return "Recording finished successfully", {
            "state": IDLE,
            "task_id": task_id,
            "dataset_path": str(session.dataset_path),
            "sidecar_path": str(sidecar_path(session.dataset_path)),
            "dataset_digest": sidecar.dataset_digest,
            "message_count": sidecar.row_count,
            "duration_sec": duration_s,
            "flushed_batches": flushed,
        }

    def rpc_pause(self, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        with self._lock:
            if self._state != RECORDING:
                raise RpcRefusal(f"Cannot pause from state: {self._state}. Must be in RECORDING state.", state=self._state)
            self._session.paused_since = time.monotonic()
            self._state = PAUSED
            task_id = self._session.task_id
        logger.info("simulator %s: PAUSED task %s", self.robot_id, task_id)
        return "Recording paused successfully", {"state": PAUSED, "task_id": task_id}

    def rpc_resume(self, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        with self._lock:
            if self._state != PAUSED:
                raise RpcRefusal(f"Cannot resume from state: {self._state}. Must be in PAUSED state.", state=self._state)
            session = self._session
            session.paused_total += time.monotonic() - session.paused_since
            session.paused_since = None
            self._state = RECORDING
        logger.info("simulator %s: RECORDING task %s again", self.robot_id, session.task_id)
        return "Recording resumed successfully", {"state": RECORDING, "task_id": session.task_id}

    def rpc_cancel(self, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        task_id = _require_task_id(body, self._state)
        with self._lock:
            if self._state not in (RECORDING, PAUSED):
                raise RpcRefusal(
                    f"Cannot cancel from state: {self._state}. Must be in RECORDING or PAUSED state.", state=self._state
                )
            session = self._session
            self._check_task(session, task_id)
            self._disarm_crash()
            self._state, self._session = IDLE, None
        logger.info("simulator %s: cancelled task %s; nothing written", self.robot_id, task_id)
        self._callback(session, "finish_callback_url", {**self._callback_base(session), "status": "cancelled", "error": None})
        return "Recording cancelled successfully", {"state": IDLE, "task_id": task_id}

    def rpc_clear(self, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        with self._lock:
            if self._state != READY:
                raise RpcRefusal(f"Cannot clear config from state: {self._state}. Must be in READY state.", state=self._state)
            task_id = self._session.task_id
            self._state, self._session = IDLE, None
        logger.info("simulator %s: cleared pending config of task %s", self.robot_id, task_id)
        return "Configuration cleared successfully", {"state": IDLE, "task_id": task_id}

    def rpc_state(self) -> tuple[str, dict[str, Any]]:
        with self._lock:
            data: dict[str, Any] = {"state": self._state, "running": self._state == RECORDING}
            if self._session is not None:
                data["task_id"] = self._session.task_id
                data["task_config"] = _public_task_config(self._session.task_config)
                data["dataset_path"] = str(self._session.dataset_path)
            data["last_dataset_path"] = self._last_dataset_path
            data["last_error"] = self._last_error
        return "State retrieved successfully", data

    def rpc_stats(self) -> tuple[str, dict[str, Any]]:
        """Axon's counters plus per-topic message counts of the open session (elapsed × rate)."""
        with self._lock:
            topics: dict[str, dict[str, Any]] = {}
            if self._state in (RECORDING, PAUSED):
                session = self._session
                elapsed = session.recorded_seconds(time.monotonic())
                drop_rate = session.faults.recording.drop_rate
                for name, spec in sorted(session.topics.items()):
                    if name in session.faults.recording.missing_topics:
                        continue  # a silent topic is not an active one
                    received = math.ceil(elapsed * spec.rate_hz - 1e-9)
                    written = received - round(received * drop_rate)
                    topics[name] = {
                        "message_type": spec.message_type,
                        "rate_hz": spec.rate_hz,
                        "messages": written,
                        "messages_dropped": received - written,
                        "bytes": written * spec.payload_bytes,
                    }
            else:
                elapsed = 0.0
            data = {
                "messages_received": sum(t["messages"] + t["messages_dropped"] for t in topics.values()),
                "messages_written": sum(t["messages"] for t in topics.values()),
                "messages_dropped": sum(t["messages_dropped"] for t in topics.values()),
                "bytes_written": sum(t["bytes"] for t in topics.values()),
                "topics": topics,
                "recorded_seconds": elapsed,
                "pending_batches": 0,
                "disk_usage_gb": _directory_bytes(self.data_dir) / 1e9,
                "last_error": self._last_error,
                "available_topics": sorted(self.available_topics),
            }
        return "Statistics retrieved successfully", data

    def rpc_health(self) -> tuple[str, dict[str, Any]]:
        return "ok", {
            "status": "ok",
            "service": SERVICE_NAME,
            "version": __version__,
            "running": self._state == RECORDING,
            "state": self._state,
            "robot_id": self.robot_id,
        }

    # -- helpers -----------------------------------------------------------------------------

    def _select_topics(self, requested: list[str]) -> dict[str, TopicSpec]:
        """The sensors this robot has among those asked for (all of them when none are named)."""
        if not requested:
            return dict(self.available_topics)
        chosen = {name: self.available_topics[name] for name in requested if name in self.available_topics}
        absent = sorted(set(requested) - set(chosen))
        if not chosen:
            raise RpcRefusal(
                f"none of the requested topics exist on robot {self.robot_id}: {absent}; "
                f"available: {sorted(self.available_topics)}",
                state=self._state,
            )
        if absent:
            logger.warning("simulator %s has no topic(s) %s; they will not be recorded", self.robot_id, absent)
        return chosen

    @staticmethod
    def _check_task(session: _Session, task_id: str) -> None:
        if session.task_id != task_id:
            raise RpcRefusal(
                f"task_id mismatch: expected {session.task_id!r} but got {task_id!r}",
                expected_task_id=session.task_id,
                provided_task_id=task_id,
            )

    def _arm_crash(self, after_seconds: float) -> None:
        self._disarm_crash()
        timer = threading.Timer(after_seconds, self._crash)
        timer.daemon = True
        self._crash_timer = timer
        timer.start()
        logger.warning("simulator %s will stop answering in %.2f s (fault die_after_seconds)", self.robot_id, after_seconds)

    def _disarm_crash(self) -> None:
        if self._crash_timer is not None:
            self._crash_timer.cancel()
            self._crash_timer = None

    def _crash(self) -> None:
        logger.error("simulator %s: simulated crash (fault die_after_seconds); no longer answering", self.robot_id)
        self.crashed.set()
        if self.on_crash is not None:
            self.on_crash()

    def _callback_base(self, session: _Session) -> dict[str, Any]:
        return {
            "task_id": session.task_id,
            "device_id": session.task_config.get("device_id", self.robot_id),
            "dataset_path": str(session.dataset_path),
            "output_path": str(session.dataset_path),  # Axon's name for the same thing
            "started_at": session.started_wall.isoformat() if session.started_wall else None,
            "topics": sorted(session.topics),
        }

    def _callback(self, session: _Session, url_field: str, payload: dict[str, Any]) -> None:
        """POST ``payload`` to the task's callback URL, in the background: a slow or broken
        callback receiver must never hold up or fail the recording."""
        url = session.task_config.get(url_field)
        if not url:
            return
        token = session.task_config.get("user_token")
        headers = {"Authorization": f"Bearer {token}"} if token else {}

        def post() -> None:
            try:
                response = httpx.post(url, json=payload, headers=headers, timeout=CALLBACK_TIMEOUT_SECONDS)
                if response.status_code >= 400:
                    logger.warning("%s %s for task %s answered HTTP %d", url_field, url, payload["task_id"], response.status_code)
                else:
                    logger.info("%s delivered for task %s (%s)", url_field, payload["task_id"], payload["status"])
            except httpx.HTTPError as exc:
                logger.warning("%s %s for task %s failed: %s", url_field, url, payload["task_id"], exc)

        threading.Thread(target=post, name=f"axon-sim-callback-{payload['task_id']}", daemon=True).start()


# -- HTTP ------------------------------------------------------------------------------------


def _build_app(recorder: SimulatedRecorder) -> Starlette:
    def envelope(success: bool, message: str, data: dict[str, Any] | None = None, status: int = 200) -> JSONResponse:
        return JSONResponse({"success": success, "message": message, "data": data or {}}, status_code=status)

    def post_rpc(handler: Callable[[Mapping[str, Any]], tuple[str, dict[str, Any]]]):
        async def endpoint(request: Request) -> JSONResponse:
            raw = await request.body()
            try:
                body = json.loads(raw) if raw.strip() else {}
            except ValueError:
                return envelope(False, "request body is not valid JSON", {"state": recorder.state}, 400)
            if not isinstance(body, dict):
                return envelope(False, "request body must be a JSON object", {"state": recorder.state}, 400)
            try:
                message, data = await run_in_threadpool(handler, body)
            except RpcRefusal as refusal:
                logger.info("simulator %s refused %s: %s", recorder.robot_id, request.url.path, refusal.message)
                return envelope(False, refusal.message, {"state": recorder.state, **refusal.data}, refusal.status)
            return envelope(True, message, data)

        return endpoint

    def get_rpc(handler: Callable[[], tuple[str, dict[str, Any]]]):
        async def endpoint(request: Request) -> JSONResponse:
            message, data = await run_in_threadpool(handler)
            return envelope(True, message, data)

        return endpoint

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
        message = (
            f"unknown endpoint {request.method} {request.url.path}"
            if exc.status_code == 404
            else f"{request.method} not allowed on {request.url.path}"
            if exc.status_code == 405
            else str(exc.detail)
        )
        return envelope(False, message, {"state": recorder.state}, exc.status_code)

    routes = [
        Route("/rpc/config", post_rpc(recorder.rpc_config), methods=["POST"]),
        Route("/rpc/begin", post_rpc(recorder.rpc_begin), methods=["POST"]),
        Route("/rpc/finish", post_rpc(recorder.rpc_finish), methods=["POST"]),
        Route("/rpc/pause", post_rpc(recorder.rpc_pause), methods=["POST"]),
        Route("/rpc/resume", post_rpc(recorder.rpc_resume), methods=["POST"]),
        Route("/rpc/cancel", post_rpc(recorder.rpc_cancel), methods=["POST"]),
        Route("/rpc/clear", post_rpc(recorder.rpc_clear), methods=["POST"]),
        Route("/rpc/state", get_rpc(recorder.rpc_state), methods=["GET"]),
        Route("/rpc/stats", get_rpc(recorder.rpc_stats), methods=["GET"]),
        Route("/health", get_rpc(recorder.rpc_health), methods=["GET"]),
        Route("/", get_rpc(recorder.rpc_health), methods=["GET"]),
        Route("/sim/faults", faults_endpoint, methods=["GET", "POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


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
    logger.info("simulated recorder %s serving on %s (data in %s)", recorder.robot_id, url, recorder.data_dir)
    return url, stop


# -- small pure helpers ----------------------------------------------------------------------


def _require_id(task_config: Mapping[str, Any], name: str) -> str:
    value = task_config.get(name)
    if value is None or value == "":
        raise RpcRefusal(f"Missing required parameter: task_config.{name}")
    try:
        return validate_id(value, name)
    except InvalidIdError as exc:
        raise RpcRefusal(str(exc)) from None


def _require_task_id(body: Mapping[str, Any], state: str) -> str:
    value = body.get("task_id")
    if not value:
        raise RpcRefusal("Missing required parameter: task_id", state=state)
    if not isinstance(value, str):
        raise RpcRefusal(f"task_id must be a string, got {value!r}", state=state)
    return value


def _public_task_config(task_config: Mapping[str, Any]) -> dict[str, Any]:
    """Axon never echoes callback URLs or the user token."""
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
