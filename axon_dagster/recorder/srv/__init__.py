"""The recorder's four ROS services, from the ``.srv`` files beside this module.

The ``.srv`` files are the single source of truth: genpy builds the ROS 1 classes from them
(:mod:`axon_dagster.recorder.genpy_build`), rosidl builds the ROS 2 ones from the copies in
``recorder/ros_interfaces`` (a test keeps the copies identical), and this module parses them so
the ROS 1 and ROS 2 clients check every reply against the same field list and map it onto the
transport-independent responses of :mod:`axon_dagster.recorder.protocol` in one place.

Pure Python (no ROS import): the edge agent and the Dagster code location import it freely.
"""

from __future__ import annotations

import math
import re
from array import array
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from axon_dagster.recorder.config import RecordingConfig
from axon_dagster.recorder.protocol import (
    RecorderProtocolError,
    RecorderRefused,
    RecorderStatus,
    StartRecordingResponse,
    StopRecordingResponse,
    UpdateConfigResponse,
)

SRV_DIR = Path(__file__).resolve().parent
# The interface package both ROS generations build the service types into
# (ROS 1: axon_recorder_msgs.srv.StartRecording; ROS 2: axon_recorder_msgs/srv/StartRecording).
PACKAGE = "axon_recorder_msgs"

# operation (RecorderClient method) -> .srv type; the service is /<namespace>/<operation>.
SERVICES: dict[str, str] = {
    "start_recording": "StartRecording",
    "stop_recording": "StopRecording",
    "get_status": "GetStatus",
    "update_config": "UpdateConfig",
}

_PRIMITIVES = ("bool", "string", "int32", "float64")
_FIELD_LINE = re.compile(r"^(?P<type>[a-z0-9]+)(?P<array>\[\])?\s+(?P<name>[a-z][a-z0-9_]*)$")
_NAMESPACE_SEGMENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class SrvField:
    name: str
    type: str  # one of _PRIMITIVES
    is_array: bool = False

    def default(self) -> Any:
        if self.is_array:
            return []
        return {"bool": False, "string": "", "int32": 0, "float64": 0.0}[self.type]


@dataclass(frozen=True)
class SrvSpec:
    name: str
    request: tuple[SrvField, ...]
    response: tuple[SrvField, ...]

    @property
    def full_name(self) -> str:
        return f"{PACKAGE}/{self.name}"


class SrvSpecError(ValueError):
    """A ``.srv`` file this module cannot read (only the primitive types the recorder uses)."""


def parse_srv(name: str, text: str) -> SrvSpec:
    """Parse a ``.srv`` text limited to primitive fields and arrays of them (all ours use)."""
    parts: list[list[SrvField]] = [[]]
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line == "---":
            if len(parts) == 2:
                raise SrvSpecError(f"{name}.srv line {number}: a second '---'")
            parts.append([])
            continue
        match = _FIELD_LINE.match(" ".join(line.split()))
        if not match or match["type"] not in _PRIMITIVES:
            raise SrvSpecError(f"{name}.srv line {number}: unsupported field {line!r}; expected '<{'|'.join(_PRIMITIVES)}>[[]] <name>'")
        parts[-1].append(SrvField(match["name"], match["type"], bool(match["array"])))
    if len(parts) != 2:
        raise SrvSpecError(f"{name}.srv has no '---' between request and response")
    return SrvSpec(name, tuple(parts[0]), tuple(parts[1]))


