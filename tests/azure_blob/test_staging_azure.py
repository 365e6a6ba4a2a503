"""Staging uploads on Azure Blob Storage, against Azurite over HTTP: the robot's side is a plain
httpx PUT of each block to its SAS URL with the block's Content-MD5 (no SDK, no account key)."""

from __future__ import annotations

import base64
import hashlib
import os
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from axon_dagster.domain.layout import staging_key, staging_prefix
from axon_dagster.storage.object_stores import ObjectNotFound, PartsRefused, StagingError, UnknownUpload, plan_parts

KiB = 1024
KEY = staging_key("robot-1", "t-1", "t-1.mcap")


@pytest.fixture
def store(make_store):
    return make_store()


def everything(store) -> list[str]:
    """Every blob of the container, reserved markers included, and uncommitted blocks per blob."""
    out = []
    for blob in store.client.list_blobs(include=["uncommittedblobs"]):
        out.append(blob.name)
    for name in list(out):
        try:
            _, uncommitted = store.client.get_blob_client(name).get_block_list("uncommitted")
            out += [f"{name}#{b.id}" for b in uncommitted]
        except Exception:
            pass
    return sorted(out)


def robot_put(target, body: bytes, md5_of: bytes | None = None) -> httpx.Response:
    headers = {**target.headers, "Content-MD5": base64.b64encode(hashlib.md5(body if md5_of is None else md5_of).digest()).decode()}
    return httpx.request(target.method, target.url, content=body, headers=headers, timeout=30)


def upload(store, key: str, data: bytes, part_size: int = 100 * KiB) -> str:
    upload_id = store.start_multipart(key)
    parts = plan_parts(len(data), part_size)
    etags = {}
    for target, p in zip(store.part_targets(key, upload_id, parts, 600), parts):
        resp = robot_put(target, data[p.offset:p.offset + p.size])
        assert resp.status_code == 201, resp.text
        etags[target.number] = target.etag
    assert store.list_parts(key, upload_id) == etags
    store.complete_multipart(key, upload_id, etags)
    return upload_id


def test_a_robot_uploads_blocks_through_sas_urls(store) -> None:
    data = os.urandom(350 * KiB + 7)
    upload_id = upload(store, KEY, data)
    assert store.get_bytes(KEY) == data
    assert store.sha256_of(KEY) == hashlib.sha256(data).hexdigest()
    assert store.list_parts(KEY, upload_id) == {}
    assert not any(".axon-uploads" in n for n in everything(store))  # the marker went with the completion


def test_sas_urls_grant_write_on_one_blob_and_expire(store) -> None:
    upload_id = store.start_multipart(KEY)
    [target] = store.part_targets(KEY, upload_id, [(2, 0, 10)], 120)
    q = parse_qs(urlsplit(target.url).query)
    assert q["comp"] == ["block"] and q["sp"] == ["w"] and q["sr"] == ["b"] and "se" in q and "sig" in q
    assert base64.b64decode(q["blockid"][0]).decode() == target.etag == f"{upload_id}-00002"
    assert urlsplit(target.url).path.endswith(f"/datasets/{KEY}")


def test_a_block_whose_body_differs_from_its_content_md5_is_refused_by_azure(store) -> None:
    upload_id = store.start_multipart(KEY)
    [target] = store.part_targets(KEY, upload_id, [(1, 0, 10)], 60)
    resp = robot_put(target, b"x" * 10, md5_of=b"y" * 10)
    assert resp.status_code == 400 and "Md5Mismatch" in resp.text
    assert store.list_parts(KEY, upload_id) == {}


def test_a_tampered_or_expired_sas_is_refused_by_azure(store) -> None:
    upload_id = store.start_multipart(KEY)
    [target] = store.part_targets(KEY, upload_id, [(1, 0, 10)], 60)
    tampered = target.url.replace("sp=w", "sp=rw")
    assert robot_put(type(target)(1, tampered), b"x" * 10).status_code == 403
    [short] = store.part_targets(KEY, upload_id, [(1, 0, 10)], 1)
    import time

    time.sleep(2.1)
    assert robot_put(short, b"x" * 10).status_code == 403
    assert store.list_parts(KEY, upload_id) == {}


