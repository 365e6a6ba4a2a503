"""Robots' uploads into the local store's staging area (issue 13): parts written through the
control plane's ingest endpoint into the upload's file at their signed offsets, signed part URLs,
completion (no byte copied; the SHA-256 computed while parts arrived, or the file read again when
that cannot be trusted), copy, cleanup — and every refusal leaves what the store holds as it was."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from axon_dagster.domain.errors import InvalidIdError
from axon_dagster.domain.layout import parse_staging_key, staging_key, staging_prefix
from axon_dagster.storage.object_stores import (
    LocalDirObjectStore,
    ObjectStoreUnavailable,
    ObjectNotFound,
    PartDigestMismatch,
    PartIncomplete,
    PartSignatureError,
    PartsRefused,
    PartTooLarge,
    StagingError,
    UnknownUpload,
    plan_parts,
    verify_part_signature,
)
from axon_dagster.storage.object_stores import local_parts
from axon_dagster.storage.object_stores.signing import PART_URL_PATH
from axon_dagster.storage.object_stores.staging import MAX_PART_SIZE

KEY = b"k" * 32
API = "http://cp.example:8000"


@pytest.fixture
def store(tmp_path: Path) -> LocalDirObjectStore:
    return LocalDirObjectStore(tmp_path / "cloud").with_ingest(API, KEY)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under the store root, reserved bookkeeping included (but the empty lock files
    writers of a part take turns on)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def held(store: LocalDirObjectStore, key: str, upload_id: str) -> dict[int, tuple[str, bytes]]:
    """What the upload holds: each held part's ETag and bytes."""
    upload_dir = store.root / ".axon-uploads" / upload_id
    data = (upload_dir / "data").read_bytes() if upload_dir.is_dir() else b""
    parts = local_parts.read_journal(upload_dir)
    return {n: (p.etag, data[p.offset:p.offset + p.size]) for n, p in parts.items()}


@pytest.fixture
def no_rereads(monkeypatch):
    """Completion must use the running digest: reading the file again fails the test."""
    def reread(*_a, **_k):
        raise AssertionError("completion read the file again")
    monkeypatch.setattr(local_parts, "_sha256_of_fd", reread)


def content_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def test_a_file_goes_up_in_parts_and_is_completed(store: LocalDirObjectStore, no_rereads) -> None:
    data = os.urandom(2 * 1024 * 1024 + 77)
    key = staging_key("robot-1", "t-1", "t-1.mcap")
    upload_id = store.start_multipart(key)
    parts = plan_parts(len(data), 1024 * 1024)
    etags = {}
    for p in parts:
        body = data[p.offset:p.offset + p.size]
        # a file object for one part, an iterable of chunks for the others (the route streams)
        stream = io.BytesIO(body) if p.number == 1 else (body[i:i + 1000] for i in range(0, len(body), 1000))
        etags[p.number] = store.write_part(key, upload_id, p.number, stream, p.size, offset=p.offset,
                                           content_md5=content_md5(body) if p.number == 2 else None)
        assert re.fullmatch(r'"\d+-[0-9a-f]{16}"', etags[p.number]), "an ETag that no one takes for an MD5"
    assert store.list_parts(key, upload_id) == etags
    assert not store.exists(key)  # nothing visible before completion
    inode = (store.root / ".axon-uploads" / upload_id / "data").stat().st_ino
    assert store.complete_multipart(key, upload_id, etags) == hashlib.sha256(data).hexdigest()
    assert store.get_bytes(key) == data
    assert store._path(key).stat().st_ino == inode, "the upload's file became the object: no byte copied"
    assert store.list_parts(key, upload_id) == {}  # the upload is gone once completed
    # ... but for what completion verified, kept for the data flow reading the upload as it came
    assert [p.name for p in store.root.glob(".axon-uploads/*")] == [f"{upload_id}.completed"]
    assert store.completion_of(upload_id) == {"key": key, "sha256": hashlib.sha256(data).hexdigest(),
                                               "parts": [[p.number, p.offset, p.size, etags[p.number]] for p in parts]}
    store.delete_prefix(staging_prefix("robot-1", "t-1"))
    assert not any(store.root.glob(".axon-uploads/*")) and store.completion_of(upload_id) is None


