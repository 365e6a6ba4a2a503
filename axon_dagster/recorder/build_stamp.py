"""Staleness stamps of the generated ROS service code (genpy for ROS 1, rosidl for ROS 2).

A stamp is one digest of everything the output is generated from; it is written into the output
last, so an output whose stamp matches is complete and current and is reused instead of rebuilt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


def stamp_digest(header: str, files: Iterable[Path]) -> str:
    """SHA-256 over ``header`` (package name, generator versions) and each file's name and bytes."""
    h = hashlib.sha256(header.encode())
    for path in files:
        h.update(f"{path.name}\n".encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def stamp_matches(directory: Path, stamp_file: str, stamp: str) -> bool:
    """True when ``directory/stamp_file`` holds ``stamp`` (False when it is missing or unreadable)."""
    try:
        return (directory / stamp_file).read_text() == stamp
    except OSError:
        return False
