"""The seam the data flow uses: stage into the edge cache, upload from it, verify the cloud copy,
mark it uploaded with the verified digest, and only then let eviction free the space."""

from __future__ import annotations

from datetime import datetime, timezone

from axon_dagster.domain import cloud_dataset_key, sidecar_key
from axon_dagster.storage import CacheState, EdgeCache, S3ObjectStore, Sidecar
from axon_dagster.storage.edge_cache import BYTES_PER_GB


def test_a_recording_goes_from_cache_to_s3_and_is_evicted_only_after_verification(tmp_path, make_recording, s3_client, s3_bucket):
    cache = EdgeCache(tmp_path / "cache", max_size_gb=1 / BYTES_PER_GB, policy="lru")  # 1 byte: always over
    store = S3ObjectStore(s3_bucket, prefix="cloud", client=s3_client)
    entry = cache.stage(make_recording("task-1"), "task-1")
    sidecar = Sidecar.read(entry.sidecar_path)
    key = cloud_dataset_key("warehouse", "aisle_1", ["pick"], datetime.fromtimestamp(sidecar.start_ns / 1e9, timezone.utc))

    assert cache.evict() == []  # not uploaded yet: kept, under pressure
    uri = store.put_dataset(entry.path, key, sidecar.files)
    store.put_file(entry.sidecar_path, sidecar_key(key))
    verified = store.verify_dataset(key, sidecar.files)
    assert verified == sidecar.dataset_digest == entry.dataset_digest

    assert cache.mark_uploaded("task-1", uri, verified).state is CacheState.UPLOADED
    assert cache.evict() == ["task-1"]
    assert cache.list() == [] and not entry.path.exists()
    assert store.verify_dataset(key, sidecar.files) == entry.dataset_digest  # the cloud copy remains