def test_unknown_upload_ids_are_refused_and_nothing_changes(store) -> None:
    upload_id = store.start_multipart(KEY)
    other = staging_key("robot-2", "t-2", "t-2.mcap")
    before = everything(store)
    for bad_key, bad_id in [(KEY, "0" * 32), (KEY, "../x"), (other, upload_id), (KEY, "")]:
        assert store.list_parts(bad_key, bad_id) == {}
        with pytest.raises(UnknownUpload):
            store.part_targets(bad_key, bad_id, [(1, 0, 1)], 60)
        with pytest.raises(UnknownUpload):
            store.complete_multipart(bad_key, bad_id, {1: f"{bad_id}-00001"})
        store.abort_multipart(bad_key, bad_id)
    assert everything(store) == before


def test_completing_with_a_block_not_held_is_refused_and_the_upload_kept(store) -> None:
    upload_id = store.start_multipart(KEY)
    [target] = store.part_targets(KEY, upload_id, [(1, 0, 10)], 60)
    assert robot_put(target, b"x" * 10).status_code == 201
    before = everything(store)
    for parts in ({1: f"{upload_id}-00002"}, {1: target.etag, 2: f"{upload_id}-00002"}, {1: "other-00001"}):
        with pytest.raises(PartsRefused):
            store.complete_multipart(KEY, upload_id, parts)
    with pytest.raises(StagingError):
        store.complete_multipart(KEY, upload_id, {})
    assert everything(store) == before and not store.exists(KEY)
    store.complete_multipart(KEY, upload_id, {1: target.etag})
    assert store.get_bytes(KEY) == b"x" * 10


def test_abort_drops_the_upload_and_its_blocks(store) -> None:
    upload_id = store.start_multipart(KEY)
    [target] = store.part_targets(KEY, upload_id, [(1, 0, 10)], 60)
    robot_put(target, b"x" * 10)
    store.abort_multipart(KEY, upload_id)
    assert store.list_parts(KEY, upload_id) == {}
    assert everything(store) == []


def test_copy_and_delete_prefix(store) -> None:
    data = os.urandom(250 * KiB)
    upload(store, KEY, data)
    store.put_bytes(staging_key("robot-1", "t-10", "t-10.mcap"), b"kept")
    open_id = store.start_multipart(staging_key("robot-1", "t-1", "t-1.json"))
    store.copy_object(KEY, "lake/x.mcap")
    assert store.sha256_of("lake/x.mcap") == hashlib.sha256(data).hexdigest()
    with pytest.raises(ObjectNotFound):
        store.copy_object("staging/robot-1/t-1/missing", "lake/y")
    assert store.delete_prefix(staging_prefix("robot-1", "t-1")) == 1
    assert store.list_keys() == ["lake/x.mcap", "staging/robot-1/t-10/t-10.mcap"]
    assert store.list_parts(staging_key("robot-1", "t-1", "t-1.json"), open_id) == {}
    with pytest.raises(StagingError, match="empty prefix"):
        store.delete_prefix("")


def test_stale_uploads_are_aborted_and_fresh_ones_kept(store) -> None:
    import time

    old = store.start_multipart(KEY)
    [target] = store.part_targets(KEY, old, [(1, 0, 10)], 60)
    robot_put(target, b"x" * 10)
    other = store.start_multipart("lake/not-staging.mcap")
    assert store.abort_stale_uploads("staging/", 3600) == 0
    assert store.abort_stale_uploads("staging/", 3600, now=time.time() + 7200) == 1
    assert store.list_parts(KEY, old) == {} and store.list_parts("lake/not-staging.mcap", other) == {}
    assert [n for n in everything(store) if "#" in n] == []  # the stale upload's blocks went with it
