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


def _sync_file_range():
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):  # not Linux
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return fn


_SYNC_FILE_RANGE = _sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def start_write_back(path: str | os.PathLike, offset: int = 0, size: int = 0) -> None:
    """Start writing ``size`` bytes of a file from ``offset`` (0: to its end) to disk — Linux
    ``sync_file_range``: no wait, no journal commit — so that a later fsync finds little left to
    do. Durability is still that fsync's; elsewhere (or on any error) this does nothing."""
    if _SYNC_FILE_RANGE is None:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        _SYNC_FILE_RANGE(fd, offset, size, _SYNC_FILE_RANGE_WRITE)
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
