"""The edge cache: where a finished recording waits for inspection and upload.

Layout under ``root``::

    index.db                          SQLite index (WAL): one row per cached dataset
    datasets/<id>/<id>.lance/         the Lance dataset directory
    datasets/<id>/<id>.json           its sidecar (digests, task metadata)
    tmp/<pid>-<uuid>/                 staging and eviction scratch space (same filesystem as datasets/)

Promises (DESIGN.md, "Rules"):

- Staging is atomic: a dataset is built in ``tmp/`` and appears with one ``os.rename`` of its entry
  directory, so a reader never sees half a dataset and a crash leaves only scratch behind.
- Every staged dataset is verified against its sidecar; a mismatch leaves nothing behind.
- Eviction only ever removes a dataset that is uploaded-and-verified or rejected. Over quota with
  nothing evictable, the cache reports pressure rather than delete anything else.

Source release (``release_source=True``, opt-in): the cache takes ownership of what it stages.
A linked stage leaves the recorder's directory naming the same inodes, so removing the cache's names
(eviction, retention, delete_after_upload) would free nothing. With ``release_source`` a successful
stage, once its entry is durable (every directory it made, the entry dir and ``datasets/`` fsynced),
removes the recorder's copy: each file of the sidecar's list that is the staged file's inode (or whose
bytes match the sidecar, when it was copied), then the sidecar, then the directories staged from that
are now empty (``os.rmdir``: anything the recorder added since stays, with its directories). A
failure to release never fails the stage: it is logged as a warning and the entry says
``source_released=False``; staging the id again finishes the release, even once the recorder's
sidecar is gone.

Eviction is explicit: :meth:`EdgeCache.evict` is called by whoever owns the schedule (the data flow
after an upload, the retention schedule); staging never deletes anything. Policy ``manual`` makes
:meth:`evict` a no-op; an operator removes datasets one by one with :meth:`EdgeCache.remove`, which
keeps the same safety rule.
"""

import os  # noqa: F401  (tests patch os.link/os.fsync/os.unlink through here: the same module object every part uses)

from .cache import EdgeCache
from .index import SCHEMA_VERSION
from .model import (
    BYTES_PER_GB,
    EVICTABLE_STATES,
    CacheConflict,
    CachedDataset,
    CacheState,
    CacheUsage,
    EdgeCacheError,
    EvictionPolicy,
    UnknownDataset,
    VerifyLinked,
)

__all__ = [
    "BYTES_PER_GB", "EVICTABLE_STATES", "SCHEMA_VERSION", "CacheConflict", "CacheState", "CacheUsage", "CachedDataset",
    "EdgeCache", "EdgeCacheError", "EvictionPolicy", "UnknownDataset", "VerifyLinked",
]
