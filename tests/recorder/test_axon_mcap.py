"""The simulator's Axon-faithful MCAP writer, read back with the maintained readers (``mcap``,
``mcap-ros2-support``, ``mcap-ros1-support``, ``rosbags``) — never with our own code."""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import pytest
from mcap.reader import make_reader

from axon_dagster.demo.sim.axon_mcap import (
    AXON_DEFAULT_TOPICS,
    ros_type_name,
    typestore_for,
    write_axon_recording,
)
from axon_dagster.demo.sim.synthetic import Faults, TopicSpec
from axon_dagster.storage.axon_recording import format_axon_time

START_NS = 1_780_000_000_123_456_789
TASK = {
    "task_id": "task-1",
    "device_id": "robot-1",
    "order_id": "order-1",
    "scene": "warehouse",
    "subscene": "",
    "skills": ["pick", "place\x07"],
    "factory": "plant-a",
    "operator_name": "ana",
    "user_token": "secret-token",
    "finish_callback_url": "http://example.invalid/cb",
}


def record(tmp_path: Path, **kwargs):
    kwargs.setdefault("task_config", TASK)
    kwargs.setdefault("device_id", "robot-1")
    kwargs.setdefault("started_at_ns", START_NS)
    kwargs.setdefault("duration_s", 2.0)
    return write_axon_recording(tmp_path / "out", **kwargs)


def read_all(path: Path):
    with open(path, "rb") as fh:
        reader = make_reader(fh)
        summary = reader.get_summary()
        metadata = {m.name: dict(m.metadata) for m in reader.iter_metadata()}
        messages = [(schema, channel, message) for schema, channel, message in reader.iter_messages(log_time_order=False)]
    return summary, metadata, messages


def decode(schema, message, encoding="ros2"):
    """Decode by type name with a rosbags type store, as a reader must when the schema is empty."""
    store = typestore_for(encoding)
    name = ros_type_name(schema.name, "ros2")
    if encoding == "ros2":
        return store.deserialize_cdr(message.data, name)
    return store.deserialize_ros1(message.data, name)


def test_files_names_and_order(tmp_path: Path):
    result = record(tmp_path)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["task-1.json", "task-1.mcap", "task-1.mcap.done"]
    assert result.mcap_path == out / "task-1.mcap"
    assert result.sidecar_path == out / "task-1.json"
    assert (out / "task-1.mcap.done").read_text() == "done\n"
    # .mcap, then sidecar, then .done: each written no earlier than the one before
    times = [p.stat().st_mtime_ns for p in (result.mcap_path, result.sidecar_path, result.done_path)]
    assert times == sorted(times)


def test_mcap_layout_is_axons(tmp_path: Path):
    result = record(tmp_path)
    summary, metadata, messages = read_all(result.mcap_path)
    assert summary.statistics.message_count == result.message_count == len(messages) > 0
    for schema in summary.schemas.values():
        assert schema.encoding == "ros2msg"
        assert schema.data == b""  # Axon leaves the schema empty without schema_search_paths
        assert schema.name.count("/msg/") == 1
    for channel in summary.channels.values():
        assert channel.message_encoding == "cdr"
        assert channel.metadata == {"axon.source": "ros2", "axon.plugin": "ROS2"}
    assert {c.topic for c in summary.channels.values()} == set(AXON_DEFAULT_TOPICS)
    for _schema, _channel, message in messages:
        assert message.log_time == message.publish_time
    with open(result.mcap_path, "rb") as fh:  # zstd chunks
        assert {ci.compression for ci in make_reader(fh).get_summary().chunk_indexes} == {"zstd"}
    assert set(metadata) == {"axon.sidecar", "axon.task", "axon.device", "axon.recording", "axon.topics"}


