"""MCAP -> Lance ingestion against real MCAP files (mcap writer, zstd, real ROS 1 / ROS 2 bytes)."""

from __future__ import annotations

import json
import logging
import math
import struct
import subprocess
import sys

import numpy as np
import pytest

from axon_dagster.ingest import IngestError, ingest_mcap
from axon_dagster.storage.axon_recording import AxonRecordingFiles
from axon_dagster.storage.digest import dataset_digest
from axon_dagster.storage.recording import RECORDING_COLUMNS, Sidecar, sidecar_path

try:
    from tests.axon_mcap_fixture import T0_NS, Msg, standard_messages, typestore, write_axon_mcap
except ModuleNotFoundError:
    from axon_mcap_fixture import T0_NS, Msg, standard_messages, typestore, write_axon_mcap  # type: ignore[no-redef]


def _table(path):
    import lance

    return lance.dataset(str(path)).to_table()


@pytest.mark.parametrize("encoding", ["ros2", "ros1"])
@pytest.mark.parametrize("schema", ["empty", "full"])
def test_every_message_becomes_a_row_with_raw_bytes_and_decoded_columns(tmp_path, encoding, schema):
    w = write_axon_mcap(tmp_path / "rec", "task-1", encoding=encoding, schema=schema)
    result = ingest_mcap(w.mcap_path, tmp_path / "lake" / "task-1.lance", mcap_sha256=w.checksum_sha256)
    assert result.rows == len(w.messages) == result.decoded and result.decode_errors == 0 and not result.undecodable
    table = _table(result.dataset_path)
    assert set(RECORDING_COLUMNS) <= set(table.column_names)
    rows = table.to_pylist()
    # raw bytes kept exactly: the payload column equals what is in the MCAP
    from mcap.reader import make_reader

    with open(w.mcap_path, "rb") as fh:
        raw = {(c.topic, m.sequence): m.data for _, c, m in make_reader(fh).iter_messages()}
    assert {(r["topic"], r["sequence"]): r["payload"] for r in rows} == raw
    by_topic: dict[str, list] = {}
    for r in rows:
        by_topic.setdefault(r["topic"], []).append(r)
    sent = {}
    for m in w.messages:
        sent.setdefault(m.topic, []).append(m)
    for topic, msgs in sent.items():
        got = sorted(by_topic[topic], key=lambda r: r["sequence"])
        assert [r["log_time_ns"] for r in got] == [m.log_time_ns for m in msgs]
        assert [r["sequence"] for r in got] == list(range(len(msgs)))
        if topic != "/status":
            assert [r["header_stamp_ns"] for r in got] == [m.stamp_ns for m in msgs]
            assert {r["frame_id"] for r in got} == {"base"}
    assert by_topic["/status"][0]["header_stamp_ns"] is None and by_topic["/status"][0]["message_type"] == "std_msgs/msg/String"
    imu = sorted(by_topic["/imu"], key=lambda r: r["sequence"])[4]
    assert imu["message_type"] == "sensor_msgs/msg/Imu"
    assert imu["angular_velocity"] == pytest.approx([0.05, 0.02, 0.03]) and imu["linear_acceleration"] == pytest.approx([0.5, 0.0, 9.81])
    assert imu["orientation"] == [0.0, 0.0, 0.0, 1.0] and imu["width"] is None
    js = sorted(by_topic["/joint_states"], key=lambda r: r["sequence"])[9]
    assert js["joint_names"] == ["j0", "j1"] and js["joint_position"] == pytest.approx([0.1, -0.1]) and js["joint_velocity"] == [0.5, -0.5]
    odom = sorted(by_topic["/odom"], key=lambda r: r["sequence"])[1]
    assert odom["position"] == pytest.approx([0.1, 1.0, 0.0]) and odom["linear_velocity"] == pytest.approx([0.5, 0.0, 0.0])
    assert odom["angular_velocity"] == pytest.approx([0.0, 0.0, 0.1])
    img = by_topic["/camera/image_raw"][0]
    assert (img["width"], img["height"], img["encoding"]) == (8, 6, "rgb8")
    assert by_topic["/camera/compressed"][0]["encoding"] == "jpeg"
    cloud = by_topic["/lidar/points"][0]
    assert (cloud["width"], cloud["height"], cloud["point_count"]) == (16, 1, 16)


