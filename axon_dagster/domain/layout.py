"""Where a dataset lives in the cloud: ``{scene}/{sub_scene}/{skills}_{timestamp}.lance``."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Sequence

from .errors import InvalidIdError, PlanningError
from .ids import validate_id, validate_label

# Every key derived from a dataset's labels must fit everywhere it goes: one path component at most
# 255 bytes (ext4, XFS, NTFS), a whole key short enough for S3's 1024 bytes with room for the
# store's prefix and the files inside a dataset directory.
MAX_NAME_BYTES = 255
MAX_KEY_BYTES = 900
_STAMP = "20261126T093000.000000Z"
_LONGEST_SUFFIX = ".axon.json"
ROBOT_QUALIFIER_BYTES = 16  # the robot part of a robot-qualified key: the id, or a hash of a longer one


def cloud_dataset_key(scene: str, sub_scene: str, skills: Sequence[str], recorded_at: datetime, robot_id: str | None = None) -> str:
    """Object key (relative to the store's prefix) of a dataset directory.

    The timestamp is the recording start, to the microsecond, so the key is stable across retries.
    Two robots may start recordings of the same labels in the same instant: the second one to be
    published takes the key qualified by its robot (``robot_id``: ``..._<stamp>_<robot>.lance``;
    an id longer than :data:`ROBOT_QUALIFIER_BYTES` is replaced by that many hex digits of its
    SHA-256, so that the name stays within the limits :func:`check_label_limits` checked), which
    one robot, recording one thing at a time, cannot collide with.

    >>> from datetime import datetime, timezone
    >>> cloud_dataset_key("warehouse", "aisle_1", ["nav", "pick"], datetime(2026, 11, 26, 9, 30, tzinfo=timezone.utc))
    'warehouse/aisle_1/nav+pick_20261126T093000.000000Z.lance'
    >>> cloud_dataset_key("warehouse", "aisle_1", ["nav"], datetime(2026, 11, 26, 9, 30, tzinfo=timezone.utc), "robot-2")
    'warehouse/aisle_1/nav_20261126T093000.000000Z_robot-2.lance'
    """
    parts = [validate_id(scene, "scene")]
    if validate_label(sub_scene or "", "sub_scene"):
        parts.append(sub_scene)
    skill_part = "+".join(validate_id(s, "skill") for s in skills)
    stamp = recorded_at.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    robot = f"_{robot_qualifier(robot_id)}" if robot_id else ""
    return "/".join(parts + [f"{skill_part}_{stamp}{robot}.lance"])


def robot_qualifier(robot_id: str) -> str:
    """The robot's part of a robot-qualified dataset key (see :func:`cloud_dataset_key`).

    >>> robot_qualifier("robot-2")
    'robot-2'
    >>> len(robot_qualifier("r" * 100))
    16
    """
    robot_id = validate_id(robot_id, "robot_id")
    if len(robot_id.encode()) <= ROBOT_QUALIFIER_BYTES:
        return robot_id
    import hashlib

    return hashlib.sha256(robot_id.encode()).hexdigest()[:ROBOT_QUALIFIER_BYTES]


def check_label_limits(scene: str, sub_scene: str, skills: Sequence[str]) -> None:
    """Refuse labels whose derived cloud names would exceed :data:`MAX_NAME_BYTES` per component
    or :data:`MAX_KEY_BYTES` in all (checked when an order or batch is made, not at upload time),
    room for a robot-qualified key included."""
    name = "+".join(skills) + "_" + _STAMP + "_" + "r" * ROBOT_QUALIFIER_BYTES + _LONGEST_SUFFIX
    if len(name.encode()) > MAX_NAME_BYTES:
        raise PlanningError(
            f"skills {'+'.join(skills)[:60]}... make a cloud file name of {len(name.encode())} bytes, over {MAX_NAME_BYTES}: "
            "use fewer or shorter skills"
        )
    key = "/".join([scene, *([sub_scene] if sub_scene else []), name])
    if len(key.encode()) > MAX_KEY_BYTES:
        raise PlanningError(f"scene, sub-scene and skills make a cloud key of {len(key.encode())} bytes, over {MAX_KEY_BYTES}")


def sidecar_key(dataset_key: str) -> str:
    """The JSON sidecar sits beside the dataset directory: ``x.lance`` -> ``x.json``."""
    return dataset_key[: -len(".lance")] + ".json" if dataset_key.endswith(".lance") else dataset_key + ".json"


def _beside(dataset_key: str, suffix: str) -> str:
    stem = dataset_key[: -len(".lance")] if dataset_key.endswith(".lance") else dataset_key
    return stem + suffix


def report_key(dataset_key: str) -> str:
    """The inspection report sits beside the dataset too: ``x.lance`` -> ``x.qc.json``."""
    return _beside(dataset_key, ".qc.json")


def mcap_key(dataset_key: str) -> str:
    """The original MCAP recording sits beside its Lance dataset: ``x.lance`` -> ``x.mcap``."""
    return _beside(dataset_key, ".mcap")


def axon_sidecar_key(dataset_key: str) -> str:
    """Axon's own sidecar of that MCAP: ``x.lance`` -> ``x.axon.json`` (``x.json`` is the dataset's)."""
    return _beside(dataset_key, ".axon.json")


# --------------------------------------------------------------------------- staging area
# Uploads from robots land here first (never in the lake): ``staging/<robot_id>/<task_id>/<name>``,
# where ``name`` is a file of the recording's manifest (``t-1.mcap``, ``t-1.lance/data/x.lance``).

STAGING_ROOT = "staging"
MAX_STAGED_NAME_BYTES = 512


def validate_relative_name(name: object, kind: str = "file name") -> str:
    """A relative POSIX path a robot names (a manifest entry): no absolute paths, no ``..`` or ``.``
    segments, no empty segments, no backslashes, NULs or control characters; segments starting
    with ``.axon-`` are reserved for the stores' own bookkeeping.

    >>> validate_relative_name("t-1.lance/data/0.lance")
    't-1.lance/data/0.lance'
    """
    if not isinstance(name, str):
        raise InvalidIdError(kind, name, "must be a string")
    if not name:
        raise InvalidIdError(kind, name, "must not be empty")
    if len(name.encode()) > MAX_STAGED_NAME_BYTES:
        raise InvalidIdError(kind, name[:40] + "...", f"longer than {MAX_STAGED_NAME_BYTES} bytes")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InvalidIdError(kind, name, "contains control characters")
    if "\\" in name:
        raise InvalidIdError(kind, name, "contains a backslash")
    if name.startswith("/"):
        raise InvalidIdError(kind, name, "must be relative (no leading '/')")
    for segment in name.split("/"):
        if segment == "":
            raise InvalidIdError(kind, name, "has an empty path segment ('//' or a trailing '/')")
        if segment in (".", ".."):
            raise InvalidIdError(kind, name, f"'{segment}' segments are not allowed")
        if segment.startswith(".axon-"):
            raise InvalidIdError(kind, name, "segments starting with '.axon-' are reserved")
    return name


def staging_prefix(robot_id: str, task_id: str) -> str:
    """Every staged object of one task: ``staging/<robot_id>/<task_id>/`` (ends in ``/``)."""
    return f"{STAGING_ROOT}/{validate_id(robot_id, 'robot id')}/{validate_id(task_id, 'task id')}/"


def staging_key(robot_id: str, task_id: str, name: str) -> str:
    """Object key of one uploaded file in the staging area.

    >>> staging_key("robot-1", "t-1", "t-1.mcap")
    'staging/robot-1/t-1/t-1.mcap'
    """
    return staging_prefix(robot_id, task_id) + validate_relative_name(name)


def parse_staging_key(key: str) -> tuple[str, str, str]:
    """``(robot_id, task_id, name)`` of a staging key; InvalidIdError if it is not one."""
    root, _, rest = key.partition("/") if isinstance(key, str) else ("", "", "")
    robot_id, _, rest = rest.partition("/")
    task_id, _, name = rest.partition("/")
    if root != STAGING_ROOT or not name:
        raise InvalidIdError("staging key", key, f"expected {STAGING_ROOT}/<robot_id>/<task_id>/<name>")
    staging_key(robot_id, task_id, name)  # validates every part
    return robot_id, task_id, name
