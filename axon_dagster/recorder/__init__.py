"""The recorder seam: the ``RecorderClient`` protocol, its backends and the recording config.

Light on purpose (httpx and pyyaml only): the edge agent imports it on the robot. The simulator
lives in :mod:`axon_dagster.demo.sim` and is never imported from here.
"""

from .axon_http import AxonHttpRecorder, RecorderState, RpcReply
from .config import RecordingConfig, RecordingConfigError
from .factory import recorder_from_config
from .protocol import (
    RecorderClient,
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

__all__ = [
    "AxonHttpRecorder",
    "RecorderClient",
    "RecorderError",
    "RecorderProtocolError",
    "RecorderRefused",
    "RecorderState",
    "RecorderStatus",
    "RecorderTimeout",
    "RecorderUnreachable",
    "RecordingConfig",
    "RecordingConfigError",
    "RpcReply",
    "StartRecordingResponse",
    "StopRecordingResponse",
    "UpdateConfigResponse",
    "recorder_from_config",
]
