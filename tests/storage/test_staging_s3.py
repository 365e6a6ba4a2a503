"""Staging uploads on S3, against moto's server over HTTP: the robot's side is a plain httpx PUT
of each part to its pre-signed UploadPart URL (no boto3, no credentials)."""

from __future__ import annotations

import base64
import hashlib
import os
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from axon_dagster.domain.layout import staging_key, staging_prefix
from axon_dagster.storage.object_stores import (
    ObjectNotFound,
    PartsRefused,
    S3ObjectStore,
    StagingError,
    UnknownUpload,
    plan_parts,
)
from axon_dagster.storage.object_stores.staging import MIN_PART_SIZE

MiB = 1 << 20
KEY = staging_key("robot-1", "t-1", "t-1.mcap")


@pytest.fixture
def store(s3_env, s3_bucket) -> S3ObjectStore:
    return S3ObjectStore(s3_bucket, prefix="cloud", endpoint_url=s3_env.url)


def everything(s3_client, bucket: str) -> tuple[list[str], list[str]]:
    """Every object and every open multipart upload of the bucket."""
    objects = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    uploads = [u["UploadId"] for u in s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    return sorted(objects), sorted(uploads)


def robot_put(target, body: bytes, content_md5: bool = True) -> str:
    """What the robot does: PUT the part with its Content-MD5, check the ETag is the part's MD5."""
    headers = dict(target.headers)
    if content_md5:
        headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
    resp = httpx.request(target.method, target.url, content=body, headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.headers["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    return resp.headers["ETag"]


def upload(store: S3ObjectStore, key: str, data: bytes, part_size: int = MIN_PART_SIZE) -> str:
    upload_id = store.start_multipart(key)
    parts = plan_parts(len(data), part_size)
    targets = store.part_targets(key, upload_id, parts, expires_s=900)
    etags = {t.number: robot_put(t, data[p.offset:p.offset + p.size]) for t, p in zip(targets, parts)}
    assert store.list_parts(key, upload_id) == etags
    store.complete_multipart(key, upload_id, etags)
    return upload_id


def test_a_robot_uploads_through_presigned_urls_and_the_store_verifies(store, s3_client, s3_bucket) -> None:
    data = os.urandom(11 * MiB + 123)
    upload_id = upload(store, KEY, data)
    assert s3_client.get_object(Bucket=s3_bucket, Key=f"cloud/{KEY}")["Body"].read() == data
    assert store.sha256_of(KEY) == hashlib.sha256(data).hexdigest()
    assert store.list_parts(KEY, upload_id) == {}  # completed: gone


def test_presigned_urls_are_sigv4_expiring_and_name_only_their_part(store) -> None:
    upload_id = store.start_multipart(KEY)
    [target] = store.part_targets(KEY, upload_id, [(3, 0, 10)], expires_s=120)
    q = parse_qs(urlsplit(target.url).query)
    assert q["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and q["X-Amz-Expires"] == ["120"]
    assert q["partNumber"] == ["3"] and q["uploadId"] == [upload_id]
    assert urlsplit(target.url).path.endswith(f"/cloud/{KEY}")
    assert target.method == "PUT" and target.etag is None
    assert not any(k.lower().startswith("x-amz-checksum") or k.lower() == "x-amz-sdk-checksum-algorithm" for k in q)


def test_a_resumed_upload_lists_the_parts_already_sent(store) -> None:
    data = os.urandom(2 * MIN_PART_SIZE + 10)
    upload_id = store.start_multipart(KEY)
    parts = plan_parts(len(data), MIN_PART_SIZE)
    first = store.part_targets(KEY, upload_id, parts[:1], expires_s=60)[0]
    etag1 = robot_put(first, data[:MIN_PART_SIZE])
    # the robot comes back later: a new plan, the held part is not sent again
    assert store.list_parts(KEY, upload_id) == {1: etag1}
    rest = store.part_targets(KEY, upload_id, parts[1:], expires_s=60)
    etags = {1: etag1, **{t.number: robot_put(t, data[p.offset:p.offset + p.size]) for t, p in zip(rest, parts[1:])}}
    store.complete_multipart(KEY, upload_id, etags)
    assert store.sha256_of(KEY) == hashlib.sha256(data).hexdigest()


def test_unknown_upload_ids_are_refused_and_nothing_changes(store, s3_client, s3_bucket) -> None:
    upload_id = store.start_multipart(KEY)
    before = everything(s3_client, s3_bucket)
    for bad in ("no-such-upload", ""):
        assert store.list_parts(KEY, bad) == {}
        with pytest.raises(UnknownUpload):
            store.part_targets(KEY, bad, [(1, 0, 1)], 60)
        store.abort_multipart(KEY, bad)  # no error
    with pytest.raises(UnknownUpload):
        store.complete_multipart(KEY, "no-such-upload", {1: '"' + "0" * 32 + '"'})
    with pytest.raises(UnknownUpload):  # an upload id of another key
        store.complete_multipart(staging_key("robot-2", "t-2", "t-2.mcap"), upload_id, {1: '"' + "0" * 32 + '"'})
    assert everything(s3_client, s3_bucket) == before


def test_completing_with_a_wrong_etag_is_refused_and_the_upload_kept(store, s3_client, s3_bucket) -> None:
    upload_id = store.start_multipart(KEY)
    [target] = store.part_targets(KEY, upload_id, [(1, 0, 100)], expires_s=60)
    etag = robot_put(target, b"x" * 100)
    before = everything(s3_client, s3_bucket)
    for parts in ({1: '"' + "0" * 32 + '"'}, {1: etag, 2: etag}):
        with pytest.raises(PartsRefused):
            store.complete_multipart(KEY, upload_id, parts)
    with pytest.raises(StagingError):
        store.complete_multipart(KEY, upload_id, {})
    assert everything(s3_client, s3_bucket) == before
    assert not store.exists(KEY)
    store.complete_multipart(KEY, upload_id, {1: etag})
    assert store.get_bytes(KEY) == b"x" * 100


def test_abort_drops_the_upload(store, s3_client, s3_bucket) -> None:
    upload_id = store.start_multipart(KEY)
    robot_put(store.part_targets(KEY, upload_id, [(1, 0, 5)], 60)[0], b"12345")
    store.abort_multipart(KEY, upload_id)
    assert store.list_parts(KEY, upload_id) == {}
    assert everything(s3_client, s3_bucket) == ([], [])


def test_copy_object_small_and_multipart(store, s3_client, s3_bucket) -> None:
    data = os.urandom(11 * MiB + 5)
    store.put_bytes("staging/robot-1/t-1/small.json", b"{}")
    upload(store, KEY, data)
    store.copy_object("staging/robot-1/t-1/small.json", "lake/x.json")
    assert store.get_bytes("lake/x.json") == b"{}"
    store.copy_threshold, store.copy_part_size = 5 * MiB, 5 * MiB  # as above 5 GiB, at test size
    calls = []  # the store has its own client: count its UploadPartCopy requests
    store.client.meta.events.register("before-send.s3.UploadPartCopy", lambda **kw: calls.append(1))
    store.copy_object(KEY, "lake/x.mcap")
    assert len(calls) == 3
    assert store.sha256_of("lake/x.mcap") == hashlib.sha256(data).hexdigest()
    assert [u for u in everything(s3_client, s3_bucket)[1]] == []
    with pytest.raises(ObjectNotFound):
        store.copy_object("staging/robot-1/t-1/missing", "lake/y")
    assert not store.exists("lake/y")


def test_delete_prefix_removes_objects_and_open_uploads_under_it_only(store, s3_client, s3_bucket) -> None:
    for name in ("t-1.mcap", "t-1.json"):
        store.put_bytes(staging_key("robot-1", "t-1", name), b"x")
    store.put_bytes(staging_key("robot-1", "t-10", "t-10.mcap"), b"kept")
    store.put_bytes("lake/x.mcap", b"lake")
    store.start_multipart(staging_key("robot-1", "t-1", "t-1.extra"))
    kept = store.start_multipart(staging_key("robot-1", "t-10", "t-10.json"))
    assert store.delete_prefix(staging_prefix("robot-1", "t-1")) == 2
    objects, uploads = everything(s3_client, s3_bucket)
    assert objects == ["cloud/lake/x.mcap", "cloud/staging/robot-1/t-10/t-10.mcap"] and uploads == [kept]
    with pytest.raises(StagingError, match="empty prefix"):
        store.delete_prefix("")
    assert everything(s3_client, s3_bucket) == (objects, uploads)


def test_sha256_of_a_missing_object(store) -> None:
    with pytest.raises(ObjectNotFound):
        store.sha256_of("staging/robot-1/t-1/none")


def test_stale_uploads_are_aborted_and_fresh_ones_kept(store, s3_client, s3_bucket) -> None:
    """Staleness is judged from the initiation time S3 reports (moto reports a fixed one: the
    test's clock is set relative to it)."""
    old = store.start_multipart(KEY)
    other = store.start_multipart("lake/not-staging.mcap")
    initiated = next(u["Initiated"] for u in s3_client.list_multipart_uploads(Bucket=s3_bucket)["Uploads"] if u["UploadId"] == old)
    assert store.abort_stale_uploads("staging/", 3600, now=initiated.timestamp() + 60) == 0
    assert store.abort_stale_uploads("staging/", 3600, now=initiated.timestamp() + 7200) == 1
    assert everything(s3_client, s3_bucket)[1] == [other] and store.list_parts(KEY, old) == {}
