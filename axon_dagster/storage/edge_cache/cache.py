"""The :class:`EdgeCache`, assembled from its concerns (each a module of this package)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import get_args

from .eviction import Eviction
from .index import CacheIndex
from .model import BYTES_PER_GB, EvictionPolicy, VerifyLinked
from .recordings import RobotRecordings
from .release import Release
from .reporting import Reporting
from .staging import Staging


class EdgeCache(Staging, RobotRecordings, Release, Eviction, Reporting, CacheIndex):
    def __init__(
        self,
        root: str | os.PathLike,
        max_size_gb: float | None = None,
        policy: EvictionPolicy = "lru",
        *,
        verify_linked: VerifyLinked | bool = "inode",
        delete_after_upload: bool = False,
        retention_days: float | None = None,
        release_source: bool = False,
    ):
        """How a staged dataset is checked against its sidecar: copied files are always re-hashed.
        Hardlinked files (same filesystem) are checked by ``verify_linked``:

        - ``"inode"`` (default): the staged file list equals the sidecar's, the sidecar's digest
          follows from that list, and every staged file *is* the recorder's file (same device and
          inode). Re-hashing a hardlink would only re-read the recorder's own bytes — no copy was
          made that could differ — so it checks the recording against its sidecar, not the staging.
          That check happens anyway, on every byte, when the dataset is uploaded (the uploader
          hashes what it sends and refuses a file that differs from the sidecar), and nothing is
          ever deleted from the cache before a verified upload. Staging 1 GB costs milliseconds.
        - ``"hash"`` (or ``True``): re-hash linked files too, catching a recording that does not
          match its sidecar at staging instead of at upload.

        ``delete_after_upload``: remove a dataset as soon as :meth:`mark_uploaded` has recorded its
        verified cloud copy (never before). ``retention_days``: :meth:`apply_retention` removes
        uploaded-and-verified or rejected datasets that have been so for longer than this.

        ``release_source``: after a successful, durable stage remove the recorder's copy of the
        recording (see the module docstring), so the cache holds the only names of its files and
        eviction gives the disk its space back."""
        if policy not in get_args(EvictionPolicy):
            raise ValueError(f"unknown eviction policy {policy!r}; expected one of {get_args(EvictionPolicy)}")
        if max_size_gb is not None and (isinstance(max_size_gb, bool) or not isinstance(max_size_gb, (int, float)) or max_size_gb < 0):
            raise ValueError(f"max_size_gb must be a non-negative number or None, got {max_size_gb!r}")
        if verify_linked is True:
            verify_linked = "hash"
        elif verify_linked is False:
            verify_linked = "inode"
        if verify_linked not in get_args(VerifyLinked):
            raise ValueError(f"verify_linked must be one of {get_args(VerifyLinked)}, got {verify_linked!r}")
        if not isinstance(delete_after_upload, bool):
            raise ValueError(f"delete_after_upload must be true or false, got {delete_after_upload!r}")
        if not isinstance(release_source, bool):
            raise ValueError(f"release_source must be true or false, got {release_source!r}")
        if retention_days is not None and (
            isinstance(retention_days, bool) or not isinstance(retention_days, (int, float)) or not retention_days > 0
        ):
            raise ValueError(f"retention_days must be a positive number of days or None, got {retention_days!r}")
        self.root = Path(root).resolve()
        self.policy: EvictionPolicy = policy
        self.quota_bytes = None if max_size_gb is None else int(max_size_gb * BYTES_PER_GB)
        self.verify_linked: VerifyLinked = verify_linked
        self.delete_after_upload = delete_after_upload
        self.release_source = release_source
        self.retention_days = retention_days
        self._datasets = self.root / "datasets"
        self._tmp = self.root / "tmp"
        self._db = self.root / "index.db"
        self._datasets.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(exist_ok=True)
        self._init_db()
        self._recover()

