"""Ingesting an MCAP from a sequential byte stream (``ingest_mcap(..., stream=...)``): the upload-following
case, where the file is still arriving. Real MCAP files (mcap's writer, real ROS bytes), read through
``readinto`` only: the same dataset and sidecar as the file path gives for the same bytes."""

from __future__ import annotations

import io
import logging
import os
import threading
import time

import pytest

from axon_dagster.ingest import IngestError, ingest_mcap
from axon_dagster.ingest.mcap_to_lance import McapDigestMismatch
from axon_dagster.storage.recording import Sidecar, sidecar_path

try:
    from tests.axon_mcap_fixture import T0_NS, Msg, serialize, standard_messages, typestore, write_axon_mcap
except ModuleNotFoundError:
    from axon_mcap_fixture import T0_NS, Msg, serialize, standard_messages, typestore, write_axon_mcap  # type: ignore[no-redef]


class Recorded(io.RawIOBase):
    """A stream over bytes that hands out at most ``piece`` bytes per ``readinto`` and records what it
    handed out (to check every byte is read once, in order); ``fail_at``: raise ``error`` once that
    many bytes have been read."""

    def __init__(self, data: bytes, piece: int = 1 << 20, fail_at: int | None = None, error: BaseException | None = None):
        self.data, self.piece, self.fail_at, self.error = data, piece, fail_at, error
        self.at = 0
        self.calls = 0
        self.after_end = 0  # readinto calls after it returned 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self.calls += 1
        if self.fail_at is not None and self.at >= self.fail_at:
            raise self.error
        n = min(len(buffer), self.piece, len(self.data) - self.at)
        if n == 0:
            self.after_end += 1
        buffer[:n] = self.data[self.at: self.at + n]
        self.at += n
        return n


def _table(path):
    import lance

    return lance.dataset(str(path)).to_table()


def _same_ingest(file_result, stream_result) -> None:
    """Same rows and columns, same sidecar but for the Lance files' names and digests (Lance names its
    files by random UUIDs), same number of files."""
    assert _table(stream_result.dataset_path).equals(_table(file_result.dataset_path))
    a, b = file_result.sidecar, stream_result.sidecar
    assert (b.task_id, b.robot_id, b.metadata, b.topics, b.start_ns, b.end_ns, b.extra) == \
        (a.task_id, a.robot_id, a.metadata, a.topics, a.start_ns, a.end_ns, a.extra)
    assert len(b.files) == len(a.files) > 0
    for attr in ("rows", "decoded", "undecodable", "decode_errors", "mcap_bytes", "mcap_sha256"):
        assert getattr(stream_result, attr) == getattr(file_result, attr), attr
    assert Sidecar.read(sidecar_path(stream_result.dataset_path)) == b
    b.verify(stream_result.dataset_path)


def _both(tmp_path, mcap_path, *, stream_name=None, **kwargs):
    data = mcap_path.read_bytes()
    from_file = ingest_mcap(mcap_path, tmp_path / "file" / "t.lance", hash_mcap=True, **kwargs)
    stream = Recorded(data, piece=100_003)  # odd pieces: records straddle the reads
    from_stream = ingest_mcap(stream_name or mcap_path, tmp_path / "stream" / "t.lance", stream=stream, hash_mcap=True, **kwargs)
    assert stream.at == len(data) and stream.after_end == 1  # every byte once, then the end seen once
    return from_file, from_stream