def test_parts_that_come_out_of_order_are_hashed_once_the_gap_closes(store: LocalDirObjectStore, no_rereads) -> None:
    data = os.urandom(5 * 4096 + 3)
    key = staging_key("robot-1", "t-1", "t-1.mcap")
    upload_id = store.start_multipart(key)
    parts = plan_parts(len(data), 4096)
    etags = {}
    for p in [parts[3], parts[1], parts[5], parts[0], parts[4], parts[2]]:
        etags[p.number] = store.write_part(key, upload_id, p.number, io.BytesIO(data[p.offset:p.offset + p.size]), p.size,
                                           offset=p.offset)
    assert store.complete_multipart(key, upload_id, etags) == hashlib.sha256(data).hexdigest()
    assert store.get_bytes(key) == data


def test_completion_reads_the_file_again_when_the_running_digest_cannot_vouch(tmp_path: Path, store: LocalDirObjectStore) -> None:
    """A part rewritten after it was hashed, or parts written by another process (here: another
    store object, as after a restart): the digest comes from the file, and is still right."""
    data = os.urandom(3 * 4096)
    key = staging_key("robot-1", "t-1", "t-1.mcap")
    parts = plan_parts(len(data), 4096)

    upload_id = store.start_multipart(key)
    etags = {p.number: store.write_part(key, upload_id, p.number, io.BytesIO(b"z" * p.size), p.size, offset=p.offset) for p in parts}
    etags[1] = store.write_part(key, upload_id, 1, io.BytesIO(data[:4096]), 4096, offset=0)  # part 1 again, other bytes
    etags.update({p.number: store.write_part(key, upload_id, p.number, io.BytesIO(data[p.offset:p.offset + p.size]), p.size,
                                             offset=p.offset) for p in parts[1:]})
    assert store.complete_multipart(key, upload_id, etags) == hashlib.sha256(data).hexdigest()

    other_key = staging_key("robot-1", "t-2", "t-2.mcap")
    upload_id = store.start_multipart(other_key)
    restarted = LocalDirObjectStore(store.root)
    etags = {p.number: restarted.write_part(other_key, upload_id, p.number, io.BytesIO(data[p.offset:p.offset + p.size]), p.size,
                                            offset=p.offset) for p in parts[:2]}
    etags[3] = store.write_part(other_key, upload_id, 3, io.BytesIO(data[8192:]), 4096, offset=8192)
    assert store.complete_multipart(other_key, upload_id, etags) == hashlib.sha256(data).hexdigest()
    assert store.get_bytes(other_key) == data


def test_part_urls_are_signed_for_the_ingest_endpoint(store: LocalDirObjectStore) -> None:
    key = staging_key("robot-1", "t-1", "t-1.lance/data/0.lance")
    upload_id = store.start_multipart(key)
    targets = store.part_targets(key, upload_id, [(1, 0, 100), (2, 100, 50)], expires_s=600)
    assert [t.number for t in targets] == [1, 2]
    for target, size in zip(targets, (100, 50)):
        url = urlsplit(target.url)
        assert f"{url.scheme}://{url.netloc}" == API
        assert url.path == PART_URL_PATH.format(task_id="t-1", number=target.number)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        assert q["file"] == "t-1.lance/data/0.lance" and q["upload_id"] == upload_id and q["size"] == str(size)
        assert q["offset"] == str(0 if target.number == 1 else 100)
        verify_part_signature(KEY, robot_id="robot-1", task_id="t-1", name=q["file"], upload_id=q["upload_id"], number=str(target.number),
                              offset=q["offset"], size=q["size"], expires=q["expires"], sig=q["sig"])
        with pytest.raises(PartSignatureError, match="bad signature"):  # the offset is signed: another one is refused
            verify_part_signature(KEY, robot_id="robot-1", task_id="t-1", name=q["file"], upload_id=q["upload_id"], number=str(target.number),
                                  offset=str(int(q["offset"]) + 1), size=q["size"], expires=q["expires"], sig=q["sig"])
        assert target.method == "PUT" and target.to_json()["url"] == target.url


