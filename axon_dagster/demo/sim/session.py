"""The simulated recorder's states, one recording session, and how an RPC is refused."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .faults import SimFaults

IDLE, READY, RECORDING, PAUSED = "idle", "ready", "recording", "paused"
SERVICE_NAME = "axon-sim"
CALLBACK_TIMEOUT_SECONDS = 30.0  # Axon's callback client timeout
DEFAULT_PORT = 8080  # Axon's HTTP RPC port
# Axon re-scans the closed file (to patch its size) and SHA-256s it: seconds per GB of recording.
DEFAULT_FINISH_SECONDS_PER_GB = 2.0
DEFAULT_DISK_HARD_LIMIT_GB = 100.0


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
class Session:
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


def require_task_id(body: Mapping[str, Any], state: str) -> str:
    if "task_id" not in body:
        raise RpcRefusal("Missing required parameter: task_id", state=state)
    value = body["task_id"]
    if not isinstance(value, str):
        raise RpcRefusal("task_id must be a string", state=state)
    return value