def _write(path, *, chunked=True, compression="zstd", channel_without_messages=True, chunk_size=4096, messages=120):
    """A plain MCAP of mcap's writer: Imu messages on three channels (schemas and channels go into
    the chunks when chunked), plus a channel that never gets a message."""
    from mcap.writer import CompressionType, Writer

    ts = typestore("ros2")
    with open(path, "wb") as fh:
        w = Writer(fh, compression=CompressionType[compression.upper()], use_chunking=chunked, chunk_size=chunk_size)
        w.start(profile="ros2", library="test")
        sid = w.register_schema("sensor_msgs/msg/Imu", "ros2msg", b"")
        channels = [w.register_channel(f"/imu{i}", "cdr", sid, metadata={"k": str(i)}) for i in range(3)]
        if channel_without_messages:
            w.register_channel("/silent", "cdr", sid)
        for i in range(messages):
            m = Msg("/imu", "sensor_msgs/msg/Imu", T0_NS + i * 1000, {"angular_velocity": (i, 0.0, 0.0)})
            w.add_message(channels[i % 3], log_time=m.log_time_ns, publish_time=m.log_time_ns, data=serialize(ts, "ros2", m), sequence=i // 3)
        w.add_attachment(T0_NS, T0_NS, "notes.txt", "text/plain", b"an attachment, read past")
        w.add_metadata("other", {"a": "b"})
        w.finish()
    return path


@pytest.mark.parametrize("encoding, schema, compression", [
    ("ros2", "empty", "zstd"), ("ros1", "full", "zstd"), ("ros2", "full", "lz4"), ("ros1", "empty", "none"),
])
def test_a_stream_ingests_to_what_the_file_ingests_to(tmp_path, encoding, schema, compression):
    """Axon's MCAP (empty or full schemas, zstd / lz4 / uncompressed chunks, schema and channel
    records inside the chunks, Axon's sidecar beside it)."""
    w = write_axon_mcap(tmp_path / "rec", "t", standard_messages(seconds=1.5), encoding=encoding, schema=schema, compression=compression)
    from_file, from_stream = _both(tmp_path, w.mcap_path)
    _same_ingest(from_file, from_stream)
    src = from_stream.sidecar.extra["source"]
    assert src["mcap_sha256"] == w.checksum_sha256 and src["mcap_size_bytes"] == w.mcap_path.stat().st_size
    assert src["axon_sidecar_origin"] == "sidecar" and from_stream.rows == len(w.messages)


def test_without_a_sidecar_the_streams_metadata_records_describe_the_task_and_the_path_need_not_exist(tmp_path):
    w = write_axon_mcap(tmp_path / "rec", "t", standard_messages(seconds=0.5), sidecar=False)
    from_file, from_stream = _both(tmp_path, w.mcap_path, stream_name=tmp_path / "uploading" / "t.mcap")
    assert not (tmp_path / "uploading").exists()
    assert from_stream.sidecar.extra["source"]["axon_sidecar_origin"] == "mcap-metadata"
    assert from_stream.sidecar.metadata["order_id"] == "order-1" and from_stream.sidecar.robot_id == "robot-1"
    _same_ingest(from_file, from_stream)


@pytest.mark.parametrize("chunked, compression", [(True, "zstd"), (True, "lz4"), (True, "none"), (False, "none")])
def test_plain_mcaps_chunked_or_not_stream_to_the_files_result_with_every_declared_channel(tmp_path, chunked, compression):
    path = _write(tmp_path / "plain.mcap", chunked=chunked, compression=compression)
    from_file, from_stream = _both(tmp_path, path, task_id="t", robot_id="r")
    _same_ingest(from_file, from_stream)
    assert from_stream.rows == 120
    assert from_stream.sidecar.extra["source"]["channels"] == ["/imu0", "/imu1", "/imu2", "/silent"]
    assert "/silent" not in from_stream.sidecar.topics


def test_big_chunks_and_messages_are_read_whole_across_many_small_reads(tmp_path):
    """Chunks bigger than the small read buffer (camera frames): read whole into the big buffer,
    even when the stream hands out a few kB at a time."""
    msgs = [Msg("/cam", "sensor_msgs/msg/Image", T0_NS + i * 33_000_000, {"width": 320, "height": 240, "fill": i}) for i in range(12)]
    w = write_axon_mcap(tmp_path / "rec", "t", msgs)
    from_file = ingest_mcap(w.mcap_path, tmp_path / "file" / "t.lance", hash_mcap=True)
    stream = Recorded(w.mcap_path.read_bytes(), piece=4099)
    from_stream = ingest_mcap(w.mcap_path, tmp_path / "stream" / "t.lance", stream=stream, hash_mcap=True)
    _same_ingest(from_file, from_stream)
    assert stream.at == w.mcap_path.stat().st_size


class _Following(io.RawIOBase):
    """``readinto`` over a file another thread is still writing: blocks until bytes are there, ends
    when the writer says it is done and everything is read — what an upload-following source does."""

    def __init__(self, path, done: threading.Event):
        self.fh = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self.done = done
        self.waits = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            finished = self.done.is_set()  # before the read: a last piece written before it was set is read
            n = self.fh.readinto(buffer)
            if n or finished:
                return n
            self.waits += 1
            time.sleep(0.005)

    def close(self) -> None:
        self.fh.close()
        super().close()


@pytest.mark.parametrize("source", ["growing file", "pipe"])
def test_a_stream_still_being_written_by_another_thread_gives_the_same_result(tmp_path, source):
    w = write_axon_mcap(tmp_path / "rec", "t", standard_messages(seconds=1.0))
    data = w.mcap_path.read_bytes()
    cuts = [0, len(data) // 5, len(data) // 2, len(data) - 3, len(data)]  # the last piece cuts the closing magic

    if source == "pipe":
        r, wfd = os.pipe()
        stream = open(r, "rb", buffering=0)  # noqa: SIM115

        def write():
            with open(wfd, "wb", buffering=0) as out:
                for a, b in zip(cuts, cuts[1:]):
                    time.sleep(0.1)
                    out.write(data[a:b])
    else:
        growing = tmp_path / "upload" / "t.mcap.part"
        growing.parent.mkdir()
        growing.write_bytes(b"")
        done = threading.Event()
        stream = _Following(growing, done)

        def write():
            with open(growing, "ab", buffering=0) as out:
                for a, b in zip(cuts, cuts[1:]):
                    time.sleep(0.1)
                    out.write(data[a:b])
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        from_stream = ingest_mcap(tmp_path / "upload" / "t.mcap", tmp_path / "stream" / "t.lance", stream=stream,
                                  hash_mcap=True, mcap_sha256=w.checksum_sha256, axon_sidecar=None)
    finally:
        writer.join()
        stream.close()
    if source == "growing file":
        assert stream.waits > 0  # the reader did wait for bytes
    from_file = ingest_mcap(w.mcap_path, tmp_path / "file" / "t.lance", hash_mcap=True)
    assert from_stream.mcap_sha256 == from_file.mcap_sha256 == w.checksum_sha256
    assert _table(from_stream.dataset_path).equals(_table(from_file.dataset_path))
    assert from_stream.sidecar.topics == from_file.sidecar.topics
    assert from_stream.sidecar.extra["source"]["channels"] == from_file.sidecar.extra["source"]["channels"]


class Unplugged(Exception):
    """The caller's own error, raised by its stream."""


@pytest.mark.parametrize("error", [Unplugged("cable pulled"), ConnectionResetError("peer reset")])
@pytest.mark.parametrize("where", ["first read", "mid-way", "at the end"])
def test_what_the_streams_readinto_raises_reaches_the_caller_as_it_was_and_nothing_is_left(tmp_path, error, where):
    """An OSError too (ConnectionResetError): not taken for an unreadable MCAP, not wrapped by Lance."""
    w = write_axon_mcap(tmp_path / "rec", "t", standard_messages(seconds=1.0))
    data = w.mcap_path.read_bytes()
    fail_at = {"first read": 0, "mid-way": len(data) // 2, "at the end": len(data)}[where]
    stream = Recorded(data, piece=50_000, fail_at=fail_at, error=error)
    with pytest.raises(type(error)) as raised:
        ingest_mcap(w.mcap_path, tmp_path / "out" / "t.lance", stream=stream, hash_mcap=True)
    assert raised.value is error and not isinstance(raised.value, IngestError)
    assert list((tmp_path / "out").iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name.startswith("ingest-")]


@pytest.mark.parametrize("cut", ["half", "before the closing magic", "inside the closing magic", "header only", "empty"])
def test_a_stream_that_ends_early_is_an_unreadable_mcap_and_nothing_is_left(tmp_path, cut):
    w = write_axon_mcap(tmp_path / "rec", "t", standard_messages(seconds=1.0))
    data = w.mcap_path.read_bytes()
    keep = {"half": len(data) // 2, "before the closing magic": len(data) - 8, "inside the closing magic": len(data) - 3,
            "header only": 40, "empty": 0}[cut]
    with pytest.raises(IngestError, match="not a readable MCAP.*(truncated|short)"):
        ingest_mcap(w.mcap_path, tmp_path / "out" / "t.lance", stream=Recorded(data[:keep]), hash_mcap=True)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("bad", ["not an mcap", "trailing bytes", "no header first"])
def test_bytes_that_are_not_one_whole_mcap_are_refused(tmp_path, bad):
    w = write_axon_mcap(tmp_path / "rec", "t", standard_messages(seconds=0.5))
    data = w.mcap_path.read_bytes()
    given, why = {
        "not an mcap": (b"PK\x03\x04" + data[4:], "no MCAP magic"),
        "trailing bytes": (data + b"\x00", "after the MCAP's closing magic"),
        "no header first": (data[:8] + data[8 + 9 + int.from_bytes(data[9:17], "little"):], "first record is not a header"),
    }[bad]
    with pytest.raises(IngestError, match=why):
        ingest_mcap(w.mcap_path, tmp_path / "out" / "t.lance", stream=Recorded(given))
    assert list((tmp_path / "out").iterdir()) == []


def test_a_wrong_expected_digest_of_a_stream_is_refused_and_nothing_is_left(tmp_path):
    w = write_axon_mcap(tmp_path / "rec", "t", standard_messages(seconds=0.5))
    data = w.mcap_path.read_bytes()
    with pytest.raises(McapDigestMismatch) as refused:
        ingest_mcap(w.mcap_path, tmp_path / "out" / "t.lance", stream=Recorded(data), hash_mcap=True, mcap_sha256="0" * 64)
    assert (refused.value.expected, refused.value.actual) == ("0" * 64, w.checksum_sha256)
    assert list((tmp_path / "out").iterdir()) == []
    right = ingest_mcap(w.mcap_path, tmp_path / "out" / "t.lance", stream=Recorded(data), hash_mcap=True, mcap_sha256=w.checksum_sha256.upper())
    assert right.mcap_sha256 == w.checksum_sha256
    # without hash_mcap the stream is not hashed: the given digest is recorded as given
    given = ingest_mcap(w.mcap_path, tmp_path / "given" / "t.lance", stream=Recorded(data), mcap_sha256="ab" * 32)
    assert given.mcap_sha256 == "ab" * 32


def test_a_streamed_ingest_logs_progress_with_the_size_unknown(tmp_path, caplog):
    w = write_axon_mcap(tmp_path / "rec", "t", standard_messages(seconds=2.0))
    with caplog.at_level(logging.INFO, logger="axon_dagster.ingest"):
        ingest_mcap(tmp_path / "incoming" / "t.mcap", tmp_path / "t.lance", stream=Recorded(w.mcap_path.read_bytes()), progress_every_s=0.0)
    progress = [r.getMessage() for r in caplog.records if "MB read" in r.getMessage()]
    assert len(progress) > 5 and "messages" in progress[-1] and "size not known while streaming" in progress[-1]
    assert any("streamed, size not known" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("chunked", [True, False])
def test_messages_of_iter_messages_keep_their_bytes_after_the_reading_moved_on(tmp_path, chunked):
    """Read sequentially (an unchunked file) or chunk by chunk, without buffer reuse every message's
    bytes stay its own when kept past the next one."""
    from mcap.reader import make_reader

    from axon_dagster.ingest.mcap_to_lance import iter_messages

    path = _write(tmp_path / "plain.mcap", chunked=chunked, compression="none", messages=1500)  # bigger than the reader's small buffer
    assert path.stat().st_size > 4 * (64 << 10)
    with open(path, "rb") as fh:
        kept = [(c.topic, m.sequence, m.data) for _, c, m in iter_messages(fh)]
    with open(path, "rb") as fh:
        theirs = [(c.topic, m.sequence, m.data) for _, c, m in make_reader(fh).iter_messages(log_time_order=False)]
    assert [(t, s, bytes(d)) for t, s, d in kept] == theirs