def test_part_urls_need_the_ingest_settings_and_a_staging_key(tmp_path: Path, store: LocalDirObjectStore) -> None:
    bare = LocalDirObjectStore(tmp_path / "bare")
    key = staging_key("robot-1", "t-1", "t-1.mcap")
    with pytest.raises(StagingError, match="with_ingest"):
        bare.part_targets(key, bare.start_multipart(key), [(1, 0, 1)], 60)
    lake_key = "warehouse/aisle_1/x.mcap"
    with pytest.raises(InvalidIdError, match="staging key"):
        store.part_targets(lake_key, store.start_multipart(lake_key), [(1, 0, 1)], 60)
    with pytest.raises(StagingError, match="URL lifetime"):
        store.part_targets(key, store.start_multipart(key), [(1, 0, 1)], 0)
    with pytest.raises(UnknownUpload):
        store.part_targets(key, "0" * 32, [(1, 0, 1)], 60)


def test_a_rewritten_part_replaces_the_earlier_one(store: LocalDirObjectStore) -> None:
    key = staging_key("robot-1", "t-1", "t-1.mcap")
    upload_id = store.start_multipart(key)
    first = store.write_part(key, upload_id, 1, io.BytesIO(b"a" * 10), 10)
    etag = store.write_part(key, upload_id, 1, io.BytesIO(b"b" * 10), 10)
    assert etag != first and store.list_parts(key, upload_id) == {1: etag}
    with pytest.raises(PartsRefused, match="not held"):
        store.complete_multipart(key, upload_id, {1: first})
    assert store.complete_multipart(key, upload_id, {1: etag.strip('"')}) == hashlib.sha256(b"b" * 10).hexdigest()  # unquoted too
    assert store.get_bytes(key) == b"b" * 10


def test_a_part_of_another_layout_is_dropped_when_part_targets_change(store: LocalDirObjectStore) -> None:
    """The part size changed between two plans: held parts that no longer fit are not held."""
    key = staging_key("robot-1", "t-1", "t-1.mcap")
    upload_id = store.start_multipart(key)
    data = os.urandom(300)
    old = {p.number: store.write_part(key, upload_id, p.number, io.BytesIO(data[p.offset:p.offset + p.size]), p.size, offset=p.offset)
           for p in plan_parts(300, 100)}
    new_layout = plan_parts(300, 200)
    store.part_targets(key, upload_id, new_layout, 60)
    assert store.list_parts(key, upload_id) == {}, "both held parts had another offset or size"
    etags = {p.number: store.write_part(key, upload_id, p.number, io.BytesIO(data[p.offset:p.offset + p.size]), p.size, offset=p.offset)
             for p in new_layout}
    with pytest.raises(PartsRefused):
        store.complete_multipart(key, upload_id, old)
    assert store.complete_multipart(key, upload_id, etags) == hashlib.sha256(data).hexdigest()


def test_completion_refuses_parts_that_do_not_tile_the_file(store: LocalDirObjectStore) -> None:
    key = staging_key("robot-1", "t-1", "t-1.mcap")
    upload_id = store.start_multipart(key)
    one = store.write_part(key, upload_id, 1, io.BytesIO(b"a" * 10), 10, offset=0)
    three = store.write_part(key, upload_id, 3, io.BytesIO(b"c" * 10), 10, offset=20)
    before = held(store, key, upload_id)
    with pytest.raises(PartsRefused, match="starts at byte 20, not 10"):
        store.complete_multipart(key, upload_id, {1: one, 3: three})
    assert held(store, key, upload_id) == before


def test_an_empty_file_is_one_empty_part(store: LocalDirObjectStore) -> None:
    key = staging_key("robot-1", "t-1", "t-1.json")
    upload_id = store.start_multipart(key)
    [part] = plan_parts(0)
    etag = store.write_part(key, upload_id, part.number, io.BytesIO(b""), part.size)
    store.complete_multipart(key, upload_id, {1: etag})
    assert store.get_bytes(key) == b""


# --------------------------------------------------------------------------- refusals: nothing changed


@pytest.fixture
def open_upload(store: LocalDirObjectStore) -> tuple[str, str, str]:
    key = staging_key("robot-1", "t-1", "t-1.mcap")
    upload_id = store.start_multipart(key)
    etag = store.write_part(key, upload_id, 1, io.BytesIO(b"x" * 100), 100)
    return key, upload_id, etag