def test_metadata_records_and_sidecar_agree(tmp_path: Path):
    result = record(tmp_path)
    _summary, metadata, messages = read_all(result.mcap_path)
    sidecar = json.loads(result.sidecar_path.read_text())
    assert metadata["axon.sidecar"] == {"version": "1.0", "mcap_file": "task-1.mcap"}
    task = metadata["axon.task"]
    assert task["task_id"] == "task-1" and task["order_id"] == "order-1" and task["operator_name"] == "ana"
    assert json.loads(task["skills"]) == ["pick", "place"]  # control characters stripped
    assert "subscene" not in task  # empty values are left out
    assert "user_token" not in json.dumps(metadata) and "secret-token" not in result.sidecar_path.read_text()
    rec = metadata["axon.recording"]
    assert rec["file_size_bytes"] == f"{result.mcap_path.stat().st_size:020d}"  # patched after close
    assert int(rec["message_count"]) == len(messages)
    assert rec["recording_started_at"] == format_axon_time(START_NS) == "2026-05-28T20:26:40.123Z"
    assert json.loads(metadata["axon.topics"]["topics_summary"]) == sidecar["topics_summary"]
    # the sidecar: v1.0 keys, checksum of the whole file
    assert sidecar["version"] == "1.0" and sidecar["mcap_file"] == "task-1.mcap"
    assert sidecar["task"] == {"task_id": "task-1", "order_id": "order-1", "scene": "warehouse",
                               "skills": ["pick", "place"], "factory": "plant-a", "operator_name": "ana"}
    assert set(sidecar["device"]) >= {"device_id", "hostname", "ros_distro"}
    recording = sidecar["recording"]
    assert recording["checksum_sha256"] == hashlib.sha256(result.mcap_path.read_bytes()).hexdigest() == result.checksum_sha256
    assert recording["file_size_bytes"] == result.mcap_path.stat().st_size
    assert recording["message_count"] == len(messages)
    assert recording["duration_sec"] == 2.0
    assert recording["topics_recorded"] == sorted(AXON_DEFAULT_TOPICS)
    counts = {}
    for _s, channel, _m in messages:
        counts[channel.topic] = counts.get(channel.topic, 0) + 1
    assert {t["topic"]: t["message_count"] for t in sidecar["topics_summary"]} == counts
    assert all(t["frequency_hz"] == 0.0 for t in sidecar["topics_summary"])
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_messages_are_real_ros2_messages_with_realistic_stamps(tmp_path: Path):
    result = record(tmp_path)
    _summary, _metadata, messages = read_all(result.mcap_path)
    seen = set()
    for schema, channel, message in messages:
        msg = decode(schema, message)
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        lag = message.log_time - stamp
        assert 0 <= lag < 100_000_000, (channel.topic, lag)  # captured shortly before it was received
        seen.add(schema.name)
        if schema.name == "sensor_msgs/msg/Image":
            assert (msg.encoding, len(msg.data)) == ("rgb8", msg.width * msg.height * 3)
        if schema.name == "sensor_msgs/msg/PointCloud2":
            assert msg.width * msg.point_step == len(msg.data) and [f.name for f in msg.fields] == ["x", "y", "z", "intensity"]
        if schema.name == "sensor_msgs/msg/Imu":
            assert math.isclose(msg.linear_acceleration.z, 9.81, abs_tol=0.1)
        if schema.name == "sensor_msgs/msg/JointState":
            assert len(msg.name) == len(msg.position) == 7
    assert seen == {ros_type_name(s.message_type, "ros2") for s in AXON_DEFAULT_TOPICS.values()}


def test_full_schema_decodes_with_mcap_ros2_support(tmp_path: Path):
    from mcap_ros2.decoder import DecoderFactory

    result = record(tmp_path, schema="full")
    with open(result.mcap_path, "rb") as fh:
        decoded = list(make_reader(fh, decoder_factories=[DecoderFactory()]).iter_decoded_messages())
    assert len(decoded) == result.message_count
    imu = next(d for _s, c, _m, d in decoded if c.topic == "/imu")
    assert math.isclose(imu.linear_acceleration.z, 9.81, abs_tol=0.1)


