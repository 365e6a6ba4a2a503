"""Edge cache policies around uploads: delete-after-upload only after verification, retention,
the disk-usage report, eviction that never loses an un-uploaded dataset, and inode-verified
hardlink staging whose byte check happens at upload."""

from __future__ import annotations

import json
import time

import pytest

from axon_dagster.storage import CacheState, EdgeCache, S3ObjectStore, Sidecar
from axon_dagster.storage.edge_cache import files as edge_cache_files
from axon_dagster.storage.edge_cache import recordings as edge_cache_recordings
from axon_dagster.storage.edge_cache import release as edge_cache_release
from axon_dagster.storage.bandwidth import RateLimiter, UploadQueue
from axon_dagster.storage.digest import DigestMismatch, dataset_digest
from axon_dagster.storage.edge_cache import BYTES_PER_GB

from tests.storage.conftest import tamper

DAY = 86400


@pytest.fixture
def store(s3_client, s3_bucket, tmp_path):
    return S3ObjectStore(s3_bucket, prefix="cloud", client=s3_client, rate_limiter=RateLimiter(None), upload_queue=UploadQueue(),
                         state_dir=tmp_path / "upload-state")


def upload(cache: EdgeCache, store: S3ObjectStore, dataset_id: str) -> str:
    """What the data flow does: upload, verify, and only then mark uploaded."""
    entry = cache.get(dataset_id)
    files = Sidecar.read(entry.sidecar_path).files
    uri = store.put_dataset(entry.path, f"ds/{dataset_id}.lance", files)
    digest = store.verify_dataset(f"ds/{dataset_id}.lance", files)
    cache.mark_uploaded(dataset_id, uri, digest)
    return uri


def test_delete_after_upload_happens_only_once_the_verified_digest_is_recorded(tmp_path, make_recording, store):
    cache = EdgeCache(tmp_path / "cache", delete_after_upload=True)
    entry = cache.stage(make_recording("task-1"), "task-1")
    files = Sidecar.read(entry.sidecar_path).files
    uri = store.put_dataset(entry.path, "ds/task-1.lance", files)
    assert entry.path.exists()  # uploaded but not yet verified/marked: kept

    with pytest.raises(DigestMismatch):
        cache.mark_uploaded("task-1", uri, "0" * 64)  # a digest that is not the cached one
    assert entry.path.exists() and cache.get("task-1").state is CacheState.CACHED

    cache.mark_uploaded("task-1", uri, store.verify_dataset("ds/task-1.lance", files))
    assert not entry.path.exists() and cache.list() == []
    assert store.verify_dataset("ds/task-1.lance", files) == entry.dataset_digest  # the cloud copy remains


def test_without_delete_after_upload_an_uploaded_dataset_stays(tmp_path, make_recording, store):
    cache = EdgeCache(tmp_path / "cache")
    entry = cache.stage(make_recording("task-1"), "task-1")
    upload(cache, store, "task-1")
    assert entry.path.exists() and cache.get("task-1").state is CacheState.UPLOADED


def test_retention_removes_only_uploaded_or_rejected_datasets_older_than_the_limit(tmp_path, make_recording, store):
    cache = EdgeCache(tmp_path / "cache", retention_days=7, policy="manual")
    for i in (1, 2, 3):
        cache.stage(make_recording(f"task-{i}", seed=i), f"task-{i}")
    upload(cache, store, "task-1")
    cache.mark_rejected("task-2")
    now = time.time()

    assert cache.apply_retention(now=now + 6 * DAY) == []  # too young
    assert sorted(cache.apply_retention(now=now + 8 * DAY)) == ["task-1", "task-2"]
    assert [e.dataset_id for e in cache.list()] == ["task-3"]  # never uploaded: kept, however old
    assert cache.apply_retention(now=now + 400 * DAY) == []
    assert dataset_digest(cache.get("task-3").path) == cache.get("task-3").dataset_digest
    assert EdgeCache(tmp_path / "other").apply_retention(now=now + 400 * DAY) == []  # no retention configured