def test_an_oversized_part_is_refused_and_nothing_kept(store, open_upload) -> None:
    key, upload_id, _ = open_upload
    before = snapshot(store.root)
    with pytest.raises(PartTooLarge, match="larger than its planned 10 bytes"):
        store.write_part(key, upload_id, 2, io.BytesIO(b"y" * 11), 10, offset=100)
    assert snapshot(store.root) == before  # refused before a byte was written: nothing changed
    held_before = held(store, key, upload_id)
    with pytest.raises(PartTooLarge):  # the same through the streaming writer
        with store.open_part(key, upload_id, 2, 10, offset=100) as writer:
            writer.write(b"y" * 6)
            writer.write(b"y" * 6)
    assert held(store, key, upload_id) == held_before and 2 not in store.list_parts(key, upload_id)


def test_a_short_part_is_refused_and_nothing_kept(store, open_upload) -> None:
    key, upload_id, _ = open_upload
    before = held(store, key, upload_id)
    with pytest.raises(PartIncomplete, match="after 5 of its 10 bytes"):
        store.write_part(key, upload_id, 2, io.BytesIO(b"y" * 5), 10, offset=100)
    assert held(store, key, upload_id) == before


def test_a_part_whose_body_differs_from_its_content_md5_is_refused(store, open_upload) -> None:
    key, upload_id, _ = open_upload
    before = snapshot(store.root)
    with pytest.raises(PartDigestMismatch, match="invalid Content-MD5"):
        store.write_part(key, upload_id, 2, io.BytesIO(b"y" * 10), 10, offset=100, content_md5="not-base64!")
    assert snapshot(store.root) == before
    with pytest.raises(PartDigestMismatch, match="differs from its Content-MD5"):
        store.write_part(key, upload_id, 2, io.BytesIO(b"y" * 10), 10, offset=100, content_md5=content_md5(b"z" * 10))
    assert 2 not in store.list_parts(key, upload_id)
    assert held(store, key, upload_id) == {1: (store.list_parts(key, upload_id)[1], b"x" * 100)}


@pytest.mark.parametrize("number, size", [(0, 1), (10_001, 1), (True, 1), (1, -1), (1, MAX_PART_SIZE + 1)])
def test_bad_part_numbers_and_sizes_are_refused(store, open_upload, number, size) -> None:
    key, upload_id, _ = open_upload
    before = snapshot(store.root)
    with pytest.raises(StagingError):
        store.write_part(key, upload_id, number, io.BytesIO(b""), size)
    assert snapshot(store.root) == before


def test_unknown_upload_ids_are_refused(store, open_upload) -> None:
    key, upload_id, etag = open_upload
    other_key = staging_key("robot-2", "t-9", "t-9.mcap")
    other_id = store.start_multipart(other_key)
    before = snapshot(store.root)
    for bad_key, bad_id in [(key, "0" * 32), (key, "../" + upload_id), (key, other_id), (other_key, upload_id), (key, 7)]:
        with pytest.raises(UnknownUpload):
            store.write_part(bad_key, bad_id, 2, io.BytesIO(b"y"), 1)
        with pytest.raises(UnknownUpload):
            store.complete_multipart(bad_key, bad_id, {1: etag})
        assert store.list_parts(bad_key, bad_id) == {}
        store.abort_multipart(bad_key, bad_id)  # no error, and it aborts nothing else
    assert snapshot(store.root) == before


@pytest.mark.parametrize("name", ["../t-1.mcap", "a/../../b", "/etc/passwd", "a\\b", "a\x00b", "", "a//b", ".axon-uploads/x", "./a"])
def test_traversal_names_are_refused(store, name) -> None:
    before = snapshot(store.root)
    with pytest.raises(InvalidIdError):
        staging_key("robot-1", "t-1", name)
    with pytest.raises((ValueError, StagingError)):
        store.start_multipart(f"staging/robot-1/t-1/{name}")
    with pytest.raises((ValueError, StagingError)):
        store.write_part(f"staging/robot-1/t-1/{name}", "0" * 32, 1, io.BytesIO(b"y"), 1)
    assert snapshot(store.root) == before


