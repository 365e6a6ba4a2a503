"""Reading a robot's upload into the local store while its parts arrive (issue 13: the data flow
ingests a recording as it is uploaded): the follower returns only bytes of parts the store holds,
in file order, waits for gaps and for parts being rewritten, carries on from the staged object
once the upload is completed, and says so when the upload stalls or is abandoned."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from pathlib import Path

import pytest

from axon_dagster.domain.layout import staging_key
from axon_dagster.storage.files import file_fingerprint
from axon_dagster.storage.object_stores import LocalDirObjectStore, UploadAbandoned, UploadStalled, plan_parts
from axon_dagster.storage.object_stores.base import ObjectStore

KEY = staging_key("robot-1", "t-1", "t-1.mcap")


@pytest.fixture
def store(tmp_path: Path) -> LocalDirObjectStore:
    return LocalDirObjectStore(tmp_path / "cloud").with_ingest("http://cp.example:8000", b"k" * 32)


def read_everything(follower, block: int = 3000) -> bytes:
    out = bytearray()
    buf = bytearray(block)
    while n := follower.readinto(buf):
        out += buf[:n]
    return bytes(out)


def upload(store, data: bytes, part_size: int, order=None, delay: float = 0.0, complete: bool = True) -> dict[int, str]:
    upload_id = store.start_multipart(KEY)
    parts = plan_parts(len(data), part_size)
    etags = {}
    for i in order or range(len(parts)):
        p = parts[i]
        time.sleep(delay)
        etags[p.number] = store.write_part(KEY, upload_id, p.number, io.BytesIO(data[p.offset:p.offset + p.size]), p.size, offset=p.offset)
    if complete:
        time.sleep(delay)
        store.complete_multipart(KEY, upload_id, etags)
    return etags


def test_a_follower_reads_parts_in_file_order_as_they_arrive_and_through_completion(store) -> None:
    data = os.urandom(6 * 5000 + 17)
    follower = store.follow_upload(KEY, len(data), stall_seconds=10)
    writer = threading.Thread(target=upload, args=(store, data, 5000, [1, 0, 3, 2, 6, 4, 5], 0.05))
    writer.start()  # the follower may start before the upload does: it waits for it
    got = read_everything(follower)
    writer.join()
    assert got == data
    assert follower.readinto(bytearray(10)) == 0
    assert follower.waited_seconds > 0  # it did wait for parts
    assert follower.fingerprint() == file_fingerprint(store._path(KEY))  # the staged object is the file it read
    assert follower.verified_sha256() == hashlib.sha256(data).hexdigest()  # completion hashed the very parts it read
    follower.close()


def test_a_follower_started_after_completion_reads_the_staged_object(store) -> None:
    data = os.urandom(12345)
    upload(store, data, 5000)
    with store.follow_upload(KEY, len(data), stall_seconds=1) as follower:
        follower.open()
        assert follower.upload_id is None  # nothing to follow: the staged object itself
        assert read_everything(follower) == data
        assert follower.fingerprint() is not None
        assert follower.verified_sha256() is None  # nothing read from the upload: no completion vouches for it


def test_completion_vouches_only_for_the_writes_of_parts_that_were_read(store) -> None:
    data = os.urandom(2 * 5000)
    upload_id = store.start_multipart(KEY)
    first = store.write_part(KEY, upload_id, 1, io.BytesIO(data[:5000]), 5000)
    second = store.write_part(KEY, upload_id, 2, io.BytesIO(data[5000:]), 5000, offset=5000)
    follower = store.follow_upload(KEY, len(data), stall_seconds=5)
    assert read_everything(follower) == data
    again = store.write_part(KEY, upload_id, 1, io.BytesIO(data[:5000]), 5000)  # the same bytes, another write
    store.complete_multipart(KEY, upload_id, {1: again, 2: second})
    assert follower.readinto(bytearray(1)) == 0
    assert first != again and follower.verified_sha256() is None  # part 1 was read under a write completion did not use
    follower.close()


def test_no_shortcut_when_completion_had_to_read_the_file_again(store, monkeypatch) -> None:
    from axon_dagster.storage.object_stores import local_parts

    data = os.urandom(2 * 5000)
    monkeypatch.setattr(local_parts.RunningDigest, "digest_of", lambda self, parts, upload_dir: None)
    follower = store.follow_upload(KEY, len(data), stall_seconds=5)
    writer = threading.Thread(target=upload, args=(store, data, 5000, None, 0.05))
    writer.start()
    assert read_everything(follower) == data
    writer.join()
    assert follower.verified_sha256() is None
    follower.close()


def test_the_fingerprint_proves_nothing_once_the_staged_object_changed(store) -> None:
    data = os.urandom(12345)
    upload(store, data, 5000)
    with store.follow_upload(KEY, len(data), stall_seconds=1) as follower:
        read_everything(follower)
        time.sleep(0.01)
        with open(store._path(KEY), "r+b") as fh:
            fh.write(b"x")
        assert follower.fingerprint() is None


def test_a_gap_that_never_closes_is_a_stall_not_a_hang(store) -> None:
    data = os.urandom(3 * 5000)
    upload(store, data, 5000, order=[0, 2], complete=False)  # part 2 never comes
    follower = store.follow_upload(KEY, len(data), stall_seconds=0.3)
    buf = bytearray(len(data))
    assert follower.readinto(buf) == 5000 and bytes(buf[:5000]) == data[:5000]  # what is whole, not past the gap
    started = time.monotonic()
    with pytest.raises(UploadStalled, match="5000 of 15000 bytes read"):
        follower.readinto(buf)
    assert time.monotonic() - started < 3


def test_no_upload_at_all_is_a_stall(store) -> None:
    with pytest.raises(UploadStalled, match="no upload started"):
        store.follow_upload(KEY, 10, stall_seconds=0.2).readinto(bytearray(10))


def test_an_aborted_upload_is_abandoned(store) -> None:
    data = os.urandom(2 * 5000)
    upload(store, data, 5000, order=[0], complete=False)
    follower = store.follow_upload(KEY, len(data), stall_seconds=5)
    buf = bytearray(len(data))
    assert follower.readinto(buf) == 5000
    [upload_id] = [u for _k, u, _s in store._open_uploads(KEY)]
    store.abort_multipart(KEY, upload_id)
    with pytest.raises(UploadAbandoned, match="aborted or replaced after 5000 of 10000 bytes"):
        follower.readinto(buf)


def test_a_part_rewritten_while_followed_is_read_as_it_is_when_whole_again(store, monkeypatch) -> None:
    data = os.urandom(2 * 5000)
    upload_id = store.start_multipart(KEY)
    store.write_part(KEY, upload_id, 1, io.BytesIO(b"a" * 5000), 5000)
    follower = store.follow_upload(KEY, len(data), stall_seconds=5)
    follower.open()
    # The part starts being rewritten right after the follower read it: those bytes must not count.
    real_preadv = os.preadv
    rewriting = {}

    def preadv_then_rewrite(fd, buffers, offset):
        n = real_preadv(fd, buffers, offset)
        if not rewriting:
            rewriting["writer"] = writer = store.open_part(KEY, upload_id, 1, 5000, offset=0)
            writer.write(data[:2500])  # its R line is in the journal: the part is not held now
            threading.Timer(0.2, lambda: (writer.write(data[2500:5000]), writer.commit())).start()
        return n

    monkeypatch.setattr(os, "preadv", preadv_then_rewrite)
    buf = bytearray(5000)
    assert follower.readinto(buf) == 5000
    assert bytes(buf) == data[:5000], "the bytes of the rewritten part, not the ones read while it was rewritten"
    follower.close()


def test_bad_sizes_are_refused_and_stores_across_a_link_cannot_be_followed(store) -> None:
    from axon_dagster.storage.object_stores import StagingError

    for size in (-1, 1.5, True, "10"):
        with pytest.raises(StagingError, match="invalid size"):
            store.follow_upload(KEY, size)  # type: ignore[arg-type]
    assert store.follows_uploads and not ObjectStore.follows_uploads
    assert ObjectStore.follow_upload(store, KEY, 10) is None  # the interface's answer for S3/Azure
