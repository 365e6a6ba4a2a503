"""Object keys: relative, ``/``-separated, checked before anything is written."""

from __future__ import annotations

MAX_KEY_LENGTH = 1024  # S3's limit, in UTF-8 bytes
RESERVED_PREFIX = ".axon-"  # segments the stores use for their own bookkeeping


def validate_key(key: object, kind: str = "object key") -> str:
    """Return ``key`` if it is a safe relative object key, else raise ValueError.

    >>> validate_key("warehouse/aisle_1/nav+pick_20261126T093000.000000Z.lance")
    'warehouse/aisle_1/nav+pick_20261126T093000.000000Z.lance'
    """
    if not isinstance(key, str):
        raise ValueError(f"invalid {kind} {key!r}: must be a string")
    if not key:
        raise ValueError(f"invalid {kind} {key!r}: must not be empty")
    if len(key.encode()) > MAX_KEY_LENGTH:
        raise ValueError(f"invalid {kind} {key[:40]!r}...: longer than {MAX_KEY_LENGTH} bytes")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise ValueError(f"invalid {kind} {key!r}: contains control characters")
    if "\\" in key:
        raise ValueError(f"invalid {kind} {key!r}: contains a backslash")
    if key.startswith("/"):
        raise ValueError(f"invalid {kind} {key!r}: must be relative (no leading '/')")
    for segment in key.split("/"):
        if segment == "":
            raise ValueError(f"invalid {kind} {key!r}: empty path segment ('//' or trailing '/')")
        if segment in (".", ".."):
            raise ValueError(f"invalid {kind} {key!r}: '{segment}' segments are not allowed")
        if segment.startswith(RESERVED_PREFIX):
            raise ValueError(f"invalid {kind} {key!r}: segments starting with {RESERVED_PREFIX!r} are reserved")
    return key


def validate_prefix(prefix: object) -> str:
    """A listing prefix: empty, or a key optionally ending in '/'."""
    if prefix == "":
        return ""
    if isinstance(prefix, str) and prefix.endswith("/"):
        return validate_key(prefix[:-1], "key prefix") + "/"
    return validate_key(prefix, "key prefix")