def test_ros1_encoding(tmp_path: Path):
    from mcap_ros1.decoder import DecoderFactory

    result = record(tmp_path, encoding="ros1", schema="full")
    summary, _metadata, messages = read_all(result.mcap_path)
    assert {s.encoding for s in summary.schemas.values()} == {"ros1msg"}
    assert {c.message_encoding for c in summary.channels.values()} == {"ros1"}
    assert "sensor_msgs/Image" in {s.name for s in summary.schemas.values()}
    with open(result.mcap_path, "rb") as fh:
        decoded = list(make_reader(fh, decoder_factories=[DecoderFactory()]).iter_decoded_messages())
    joints = [d for _s, c, _m, d in decoded if c.topic == "/joint_states"]
    assert [j.header.seq for j in joints[:3]] == [0, 1, 2]
    # empty schema: still decodable by type name
    empty = record(tmp_path / "e", encoding="ros1")
    _s, _md, msgs = read_all(empty.mcap_path)
    assert decode(msgs[0][0], msgs[0][2], "ros1").header is not None


def test_sidecar_mode_none_keeps_metadata_records(tmp_path: Path):
    result = record(tmp_path, sidecar_mode="none")
    assert result.sidecar_path is None
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["task-1.mcap", "task-1.mcap.done"]
    _summary, metadata, _messages = read_all(result.mcap_path)
    assert int(metadata["axon.recording"]["message_count"]) == result.message_count


def test_pauses_shift_log_time_and_leave_no_messages(tmp_path: Path):
    plain = record(tmp_path / "a", duration_s=3.0)
    paused = record(tmp_path / "b", duration_s=3.0, pauses=[(1.0, 1.0)])
    assert paused.message_count < plain.message_count * 0.75
    _s, _md, messages = read_all(paused.mcap_path)
    imu = sorted(m.log_time for _s, c, m in messages if c.topic == "/imu")
    gaps = [b - a for a, b in zip(imu, imu[1:])]
    assert max(gaps) < 50_000_000  # log time excludes the pause: no 1 s hole
    assert imu[-1] - START_NS < 2.1e9  # 3 s of wall time, 2 s recorded
    sidecar = json.loads(paused.sidecar_path.read_text())
    assert sidecar["recording"]["duration_sec"] == 3.0  # wall time, pause included


@pytest.mark.parametrize(
    "faults, check",
    [
        (Faults(nan_topics=("/imu",)), "nan"),
        (Faults(image_change_at_fraction=0.5), "image"),
        (Faults(header_stamp_skew_seconds=2.0), "skew"),
        (Faults(frozen_topics=("/joint_states",)), "frozen"),
        (Faults(missing_topics=("/odom",)), "missing"),
        (Faults(sidecar_count_delta=5), "count"),
    ],
)
def test_content_faults(tmp_path: Path, faults: Faults, check: str):
    result = record(tmp_path, faults=faults)
    _summary, metadata, messages = read_all(result.mcap_path)
    decoded = [(c.topic, m, decode(s, m)) for s, c, m in messages]
    if check == "nan":
        values = [d.angular_velocity.x for t, _m, d in decoded if t == "/imu"]
        assert any(math.isnan(v) for v in values) and not math.isnan(values[0])
    elif check == "image":
        shapes = {(d.width, d.height, d.encoding) for t, _m, d in decoded if t == "/camera/image_raw"}
        assert len(shapes) == 2
    elif check == "skew":
        lags = [m.log_time - (d.header.stamp.sec * 10**9 + d.header.stamp.nanosec) for _t, m, d in decoded]
        assert min(lags) > 1.9e9
    elif check == "frozen":
        positions = {tuple(d.position) for t, _m, d in decoded if t == "/joint_states"}
        stamps = {d.header.stamp.nanosec for t, _m, d in decoded if t == "/joint_states"}
        assert len(positions) == 1 and len(stamps) > 1
    elif check == "missing":
        assert "/odom" not in {t for t, _m, _d in decoded}
    elif check == "count":
        sidecar = json.loads(result.sidecar_path.read_text())
        assert sidecar["recording"]["message_count"] == len(messages) + 5
        assert int(metadata["axon.recording"]["message_count"]) == len(messages) + 5


