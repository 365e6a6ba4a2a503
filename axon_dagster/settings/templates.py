"""Recording templates (``configs/recording/*.yaml``): the topics an order's tasks record, chosen
per order by name (:data:`RECORDING_TEMPLATES`); validated like every config file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .base import ConfigError
from .checks import count, fail, nested, optional, positive, read_yaml, refuse_literal_secrets, section, text
from .files import CONFIG_DIR

TEMPLATE_DIR = CONFIG_DIR / "recording"
RECORDING_TEMPLATES = ("default", "camera_only", "lidar_only")


@dataclass(frozen=True)
class TemplateTopic:
    name: str
    message_type: str
    batch_size: int = 100
    flush_interval_ms: int = 1000


@dataclass(frozen=True)
class RecordingTemplate:
    name: str
    description: str
    topics: tuple[TemplateTopic, ...]
    max_disk_usage_gb: float | None = None

    @property
    def topic_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.topics)


def _topic_name(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or value == "/" or any(
        ch.isspace() or ord(ch) < 32 for ch in value
    ):
        fail(key, f"a ROS topic name starts with '/' and has no whitespace, got {value!r}")
    return value


_TOPIC_FIELDS = {"name": _topic_name, "message_type": text, "batch_size": count, "flush_interval_ms": count}


def parse_recording_template(data: Any, *, name: str, source: str | None = None) -> RecordingTemplate:
    try:
        if not isinstance(data, Mapping):
            fail("<top level>", f"must be a mapping, got {type(data).__name__}")
        refuse_literal_secrets(data)
        raw = section(data, "", {
            "name": text,
            "description": text,
            "topics": lambda v, k: v,
            "recording": nested({"max_disk_usage_gb": optional(positive)}),
        })
        if raw.get("name", name) != name:
            fail("name", f"must match the file name {name!r}, got {raw['name']!r}")
        topics_raw = raw.get("topics")
        if not isinstance(topics_raw, list) or not topics_raw:
            fail("topics", "must be a non-empty list of topics")
        topics = []
        for i, item in enumerate(topics_raw):
            fields = section(item, f"topics[{i}]", _TOPIC_FIELDS)
            for required in ("name", "message_type"):
                if required not in fields:
                    fail(f"topics[{i}].{required}", "missing")
            topics.append(TemplateTopic(**fields))
        names = [t.name for t in topics]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            fail("topics", f"lists {dup} more than once")
        return RecordingTemplate(
            name=name,
            description=raw.get("description", ""),
            topics=tuple(topics),
            max_disk_usage_gb=raw.get("recording", {}).get("max_disk_usage_gb"),
        )
    except ConfigError as exc:
        if source is None or exc.source:
            raise
        raise ConfigError(str(exc).removeprefix("config: ").removeprefix(f"{exc.key}: " if exc.key else ""),
                          key=exc.key, source=source) from None


def recording_template(name: str, *, directory: str | os.PathLike | None = None) -> RecordingTemplate:
    """The recording template ``name`` (one of :data:`RECORDING_TEMPLATES`); unknown names refused."""
    if name not in RECORDING_TEMPLATES:
        raise ConfigError(f"unknown recording template {name!r}; expected one of {', '.join(RECORDING_TEMPLATES)}",
                          key="recording_template")
    path = Path(directory or TEMPLATE_DIR) / f"{name}.yaml"
    return parse_recording_template(read_yaml(path), name=name, source=str(path))
