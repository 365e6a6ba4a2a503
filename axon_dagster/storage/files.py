"""Small file-system helpers the storage modules share (stdlib only: the edge agent uses them)."""

from __future__ import annotations

import os


def fsync_path(path: str | os.PathLike) -> None:
    """fsync a file or a directory (after a rename into it) by path. Read-only is enough on Linux,
    and a linked file may belong to someone else (the recorder)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
