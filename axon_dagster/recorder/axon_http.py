"""``RecorderClient`` over Axon's HTTP RPC (v0.4).

Wire format: every RPC answers ``{success, message, data}``; a refusal is ``success=false`` with
the recorder's explanation (Axon sends it with HTTP 400, 500 or 501). States are spelled in lower
case on the wire (``idle``, ``ready``, ``recording``, ``paused``).

Failures are raised, never returned, so a caller cannot ignore them; each cause has its own
exception from :mod:`axon_dagster.recorder.protocol`:

- :class:`RecorderUnreachable` — nothing answers (connection refused, DNS, connection lost);
  a failed *connect* is retried ``retry_attempts`` times with exponential backoff because the
  request never reached the recorder;
- :class:`RecorderTimeout` — the recorder took the request but did not answer in time; never
  retried: it may have acted, and a second ``begin`` must not race the first;
- :class:`RecorderRefused` — ``success=false``; never retried;
- :class:`RecorderProtocolError` — the reply is not the v0.4 envelope, or it speaks of another task.

A bad config file raises :class:`~axon_dagster.recorder.config.RecordingConfigError` before any call.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import httpx

from .config import RecordingConfig
from .protocol import (
    RecorderProtocolError,
    RecorderRefused,
    RecorderStatus,
    RecorderTimeout,
    RecorderUnreachable,
    StartRecordingResponse,
    StopRecordingResponse,
    UpdateConfigResponse,
)

logger = logging.getLogger(__name__)

IDLE, READY, RECORDING, PAUSED = "idle", "ready", "recording", "paused"
RPC_STATES = (IDLE, READY, RECORDING, PAUSED)
# A session is open from begin to finish/cancel; pausing does not close it.
OPEN_SESSION_STATES = (RECORDING, PAUSED)

_MAX_BODY_IN_ERROR = 200


@dataclass(frozen=True)
class RpcReply:
    """A successful ``{success: true, message, data}`` reply."""

    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecorderState:
    """``GET /rpc/state``: the state machine's position and the task it holds (if any)."""

    state: str
    task_id: str | None
    task_config: dict[str, Any]
    data: dict[str, Any]

    @property
    def session_open(self) -> bool:
        return self.state in OPEN_SESSION_STATES