@pytest.mark.parametrize("robot_id, task_id", [("..", "t-1"), ("robot-1", ".."), ("a/b", "t"), ("r", "t/x"), ("", "t")])
def test_traversal_ids_are_refused(robot_id, task_id) -> None:
    with pytest.raises(InvalidIdError):
        staging_key(robot_id, task_id, "t.mcap")
    with pytest.raises(InvalidIdError):
        staging_prefix(robot_id, task_id)


def test_staging_keys_parse_back_and_refuse_other_keys() -> None:
    assert parse_staging_key("staging/robot-1/t-1/t-1.lance/data/0.lance") == ("robot-1", "t-1", "t-1.lance/data/0.lance")
    for bad in ["lake/robot-1/t-1/x", "staging/robot-1/t-1", "staging/../t-1/x", "staging/r/t/../x", None]:
        with pytest.raises(InvalidIdError):
            parse_staging_key(bad)  # type: ignore[arg-type]


def test_completing_with_a_part_not_held_is_refused_and_the_upload_kept(store, open_upload) -> None:
    key, upload_id, etag = open_upload
    before = snapshot(store.root)
    for parts in ({1: md5_etag(b"other")}, {1: etag, 2: etag}, {1: "junk"}, {}, {0: etag}):
        with pytest.raises(StagingError):
            store.complete_multipart(key, upload_id, parts)
    assert snapshot(store.root) == before
    store.complete_multipart(key, upload_id, {1: etag})  # the upload is still whole
    assert store.get_bytes(key) == b"x" * 100


def test_abort_drops_the_upload(store, open_upload) -> None:
    key, upload_id, _ = open_upload
    store.abort_multipart(key, upload_id)
    assert store.list_parts(key, upload_id) == {}
    with pytest.raises(UnknownUpload):
        store.write_part(key, upload_id, 2, io.BytesIO(b"y"), 1)
    assert not any(store.root.glob(".axon-uploads/*"))


