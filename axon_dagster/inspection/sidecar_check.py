"""The file side of sidecar consistency: does the dataset directory hold exactly the files the
sidecar lists, with the digests it records?

Hashing every file costs about as much as reading the data once, so :func:`start_sidecar_check`
runs it in a thread while Daft scans the columns (``hashlib`` releases the GIL). The other half of
the check — per-topic counts and time ranges against what Daft measured — is in :mod:`.checks`.

A file that is absent from the directory while the sidecar lists it is a defect of the data (a
truncated dataset): it becomes a failed check. A file that exists but cannot be read, or a
directory that cannot be listed, is infrastructure: InspectionInfrastructureError.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import mmap
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from axon_dagster.storage.digest import digest_of_files
from axon_dagster.storage.recording import Sidecar, sidecar_path

from .errors import InspectionInfrastructureError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SidecarFindings:
    sidecar_file: str
    sidecar: Sidecar | None = None
    error: str = ""  # the sidecar exists but is not a valid sidecar
    missing_files: list[str] = field(default_factory=list)  # listed, not on disk
    extra_files: list[str] = field(default_factory=list)  # on disk, not listed
    changed_files: list[str] = field(default_factory=list)  # listed, different SHA-256
    actual_digest: str = ""
    hashed_bytes: int = 0
    digest_verified: bool = True  # False: file names compared, contents trusted (verify_digest=False)


def local_dataset_dir(dataset_path: str) -> Path | None:
    """The local directory of a dataset path or ``file://`` URI; None for remote URIs."""
    if dataset_path.startswith("file://"):
        return Path(dataset_path[len("file://"):])
    if "://" in dataset_path:
        return None
    return Path(dataset_path)


def check_sidecar_files(dataset_path: str, verify_digest: bool = True) -> SidecarFindings | None:
    """Compare the dataset's files with its sidecar. None when there is no sidecar to compare
    with (none beside the dataset, or a remote dataset). ``verify_digest=False`` compares the
    file names only and trusts their contents (for a dataset whose digest was just verified, e.g.
    by the edge cache when it staged it)."""
    root = local_dataset_dir(dataset_path)
    if root is None:
        return None
    side = sidecar_path(root)
    if not root.is_dir() or not side.exists():
        return None  # a missing dataset is reported by the scan
    started = time.monotonic()
    try:
        text = side.read_text()
    except OSError as exc:
        raise InspectionInfrastructureError(dataset_path, f"sidecar {side} unreadable: {exc}") from exc
    try:
        sidecar = Sidecar.from_json(text)
        if not isinstance(sidecar.files, dict) or not isinstance(sidecar.topics, dict):
            raise TypeError("files and topics must be objects")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return SidecarFindings(str(side), error=f"sidecar {side.name} is not a valid sidecar: {exc}")
    try:
        on_disk = sorted(f.relative_to(root).as_posix() for f in dataset_files(root))
    except OSError as exc:
        raise InspectionInfrastructureError(dataset_path, f"dataset directory unreadable: {exc}") from exc
    listed = set(sidecar.files)
    present = [f for f in on_disk if f in listed]
    actual: dict[str, str] = {}
    hashed = 0
    for rel in present:
        full = root / rel
        if not verify_digest:
            actual[rel] = sidecar.files[rel]
            continue
        try:
            actual[rel] = sha256_of_file(full)
            hashed += full.stat().st_size
        except FileNotFoundError:
            continue  # vanished between listing and reading: reported as missing below
        except OSError as exc:
            raise InspectionInfrastructureError(dataset_path, f"cannot read {rel}: {exc}") from exc
    findings = SidecarFindings(
        sidecar_file=str(side),
        sidecar=sidecar,
        missing_files=sorted(listed - set(actual)),
        extra_files=[f for f in on_disk if f not in listed],
        changed_files=sorted(f for f, sha in actual.items() if sha != sidecar.files[f]),
        actual_digest=digest_of_files(actual),
        hashed_bytes=hashed,
        digest_verified=verify_digest,
    )
    elapsed = time.monotonic() - started
    logger.info(
        "sidecar files of %s: %d listed, %d missing, %d extra, %d changed; hashed %.1f MB in %.2f s",
        dataset_path, len(listed), len(findings.missing_files), len(findings.extra_files),
        len(findings.changed_files), hashed / 1e6, elapsed,
    )
    return findings


def sha256_of_file(path: Path) -> str:
    """SHA-256 of a file, as ``storage.digest.file_sha256`` computes it, hashed straight from a
    memory map in one call: no copy into Python buffers, and hashlib holds no GIL for the whole
    file, so the hashing thread never waits on the scan for the GIL between chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return h.hexdigest()
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            mm.madvise(mmap.MADV_SEQUENTIAL)
            h.update(mm)
    return h.hexdigest()


def dataset_files(root: Path) -> list[Path]:
    """Every file under ``root``; OSError when a directory cannot be listed (``os.walk`` alone
    would skip it silently, and a dataset would look smaller than it is)."""
    return [Path(dirpath, name) for dirpath, _, names in os.walk(root, onerror=_raise) for name in names]


def _raise(exc: OSError) -> None:
    raise exc


def start_sidecar_check(dataset_path: str, verify_digest: bool = True) -> concurrent.futures.Future:
    """Run :func:`check_sidecar_files` in a background thread; ``.result()`` gives its answer
    (or raises its InspectionInfrastructureError)."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="qc-sidecar")
    future = pool.submit(check_sidecar_files, dataset_path, verify_digest)
    pool.shutdown(wait=False)
    return future