def test_the_sidecar_carries_task_counts_digests_and_axons_checksum(tmp_path):
    w = write_axon_mcap(tmp_path / "rec", "task-1")
    result = ingest_mcap(w.mcap_path, tmp_path / "lake" / "task-1.lance", mcap_sha256=w.checksum_sha256)
    side = Sidecar.read(sidecar_path(result.dataset_path))
    assert side == result.sidecar
    assert side.task_id == "task-1" and side.robot_id == "robot-1"
    assert side.metadata["scene"] == "warehouse" and side.metadata["sub_scene"] == "aisle_1" and side.metadata["skills"] == ["pick_place"]
    assert side.dataset_digest == dataset_digest(result.dataset_path)
    assert side.row_count == len(w.messages) and side.topics["/imu"].count == 200
    assert side.topics["/imu"].first_ns == min(m.log_time_ns for m in w.messages if m.topic == "/imu")
    src = side.extra["source"]
    assert src["format"] == "mcap" and src["mcap_file"] == "task-1.mcap" and src["mcap_sha256"] == w.checksum_sha256
    assert src["axon_checksum_sha256"] == w.checksum_sha256 and src["axon_sidecar_origin"] == "sidecar"
    assert side.extra["axon"]["recording"]["checksum_sha256"] == w.checksum_sha256
    assert side.start_ns < side.topics["/imu"].first_ns  # Axon's recording start, not the first message
    side.verify(result.dataset_path)


def test_without_a_sidecar_the_metadata_records_describe_the_task(tmp_path):
    w = write_axon_mcap(tmp_path / "rec", "task-2", sidecar=False)
    result = ingest_mcap(w.mcap_path, tmp_path / "lake" / "task-2.lance")
    assert result.sidecar.extra["source"]["axon_sidecar_origin"] == "mcap-metadata"
    assert result.sidecar.extra["source"]["axon_checksum_sha256"] is None
    assert result.sidecar.metadata["order_id"] == "order-1"


def test_a_custom_type_decodes_from_the_schema_and_an_unknown_one_is_kept_raw(tmp_path):
    from mcap.writer import CompressionType, Writer
    from rosbags.typesys import get_types_from_msg

    ts = typestore("ros2")
    ts.register(get_types_from_msg("std_msgs/Header header\nfloat64 torque", "my_msgs/msg/Torque"))
    T = ts.types["my_msgs/msg/Torque"]
    stamp = ts.types["builtin_interfaces/msg/Time"](sec=5, nanosec=7)
    data = bytes(ts.serialize_cdr(T(header=ts.types["std_msgs/msg/Header"](stamp=stamp, frame_id="arm"), torque=1.5), "my_msgs/msg/Torque"))
    path = tmp_path / "custom.mcap"
    with open(path, "wb") as fh:
        wr = Writer(fh, compression=CompressionType.ZSTD)
        wr.start()
        full = wr.register_schema("my_msgs/msg/Torque", "ros2msg", b"std_msgs/Header header\nfloat64 torque\n"
                                  b"================================================================================\n"
                                  b"MSG: std_msgs/Header\nbuiltin_interfaces/Time stamp\nstring frame_id\n")
        empty = wr.register_schema("other_msgs/msg/Unknown", "ros2msg", b"")
        c1 = wr.register_channel("/torque", "cdr", full)
        c2 = wr.register_channel("/mystery", "cdr", empty)
        for i in range(3):
            wr.add_message(c1, log_time=T0_NS + i, publish_time=T0_NS + i, data=data, sequence=i)
            wr.add_message(c2, log_time=T0_NS + i, publish_time=T0_NS + i, data=b"\x00\x01\x00\x00abc", sequence=i)
        wr.finish()
    result = ingest_mcap(path, tmp_path / "custom.lance")
    assert result.rows == 6 and result.decoded == 3
    assert "other_msgs/msg/Unknown" in result.undecodable and "schema is empty" in result.undecodable["other_msgs/msg/Unknown"]
    rows = {r["topic"]: r for r in _table(result.dataset_path).to_pylist()}
    assert rows["/torque"]["header_stamp_ns"] == 5_000_000_007 and rows["/torque"]["frame_id"] == "arm"
    assert rows["/mystery"]["payload"] == b"\x00\x01\x00\x00abc" and rows["/mystery"]["header_stamp_ns"] is None


