"""The seam between our code and the Axon recorder.

Responses carry exactly the fields of the reference design's ROS services, whatever the transport
(ROS 2, ROS 1 or Axon's HTTP RPC), so callers never know which one they talk to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class StartRecordingResponse:
    success: bool
    message: str


@dataclass(frozen=True)
class StopRecordingResponse:
    success: bool
    message: str
    flushed_batches: int


@dataclass(frozen=True)
class UpdateConfigResponse:
    success: bool
    message: str


@dataclass(frozen=True)
class RecorderStatus:
    is_recording: bool
    dataset_path: str
    active_topics: list[str] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    pending_batches: int = 0
    disk_usage_gb: float = 0.0
    last_error: str = ""


@runtime_checkable
class RecorderClient(Protocol):
    def start_recording(self, config_path: str) -> StartRecordingResponse: ...

    def stop_recording(self) -> StopRecordingResponse: ...

    def get_status(self) -> RecorderStatus: ...

    def update_config(self, config_path: str) -> UpdateConfigResponse: ...


class RecorderError(Exception):
    """Base class of recorder failures; each subclass is a distinct, actionable cause."""


class RecorderUnreachable(RecorderError):
    """Nothing answers at the recorder's address (connection refused, DNS, service not advertised)."""


class RecorderTimeout(RecorderError):
    """The recorder accepted the call but did not answer within the timeout."""


class RecorderRefused(RecorderError):
    """The recorder answered success=false; ``message`` is its own explanation."""

    def __init__(self, operation: str, message: str):
        self.operation = operation
        self.recorder_message = message
        super().__init__(f"recorder refused {operation}: {message}")


class RecorderProtocolError(RecorderError):
    """The reply is not what the protocol promises (wrong shape, wrong task id, wrong version)."""
