"""The recording config of one task: Axon's ``task_config`` plus our ``duration_seconds`` and ``batch_id``.

The edge agent writes one YAML file per task (``config_path``); every recorder backend reads it back
with :meth:`RecordingConfig.read`, so a hand-edited or truncated file is refused with an error that
names the bad field before anything reaches the recorder.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from axon_dagster.domain import InvalidIdError, validate_id
from axon_dagster.domain.ids import validate_label

# Axon v0.4 task_config fields, in Axon's own spelling (``subscene``, not ``sub_scene``).
AXON_TASK_CONFIG_FIELDS = (
    "task_id",
    "device_id",
    "data_collector_id",
    "order_id",
    "operator_name",
    "scene",
    "subscene",
    "skills",
    "factory",
    "topics",
    "start_callback_url",
    "finish_callback_url",
    "user_token",
)
# Fields a recorder must never copy into a dataset's metadata: they are secrets or addresses of
# this deployment, and metadata travels to cloud storage.
PRIVATE_TASK_CONFIG_FIELDS = ("user_token", "start_callback_url", "finish_callback_url")


class RecordingConfigError(ValueError):
    """A recording config that cannot be used. ``field`` names the offending field (or None when
    the file as a whole is unreadable); ``path`` is the file, when there is one."""

    def __init__(self, message: str, *, field: str | None = None, path: str | os.PathLike | None = None):
        self.field = field
        self.path = str(path) if path is not None else None
        where = f"recording config {self.path}: " if self.path else "recording config: "
        super().__init__(where + message)


@dataclass(frozen=True)
class RecordingConfig:
    task_id: str
    device_id: str
    data_collector_id: str = ""
    order_id: str = ""
    operator_name: str = ""
    scene: str = ""
    subscene: str = ""
    skills: tuple[str, ...] = ()
    factory: str = ""
    topics: tuple[str, ...] = ()
    start_callback_url: str = ""
    finish_callback_url: str = ""
    user_token: str = ""
    duration_seconds: float | None = None
    batch_id: str = ""

    def __post_init__(self) -> None:
        _check_id(self.task_id, "task_id")
        _check_id(self.device_id, "device_id")
        for name in ("order_id", "batch_id"):
            if getattr(self, name):
                _check_id(getattr(self, name), name)
        for name in ("scene", "subscene"):
            _check_label(getattr(self, name), name)
        for name in ("data_collector_id", "operator_name", "factory", "user_token"):
            _check_text(getattr(self, name), name)
        object.__setattr__(self, "skills", _check_str_sequence(self.skills, "skills"))
        for skill in self.skills:
            _check_label(skill, "skills")
        object.__setattr__(self, "topics", _check_str_sequence(self.topics, "topics"))
        for topic in self.topics:
            _check_topic(topic)
        if len(set(self.topics)) != len(self.topics):
            raise RecordingConfigError(f"topics lists a topic more than once: {list(self.topics)}", field="topics")
        for name in ("start_callback_url", "finish_callback_url"):
            _check_url(getattr(self, name), name)
        _check_duration(self.duration_seconds)

    # -- conversions -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Every field, lists as lists: the YAML file's content."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def task_config(self) -> dict[str, Any]:
        """The ``task_config`` object for ``POST /rpc/config``: Axon's fields plus our
        ``batch_id`` and ``duration_seconds`` (recorders ignore fields they do not know; the
        simulator copies them into the dataset's metadata). Empty optional fields are left out."""
        return {key: value for key, value in self.to_dict().items() if value not in ("", None)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: str | os.PathLike | None = None) -> "RecordingConfig":
        if not isinstance(data, Mapping):
            raise RecordingConfigError(f"expected a mapping of fields, got {type(data).__name__}", path=path)
        known = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise RecordingConfigError(
                f"unknown field(s) {', '.join(unknown)}; known fields: {', '.join(known)}",
                field=unknown[0],
                path=path,
            )
        # YAML writes an empty value as null: treat it as "not given" (the field's default).
        values = {key: value for key, value in data.items() if value is not None}
        for required in ("task_id", "device_id"):
            if required not in values:
                raise RecordingConfigError(f"missing required field {required}", field=required, path=path)
        try:
            return cls(**values)
        except RecordingConfigError as exc:
            if path is None:
                raise
            raise RecordingConfigError(str(exc).removeprefix("recording config: "), field=exc.field, path=path) from None

    # -- files -------------------------------------------------------------------------------

    def write(self, path: str | os.PathLike) -> Path:
        """Write the YAML file atomically: a reader sees the old file or the new one, never half."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return target

    @classmethod
    def read(cls, path: str | os.PathLike) -> "RecordingConfig":
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RecordingConfigError("file not found", path=path) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RecordingConfigError(f"cannot read file: {exc}", path=path) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RecordingConfigError(f"not valid YAML: {exc}", path=path) from None
        if data is None:
            raise RecordingConfigError("file is empty", path=path)
        return cls.from_dict(data, path=path)


# -- field checks ----------------------------------------------------------------------------


def _check_id(value: object, name: str) -> None:
    try:
        validate_id(value, name)
    except InvalidIdError as exc:
        raise RecordingConfigError(str(exc), field=name) from None


def _check_label(value: object, name: str) -> None:
    if not isinstance(value, str):
        raise RecordingConfigError(f"{name} must be a string, got {type(value).__name__}", field=name)
    try:
        validate_label(value, name)
    except InvalidIdError as exc:
        raise RecordingConfigError(str(exc), field=name) from None


def _check_text(value: object, name: str) -> None:
    if not isinstance(value, str):
        raise RecordingConfigError(f"{name} must be a string, got {type(value).__name__}", field=name)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise RecordingConfigError(f"{name} contains control characters", field=name)


def _check_str_sequence(value: object, name: str) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise RecordingConfigError(f"{name} must be a list of strings, got {type(value).__name__}", field=name)
    for item in value:
        if not isinstance(item, str):
            raise RecordingConfigError(f"{name} must be a list of strings, found {item!r}", field=name)
    return tuple(value)


def _check_topic(topic: str) -> None:
    if not topic.startswith("/") or topic == "/" or any(ch.isspace() or ord(ch) < 32 for ch in topic):
        raise RecordingConfigError(
            f"invalid topic {topic!r}: a ROS topic name starts with '/' and has no whitespace", field="topics"
        )


def _check_url(value: object, name: str) -> None:
    if not isinstance(value, str):
        raise RecordingConfigError(f"{name} must be a string, got {type(value).__name__}", field=name)
    if value and not (value.startswith("http://") or value.startswith("https://")):
        raise RecordingConfigError(f"{name} must be an http:// or https:// URL, got {value!r}", field=name)
    if any(ch.isspace() for ch in value):
        raise RecordingConfigError(f"{name} contains whitespace: {value!r}", field=name)


def _check_duration(value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise RecordingConfigError(
            f"duration_seconds must be a positive number of seconds, got {value!r}", field="duration_seconds"
        )