def test_corrupt_message_bytes_are_kept_and_named_not_fatal(tmp_path):
    msgs = [Msg("/imu", "sensor_msgs/msg/Imu", T0_NS + i * 10_000_000, {}) for i in range(5)]
    w = write_axon_mcap(tmp_path / "rec", "t", msgs)
    # rewrite one message's bytes with garbage of a size the decoder cannot take
    from mcap.reader import make_reader
    from mcap.writer import CompressionType, Writer

    with open(w.mcap_path, "rb") as fh:
        items = [(s, c, m) for s, c, m in make_reader(fh).iter_messages()]
    bad = tmp_path / "bad.mcap"
    with open(bad, "wb") as fh:
        wr = Writer(fh, compression=CompressionType.ZSTD)
        wr.start()
        sid = wr.register_schema(items[0][0].name, items[0][0].encoding, b"")
        cid = wr.register_channel("/imu", "cdr", sid)
        for i, (_, _, m) in enumerate(items):
            wr.add_message(cid, log_time=m.log_time, publish_time=m.log_time, data=m.data if i != 2 else b"\x00\x01\x00\x00\x01", sequence=i)
        wr.finish()
    result = ingest_mcap(bad, tmp_path / "bad.lance")
    assert result.rows == 5 and result.decode_errors == 1 and result.decoded == 4
    rows = sorted(_table(result.dataset_path).to_pylist(), key=lambda r: r["sequence"])
    assert rows[2]["decode_error"] and rows[2]["header_stamp_ns"] is None and rows[2]["payload"] == b"\x00\x01\x00\x00\x01"
    assert all(r["decode_error"] is None for i, r in enumerate(rows) if i != 2)