def test_disk_usage_report_is_json_ready_and_adds_up(tmp_path, make_recording, store):
    cache = EdgeCache(tmp_path / "cache", max_size_gb=1e-9 * 10_000, retention_days=3)
    sizes = {i: cache.stage(make_recording(f"task-{i}", seed=i), f"task-{i}").size_bytes for i in (1, 2, 3)}
    upload(cache, store, "task-1")
    cache.mark_rejected("task-2")

    report = json.loads(json.dumps(cache.disk_usage()))

    assert report["used_bytes"] == sum(sizes.values()) == cache.usage().used_bytes
    assert report["quota_bytes"] == 10_000 and report["pressure"] is True
    assert report["datasets"] == {
        "cached": {"count": 1, "bytes": sizes[3]},
        "uploaded": {"count": 1, "bytes": sizes[1]},
        "rejected": {"count": 1, "bytes": sizes[2]},
    }
    assert report["evictable_bytes"] == sizes[1] + sizes[2] and report["pending_upload_bytes"] == sizes[3]
    assert report["oldest_pending_staged_at"] is not None
    assert report["filesystem"]["total_bytes"] >= report["filesystem"]["free_bytes"] > 0
    assert report["policy"] == "lru" and report["retention_days"] == 3 and report["delete_after_upload"] is False


def test_eviction_never_removes_an_unuploaded_dataset_even_far_over_quota(tmp_path, make_recording, store):
    cache = EdgeCache(tmp_path / "cache", max_size_gb=1 / BYTES_PER_GB, policy="fifo")  # 1 byte
    for i in (1, 2, 3, 4):
        cache.stage(make_recording(f"task-{i}", seed=i), f"task-{i}")
    upload(cache, store, "task-2")

    assert cache.evict() == ["task-2"]
    assert cache.usage().pressure  # still over: the rest is not uploaded, so it is kept
    assert cache.evict() == []
    for i in (1, 3, 4):
        entry = cache.get(f"task-{i}")
        assert entry.state is CacheState.CACHED and dataset_digest(entry.path) == entry.dataset_digest


def test_hardlink_staging_checks_inodes_without_rereading(tmp_path, make_recording, monkeypatch):
    src = make_recording("task-1")

    def no_reading(path):
        raise AssertionError(f"staging re-read {path}")

    # Every edge-cache module that can hash a file: a re-read anywhere in staging fails the test.
    for module in (edge_cache_files, edge_cache_recordings, edge_cache_release):
        monkeypatch.setattr(module, "file_sha256", no_reading)
    monkeypatch.setattr(Sidecar, "verify", lambda self, d: no_reading(d))
    entry = EdgeCache(tmp_path / "cache").stage(src, "task-1")
    assert entry.dataset_digest == Sidecar.read(entry.sidecar_path).dataset_digest


def test_a_tampered_hardlinked_recording_is_stopped_at_upload_and_never_lost(tmp_path, make_recording, store, s3_client, s3_bucket):
    src = make_recording("task-1")
    tamper(src)  # the recorder's file no longer matches its sidecar
    cache = EdgeCache(tmp_path / "cache", max_size_gb=1 / BYTES_PER_GB, delete_after_upload=True)
    entry = cache.stage(src, "task-1")  # inode check: same files, byte check deferred to upload
    files = Sidecar.read(entry.sidecar_path).files

    with pytest.raises(DigestMismatch):
        store.put_dataset(entry.path, "ds/task-1.lance", files)

    # Whatever was stored before the mismatch is not a verified copy: verification refuses it.
    with pytest.raises(DigestMismatch):
        store.verify_dataset("ds/task-1.lance", files)
    assert cache.get("task-1").state is CacheState.CACHED
    assert cache.evict() == [] and entry.path.exists()
