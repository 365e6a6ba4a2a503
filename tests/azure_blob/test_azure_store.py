"""The Azure Blob backend against a real Azure-compatible endpoint over HTTP (Azurite)."""

from __future__ import annotations

import hashlib
import os
import json
import time
from pathlib import Path

import pytest

from axon_dagster.storage import AzureBlobObjectStore, ObjectStore
from axon_dagster.storage.bandwidth import RateLimiter, UploadQueue
from axon_dagster.storage.digest import DigestMismatch, digest_of_files, file_digests
from axon_dagster.storage.object_stores import ObjectNotFound, ObjectStoreError, ObjectStoreUnavailable, object_store_from_url

from .conftest import BLOCK, AzureRequestLog, write_dataset

try:
    from tests.azurite_fixture import ACCOUNT, ACCOUNT_KEY, InjectedCrash
except ModuleNotFoundError:
    from azurite_fixture import ACCOUNT, ACCOUNT_KEY, InjectedCrash  # type: ignore[no-redef]

KEY = "warehouse/aisle_1/nav+pick_20261126T093000.000000Z.lance"
UNSAFE_KEYS = ["../escape", "/abs/key", "a/../../b", "a//b", "a/./b", "a\\b", "a\x00b", "", "trailing/", ".axon-meta/x", ".."]


def all_blobs(service, container: str) -> list[str]:
    return sorted(b.name for b in service.get_container_client(container).list_blobs())


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "src" / "rec.lance"
    return root, write_dataset(root)


# ------------------------------------------------------------------------------------- basics


def test_bytes_round_trip_exists_and_listing(make_store, azure_container):
    store = make_store()
    assert isinstance(store, ObjectStore)
    uri = store.put_bytes("a/b.json", b'{"x": 1}')
    assert uri == f"az://{ACCOUNT}/{azure_container}/datasets/a/b.json" == store.uri_for("a/b.json")
    store.put_bytes("a/c.bin", b"")
    store.put_bytes("z.bin", b"zz")
    assert store.get_bytes("a/b.json") == b'{"x": 1}' and store.get_bytes("a/c.bin") == b""
    assert store.exists("a/b.json") and not store.exists("a/missing")
    assert store.list_keys() == ["a/b.json", "a/c.bin", "z.bin"]
    assert store.list_keys("a/") == ["a/b.json", "a/c.bin"]
    with pytest.raises(ObjectNotFound):
        store.get_bytes("a/missing")
    store.put_bytes("a/b.json", b"overwritten")
    assert store.get_bytes("a/b.json") == b"overwritten"


def test_a_dataset_round_trips_verified(make_store, dataset, tmp_path, azure_service, azure_container):
    src, files = dataset
    store = make_store()
    uri = store.put_dataset(src, KEY, files, priority=3)
    assert uri == f"az://{ACCOUNT}/{azure_container}/datasets/{KEY}"
    stats = store.last_upload_stats()
    assert stats["files_sent"] == len(files) and stats["bytes_sent"] == sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    assert stats["blocks_sent"] == 4 + 3  # four single puts, one file of three blocks
    # One blob per file with its metadata; the large file is a committed block blob.
    blob = azure_service.get_blob_client(azure_container, f"datasets/{KEY}/data/0002.lance")
    props = blob.get_blob_properties()
    assert props.metadata == {"sha256": files["data/0002.lance"], "dataset_digest": digest_of_files(files)}
    committed, uncommitted = blob.get_block_list("all")
    assert [b.size for b in committed] == [BLOCK, BLOCK, files_size(src / "data/0002.lance") - 2 * BLOCK] and uncommitted == []
    assert store.list_keys(f"{KEY}/") == sorted(f"{KEY}/{rel}" for rel in files)

    assert store.verify_dataset(KEY, files) == digest_of_files(files)
    # Another process (no ETag cache) verifies from the dataset record, without downloading.
    log = AzureRequestLog()
    assert make_store(log=log).verify_dataset(KEY, files) == digest_of_files(files)
    assert log.count("GET", "") == 1  # the dataset record only: no blob re-read
    # ... and verify="reread" downloads and hashes every blob.
    assert make_store(verify="reread").verify_dataset(KEY, files) == digest_of_files(files)

    fetched = make_store().fetch_dataset(KEY, tmp_path / "out" / "rec.lance", files)
    assert file_digests(fetched) == files
    fetched2 = make_store().fetch_dataset(KEY, tmp_path / "out2" / "rec.lance")  # against the recorded manifest
    assert file_digests(fetched2) == files


def files_size(path: Path) -> int:
    return path.stat().st_size