def test_unreadable_input_is_refused_and_nothing_is_left_behind(tmp_path):
    w = write_axon_mcap(tmp_path / "rec", "t")
    truncated = tmp_path / "trunc.mcap"
    truncated.write_bytes(w.mcap_path.read_bytes()[: w.mcap_path.stat().st_size // 2])
    with pytest.raises(IngestError, match="not a readable MCAP"):
        ingest_mcap(truncated, tmp_path / "out" / "trunc.lance")
    (tmp_path / "junk.mcap").write_bytes(b"not an mcap at all")
    with pytest.raises(IngestError, match="not a readable MCAP"):
        ingest_mcap(tmp_path / "junk.mcap", tmp_path / "out" / "junk.lance")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []
    with pytest.raises(IngestError, match="not found"):
        ingest_mcap(tmp_path / "none.mcap", tmp_path / "out" / "none.lance")
    good = ingest_mcap(w.mcap_path, tmp_path / "out" / "t.lance")
    with pytest.raises(IngestError, match="refusing to overwrite"):
        ingest_mcap(w.mcap_path, good.dataset_path)


def test_long_ingests_log_progress(tmp_path, caplog):
    w = write_axon_mcap(tmp_path / "rec", "t", standard_messages(seconds=4.0))
    with caplog.at_level(logging.INFO, logger="axon_dagster.ingest"):
        ingest_mcap(w.mcap_path, tmp_path / "t.lance", progress_every_s=0.0)
    progress = [r.getMessage() for r in caplog.records if "MB read" in r.getMessage()]
    assert len(progress) > 10 and "messages" in progress[-1] and "%" in progress[-1]
    assert any("ingested t.mcap" in r.getMessage() for r in caplog.records)


def test_nan_values_survive_ingestion_as_nan(tmp_path):
    msgs = [Msg("/imu", "sensor_msgs/msg/Imu", T0_NS + i * 10_000_000, {"angular_velocity": (float("nan") if i == 3 else 0.1, 0.0, float("inf") if i == 4 else 0.0)}) for i in range(6)]
    w = write_axon_mcap(tmp_path / "rec", "t", msgs)
    rows = sorted(_table(ingest_mcap(w.mcap_path, tmp_path / "t.lance").dataset_path).to_pylist(), key=lambda r: r["sequence"])
    assert math.isnan(rows[3]["angular_velocity"][0]) and math.isinf(rows[4]["angular_velocity"][2])


def test_the_ingest_package_imports_nothing_heavy():
    code = "import sys, axon_dagster.ingest; print(sorted(m for m in ('pyarrow', 'lance', 'rosbags', 'daft', 'dagster') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _standard_cases(ts, encoding: str) -> list[tuple[str, object]]:
    """(type, message object) for every type read from its bytes, with frame ids and joint names of
    every length mod 8 (so every CDR alignment after a string is exercised) and empty arrays."""
    import dataclasses

    from tests.axon_mcap_fixture import build_message

    base = [
        Msg("/c", "sensor_msgs/msg/Image", T0_NS + 123, {"width": 5, "height": 3, "encoding": "mono8"}, stamp_ns=T0_NS - 7),
        Msg("/c", "sensor_msgs/msg/Image", T0_NS, {"width": 640, "height": 480, "encoding": "bgr8"}),
        Msg("/z", "sensor_msgs/msg/CompressedImage", T0_NS + 5, {"format": "png"}),
        Msg("/p", "sensor_msgs/msg/PointCloud2", T0_NS + 9, {"points": 33}),
        Msg("/imu", "sensor_msgs/msg/Imu", T0_NS + 11, {"angular_velocity": (0.25, -1e300, float("inf")), "linear_acceleration": (1.5, 2.5, -9.81)}),
        Msg("/js", "sensor_msgs/msg/JointState", T0_NS + 13, {"position": (0.1, -0.2, 0.3), "velocity": (1.0, 2.0, 3.0), "effort": (-1.0, 0.0, 5e-324)}),
        Msg("/js", "sensor_msgs/msg/JointState", T0_NS + 14, {"position": (), "velocity": (), "effort": ()}),
        Msg("/odom", "nav_msgs/msg/Odometry", T0_NS + 17, {"x": 3.25, "y": -7.5, "vx": 0.125, "wz": -0.5}),
    ]
    cases = []
    for m in base:
        for frame in ("", "a", "ab", "abc", "base", "base_", "base_li", "base_link"):
            msg = build_message(ts, encoding, m)
            msg = dataclasses.replace(msg, header=dataclasses.replace(msg.header, frame_id=frame))
            if m.type == "sensor_msgs/msg/JointState" and len(msg.name):
                msg = dataclasses.replace(msg, name=[frame + "j" * (i + 1) for i in range(len(msg.name))])
            if m.type == "sensor_msgs/msg/JointState" and frame == "abc":  # arrays of different lengths
                msg = dataclasses.replace(msg, effort=np.zeros(0))
            cases.append((m.type, msg))
    return cases


@pytest.mark.parametrize("encoding", ["ros2", "ros1"])
def test_standard_messages_read_from_their_bytes_give_what_full_decoding_gives(encoding):
    """Images, clouds, Imu, JointState and Odometry are read field by field from the bytes (no
    message objects, no array copies): the same columns as rosbags' full deserialization, and
    exactly the bytes rosbags refuses (cut short, left-over bytes) are refused, not misread."""
    from axon_dagster.ingest.decode import RosDecoderFactory, decoded_columns, fast_columns
    from mcap.records import Schema

    from tests.axon_mcap_fixture import type_name

    ts = typestore(encoding)
    factory = RosDecoderFactory()
    msg_enc = "ros1" if encoding == "ros1" else "cdr"
    serialize_ = ts.serialize_ros1 if encoding == "ros1" else ts.serialize_cdr
    channels: dict[str, object] = {}  # one reader per type, as per channel: what it remembers between messages must not leak
    for ros2_type, msg in _standard_cases(ts, encoding):
        name = type_name(ros2_type, encoding)
        raw = bytes(serialize_(msg, ros2_type))
        full = factory.decoder_for(msg_enc, Schema(id=1, name=name, encoding=encoding + "msg", data=b""))
        fast = channels.setdefault(name, fast_columns(msg_enc, name))
        got = fast(raw)
        offset = got.pop("data_offset", None)
        assert got == decoded_columns(name, full(raw)), (ros2_type, msg.header.frame_id)
        if offset is not None:  # the pixel / point bytes start at data_offset
            data = bytes(full(raw).data)
            assert raw[offset: offset + len(data)] == data and len(data) > 0
        for cut in {*range(0, min(len(raw), 1200)), *range(max(0, len(raw) - 12), len(raw)), len(raw) // 2}:  # every field's end
            refused = _raises(lambda: full(raw[:cut]))
            assert _raises(lambda: fast(raw[:cut])) == refused, (ros2_type, msg.header.frame_id, cut, len(raw))
        for extra in (b"\0", b"\0" * 4):
            assert _raises(lambda: fast(raw + extra)) == _raises(lambda: full(raw + extra))
    assert fast_columns(msg_enc, type_name("std_msgs/msg/String", encoding)) is None


def _raises(fn) -> bool:
    try:
        fn()
    except Exception:  # noqa: BLE001 - refused is refused, whichever error says so
        return True
    return False


def test_big_endian_cdr_goes_through_the_full_decoder_and_bad_encapsulations_are_refused():
    from axon_dagster.ingest.decode import RosDecoderFactory, columns_decoder, decoded_columns, fast_columns
    from mcap.records import Schema

    ts = typestore("ros2")
    factory = RosDecoderFactory()
    for ros2_type, msg in _standard_cases(ts, "ros2")[::8]:
        schema = Schema(id=1, name=ros2_type, encoding="ros2msg", data=b"")
        big = bytes(ts.serialize_cdr(msg, ros2_type, little_endian=False))
        assert big[:2] == b"\x00\x00"
        expected = decoded_columns(ros2_type, factory.decoder_for("cdr", schema)(big))
        assert columns_decoder(factory, "cdr", schema)(big) == expected
        with pytest.raises(ValueError, match="big-endian"):
            fast_columns("cdr", ros2_type)(big)
        little = bytes(ts.serialize_cdr(msg, ros2_type))
        for header in (b"\x01\x01", b"\x00\x02", b"\x00\x03"):  # not CDR_LE / CDR_BE
            with pytest.raises(ValueError, match="encapsulation"):
                columns_decoder(factory, "cdr", schema)(header + little[2:])


@pytest.mark.parametrize("compression", ["zstd", "lz4", "none", "unchunked"])
def test_the_chunk_reader_yields_what_mcaps_reader_yields(tmp_path, compression):
    """Indexed files are read chunk by chunk with payloads sliced out of the decompressed chunk;
    files without chunk indexes go through mcap's reader. Same messages either way."""
    from mcap.reader import make_reader
    from mcap.writer import CompressionType, Writer

    from axon_dagster.ingest.mcap_to_lance import iter_messages

    ts = typestore("ros2")
    path = tmp_path / f"{compression}.mcap"
    with open(path, "wb") as fh:
        w = Writer(fh, compression=CompressionType.NONE if compression == "unchunked" else CompressionType[compression.upper()],
                   use_chunking=compression != "unchunked", chunk_size=4096)
        w.start()
        sid = w.register_schema("sensor_msgs/msg/Imu", "ros2msg", b"")
        channels = [w.register_channel(f"/t{i}", "cdr", sid) for i in range(3)]
        for i in range(300):
            m = Msg("/imu", "sensor_msgs/msg/Imu", T0_NS + i, {"angular_velocity": (i, 0, 0)})
            w.add_message(channels[i % 3], log_time=T0_NS + i, publish_time=T0_NS + i + 1, data=serialize_msg(ts, m), sequence=i // 3)
        w.finish()
    with open(path, "rb") as fh:
        ours = [(c.topic, s.name if s else None, m.sequence, m.log_time, m.publish_time, bytes(m.data)) for s, c, m in iter_messages(fh)]
    with open(path, "rb") as fh:
        theirs = [(c.topic, s.name if s else None, m.sequence, m.log_time, m.publish_time, m.data)
                  for s, c, m in make_reader(fh).iter_messages(log_time_order=False)]
    assert len(ours) == 300 and sorted(ours) == sorted(theirs)
    if compression != "unchunked":
        assert ours == theirs  # file order, chunk by chunk


def serialize_msg(ts, m):
    from tests.axon_mcap_fixture import serialize

    return serialize(ts, "ros2", m)


def test_files_hashed_while_lance_writes_them_match_a_hash_after_the_write(tmp_path, monkeypatch):
    import axon_dagster.ingest.mcap_to_lance as m
    from axon_dagster.storage.digest import file_digests

    monkeypatch.setattr(m, "MAX_BYTES_PER_FILE", 8 << 20)  # several data files, finished one after another
    monkeypatch.setattr(m, "TARGET_BATCH_BYTES", 2 << 20)
    msgs = [Msg("/cam", "sensor_msgs/msg/Image", T0_NS + i * 33_000_000, {"width": 640, "height": 480, "fill": i}) for i in range(40)]
    w = write_axon_mcap(tmp_path / "rec", "t", msgs)
    result = ingest_mcap(w.mcap_path, tmp_path / "t.lance")
    data_files = list((result.dataset_path / "data").iterdir())
    assert len(data_files) >= 3
    assert result.sidecar.files == file_digests(result.dataset_path)
    # ~20 batches through a handful of reused payload buffers: every frame's bytes are still its own
    from mcap.reader import make_reader

    with open(w.mcap_path, "rb") as fh:
        raw = {msg.sequence: msg.data for _, _, msg in make_reader(fh).iter_messages(log_time_order=False)}
    assert {r["sequence"]: r["payload"] for r in _table(result.dataset_path).to_pylist()} == raw


@pytest.mark.parametrize("target, max_rows", [(64 << 10, 65536), (8 << 20, 7)])
def test_batches_split_at_their_limits_and_keep_every_payload(tmp_path, monkeypatch, target, max_rows):
    """Payloads are copied into each batch's buffer as they come: a message bigger than a batch gets
    a batch of its own, a batch closes at its row limit, and every row keeps its bytes and columns."""
    import axon_dagster.ingest.mcap_to_lance as m
    from mcap.reader import make_reader

    monkeypatch.setattr(m, "TARGET_BATCH_BYTES", target)
    monkeypatch.setattr(m, "MAX_BATCH_ROWS", max_rows)
    msgs = [Msg("/imu", "sensor_msgs/msg/Imu", T0_NS + i * 5_000_000, {"angular_velocity": (0.1 * i, 0.0, 0.0)}) for i in range(40)]
    msgs += [Msg("/cam", "sensor_msgs/msg/Image", T0_NS + i * 33_000_000 + 1, {"width": 320, "height": 240, "fill": i}) for i in range(6)]  # 230 kB
    w = write_axon_mcap(tmp_path / "rec", "t", sorted(msgs, key=lambda x: x.log_time_ns))
    with open(w.mcap_path, "rb") as fh:
        raw = [(c.topic, msg.sequence, msg.data) for _, c, msg in make_reader(fh).iter_messages(log_time_order=False)]
    stats: dict = {}
    batches = list(m.record_batches(w.mcap_path, stats))
    sizes = [sum(len(p) for p in b.column("payload").to_pylist()) for b in batches]
    assert all(b.num_rows <= max_rows for b in batches)
    assert all(size <= target or b.num_rows == 1 for b, size in zip(batches, sizes))
    if target < 230_000:
        assert sum(1 for b, size in zip(batches, sizes) if size > target) == 6  # each frame alone
    rows = [r for b in batches for r in b.to_pylist()]
    assert [(r["topic"], r["sequence"], r["payload"]) for r in rows] == raw and stats["rows"] == len(raw) == 46
    assert [(r["width"], r["height"], r["encoding"]) for r in rows if r["topic"] == "/cam"] == [(320, 240, "rgb8")] * 6
    imu = [r for r in rows if r["topic"] == "/imu"]
    assert [r["angular_velocity"][0] for r in imu] == pytest.approx([0.1 * i for i in range(40)])
    assert all(r["width"] is None and r["orientation"] == [0.0, 0.0, 0.0, 1.0] for r in imu)


def test_hash_mcap_hashes_the_mcap_in_the_same_pass_and_refuses_a_different_digest(tmp_path):
    """``hash_mcap=True``: the sidecar records the MCAP's SHA-256 as hashed during the ingestion; a
    caller's expected digest that differs is refused with nothing left behind; without
    ``hash_mcap`` the given digest is recorded as given (the caller verified it)."""
    from axon_dagster.ingest.mcap_to_lance import McapDigestMismatch
    from axon_dagster.storage.digest import DigestMismatch, file_sha256

    w = write_axon_mcap(tmp_path / "rec", "t")
    actual = file_sha256(w.mcap_path)
    assert actual == w.checksum_sha256
    checked = ingest_mcap(w.mcap_path, tmp_path / "a" / "t.lance", mcap_sha256=actual.upper(), hash_mcap=True)
    assert checked.mcap_sha256 == actual == checked.sidecar.extra["source"]["mcap_sha256"]
    computed = ingest_mcap(w.mcap_path, tmp_path / "b" / "t.lance", hash_mcap=True)
    assert computed.mcap_sha256 == actual and Sidecar.read(sidecar_path(computed.dataset_path)).extra["source"]["mcap_sha256"] == actual
    wrong = "0" * 64
    with pytest.raises(McapDigestMismatch, match="does not match") as refused:
        ingest_mcap(w.mcap_path, tmp_path / "c" / "t.lance", mcap_sha256=wrong, hash_mcap=True)
    assert isinstance(refused.value, IngestError) and isinstance(refused.value, DigestMismatch)
    assert (refused.value.expected, refused.value.actual) == (wrong, actual)
    assert list((tmp_path / "c").iterdir()) == []  # no dataset, no sidecar, no temporary directory
    recorded = ingest_mcap(w.mcap_path, tmp_path / "d" / "t.lance", mcap_sha256=wrong)
    assert recorded.mcap_sha256 == wrong == recorded.sidecar.extra["source"]["mcap_sha256"]


def _chunk_data_offset(path) -> tuple[int, int]:
    """(file offset of the first chunk's uncompressed-size field, of its compressed data)."""
    from mcap.reader import make_reader

    with open(path, "rb") as fh:
        start = min(c.chunk_start_offset for c in make_reader(fh).get_summary().chunk_indexes)
    raw = path.read_bytes()
    size_at = start + 1 + 8 + 8 + 8  # opcode, record length, message start / end time
    (name_len,) = struct.unpack_from("<I", raw, size_at + 8 + 4)
    return size_at, size_at + 8 + 4 + 4 + name_len + 8


@pytest.mark.parametrize("damage", ["frame", "size"])
def test_a_damaged_chunk_is_refused_as_unreadable_and_nothing_is_left_behind(tmp_path, damage):
    w = write_axon_mcap(tmp_path / "rec", "t")
    size_at, data_at = _chunk_data_offset(w.mcap_path)
    raw = bytearray(w.mcap_path.read_bytes())
    if damage == "frame":
        raw[data_at: data_at + 4] = b"\xde\xad\xbe\xef"  # no zstd frame starts here
    else:
        (size,) = struct.unpack_from("<Q", raw, size_at)
        struct.pack_into("<Q", raw, size_at, size + 1)  # the chunk record claims a byte more than it holds
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(bytes(raw))
    with pytest.raises(IngestError, match="not a readable MCAP.*zstd" if damage == "frame" else "not a readable MCAP.*its record says"):
        ingest_mcap(bad, tmp_path / "out" / "bad.lance")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_failing_write_stops_the_reader_thread_and_leaves_nothing(tmp_path, monkeypatch):
    """The batches are read on a thread of their own, ahead of Lance's writer: when the write fails,
    that thread stops (it does not read the rest of the file into a queue nobody empties)."""
    import threading

    import lance

    import axon_dagster.ingest.mcap_to_lance as m

    monkeypatch.setattr(m, "TARGET_BATCH_BYTES", 64 << 10)
    msgs = [Msg("/cam", "sensor_msgs/msg/Image", T0_NS + i * 33_000_000, {"width": 160, "height": 120, "fill": i}) for i in range(60)]
    w = write_axon_mcap(tmp_path / "rec", "t", msgs)
    pulled = []

    def failing_write(reader, *args, **kwargs):
        pulled.append(reader.read_next_batch())
        raise OSError("No space left on device")

    monkeypatch.setattr(lance, "write_dataset", failing_write)
    with pytest.raises(OSError, match="No space left"):
        m.ingest_mcap(w.mcap_path, tmp_path / "out" / "t.lance")
    assert len(pulled) == 1
    assert not [t for t in threading.enumerate() if t.name.startswith("ingest-")]
    assert list((tmp_path / "out").iterdir()) == []