def test_truncate_fault_breaks_the_checksum(tmp_path: Path):
    result = record(tmp_path, faults=Faults(truncate=True))
    assert result.done_path.exists()
    assert hashlib.sha256(result.mcap_path.read_bytes()).hexdigest() != result.checksum_sha256


def test_drops_and_pauses_leave_no_sequence_holes(tmp_path: Path):
    """Axon numbers a topic's messages when its worker dequeues them (worker_thread_pool.cpp):
    messages lost before the queue (transport drops, a full queue) or discarded while paused never
    get a number. Drops show as fewer messages, not as holes."""
    clean = record(tmp_path / "clean")
    result = record(tmp_path / "drops", faults=Faults(drop_rate=0.2), pauses=((0.5, 0.5),))
    _s, _md, messages = read_all(result.mcap_path)
    seqs = [m.sequence for _s, c, m in messages if c.topic == "/joint_states"]
    assert seqs == list(range(len(seqs)))
    assert len(seqs) < 0.85 * next(t["message_count"] for t in clean.topics_summary if t["topic"] == "/joint_states")


def test_reproducible_with_a_seed(tmp_path: Path):
    a = record(tmp_path / "a", seed=3)
    b = record(tmp_path / "b", seed=3)
    assert a.checksum_sha256 == b.checksum_sha256
    assert record(tmp_path / "c", seed=4).checksum_sha256 != a.checksum_sha256


def test_rerecording_overwrites(tmp_path: Path):
    first = record(tmp_path, duration_s=1.0)
    second = record(tmp_path, duration_s=2.0)
    assert second.message_count > first.message_count
    assert json.loads(second.sidecar_path.read_text())["recording"]["checksum_sha256"] == second.checksum_sha256


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"task_config": {"task_id": "../evil"}}, "task_id"),
        ({"device_id": ""}, "device_id"),
        ({"encoding": "ros3"}, "encoding"),
        ({"schema": "partial"}, "schema"),
        ({"compression": "gzip"}, "compression"),
        ({"sidecar_mode": "transient-ish"}, "sidecar_mode"),
        ({"duration_s": 0}, "duration_s"),
        ({"pauses": [(1.5, 1.0)]}, "pause"),
        ({"topics": {"/x": TopicSpec(10.0, "geometry_msgs/Wrench", 8)}}, "cannot write"),
        ({"topics": {"x": TopicSpec(10.0, "std_msgs/String", 8)}}, "absolute"),
    ],
)
def test_bad_input_is_refused_and_nothing_written(tmp_path: Path, kwargs, error):
    with pytest.raises(ValueError, match=error):
        record(tmp_path, **kwargs)
    assert not (tmp_path / "out").exists()


def test_writes_megabytes_quickly(tmp_path: Path):
    topics = {"/camera/image_raw": TopicSpec(30.0, "sensor_msgs/Image", 640 * 480 * 3), **{
        k: v for k, v in AXON_DEFAULT_TOPICS.items() if k != "/camera/image_raw"}}
    started = time.perf_counter()
    result = record(tmp_path, topics=topics, duration_s=2.0)
    elapsed = time.perf_counter() - started
    # 60 VGA frames (55 MB raw; consecutive frames share content, so zstd halves them)
    assert result.file_size_bytes > 20e6
    assert elapsed < 30, f"wrote {result.file_size_bytes / 1e6:.0f} MB in {elapsed:.2f} s"