def test_object_store_from_url_builds_an_azure_store(azure_env, azure_container, tmp_path, dataset, monkeypatch, azurite):
    store = object_store_from_url(f"az://{ACCOUNT}/{azure_container}/some/prefix")
    assert isinstance(store, AzureBlobObjectStore) and store.prefix == "some/prefix"
    assert store.put_bytes("k", b"v") == f"az://{ACCOUNT}/{azure_container}/some/prefix/k"
    # The connection string works too (no endpoint variable needed) ...
    monkeypatch.delenv("AZURE_STORAGE_KEY")
    monkeypatch.delenv("AZURE_STORAGE_BLOB_ENDPOINT")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    assert object_store_from_url(f"az://{ACCOUNT}/{azure_container}/some/prefix").get_bytes("k") == b"v"
    # ... but must be for the account the URL names.
    with pytest.raises(ValueError, match="is for account 'devstoreaccount1'"):
        object_store_from_url(f"az://otheraccount/{azure_container}")
    for bad in ("az://UPPER/c0ntainer", f"az://{ACCOUNT}/x", f"az://{ACCOUNT}/{azure_container}?q=1"):
        with pytest.raises(ValueError):
            object_store_from_url(bad)


def test_missing_credentials_are_named_and_nothing_is_created(monkeypatch, azure_service, azurite):
    for var in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_BLOB_ENDPOINT", azurite.url)
    before = sorted(c.name for c in azure_service.list_containers())
    with pytest.raises(ValueError) as info:
        object_store_from_url(f"az://{ACCOUNT}/never-created/x")
    assert "AZURE_STORAGE_CONNECTION_STRING" in str(info.value) and "AZURE_STORAGE_KEY" in str(info.value)
    assert sorted(c.name for c in azure_service.list_containers()) == before


# ------------------------------------------------------------------------------------- idempotent and resumable


def test_a_re_upload_sends_nothing(make_store, dataset):
    src, files = dataset
    make_store().put_dataset(src, KEY, files)
    log = AzureRequestLog()
    store = make_store(log=log)  # a fresh process: proves the stored blobs from the record + ETags
    store.put_dataset(src, KEY, files)
    assert log.count("PUT") == 0, log.requests
    assert log.count("GET") == 1  # the dataset record; blobs are checked by HEAD only
    stats = store.last_upload_stats()
    assert stats["files_sent"] == 0 and stats["files_already_stored"] == len(files) and stats["bytes_sent"] == 0
    log.clear()
    store.put_dataset(src, KEY, files)  # and the same process again
    assert log.count("PUT") == 0 and log.count("GET") == 1


