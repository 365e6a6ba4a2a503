"""Identifiers become file names, object keys and URL segments, so they must be safe in all three."""

from __future__ import annotations

import re

from .errors import InvalidIdError

MAX_ID_LENGTH = 128
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def validate_id(value: object, kind: str = "id") -> str:
    """Return ``value`` if it is a safe identifier, else raise :class:`InvalidIdError`.

    >>> validate_id("order-7_a.1")
    'order-7_a.1'
    """
    if not isinstance(value, str):
        raise InvalidIdError(kind, value, "must be a string")
    if not value:
        raise InvalidIdError(kind, value, "must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidIdError(kind, value, f"longer than {MAX_ID_LENGTH} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidIdError(kind, value, "contains control characters")
    if "/" in value or "\\" in value:
        raise InvalidIdError(kind, value, "contains a path separator")
    if ".." in value:
        raise InvalidIdError(kind, value, "contains '..'")
    if not _SAFE_ID.fullmatch(value):
        raise InvalidIdError(kind, value, "only letters, digits, '.', '_' and '-' are allowed, starting with a letter or digit")
    return value


def validate_label(value: object, kind: str) -> str:
    """Scene, sub-scene and skill names end up in cloud paths: same rules as ids, but empty is allowed
    for optional labels (the caller decides)."""
    if value == "":
        return ""
    return validate_id(value, kind)
