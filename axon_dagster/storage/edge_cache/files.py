"""File-system helpers of the edge cache: sidecar checks, tree walks, fsyncs."""

from __future__ import annotations

import builtins
import os
from pathlib import Path

from ..digest import DigestMismatch, digest_of_files, file_sha256
from ..recording import Sidecar


def _read_sidecar(path: Path, raw: bytes | None = None) -> Sidecar:
    try:
        return Sidecar.from_json(path.read_bytes() if raw is None else raw)
    except (ValueError, KeyError, TypeError) as exc:  # bad JSON, missing or unknown fields
        raise ValueError(f"unreadable sidecar {path}: {exc}") from exc


def _check_sidecar_consistent(sidecar: Sidecar, path: Path) -> None:
    """Sidecar.verify compares file lists; the dataset digest it states must follow from them too."""
    derived = digest_of_files(sidecar.files)
    if derived != sidecar.dataset_digest:
        raise DigestMismatch(f"sidecar {path} (dataset_digest field vs its file list)", sidecar.dataset_digest, derived)


def _verify_links(sidecar: Sidecar, staged: Path, copied: builtins.list[str]) -> None:
    """Staged by hardlinks: the file list must be the sidecar's, and a file that was copied after a
    failed link is re-hashed. A linked file is the recorder's very inode (``link(2)`` succeeded), so
    its bytes are the recording's own: they are checked against the sidecar on upload, byte for byte.
    Reads directory entries only."""
    _check_file_list(sidecar, staged)
    for rel in copied:
        expected, actual = sidecar.files[rel], file_sha256(staged / rel)
        if actual != expected:
            raise DigestMismatch(f"{staged / rel} (copied after a failed hardlink) does not match its sidecar", expected, actual)


def _scan_files(root: Path) -> builtins.list[str]:
    """The relative POSIX path of every regular file under ``root``, from directory entries alone."""
    out: builtins.list[str] = []
    stack = [("", str(root))]
    while stack:
        prefix, path = stack.pop()
        with os.scandir(path) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((f"{prefix}{entry.name}/", entry.path))
                elif entry.is_file(follow_symlinks=False):
                    out.append(prefix + entry.name)
    return out


def _check_file_list(sidecar: Sidecar, dataset_dir: Path) -> None:
    present = set(_scan_files(dataset_dir))
    if present != set(sidecar.files):
        missing, extra = sorted(set(sidecar.files) - present), sorted(present - set(sidecar.files))
        raise DigestMismatch(f"{dataset_dir} file list (missing {missing}, unexpected {extra})", sidecar.dataset_digest, "n/a")


def _tree_size(root: Path) -> int:
    total = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    return total


def _fsync_file(path: Path) -> None:
    """fsync a file or a directory. Read-only is enough for fsync on Linux, and a linked file may
    be the recorder's, not ours."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_fsync_dir = _fsync_file


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