def test_a_crashed_upload_resumes_without_resending_staged_blocks(make_store, tmp_path, azure_service, azure_container):
    src = tmp_path / "big.bin"
    data = hashlib.sha256(b"seed").digest() * (8 * BLOCK // 32 + 100)  # 8 blocks + a tail
    src.write_bytes(data)
    n_blocks = -(-len(data) // BLOCK)
    crash = AzureRequestLog(fail_after=3)
    with pytest.raises(InjectedCrash):
        make_store(log=crash, concurrency=1).put_file(src, "big.bin")
    blob = azure_service.get_blob_client(azure_container, "datasets/big.bin")
    committed, uncommitted = blob.get_block_list("all")
    assert committed == [] and len(uncommitted) == 3  # staged but never committed: not a blob yet
    assert not make_store().exists("big.bin")

    log = AzureRequestLog()
    make_store(log=log).put_file(src, "big.bin")
    assert log.count("PUT", "block") == n_blocks - 3  # the three staged blocks were not sent again
    assert log.count("PUT", "blocklist") == 1
    assert blob.download_blob().readall() == data
    committed, uncommitted = blob.get_block_list("all")
    assert len(committed) == n_blocks and uncommitted == []  # the commit left nothing stray

    log.clear()
    make_store(log=log).put_file(src, "big.bin")  # put_file again: blocks all held, recommit only
    assert log.count("PUT", "block") == 0


def test_a_block_corrupted_on_the_wire_is_rejected_by_azure(make_store, tmp_path):
    src = tmp_path / "big.bin"
    src.write_bytes(b"x" * (3 * BLOCK))

    def corrupt(pipeline_request):
        req = pipeline_request.http_request
        if req.method == "PUT" and "comp=block" in req.url and "blocklist" not in req.url:
            body = bytearray(req.body)
            body[0] ^= 0xFF
            req.set_bytes_body(bytes(body))

    store = make_store(client_kwargs={"raw_request_hook": corrupt})
    with pytest.raises(DigestMismatch, match="rejected on receipt"):
        store.put_file(src, "big.bin")
    assert not make_store().exists("big.bin")


# ------------------------------------------------------------------------------------- refusals


def test_a_tampered_blob_fails_verification(make_store, dataset, tmp_path, azure_service, azure_container):
    src, files = dataset
    store = make_store()
    store.put_dataset(src, KEY, files)
    blob = azure_service.get_blob_client(azure_container, f"datasets/{KEY}/data/0002.lance")
    metadata = blob.get_blob_properties().metadata
    bad = bytearray((src / "data/0002.lance").read_bytes())
    bad[len(bad) // 2] ^= 0xFF
    blob.upload_blob(bytes(bad), overwrite=True, metadata=metadata)  # same metadata, other bytes
    for verifier in (store, make_store()):
        with pytest.raises(DigestMismatch, match="changed"):
            verifier.verify_dataset(KEY, files)
    with pytest.raises(DigestMismatch):
        make_store().fetch_dataset(KEY, tmp_path / "out" / "rec.lance", files)
    assert not (tmp_path / "out" / "rec.lance").exists()
    # A re-upload notices the blob is not what its metadata claims and sends it again.
    store.put_dataset(src, KEY, files)
    assert store.last_upload_stats()["files_sent"] == 1
    assert store.verify_dataset(KEY, files) == digest_of_files(files)


@pytest.mark.parametrize("key", UNSAFE_KEYS)
def test_unsafe_keys_are_refused_and_nothing_is_written(make_store, key, dataset, azure_service, azure_container):
    src, files = dataset
    store = make_store()
    with pytest.raises(ValueError):
        store.put_bytes(key, b"x")
    with pytest.raises(ValueError):
        store.put_dataset(src, key, files)
    with pytest.raises(ValueError):
        store.put_file(src / "empty.bin", key)
    assert all_blobs(azure_service, azure_container) == []


def test_a_missing_container_is_a_clear_error(azurite):
    store = AzureBlobObjectStore("no-such-container", connection_string=azurite.connection_string)
    with pytest.raises(ObjectStoreError, match="does not exist"):
        store.put_bytes("k", b"v")


def test_an_unreachable_endpoint_is_unavailable_quickly(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    store = AzureBlobObjectStore(
        "container", account_url=f"http://127.0.0.1:{port}/{ACCOUNT}",
        credential={"account_name": ACCOUNT, "account_key": ACCOUNT_KEY}, retries=1, retry_backoff=0.1, connection_timeout=1,
    )
    started = time.monotonic()
    with pytest.raises(ObjectStoreUnavailable, match="unreachable"):
        store.put_bytes("k", b"v")
    with pytest.raises(ObjectStoreUnavailable):
        store.exists("k")
    assert time.monotonic() - started < 3  # one quick retry each, no long backoff


# ------------------------------------------------------------------------------------- bandwidth


def test_the_bandwidth_cap_holds(make_store, tmp_path):
    src = tmp_path / "ds"
    src.mkdir()
    size = 4_000_000
    (src / "payload.bin").write_bytes(hashlib.sha256(b"bw").digest() * (size // 32))
    files = file_digests(src)
    rate = 2_000_000
    store = make_store(rate_limiter=RateLimiter(rate), upload_queue=UploadQueue())
    started = time.monotonic()
    store.put_dataset(src, "bw/ds", files)
    elapsed = time.monotonic() - started
    measured = size / elapsed
    assert rate * 0.85 <= measured <= rate * 1.15, f"{measured / 1e6:.2f} MB/s against a cap of {rate / 1e6:.2f} MB/s"


def test_a_sigkilled_upload_process_resumes(make_store, tmp_path, azure_service, azure_container, azurite):
    import os
    import signal
    import subprocess
    import sys

    src = tmp_path / "big.bin"
    data = hashlib.sha256(b"kill").digest() * (10 * BLOCK // 32)  # 10 blocks
    src.write_bytes(data)
    log_path = tmp_path / "child.log"
    repo = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.azure_blob._child", azurite.connection_string, azure_container, str(src), "big.bin",
         str(log_path), str(BLOCK), str(4 * BLOCK)],  # 4 blocks/s: the whole file would take ~2.5 s
        cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
    )
    try:
        deadline = time.monotonic() + 8
        while not (log_path.exists() and log_path.read_text().count("block") >= 5):
            assert child.poll() is None, "the child finished or died before it was killed"
            assert time.monotonic() < deadline, "the child staged no blocks"
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    time.sleep(0.3)  # let Azurite finish (or drop) the request the child was sending
    blob = azure_service.get_blob_client(azure_container, "datasets/big.bin")
    committed, uncommitted = blob.get_block_list("all")
    assert committed == [] and 4 <= len(uncommitted) < 10

    log = AzureRequestLog()
    store = make_store(log=log)
    store.put_file(src, "big.bin")
    assert log.count("PUT", "block") == 10 - len(uncommitted)
    assert blob.download_blob().readall() == data
    assert blob.get_block_list("all")[1] == []  # the commit left no stray uncommitted block


def test_uploads_feed_the_bandwidth_probe_with_link_time_only(make_store, tmp_path):
    """The bandwidth sensor's probe reads the throughput log: every block of >= 1 MiB is a sample,
    timed without the wait for the cap (else a capped upload would report the cap, not the link)."""
    from axon_dagster.storage.bandwidth import ThroughputLog

    src = tmp_path / "ds"
    src.mkdir()
    (src / "payload.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    log_path = tmp_path / "probe.json"
    rate = 1_500_000
    store = make_store(block_size=1024 * 1024, rate_limiter=RateLimiter(rate), throughput_log=log_path)
    started = time.monotonic()
    store.put_dataset(src, "probe/ds", file_digests(src))
    assert time.monotonic() - started >= 1.5  # the cap held the upload back...

    samples = json.loads(log_path.read_text())["samples"]
    assert len(samples) == 3  # one per 1 MiB block
    link = ThroughputLog(log_path).recent_bytes_per_second(window_seconds=60)
    assert link is not None and link > 3 * rate  # ...but the link measured is Azurite's, not the cap