class AxonHttpRecorder:
    """Talks to one Axon recorder at ``base_url`` (e.g. ``http://127.0.0.1:8091``).

    ``retry_attempts`` is the number of *re*-tries after the first attempt when the connection
    cannot be made (so ``retry_attempts=3`` makes at most 4 attempts); backoff doubles from
    ``backoff_seconds`` up to ``max_backoff_seconds``. ``transport`` lets a caller wrap httpx's
    transport (tests count attempts with it).
    """

    def __init__(
        self,
        base_url: str,
        timeout_seconds: float = 5.0,
        retry_attempts: int = 3,
        *,
        backoff_seconds: float = 0.1,
        max_backoff_seconds: float = 2.0,
        transport: httpx.BaseTransport | None = None,
    ):
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"recorder base_url must start with http:// or https://, got {base_url!r}")
        if not timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds!r}")
        if isinstance(retry_attempts, bool) or not isinstance(retry_attempts, int) or retry_attempts < 0:
            raise ValueError(f"retry_attempts must be a non-negative integer, got {retry_attempts!r}")
        if backoff_seconds < 0 or max_backoff_seconds < 0:
            raise ValueError("backoff_seconds and max_backoff_seconds must not be negative")
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = float(timeout_seconds)
        self.retry_attempts = retry_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self._http = httpx.Client(base_url=self.base_url, timeout=self.timeout_seconds, transport=transport)

    def __repr__(self) -> str:
        return f"AxonHttpRecorder({self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "AxonHttpRecorder":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- RecorderClient ----------------------------------------------------------------------

    def start_recording(self, config_path: str) -> StartRecordingResponse:
        """Push the task's config and begin recording it.

        Starting the task that is already recording is a harmless repeat (a duplicate teleop
        press). A different task's pending config is cleared first; a different task's open
        session is never touched: that raises :class:`RecorderRefused`.
        """
        config = RecordingConfig.read(config_path)
        task_id = config.task_id
        current = self.state()
        if current.session_open:
            if current.task_id == task_id:
                logger.info("recorder %s already %s task %s; start is a repeat", self.base_url, current.state, task_id)
                return StartRecordingResponse(True, f"already {current.state} task {task_id}")
            raise RecorderRefused(
                "start_recording",
                f"recorder is busy: {current.state} task {current.task_id!r}; finish or cancel it first",
            )
        self._push_config(config, current)
        reply = self.begin(task_id)
        path = reply.data.get("dataset_path", "")
        logger.info("recorder %s recording task %s%s", self.base_url, task_id, f" to {path}" if path else "")
        return StartRecordingResponse(True, reply.message or f"recording task {task_id}")

    def stop_recording(self) -> StopRecordingResponse:
        """Finish the open session, whichever task it records; the recorder writes the dataset."""
        current = self.state()
        if not current.session_open or not current.task_id:
            raise RecorderRefused("stop_recording", f"nothing to stop: recorder is {current.state}")
        reply = self.finish(current.task_id)
        flushed = reply.data.get("flushed_batches", 0)
        if isinstance(flushed, bool) or not isinstance(flushed, int) or flushed < 0:
            raise RecorderProtocolError(f"finish: flushed_batches must be a non-negative integer, got {flushed!r}")
        logger.info("recorder %s finished task %s (%d batches flushed)", self.base_url, current.task_id, flushed)
        return StopRecordingResponse(True, reply.message or f"finished task {current.task_id}", flushed)

    def get_status(self) -> RecorderStatus:
        """Map ``/rpc/state`` + ``/rpc/stats`` onto the reference design's GetStatus fields.

        Axon v0.4 has no notion of Arrow batches, so ``batch_sizes`` carries the per-topic message
        counts of the open session (aligned with ``active_topics``) when the recorder reports them.
        A paused session counts as recording: it is open and ``finish`` will write it.
        ``dataset_path`` is the open session's dataset, else the last one finished (the simulator
        reports both; a recorder that reports neither gives "").
        """
        current = self.state()
        stats = self.stats()
        per_topic = stats.get("topics")
        if per_topic is not None and not _is_topic_table(per_topic):
            raise RecorderProtocolError(f"stats: 'topics' must map topic names to objects, got {per_topic!r}")
        if current.session_open:
            if per_topic is not None:
                active_topics = sorted(per_topic)
                batch_sizes = [int(_number(per_topic[t].get("messages", 0), f"topics[{t}].messages")) for t in active_topics]
            else:  # a recorder without per-topic counts: the configured topics, counts unknown
                active_topics = [str(t) for t in current.task_config.get("topics") or []]
                batch_sizes = [0] * len(active_topics)
        else:
            active_topics, batch_sizes = [], []
        disk_usage_gb = stats.get("disk_usage_gb")
        if disk_usage_gb is None:
            disk_usage_gb = _number(stats.get("bytes_written", 0), "bytes_written") / 1e9
        return RecorderStatus(
            is_recording=current.session_open,
            # the open session's dataset, else the last one finished (a pending config's is not news)
            dataset_path=str(current.data.get("dataset_path" if current.session_open else "last_dataset_path") or ""),
            active_topics=active_topics,
            batch_sizes=batch_sizes,
            pending_batches=int(_number(stats.get("pending_batches", 0), "pending_batches")),
            disk_usage_gb=float(_number(disk_usage_gb, "disk_usage_gb")),
            last_error=str(stats.get("last_error") or current.data.get("last_error") or ""),
        )

    def update_config(self, config_path: str) -> UpdateConfigResponse:
        """Validate the config file and hold it on the recorder (IDLE/READY → READY), replacing a
        different task's pending config. Refused while a session is open: a recorder holds one
        task at a time, and ``start_recording`` pushes the config again anyway."""
        config = RecordingConfig.read(config_path)
        current = self.state()
        if current.session_open:
            raise RecorderRefused(
                "update_config",
                f"recorder is busy: {current.state} task {current.task_id!r}; "
                f"config for task {config.task_id!r} can be pushed once it finishes",
            )
        reply = self._push_config(config, current)
        return UpdateConfigResponse(True, reply.message or f"config for task {config.task_id} held by the recorder")

    def _push_config(self, config: RecordingConfig, current: RecorderState) -> RpcReply:
        if current.state == READY and current.task_id not in (None, config.task_id):
            logger.info(
                "recorder %s holds a pending config for task %s; clearing it for task %s",
                self.base_url,
                current.task_id,
                config.task_id,
            )
            self.clear()
        return self.config(config.task_config())

    # -- the raw RPCs (for the recording jobs and supervision of later issues) -----------------

    def config(self, task_config: Mapping[str, Any]) -> RpcReply:
        """``POST /rpc/config``: IDLE → READY."""
        task_id = task_config.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise ValueError("task_config needs a non-empty task_id")
        reply = self._rpc("POST", "/rpc/config", "config", {"task_config": dict(task_config)})
        self._expect(reply, "config", task_id=task_id, state=READY)
        return reply

    def begin(self, task_id: str) -> RpcReply:
        """``POST /rpc/begin``: READY → RECORDING."""
        reply = self._rpc("POST", "/rpc/begin", "begin", {"task_id": task_id})
        self._expect(reply, "begin", task_id=task_id, state=RECORDING)
        return reply

    def finish(self, task_id: str) -> RpcReply:
        """``POST /rpc/finish``: RECORDING/PAUSED → IDLE, the dataset written."""
        reply = self._rpc("POST", "/rpc/finish", "finish", {"task_id": task_id})
        self._expect(reply, "finish", task_id=task_id, state=IDLE)
        return reply

    def pause(self) -> RpcReply:
        """``POST /rpc/pause``: RECORDING → PAUSED."""
        reply = self._rpc("POST", "/rpc/pause", "pause", {})
        self._expect(reply, "pause", state=PAUSED)
        return reply

    def resume(self) -> RpcReply:
        """``POST /rpc/resume``: PAUSED → RECORDING."""
        reply = self._rpc("POST", "/rpc/resume", "resume", {})
        self._expect(reply, "resume", state=RECORDING)
        return reply

    def cancel(self, task_id: str) -> RpcReply:
        """``POST /rpc/cancel``: RECORDING/PAUSED → IDLE, the partial recording discarded."""
        reply = self._rpc("POST", "/rpc/cancel", "cancel", {"task_id": task_id})
        self._expect(reply, "cancel", task_id=task_id, state=IDLE)
        return reply

    def clear(self) -> RpcReply:
        """``POST /rpc/clear``: READY → IDLE, the pending config dropped."""
        reply = self._rpc("POST", "/rpc/clear", "clear", {})
        self._expect(reply, "clear", state=IDLE)
        return reply

    def state(self) -> RecorderState:
        """``GET /rpc/state``."""
        data = self._rpc("GET", "/rpc/state", "state").data
        state = data.get("state")
        if not isinstance(state, str) or state.lower() not in RPC_STATES:
            raise RecorderProtocolError(f"state: unknown recorder state {state!r}; expected one of {RPC_STATES}")
        task_config = data.get("task_config") or {}
        if not isinstance(task_config, dict):
            raise RecorderProtocolError(f"state: task_config must be an object, got {type(task_config).__name__}")
        task_id = task_config.get("task_id") or data.get("task_id") or None
        if task_id is not None and not isinstance(task_id, str):
            raise RecorderProtocolError(f"state: task_id must be a string, got {task_id!r}")
        return RecorderState(state=state.lower(), task_id=task_id, task_config=task_config, data=data)

    def stats(self) -> dict[str, Any]:
        """``GET /rpc/stats``: Axon's counters (messages_received/written/dropped, bytes_written)
        plus whatever else the recorder reports (the simulator adds per-topic counts)."""
        return self._rpc("GET", "/rpc/stats", "stats").data

    def health(self) -> dict[str, Any]:
        """``GET /health``. Accepts the envelope and also the bare ``{status, service, version,
        running, state}`` object that Axon releases answer on this route."""
        response = self._send("GET", "/health", None)
        body = _json_body(response, "health")
        if isinstance(body, dict) and "success" not in body and isinstance(body.get("status"), str):
            if response.status_code >= 400:
                raise RecorderRefused("health", f"status {body['status']!r} (HTTP {response.status_code})")
            return body
        return _envelope(response, body, "health").data

    # -- plumbing ----------------------------------------------------------------------------

    def _rpc(self, method: str, path: str, operation: str, body: dict[str, Any] | None = None) -> RpcReply:
        response = self._send(method, path, body)
        return _envelope(response, _json_body(response, operation), operation)

    def _send(self, method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        attempts = self.retry_attempts + 1
        where = f"{method} {self.base_url}{path}"
        for attempt in range(1, attempts + 1):
            try:
                logger.debug("%s (attempt %d/%d)", where, attempt, attempts)
                return self._http.request(method, path, json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # The request never reached the recorder: safe to try again.
                failure = exc
            except httpx.TimeoutException as exc:
                raise RecorderTimeout(
                    f"recorder did not answer {where} within {self.timeout_seconds:g}s ({type(exc).__name__})"
                ) from exc
            except httpx.TransportError as exc:
                if method != "GET":
                    # The request may have been acted on; repeating a state change is not safe.
                    raise RecorderUnreachable(
                        f"connection to the recorder was lost during {where}: {exc or type(exc).__name__}"
                    ) from exc
                failure = exc
            if attempt == attempts:
                break
            delay = min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds)
            logger.warning(
                "recorder unreachable at %s (%s); retry %d/%d in %.2fs",
                where,
                failure or type(failure).__name__,
                attempt,
                self.retry_attempts,
                delay,
            )
            time.sleep(delay)
        raise RecorderUnreachable(
            f"recorder unreachable: {where} failed after {attempts} attempt(s): {failure or type(failure).__name__}"
        ) from failure

    @staticmethod
    def _expect(reply: RpcReply, operation: str, *, task_id: str | None = None, state: str | None = None) -> None:
        """A success that speaks of another task (or lands in another state) is not the reply
        to our request: refuse to build on it."""
        got_task = reply.data.get("task_id")
        if task_id is not None and got_task is not None and got_task != task_id:
            raise RecorderProtocolError(
                f"{operation}: task_id mismatch: asked for task {task_id!r} but the recorder answered for {got_task!r}"
            )
        got_state = reply.data.get("state")
        if state is not None and got_state is not None and str(got_state).lower() != state:
            raise RecorderProtocolError(
                f"{operation}: recorder reports state {got_state!r} after success; expected {state!r}"
            )


def _json_body(response: httpx.Response, operation: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise RecorderProtocolError(
            f"{operation}: HTTP {response.status_code} reply is not JSON "
            f"(is this an Axon v0.4 recorder?): {response.text[:_MAX_BODY_IN_ERROR]!r}"
        ) from None


def _envelope(response: httpx.Response, body: Any, operation: str) -> RpcReply:
    """Check the ``{success, message, data}`` envelope; raise RecorderRefused on success=false."""
    shape_problem = None
    if not isinstance(body, dict):
        shape_problem = f"expected a JSON object, got {type(body).__name__}"
    elif not isinstance(body.get("success"), bool):
        shape_problem = f"'success' must be true or false, got {body.get('success')!r}"
    elif not isinstance(body.get("message", ""), str):
        shape_problem = f"'message' must be a string, got {body.get('message')!r}"
    elif body.get("data") is not None and not isinstance(body.get("data"), dict):
        shape_problem = f"'data' must be an object, got {type(body.get('data')).__name__}"
    if shape_problem:
        raise RecorderProtocolError(
            f"{operation}: HTTP {response.status_code} reply is not an Axon v0.4 envelope: {shape_problem}; "
            f"body {str(body)[:_MAX_BODY_IN_ERROR]!r}"
        )
    message = body.get("message", "")
    if not body["success"]:
        raise RecorderRefused(operation, message or f"HTTP {response.status_code} without a message")
    if response.status_code >= 300:
        raise RecorderProtocolError(f"{operation}: success=true with HTTP status {response.status_code}")
    return RpcReply(message=message, data=body.get("data") or {})


def _is_topic_table(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, dict) for k, v in value.items())


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecorderProtocolError(f"stats: {name} must be a number, got {value!r}")
    return value
