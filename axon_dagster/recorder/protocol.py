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
    # What the recorder says it wrote, when it says so right after the stop (Axon: ``/rpc/stats``
    # ``metadata`` of the last finished file); "" when unknown (the finish callback or the output
    # directory may still tell).
    output_path: str = ""
    sidecar_path: str = ""
    checksum_sha256: str = ""


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
    # Axon v0.4 fields (empty for recorders that do not report them):
    state: str = ""  # idle / ready / recording / paused
    subscribed_topics: list[str] = field(default_factory=list)  # what the recorder records, whatever a task asks
    topic_counts: dict[str, dict[str, int]] = field(default_factory=dict)  # {topic: {received, written, dropped}}
    disk_state: str = ""  # the disk guard: normal / warn / hard_limit
    output_path: str = ""  # the last finished recording (stats.metadata)
    sidecar_path: str = ""
    checksum_sha256: str = ""

    @property
    def paused_by_disk_guard(self) -> bool:
        """Axon's disk guard paused the recording itself (it never resumes on its own)."""
        return self.state == "paused" and self.disk_state == "hard_limit"


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
    """The recorder answered success=false; ``message`` is its own explanation, followed by each of
    Axon's ``validation_errors`` (``field: message (code)``) when it sent any."""

    def __init__(self, operation: str, message: str, validation_errors: list[dict] | None = None):
        self.operation = operation
        self.validation_errors = list(validation_errors or [])
        details = "; ".join(
            f"{e.get('field', '?')}: {e.get('message', '')} ({e.get('code', '?')})" for e in self.validation_errors if isinstance(e, dict)
        )
        if details and details not in message:
            message = f"{message} [{details}]"
        self.recorder_message = message
        super().__init__(f"recorder refused {operation}: {message}")


class RecorderProtocolError(RecorderError):
    """The reply is not what the protocol promises (wrong shape, wrong task id, wrong version)."""
