"""``RecorderClient`` over Axon's HTTP RPC (v0.4).

Wire format (Axon v0.4, GitHub ``archebase/axon``): every RPC answers ``{success, message, data}``; a refusal
is HTTP 200 with ``success=false`` and the recorder's explanation (a config refusal adds
``data.validation_errors: [{field, code, message}]``); only an unknown route (404) or unparsable
JSON (400) change the status code. States are lower case (``idle``, ``ready``, ``recording``,
``paused``). ``begin``/``finish`` reply only ``{state, task_id}``: what was written is in
``/rpc/stats`` ``metadata`` (and in the finish callback, which the edge agent receives).
``finish`` can take minutes on a large recording (Axon re-scans and hashes the file), so it gets
its own timeout, ``finish_timeout_seconds``.

Failures are raised, never returned, so a caller cannot ignore them; each cause has its own
exception from :mod:`axon_dagster.recorder.protocol`:

- :class:`RecorderUnreachable` — nothing answers (connection refused, DNS, connection lost);
  a failed *connect* is retried ``retry_attempts`` times with exponential backoff because the
  request never reached the recorder;
- :class:`RecorderTimeout` — the recorder took the request but did not answer in time; never
  retried: it may have acted, and a second ``begin`` must not race the first;
- :class:`RecorderRefused` — ``success=false`` (with Axon's ``validation_errors`` in the message);
  never retried;
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
    RecorderError,
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
# Finishing a large recording takes Axon seconds to minutes (drain, close, re-scan, SHA-256).
DEFAULT_FINISH_TIMEOUT_SECONDS = 900.0


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
    """Talks to one Axon recorder at ``base_url`` (e.g. ``http://127.0.0.1:8080``).

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
        finish_timeout_seconds: float = DEFAULT_FINISH_TIMEOUT_SECONDS,
    ):
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"recorder base_url must start with http:// or https://, got {base_url!r}")
        if not timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds!r}")
        if not finish_timeout_seconds > 0:
            raise ValueError(f"finish_timeout_seconds must be positive, got {finish_timeout_seconds!r}")
        if isinstance(retry_attempts, bool) or not isinstance(retry_attempts, int) or retry_attempts < 0:
            raise ValueError(f"retry_attempts must be a non-negative integer, got {retry_attempts!r}")
        if backoff_seconds < 0 or max_backoff_seconds < 0:
            raise ValueError("backoff_seconds and max_backoff_seconds must not be negative")
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = float(timeout_seconds)
        self.finish_timeout_seconds = max(float(finish_timeout_seconds), self.timeout_seconds)
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
        """Finish the open session, whichever task it records; the recorder writes the recording.
        Waits up to ``finish_timeout_seconds`` (a large file takes Axon minutes). The reply names
        no file: what was written is read from ``/rpc/stats`` ``metadata`` when it is this task's."""
        current = self.state()
        if not current.session_open or not current.task_id:
            raise RecorderRefused("stop_recording", f"nothing to stop: recorder is {current.state}")
        task_id = current.task_id
        reply = self.finish(task_id)
        flushed = reply.data.get("flushed_batches", 0)
        if isinstance(flushed, bool) or not isinstance(flushed, int) or flushed < 0:
            raise RecorderProtocolError(f"finish: flushed_batches must be a non-negative integer, got {flushed!r}")
        written = {}
        try:
            written = self.last_output(task_id)
        except RecorderError as exc:  # the callback or the output directory can still tell
            logger.warning("recorder %s finished task %s but its stats are unreadable: %s", self.base_url, task_id, exc)
        logger.info(
            "recorder %s finished task %s%s", self.base_url, task_id, f" to {written['output_path']}" if written.get("output_path") else ""
        )
        return StopRecordingResponse(
            True,
            reply.message or f"finished task {task_id}",
            flushed,
            output_path=written.get("output_path", ""),
            sidecar_path=written.get("sidecar_path", ""),
            checksum_sha256=written.get("checksum_sha256", ""),
        )

    def last_output(self, task_id: str) -> dict[str, str]:
        """``/rpc/stats`` ``metadata`` (output_path, sidecar_path, checksum_sha256) when it is the
        last finished file of ``task_id`` (``<dir>/<task_id>.mcap``); ``{}`` otherwise."""
        return _metadata_of(self.stats(), task_id)

    def cancel_task(self, task_id: str) -> bool:
        """Cancel the recording only if the recorder's current task is ``task_id``: Axon's cancel
        ignores the task id (and deletes the files), so cancelling blind could destroy another
        task's recording. Returns whether it cancelled."""
        current = self.state()
        if not current.session_open or current.task_id != task_id:
            logger.info(
                "recorder %s is %s%s: not cancelling task %s",
                self.base_url,
                current.state,
                f" task {current.task_id}" if current.task_id else "",
                task_id,
            )
            return False
        self.cancel(task_id)
        return True

    def get_status(self) -> RecorderStatus:
        """Map ``/rpc/state`` + ``/rpc/stats`` onto the reference design's GetStatus fields, from
        Axon's real fields: ``topic_message_counts`` (per-topic received/written/dropped: the
        topics with messages are the active ones, ``batch_sizes`` their written counts; every
        listed topic is a subscription), ``disk_usage`` (``total_used_gb``; ``state: hard_limit``
        with its ``reason`` is the error), ``metadata`` (the last finished file). A paused session
        counts as recording: it is open and ``finish`` will write it. Older peers' fields
        (``topics``, ``disk_usage_gb``, ``last_error``, ``dataset_path``) are read when present.
        """
        current = self.state()
        stats = self.stats()
        counts = stats.get("topic_message_counts")
        if counts is not None and not _is_topic_table(counts):
            raise RecorderProtocolError(f"stats: 'topic_message_counts' must map topic names to objects, got {counts!r}")
        counts = {
            t: {k: int(_number(c.get(k, 0), f"topic_message_counts[{t}].{k}")) for k in ("received", "written", "dropped")}
            for t, c in (counts or {}).items()
        }
        legacy = stats.get("topics")
        if legacy is not None and not _is_topic_table(legacy):
            raise RecorderProtocolError(f"stats: 'topics' must map topic names to objects, got {legacy!r}")
        if not current.session_open:
            active_topics, batch_sizes = [], []
        elif counts:
            active_topics = sorted(t for t, c in counts.items() if c["received"] > 0 or c["written"] > 0)
            batch_sizes = [counts[t]["written"] for t in active_topics]
        elif legacy is not None:
            active_topics = sorted(legacy)
            batch_sizes = [int(_number(legacy[t].get("messages", 0), f"topics[{t}].messages")) for t in active_topics]
        else:  # a recorder without per-topic counts: the configured topics, counts unknown
            active_topics = [str(t) for t in current.task_config.get("topics") or [] if isinstance(t, str)]
            batch_sizes = [0] * len(active_topics)
        disk = stats.get("disk_usage")
        if disk is not None and not isinstance(disk, dict):
            raise RecorderProtocolError(f"stats: 'disk_usage' must be an object, got {disk!r}")
        disk = disk or {}
        if disk.get("total_used_gb") is not None:
            disk_usage_gb = _number(disk["total_used_gb"], "disk_usage.total_used_gb")
        elif stats.get("disk_usage_gb") is not None:
            disk_usage_gb = _number(stats["disk_usage_gb"], "disk_usage_gb")
        else:
            disk_usage_gb = _number(stats.get("bytes_written", 0), "bytes_written") / 1e9
        disk_state = str(disk.get("state") or "")
        last_error = str(stats.get("last_error") or current.data.get("last_error") or "")
        if disk_state == "hard_limit" and not last_error:
            last_error = "Disk hard limit reached" + (f": {disk['reason']}" if disk.get("reason") else "")
        metadata = stats.get("metadata") if isinstance(stats.get("metadata"), dict) else {}
        last_output = str(metadata.get("output_path") or "")
        if current.session_open:
            dataset_path = str(current.data.get("dataset_path") or "")
        else:
            dataset_path = str(current.data.get("last_dataset_path") or last_output)
        return RecorderStatus(
            is_recording=current.session_open,
            dataset_path=dataset_path,
            active_topics=active_topics,
            batch_sizes=batch_sizes,
            pending_batches=int(_number(stats.get("pending_batches", 0), "pending_batches")),
            disk_usage_gb=float(disk_usage_gb),
            last_error=last_error,
            state=current.state,
            subscribed_topics=sorted(counts) if counts else [],
            topic_counts=counts,
            disk_state=disk_state,
            output_path=last_output,
            sidecar_path=str(metadata.get("sidecar_path") or ""),
            checksum_sha256=str(metadata.get("checksum_sha256") or ""),
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
        """``POST /rpc/finish``: RECORDING/PAUSED → IDLE, the recording written (waits up to
        ``finish_timeout_seconds``)."""
        reply = self._rpc("POST", "/rpc/finish", "finish", {"task_id": task_id}, timeout=self.finish_timeout_seconds)
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
        """``POST /rpc/cancel``: RECORDING/PAUSED → IDLE, the recording's files deleted. Axon
        ignores the task id and cancels whatever records: use :meth:`cancel_task` to be safe."""
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
        """``GET /rpc/stats``: Axon's counters (messages_received/written/dropped, bytes_written),
        ``topic_message_counts``, ``disk_usage`` and ``metadata``."""
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

    def _rpc(
        self, method: str, path: str, operation: str, body: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> RpcReply:
        response = self._send(method, path, body, timeout=timeout)
        return _envelope(response, _json_body(response, operation), operation)

    def _send(self, method: str, path: str, body: dict[str, Any] | None, *, timeout: float | None = None) -> httpx.Response:
        timeout = timeout or self.timeout_seconds
        attempts = self.retry_attempts + 1
        where = f"{method} {self.base_url}{path}"
        for attempt in range(1, attempts + 1):
            try:
                logger.debug("%s (attempt %d/%d)", where, attempt, attempts)
                return self._http.request(method, path, json=body, timeout=timeout)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # The request never reached the recorder: safe to try again.
                failure = exc
            except httpx.TimeoutException as exc:
                raise RecorderTimeout(
                    f"recorder did not answer {where} within {timeout:g}s ({type(exc).__name__})"
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
        errors = (body.get("data") or {}).get("validation_errors")
        raise RecorderRefused(
            operation,
            message or f"HTTP {response.status_code} without a message",
            errors if isinstance(errors, list) else None,
        )
    if response.status_code >= 300:
        raise RecorderProtocolError(f"{operation}: success=true with HTTP status {response.status_code}")
    return RpcReply(message=message, data=body.get("data") or {})


def _metadata_of(stats: Mapping[str, Any], task_id: str) -> dict[str, str]:
    """The ``metadata`` of ``/rpc/stats`` when it describes ``task_id``'s recording (its output is
    named after the task: ``<task_id>.mcap``, or ``<task_id>.lance`` for Lance-era peers)."""
    metadata = stats.get("metadata")
    if not isinstance(metadata, Mapping):
        return {}
    output = metadata.get("output_path")
    if not isinstance(output, str) or not output:
        return {}
    name = output.replace("\\", "/").rsplit("/", 1)[-1]
    if name not in (f"{task_id}.mcap", f"{task_id}.lance"):
        return {}
    return {
        "output_path": output,
        "sidecar_path": str(metadata.get("sidecar_path") or ""),
        "checksum_sha256": str(metadata.get("checksum_sha256") or ""),
    }


def _is_topic_table(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, dict) for k, v in value.items())


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecorderProtocolError(f"stats: {name} must be a number, got {value!r}")
    return value
