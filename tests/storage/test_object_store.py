"""Both object store backends against real bytes: a real Lance recording, a real directory, and a
real S3 endpoint over HTTP (moto's server)."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from axon_dagster.domain import cloud_dataset_key, sidecar_key
from axon_dagster.storage.digest import DigestMismatch, dataset_digest
from axon_dagster.storage.object_stores import (
    LocalDirObjectStore,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    ObjectStoreUnavailable,
    S3ObjectStore,
    object_store_from_url,
)
from axon_dagster.storage.recording import Sidecar, sidecar_path

try:
    from tests.s3_fixture import S3RequestLog, make_s3_client
except ModuleNotFoundError:  # see conftest.py
    from s3_fixture import S3RequestLog, make_s3_client  # type: ignore[no-redef]

from .conftest import tamper

KEY = cloud_dataset_key("warehouse", "aisle_1", ["nav", "pick"], datetime(2026, 11, 26, 9, 30, tzinfo=timezone.utc))

UNSAFE_KEYS = ["../escape", "/abs/key", "a/../../b", "a//b", "a/./b", "a\\b", "a\x00b", "a\nb", "", "trailing/", ".axon-meta/x", ".."]


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> ObjectStore:
    if request.param == "local":
        return LocalDirObjectStore(tmp_path / "cloud")
    client = request.getfixturevalue("s3_client")
    return S3ObjectStore(request.getfixturevalue("s3_bucket"), prefix="datasets", client=client)


@pytest.fixture
def recording(make_recording) -> tuple[Path, Sidecar]:
    src = make_recording("task-1")
    return src, Sidecar.read(sidecar_path(src))


def stored_everything(store: ObjectStore) -> list[str]:
    keys = store.list_keys()
    if isinstance(store, LocalDirObjectStore):  # also temp files and bookkeeping the listing hides
        keys += [p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.name.startswith(".axon-")]
    return keys


# ------------------------------------------------------------------------------------- round trip


def test_a_lance_recording_round_trips_with_the_sidecars_digest(store, recording, tmp_path):
    import lance

    src, sidecar = recording

    uri = store.put_dataset(src, KEY, sidecar.files)
    sidecar_uri = store.put_file(sidecar_path(src), sidecar_key(KEY))

    assert uri == store.uri_for(KEY) and sidecar_uri == store.uri_for(sidecar_key(KEY))
    if isinstance(store, S3ObjectStore):
        assert uri == f"s3://{store.bucket}/datasets/{KEY}"
    else:
        assert uri == f"file://{store.root}/{KEY}"  # KEY holds a '+': kept readable
        assert object_store_from_url(uri).root == store.root / KEY
    assert store.verify_dataset(KEY, sidecar.files) == sidecar.dataset_digest
    assert Sidecar.from_json(store.get_bytes(sidecar_key(KEY)).decode()).dataset_digest == sidecar.dataset_digest
    assert sorted(store.list_keys(f"{KEY}/")) == sorted(f"{KEY}/{rel}" for rel in sidecar.files)

    fetched = store.fetch_dataset(KEY, tmp_path / "fetched" / "copy.lance")
    assert dataset_digest(fetched) == sidecar.dataset_digest
    assert lance.dataset(str(fetched)).count_rows() == sidecar.row_count


def test_s3_objects_carry_the_dataset_digest_and_a_sha256_checksum(s3_client, s3_bucket, recording):
    src, sidecar = recording
    S3ObjectStore(s3_bucket, prefix="datasets", client=s3_client).put_dataset(src, KEY, sidecar.files)

    for rel, sha in sidecar.files.items():
        head = s3_client.head_object(Bucket=s3_bucket, Key=f"datasets/{KEY}/{rel}", ChecksumMode="ENABLED")
        assert head["Metadata"] == {"sha256": sha, "dataset-digest": sidecar.dataset_digest}
        assert base64.b64decode(head["ChecksumSHA256"]).hex() == sha


def test_s3_reupload_of_a_stored_dataset_sends_nothing(s3_client, s3_bucket, recording, caplog):
    src, sidecar = recording
    store = S3ObjectStore(s3_bucket, client=s3_client)
    requests = S3RequestLog(s3_client)

    store.put_dataset(src, KEY, sidecar.files)
    assert requests.count("PutObject") == len(sidecar.files)

    requests.clear()
    with caplog.at_level("INFO", logger="axon_dagster.storage.object_stores"):
        store.put_dataset(src, KEY, sidecar.files)
    assert requests.count("PutObject") == 0
    assert requests.count("HeadObject") == len(sidecar.files)
    assert "nothing re-sent" in caplog.text


def test_s3_resending_a_partly_stored_dataset_sends_only_what_is_missing(s3_client, s3_bucket, recording):
    src, sidecar = recording
    store = S3ObjectStore(s3_bucket, client=s3_client)
    store.put_dataset(src, KEY, sidecar.files)
    lost = sorted(sidecar.files)[0]
    s3_client.delete_object(Bucket=s3_bucket, Key=f"{KEY}/{lost}")
    requests = S3RequestLog(s3_client)

    store.put_dataset(src, KEY, sidecar.files)

    assert [path for op, path in requests.requests if op == "PutObject"] == [f"/{s3_bucket}/{KEY}/{lost}"]
    assert store.verify_dataset(KEY, sidecar.files) == sidecar.dataset_digest


def test_local_reupload_rewrites_nothing(tmp_path, recording):
    src, sidecar = recording
    store = LocalDirObjectStore(tmp_path / "cloud")
    store.put_dataset(src, KEY, sidecar.files)
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (store.root / KEY).rglob("*") if p.is_file()}

    store.put_dataset(src, KEY, sidecar.files)

    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (store.root / KEY).rglob("*") if p.is_file()} == before


# ------------------------------------------------------------------------------------- corruption


def test_verify_detects_a_changed_file_in_the_store(store, recording):
    src, sidecar = recording
    store.put_dataset(src, KEY, sidecar.files)
    victim = sorted(sidecar.files)[-1]
    store.put_bytes(f"{KEY}/{victim}", b"bit rot")

    with pytest.raises(DigestMismatch, match=f"changed \\['{victim}'\\]"):
        store.verify_dataset(KEY, sidecar.files)


def test_verify_detects_a_missing_and_an_unexpected_file(store, recording):
    src, sidecar = recording
    store.put_dataset(src, KEY, sidecar.files)
    store.put_bytes(f"{KEY}/data/stray.bin", b"not part of the dataset")
    with pytest.raises(DigestMismatch, match=r"unexpected \['data/stray.bin'\]"):
        store.verify_dataset(KEY, sidecar.files)

    empty_key = KEY.replace(".lance", "-never-uploaded.lance")
    with pytest.raises(DigestMismatch, match="missing"):
        store.verify_dataset(empty_key, sidecar.files)


def test_s3_verify_detects_bytes_overwritten_behind_the_stores_back(s3_client, s3_bucket, recording):
    """A plain PUT from another client (no SHA-256 checksum, stale metadata) replaces one object."""
    src, sidecar = recording
    store = S3ObjectStore(s3_bucket, client=s3_client)
    store.put_dataset(src, KEY, sidecar.files)
    victim = sorted(sidecar.files)[0]
    s3_client.put_object(
        Bucket=s3_bucket, Key=f"{KEY}/{victim}", Body=b"corrupt",
        Metadata={"sha256": sidecar.files[victim], "dataset-digest": sidecar.dataset_digest},
    )

    with pytest.raises(DigestMismatch, match="changed"):
        store.verify_dataset(KEY, sidecar.files)


def test_s3_reread_verification_catches_a_checksum_the_endpoint_never_validated(s3_client, s3_bucket, recording):
    """moto, like some S3-compatible stores, keeps a client-supplied checksum without checking it."""
    src, sidecar = recording
    S3ObjectStore(s3_bucket, client=s3_client).put_dataset(src, KEY, sidecar.files)
    victim = sorted(sidecar.files)[0]
    claimed = base64.b64encode(bytes.fromhex(sidecar.files[victim])).decode()
    s3_client.put_object(Bucket=s3_bucket, Key=f"{KEY}/{victim}", Body=b"corrupt",
                         ChecksumAlgorithm="SHA256", ChecksumSHA256=claimed)

    trusting = S3ObjectStore(s3_bucket, client=s3_client, verify="checksum")
    assert trusting.verify_dataset(KEY, sidecar.files) == sidecar.dataset_digest  # fooled, by design
    with pytest.raises(DigestMismatch, match="changed"):
        S3ObjectStore(s3_bucket, client=s3_client, verify="reread").verify_dataset(KEY, sidecar.files)


def test_uploading_a_recording_that_no_longer_matches_its_sidecar_fails(store, recording):
    src, sidecar = recording
    tampered = tamper(src).relative_to(src).as_posix()

    with pytest.raises(DigestMismatch, match="after"):
        store.put_dataset(src, KEY, sidecar.files)
    with pytest.raises(DigestMismatch):
        store.verify_dataset(KEY, sidecar.files)
    if isinstance(store, LocalDirObjectStore):  # atomic writes: the bad file never became visible
        assert f"{KEY}/{tampered}" not in store.list_keys()
        assert not [p for p in store.root.rglob("*") if p.name.startswith(".axon-tmp")]


def test_a_dataset_directory_that_differs_from_its_manifest_is_refused_before_any_write(store, recording):
    src, sidecar = recording
    (src / "data" / "stray.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"does not match its manifest: unexpected \['data/stray.bin'\]$"):
        store.put_dataset(src, KEY, sidecar.files)
    assert stored_everything(store) == []


def test_fetch_refuses_a_corrupted_dataset_and_leaves_no_directory(store, recording, tmp_path):
    src, sidecar = recording
    store.put_dataset(src, KEY, sidecar.files)
    store.put_bytes(f"{KEY}/{sorted(sidecar.files)[0]}", b"bit rot")
    dest = tmp_path / "fetched" / "copy.lance"

    with pytest.raises(DigestMismatch):
        store.fetch_dataset(KEY, dest)
    assert not dest.exists() and list(dest.parent.iterdir()) == []

    with pytest.raises(ObjectNotFound):
        store.fetch_dataset("nothing/here.lance", dest)


# ------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad_key", UNSAFE_KEYS)
def test_unsafe_keys_are_refused_and_nothing_is_written(store, recording, tmp_path, bad_key):
    src, sidecar = recording
    outside = sorted(p.as_posix() for p in tmp_path.rglob("*"))

    for attempt in (
        lambda: store.put_bytes(bad_key, b"x"),
        lambda: store.put_file(sidecar_path(src), bad_key),
        lambda: store.put_dataset(src, bad_key, sidecar.files),
        lambda: store.get_bytes(bad_key),
        lambda: store.exists(bad_key),
        lambda: store.verify_dataset(bad_key, sidecar.files),
        lambda: store.fetch_dataset(bad_key, tmp_path / "fetched"),
        lambda: store.uri_for(bad_key),
    ):
        with pytest.raises(ValueError, match="invalid"):
            attempt()

    assert stored_everything(store) == []
    assert sorted(p.as_posix() for p in tmp_path.rglob("*")) == outside


@pytest.mark.parametrize("bad_rel", ["../../etc/evil", "/abs", "data/../../x"])
def test_a_manifest_naming_paths_outside_the_dataset_is_refused(store, recording, bad_rel):
    src, sidecar = recording
    with pytest.raises(ValueError, match="invalid dataset file path"):
        store.put_dataset(src, KEY, {**sidecar.files, bad_rel: "0" * 64})
    assert stored_everything(store) == []


# ------------------------------------------------------------------------------------- small objects


def test_bytes_round_trip_and_listing(store):
    assert store.list_keys() == [] and not store.exists("a/b.json")
    store.put_bytes("a/b.json", b'{"x": 1}')
    store.put_bytes("a/c.json", b"2")
    store.put_bytes("ab/d.json", b"3")

    assert store.get_bytes("a/b.json") == b'{"x": 1}'
    assert store.exists("a/b.json")
    assert store.list_keys("a/") == ["a/b.json", "a/c.json"]
    assert store.list_keys("a") == ["a/b.json", "a/c.json", "ab/d.json"]
    assert store.list_keys() == ["a/b.json", "a/c.json", "ab/d.json"]
    with pytest.raises(ObjectNotFound, match="no object at") as info:
        store.get_bytes("a/missing.json")
    assert isinstance(info.value, KeyError)


def test_local_writes_are_atomic_replacements(tmp_path):
    store = LocalDirObjectStore(tmp_path / "cloud")
    store.put_bytes("k.json", b"old")
    inode = (store.root / "k.json").stat().st_ino
    store.put_bytes("k.json", b"new")
    assert store.get_bytes("k.json") == b"new"
    assert (store.root / "k.json").stat().st_ino != inode  # replaced by rename, never rewritten in place
    assert [p.name for p in store.root.iterdir()] == ["k.json"]


# ------------------------------------------------------------------------------------- from a URL, failures


def test_object_store_from_url_builds_both_backends(tmp_path, s3_env, s3_client, s3_bucket):
    local = object_store_from_url((tmp_path / "cloud").as_uri())
    assert isinstance(local, LocalDirObjectStore) and local.root == (tmp_path / "cloud").resolve()

    s3 = object_store_from_url(f"s3://{s3_bucket}/site-a/")
    assert isinstance(s3, S3ObjectStore) and (s3.bucket, s3.prefix, s3.endpoint_url) == (s3_bucket, "site-a", s3_env.url)
    s3.put_bytes("hello.txt", b"hi")
    assert s3_client.get_object(Bucket=s3_bucket, Key="site-a/hello.txt")["Body"].read() == b"hi"


@pytest.mark.parametrize(
    "url",
    ["http://example.com/x", "/abs/path", "file://host/x", "file:relative", "s3://Bad_Bucket/x", "s3://ok-bucket/../x",
     "s3://ab/x", "s3://ok-bucket/x?versionId=1"],
)
def test_object_store_from_url_refuses_bad_urls(url):
    with pytest.raises(ValueError, match="invalid|unsupported"):
        object_store_from_url(url, endpoint_url="http://127.0.0.1:9")


def test_a_missing_bucket_is_a_clear_error(s3_client):
    store = S3ObjectStore("no-such-bucket-here", client=s3_client)
    with pytest.raises(ObjectStoreError, match="bucket 'no-such-bucket-here' does not exist"):
        store.put_bytes("k", b"x")


def test_an_unreachable_endpoint_is_reported_as_unavailable():
    client = boto3.client(
        "s3", endpoint_url="http://127.0.0.1:9", aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1),
    )
    store = S3ObjectStore("some-bucket", client=client)
    with pytest.raises(ObjectStoreUnavailable, match="unreachable"):
        store.exists("k")


def test_the_s3_fixture_server_is_a_real_http_endpoint(s3_server, s3_bucket):
    """Guard: the suite talks to moto over HTTP, never to an in-process mock."""
    import httpx

    assert s3_server.url.startswith("http://127.0.0.1:")
    client = make_s3_client(s3_server)
    S3ObjectStore(s3_bucket, client=client).put_bytes("k", b"over the wire")
    # A plain HTTP GET (presigned, no boto3 in the path) to the server's socket sees the object.
    url = client.generate_presigned_url("get_object", Params={"Bucket": s3_bucket, "Key": "k"})
    assert url.startswith(s3_server.url)
    assert httpx.get(url).content == b"over the wire"


def test_put_file_with_a_known_sha256_still_verifies_the_stored_copy(store, tmp_path):
    import hashlib

    src = tmp_path / "original.mcap"
    src.write_bytes(b"recorded bytes" * 1000)
    right = hashlib.sha256(src.read_bytes()).hexdigest()
    assert store.put_file(src, "a/original.mcap", sha256=right) == store.uri_for("a/original.mcap")
    assert store.get_bytes("a/original.mcap") == src.read_bytes()
    # a file that no longer has the hash the caller computed (rewritten in between) is not stored
    src.write_bytes(b"rewritten bytes" * 1000)
    with pytest.raises(DigestMismatch) as refused:
        store.put_file(src, "b/original.mcap", sha256=right)
    # S3 checks after the PUT: the object that failed is deleted, and the error says so
    assert not store.exists("b/original.mcap")
    if not isinstance(store, LocalDirObjectStore):
        assert "the stored object was deleted" in str(refused.value)
    with pytest.raises(ValueError, match="invalid sha256"):
        store.put_file(src, "c/original.mcap", sha256="ABC")
    assert not store.exists("c/original.mcap")
