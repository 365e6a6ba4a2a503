"""Dataset digests. A Lance dataset is a directory, so its identity is a digest over its files:
SHA-256 of each file, then SHA-256 over the sorted lines ``relative_path sha256_hex``."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .files import Fingerprint, file_fingerprint

# Large reads into one reused buffer: hashlib lets go of the GIL per update, and each time it wants
# it back it may wait a switch interval (5 ms) behind a busy Python thread — with 1 MB reads that
# wait was many times the 0.7 ms of hashing per MB (measured beside the MCAP ingester).
_CHUNK = 8 << 20


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def fingerprinted_sha256(path: str | os.PathLike) -> tuple[str, Fingerprint | None]:
    """The file's SHA-256 and its :func:`~.files.file_fingerprint` taken before and after the read:
    the fingerprint is None when the file changed while it was read (the hash proves nothing)."""
    before = file_fingerprint(path)
    sha = file_sha256(path)
    return sha, (before if file_fingerprint(path) == before else None)


def file_digests(root: str | os.PathLike, workers: int = 1) -> dict[str, str]:
    """``{relative_posix_path: sha256_hex}`` for every regular file under ``root``; ``workers`` > 1
    hashes that many files at once (hashlib releases the GIL: one core each)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset directory not found: {root}")
    paths: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        paths.extend(Path(dirpath, name) for name in sorted(filenames))
    if workers > 1 and len(paths) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(workers, len(paths)), thread_name_prefix="digest") as pool:
            shas = list(pool.map(file_sha256, paths))
    else:
        shas = [file_sha256(p) for p in paths]
    return {p.relative_to(root).as_posix(): sha for p, sha in zip(paths, shas)}


def digest_of_files(files: dict[str, str]) -> str:
    lines = "".join(f"{rel} {sha}\n" for rel, sha in sorted(files.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def dataset_digest(root: str | os.PathLike) -> str:
    return digest_of_files(file_digests(root))


class DigestMismatch(Exception):
    def __init__(self, what: str, expected: str, actual: str):
        self.expected, self.actual = expected, actual
        super().__init__(f"{what}: digest {actual} does not match expected {expected}")