def test_concurrent_writers_of_one_part_leave_one_whole_part(store, open_upload) -> None:
    key, upload_id, _ = open_upload
    bodies = [bytes([i]) * 200_000 for i in range(8)]
    etags: dict[str, bytes] = {}

    def put(body: bytes) -> None:
        etags[store.write_part(key, upload_id, 2, (body[i:i + 4096] for i in range(0, len(body), 4096)), len(body),
                               offset=100)] = body

    threads = [threading.Thread(target=put, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    etag, data = held(store, key, upload_id)[2]
    assert data == etags[etag], "the part held is one writer's whole body"


def test_completion_waits_for_a_part_in_flight_and_a_late_part_finds_the_upload_gone(store, open_upload, monkeypatch) -> None:
    key, upload_id, first = open_upload
    writer = store.open_part(key, upload_id, 2, 10, offset=100)
    writer.write(b"y" * 5)
    monkeypatch.setattr(local_parts, "SEAL_WAIT_SECONDS", 0.2)
    with pytest.raises(ObjectStoreUnavailable, match="still being written"):
        local_parts._lock_exclusive(os.open(store.root / ".axon-uploads" / upload_id / "seal", os.O_RDONLY), upload_id, 0.2)
    done: list[str] = []
    completer = threading.Thread(target=lambda: done.append(store.complete_multipart(key, upload_id, {1: first})))
    completer.start()
    time.sleep(0.1)
    assert not done, "completion waits while a part is being written"
    writer.write(b"y" * 5)
    writer.commit()
    completer.join(5)
    assert done == [hashlib.sha256(b"x" * 100).hexdigest()] and store.get_bytes(key) == b"x" * 100
    with pytest.raises(UnknownUpload):
        store.write_part(key, upload_id, 2, io.BytesIO(b"y" * 10), 10, offset=100)
    assert store.get_bytes(key) == b"x" * 100


# --------------------------------------------------------------------------- copy and cleanup


def test_copy_object_and_sha256(store: LocalDirObjectStore) -> None:
    store.put_bytes("staging/robot-1/t-1/t-1.mcap", b"recording")
    store.copy_object("staging/robot-1/t-1/t-1.mcap", "warehouse/aisle_1/pick_x.mcap")
    assert store.get_bytes("warehouse/aisle_1/pick_x.mcap") == b"recording"
    assert store.sha256_of("warehouse/aisle_1/pick_x.mcap") == hashlib.sha256(b"recording").hexdigest()
    store.delete_prefix("staging/robot-1/t-1/")
    assert store.get_bytes("warehouse/aisle_1/pick_x.mcap") == b"recording"  # the copy outlives its source
    before = snapshot(store.root)
    with pytest.raises(ObjectNotFound):
        store.copy_object("staging/robot-1/t-1/t-1.mcap", "warehouse/aisle_1/other.mcap")
    with pytest.raises(ObjectNotFound):
        store.sha256_of("staging/robot-1/t-1/t-1.mcap")
    with pytest.raises(ValueError):
        store.copy_object("warehouse/aisle_1/pick_x.mcap", "../outside")
    assert snapshot(store.root) == before


def test_delete_prefix_removes_objects_and_open_uploads_under_it_only(store: LocalDirObjectStore) -> None:
    for name in ("t-1.mcap", "t-1.json", "t-1.lance/data/0.lance"):
        store.put_bytes(staging_key("robot-1", "t-1", name), b"x")
    store.put_bytes(staging_key("robot-1", "t-10", "t-10.mcap"), b"kept")  # shares the string prefix "t-1"
    store.put_bytes("warehouse/aisle_1/x.mcap", b"lake")
    open_key = staging_key("robot-1", "t-1", "t-1.extra")
    upload_id = store.start_multipart(open_key)
    kept_id = store.start_multipart(staging_key("robot-1", "t-10", "t-10.json"))
    assert store.delete_prefix(staging_prefix("robot-1", "t-1")) == 3
    assert store.list_keys("staging/") == ["staging/robot-1/t-10/t-10.mcap"]
    assert store.list_parts(open_key, upload_id) == {} and (store.root / ".axon-uploads" / kept_id).is_dir()
    assert not (store.root / "staging/robot-1/t-1").exists()
    assert store.get_bytes("warehouse/aisle_1/x.mcap") == b"lake"
    before = snapshot(store.root)
    with pytest.raises(StagingError, match="empty prefix"):
        store.delete_prefix("")
    with pytest.raises(ValueError):
        store.delete_prefix("../")
    assert snapshot(store.root) == before


def test_plan_parts_fits_s3_limits() -> None:
    parts = plan_parts(10 * 1024 ** 3, 1024 * 1024)
    assert len(parts) <= 10_000 and sum(p.size for p in parts) == 10 * 1024 ** 3
    assert [p.offset for p in parts[:3]] == [0, parts[0].size, 2 * parts[0].size]


def test_a_signature_error_is_a_staging_error() -> None:
    assert issubclass(PartSignatureError, StagingError) and issubclass(PartsRefused, StagingError)


def test_stale_uploads_are_aborted_and_fresh_ones_kept(store: LocalDirObjectStore) -> None:
    import time as _time

    old_key, new_key = staging_key("robot-1", "t-1", "t-1.mcap"), staging_key("robot-1", "t-2", "t-2.mcap")
    old_id, new_id = store.start_multipart(old_key), store.start_multipart(new_key)
    store.write_part(old_key, old_id, 1, io.BytesIO(b"x"), 1)
    week_ago = _time.time() - 8 * 24 * 3600
    os.utime(store.root / ".axon-uploads" / old_id / "key", (week_ago, week_ago))
    other_robot = store.start_multipart(staging_key("robot-2", "t-3", "t-3.mcap"))
    os.utime(store.root / ".axon-uploads" / other_robot / "key", (week_ago, week_ago))
    assert store.abort_stale_uploads("staging/robot-1/", 7 * 24 * 3600) == 1
    assert store.list_parts(old_key, old_id) == {}
    assert (store.root / ".axon-uploads" / new_id).is_dir() and (store.root / ".axon-uploads" / other_robot).is_dir()
    before = snapshot(store.root)
    for bad in [("", 1), ("staging/", -1), ("staging/", "1"), ("../", 1)]:
        with pytest.raises((StagingError, ValueError)):
            store.abort_stale_uploads(*bad)
    assert snapshot(store.root) == before
