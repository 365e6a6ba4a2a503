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


Fingerprint = tuple[int, int, int, int]


def file_fingerprint(path: str | os.PathLike) -> Fingerprint:
    """``(device, inode, size, mtime_ns)`` of a file: what a rename or a hard link keeps and any
    write through the file system changes (the size, or the modification time — to the file
    system's timestamp granularity, a few ms; only a deliberate ``utime`` by the file's owner
    could set it back). Taken when a file is hashed, it lets a later step prove that the file it
    finds (moved or linked meanwhile) is the very file that was hashed, unmodified since, without
    reading it again (as git's index and rsync's quick check do)."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def relative_files(root: str | os.PathLike) -> set[str]:
    """The ``/``-separated paths of every regular file under ``root`` (empty when it is no directory)."""
    from pathlib import Path

    root = Path(root)
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()
