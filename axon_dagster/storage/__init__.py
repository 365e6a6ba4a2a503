"""Edge cache and object store adapters, and the recording format they carry.

Import-light on purpose: the edge agent imports this package on small robots, so nothing here
imports boto3, pyarrow or lance at import time (the S3 backend imports boto3 when it is built).
"""

from .digest import DigestMismatch, dataset_digest, digest_of_files, file_digests, file_sha256
from .edge_cache import (
    CacheConflict,
    CachedDataset,
    CacheState,
    CacheUsage,
    EdgeCache,
    EdgeCacheError,
    EvictionPolicy,
    UnknownDataset,
)
from .object_stores import (
    LocalDirObjectStore,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    ObjectStoreUnavailable,
    S3ObjectStore,
    AzureBlobObjectStore,
    object_store_from_url,
    validate_key,
)
from .recording import Sidecar, TopicSummary, report_path, sidecar_path

__all__ = [name for name in dir() if not name.startswith("_")]

# The uploader and the bandwidth cap are loaded on first use, not with the package: loading them
# registers the axon_upload_* metrics, which a process that never uploads should not export.
_LAZY = {
    "MultipartUploader": "object_stores.s3_multipart", "UploadError": "object_stores.s3_multipart",
    "UploadResult": "object_stores.s3_multipart", "UploadStateStore": "object_stores.s3_upload_state",
    "BandwidthConfigError": "bandwidth", "BandwidthSchedule": "bandwidth", "ProbeError": "bandwidth",
    "ProbeResult": "bandwidth", "ThroughputLog": "bandwidth", "RateLimiter": "bandwidth", "UploadQueue": "bandwidth",
    "probe_bandwidth": "bandwidth", "shared_rate_limiter": "bandwidth", "shared_queue": "bandwidth",
}
__all__ += list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