@lru_cache(maxsize=None)
def load_specs(srv_dir: str | None = None) -> dict[str, SrvSpec]:
    """``{srv name: spec}`` for every ``.srv`` file in ``srv_dir`` (default: ours)."""
    directory = Path(srv_dir) if srv_dir else SRV_DIR
    specs = {p.stem: parse_srv(p.stem, p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.srv"))}
    if not specs:
        raise SrvSpecError(f"no .srv files in {directory}")
    return specs


def srv_files(srv_dir: str | Path | None = None) -> list[Path]:
    return sorted((Path(srv_dir) if srv_dir else SRV_DIR).glob("*.srv"))


def validate_namespace(namespace: object) -> str:
    """A ROS namespace such as ``axon`` or ``robot_1/axon`` (a leading/trailing '/' is dropped)."""
    if not isinstance(namespace, str):
        raise ValueError(f"ROS namespace must be a string, got {type(namespace).__name__}")
    stripped = namespace.strip("/")
    segments = stripped.split("/")
    if not stripped or not all(_NAMESPACE_SEGMENT.fullmatch(s) for s in segments):
        raise ValueError(
            f"invalid ROS namespace {namespace!r}: segments separated by '/', each a letter followed by "
            "letters, digits or '_' (e.g. 'axon' or 'robot_1/axon')"
        )
    return stripped


def service_name(namespace: str, operation: str) -> str:
    """``/<namespace>/<operation>``, e.g. ``/axon/start_recording``."""
    if operation not in SERVICES:
        raise ValueError(f"unknown recorder operation {operation!r}; known: {sorted(SERVICES)}")
    return f"/{validate_namespace(namespace)}/{operation}"


def request_config_path(config_path: str) -> str:
    """The ``config_path`` field of StartRecording/UpdateConfig: the file is validated here, before
    any call (bad input changes nothing on the recorder), and sent as an absolute path, since the
    recorder runs in another working directory."""
    if not isinstance(config_path, str) or not config_path:
        raise ValueError(f"config_path must be a non-empty path, got {config_path!r}")
    RecordingConfig.read(config_path)
    return str(Path(config_path).resolve())


# -- replies ---------------------------------------------------------------------------------


def read_response(operation: str, response: Any) -> dict[str, Any]:
    """The reply's fields as plain Python values, checked against the ``.srv`` response.

    Works on any object with the fields as attributes (genpy and rosidl classes alike); a missing
    field or a value of the wrong type is a :class:`RecorderProtocolError`, never a guess.
    """
    spec = load_specs()[SERVICES[operation]]
    if response is None:
        raise RecorderProtocolError(f"{operation}: the recorder returned no response")
    values: dict[str, Any] = {}
    for f in spec.response:
        if not hasattr(response, f.name):
            raise RecorderProtocolError(
                f"{operation}: reply {type(response).__name__} has no field {f.name!r}; "
                f"expected the {spec.full_name} response"
            )
        values[f.name] = _coerce(operation, f, getattr(response, f.name))
    return values


def _coerce(operation: str, f: SrvField, value: Any) -> Any:
    if f.is_array:
        # genpy gives lists or tuples, rosidl gives lists or array.array for numbers
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, array)):
            raise RecorderProtocolError(f"{operation}: field {f.name!r} must be a {f.type}[] array, got {value!r}")
        return [_scalar(operation, f, item) for item in value]
    return _scalar(operation, f, value)


def _scalar(operation: str, f: SrvField, value: Any) -> Any:
    ok = {
        "bool": lambda v: isinstance(v, bool),
        "string": lambda v: isinstance(v, str),
        "int32": lambda v: isinstance(v, int) and not isinstance(v, bool) and -(2**31) <= v < 2**31,
        "float64": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
    }[f.type](value)
    if not ok:
        raise RecorderProtocolError(f"{operation}: field {f.name!r} must be {f.type}, got {value!r}")
    return float(value) if f.type == "float64" else value


def _accepted(operation: str, values: dict[str, Any]) -> None:
    if not values["success"]:
        raise RecorderRefused(operation, values["message"] or "success=false without a message")


def start_response(response: Any) -> StartRecordingResponse:
    values = read_response("start_recording", response)
    _accepted("start_recording", values)
    return StartRecordingResponse(True, values["message"])


def stop_response(response: Any) -> StopRecordingResponse:
    values = read_response("stop_recording", response)
    _accepted("stop_recording", values)
    if values["flushed_batches"] < 0:
        raise RecorderProtocolError(f"stop_recording: flushed_batches must not be negative, got {values['flushed_batches']}")
    return StopRecordingResponse(True, values["message"], values["flushed_batches"])


def update_response(response: Any) -> UpdateConfigResponse:
    values = read_response("update_config", response)
    _accepted("update_config", values)
    return UpdateConfigResponse(True, values["message"])


def status_response(response: Any) -> RecorderStatus:
    return RecorderStatus(**read_response("get_status", response))


RESPONSE_MAPPERS = {
    "start_recording": start_response,
    "stop_recording": stop_response,
    "get_status": status_response,
    "update_config": update_response,
}


class RosServiceRecorder:
    """The four RecorderClient calls, shared by the ROS 1 and ROS 2 backends: each backend only
    provides ``_call(operation, **request_fields)`` (how a service is reached) and ``close()``."""

    def _configure(
        self, namespace: str, timeout_seconds: float, retry_attempts: int, backoff_seconds: float, max_backoff_seconds: float
    ) -> None:
        """Check and keep the settings both backends share; raises ValueError before anything is
        connected, so bad input changes nothing."""
        if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, (int, float)) or not timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds!r}")
        if isinstance(retry_attempts, bool) or not isinstance(retry_attempts, int) or retry_attempts < 0:
            raise ValueError(f"retry_attempts must be a non-negative integer, got {retry_attempts!r}")
        if backoff_seconds < 0 or max_backoff_seconds < 0:
            raise ValueError("backoff_seconds and max_backoff_seconds must not be negative")
        self.namespace = validate_namespace(namespace)
        self.timeout_seconds = float(timeout_seconds)
        self.retry_attempts = retry_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds

    def _call(self, operation: str, **fields: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start_recording(self, config_path: str) -> StartRecordingResponse:
        return start_response(self._call("start_recording", config_path=request_config_path(config_path)))

    def stop_recording(self) -> StopRecordingResponse:
        return stop_response(self._call("stop_recording"))

    def get_status(self) -> RecorderStatus:
        return status_response(self._call("get_status"))

    def update_config(self, config_path: str) -> UpdateConfigResponse:
        return update_response(self._call("update_config", config_path=request_config_path(config_path)))
