"""Axon's task_config, as the simulator checks and echoes it (``validate_task_config_json`` and
``task_config_to_public_json`` of Axon v0.4)."""

from __future__ import annotations

from typing import Any, Mapping

from axon_dagster.domain import InvalidIdError, validate_id
from axon_dagster.recorder.config import AXON_TASK_CONFIG_FIELDS, PRIVATE_TASK_CONFIG_FIELDS

# task_config fields validate_task_config checks on their own; every other Axon field is a string
_NON_STRING_OR_CHECKED = frozenset({"task_id", "device_id", "skills", "topics"})


def validate_task_config(task_config: Any) -> list[dict[str, str]]:
    """Axon's ``validate_task_config_json``: ``[{field, code, message}]``, empty when valid. The
    simulator also refuses a task id or device id that is not a safe file name."""
    if not isinstance(task_config, dict):
        return [{"field": "task_config", "code": "invalid_type", "message": "task_config must be an object"}]
    errors: list[dict[str, str]] = []

    def err(name: str, code: str, message: str) -> None:
        errors.append({"field": name, "code": code, "message": message})

    for name in ("task_id", "device_id"):
        if name not in task_config:
            err(name, "missing_required", f"{name} is required")
        elif not isinstance(task_config[name], str):
            err(name, "invalid_type", f"{name} must be a string")
        elif not task_config[name]:
            err(name, "empty", f"{name} must not be empty")
        else:
            try:
                validate_id(task_config[name], name)
            except InvalidIdError as exc:
                err(name, "invalid_value", str(exc))
    for name in AXON_TASK_CONFIG_FIELDS:
        if name not in _NON_STRING_OR_CHECKED and name in task_config and not isinstance(task_config[name], str):
            err(name, "invalid_type", f"{name} must be a string")
    skills = task_config.get("skills")
    if "skills" in task_config:
        if not isinstance(skills, list):
            err("skills", "invalid_type", "skills must be an array of strings")
        else:
            for i, skill in enumerate(skills):
                if not isinstance(skill, str):
                    err(f"skills[{i}]", "invalid_type", "skills entries must be strings")
    if "topics" in task_config:
        topics = task_config["topics"]
        if not isinstance(topics, list):
            err("topics", "invalid_type", "topics must be an array")
        else:
            for i, item in enumerate(topics):
                if isinstance(item, str):
                    continue
                if not isinstance(item, dict):
                    err(f"topics[{i}]", "invalid_type", "topics entries must be strings or objects")
                elif not (item.get("name") or item.get("topic")):
                    err(f"topics[{i}].name", "missing_required", f"topics[{i}].name is required")
                elif not isinstance(item.get("name", item.get("topic")), str):
                    err(f"topics[{i}].name", "invalid_type", f"topics[{i}].name must be a string")
    return errors


def topic_names(topics: Any) -> list[str]:
    """Topic names of a task config's ``topics`` (strings, or objects with ``name``/``topic``)."""
    names = []
    for item in topics or []:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, dict) and isinstance(item.get("name") or item.get("topic"), str):
            names.append(item.get("name") or item.get("topic"))
    return names


def public_task_config(task_config: Mapping[str, Any]) -> dict[str, Any]:
    """Axon never echoes callback URLs or the user token (``task_config_to_public_json``)."""
    return {k: v for k, v in task_config.items() if k not in PRIVATE_TASK_CONFIG_FIELDS}


def dataset_metadata(task_config: Mapping[str, Any]) -> dict[str, Any]:
    """The task's labels for the sidecar, which travels to cloud storage: no secrets, and the
    sub-scene also under the domain's spelling ``sub_scene``."""
    metadata = public_task_config(task_config)
    if "subscene" in metadata:
        metadata.setdefault("sub_scene", metadata["subscene"])
    return metadata
