"""What the edge cache holds and says: entry states, entries, usage, errors (no I/O here)."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Literal

EvictionPolicy = Literal["lru", "fifo", "manual"]
VerifyLinked = Literal["inode", "hash"]
BYTES_PER_GB = 10**9  # quotas are in decimal GB, like disk sizes on a spec sheet


class CacheState(str, Enum):
    CACHED = "cached"  # on the edge, not yet safe to delete
    UPLOADED = "uploaded"  # cloud copy verified against the cached digest: evictable
    REJECTED = "rejected"  # inspection or review rejected it: evictable, never uploaded


EVICTABLE_STATES = (CacheState.UPLOADED, CacheState.REJECTED)


class EdgeCacheError(Exception):
    """A request the cache refuses. Nothing was changed."""


class UnknownDataset(EdgeCacheError, KeyError):
    def __init__(self, dataset_id: str, root: Path):
        self.dataset_id = dataset_id
        super().__init__(f"dataset {dataset_id!r} is not in the edge cache at {root}")

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


class CacheConflict(EdgeCacheError):
    """The request contradicts the dataset's state in the cache (e.g. removing an un-uploaded dataset)."""


@dataclass(frozen=True)
class CachedDataset:
    dataset_id: str
    path: Path  # the .lance directory inside the cache (a robot's MCAP recording: its .mcap)
    sidecar_path: Path
    size_bytes: int  # dataset files + sidecar, as counted against the quota
    dataset_digest: str
    state: CacheState = CacheState.CACHED
    cloud_uri: str | None = None
    staged_at: datetime | None = None
    last_access_at: datetime | None = None
    # Only set by stage(): None without release_source; True when nothing of the staged recording is
    # left in the recorder's directory; False when the release failed or was partial (a warning was
    # logged; staging the id again finishes it). Not stored in the index.
    source_released: bool | None = None
    # A robot's raw recording (take_recording): its format ("mcap" | "lance") and manifest
    # ({"files": [{name, size, sha256}], "dataset_digest", ...}); None for datasets staged by stage*.
    recording_format: str | None = None
    manifest: dict | None = None

    @property
    def entry_dir(self) -> Path:
        """The directory holding the entry's files (manifest names are relative to it)."""
        return self.path.parent


@dataclass(frozen=True)
class CacheUsage:
    used_bytes: int
    quota_bytes: int | None  # None: no quota
    pressure: bool  # over quota (eviction could not, or has not yet, brought it under)


@dataclass
class _Materialized:
    """What :meth:`EdgeCache._materialize` did: directories made (relative to the scratch dir),
    files linked, files copied (relative to the dataset), and the bytes the dataset holds."""

    made_dirs: builtins.list[str] = field(default_factory=list)
    copied: builtins.list[str] = field(default_factory=list)
    linked: int = 0
    size_bytes: int = 0

    @property
    def method(self) -> str:
        return "link" if not self.copied else ("copy" if self.linked == 0 else "mixed")

