"""Recordings as the Axon recorder v0.4 writes them: ``<task_id>.mcap`` + sidecar + ``.mcap.done``.

:func:`write_axon_recording` is the simulator's writer (after Axon v0.4's source, GitHub ``archebase/axon``:
``recording_session.cpp`` / ``metadata_injector.cpp`` / ``recorder.cpp``):

- one MCAP file, zstd-compressed by default, one schema per ROS message type (schema name = the
  type, encoding ``ros2msg``/``ros1msg``) whose data is **empty** by default (``schema="full"``
  writes the ``.msg`` text), channels encoded ``cdr``/``ros1`` with metadata ``axon.source`` and
  ``axon.plugin``; message bodies are real serialized ROS messages (``rosbags``);
- ``log_time`` = ``publish_time`` = the receive wall clock minus the time spent paused so far;
  header stamps are the (earlier) capture time, so header-vs-log-time checks mean something;
- the MCAP metadata records ``axon.sidecar``, ``axon.task``, ``axon.device``, ``axon.recording``
  (its ``file_size_bytes`` a 20-digit placeholder patched in place after close, as Axon does) and
  ``axon.topics``;
- then the v1.0 JSON sidecar ``<task_id>.json`` (unless ``sidecar_mode="none"``) via ``.tmp`` +
  rename, then ``<task_id>.mcap.done`` (``done\\n``) via ``.tmp`` + rename.

Content faults (:class:`.synthetic.Faults`) shape what is written: drops, a stall, missing or frozen
topics, a clock jump, NaN values, an image size/encoding change, header-stamp skew, a sidecar whose
counts lie, every topic going silent before the finish, a truncated file. Generation is streamed window by window: memory stays flat however
long the recording.

Longer than ~400 lines on purpose: it follows Axon's writer step by step (schemas, channels,
metadata records, the size patch, sidecar, ``.done``), and one module keeps that side by side
with the reference it imitates.
"""

from __future__ import annotations

import json
import math
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from axon_dagster.domain.ids import validate_id
from axon_dagster.storage.axon_recording import format_axon_time
from axon_dagster.storage.digest import file_sha256

from .synthetic import CHUNK_SECONDS, Faults, TopicSpec, check_recording_args, window_messages

SIDECAR_VERSION = "1.0"
RECORDER_VERSION = "0.4.0"
ENCODINGS = ("ros2", "ros1")
SCHEMA_MODES = ("empty", "full")
COMPRESSIONS = ("zstd", "lz4", "none")
SIDECAR_MODES = ("always", "none")
_FILE_SIZE_WIDTH = 20  # Axon writes file_size_bytes as a zero-padded 20-digit placeholder, patched after close
_FILE_SIZE_KEY = "file_size_bytes"
# Axon's limits on sidecar strings (metadata_injector.hpp)
_MAX_ID, _MAX_SCENE, _MAX_SKILL, _MAX_FACTORY, _MAX_OPERATOR = 256, 128, 64, 128, 128

# Capture-to-receive latency per message type (header.stamp is this much before the log time).
_LATENCY_S = {"Image": 0.030, "CompressedImage": 0.030, "PointCloud2": 0.050}
_DEFAULT_LATENCY_S = 0.002


def ros_type_name(message_type: str, encoding: str) -> str:
    """``sensor_msgs/Image`` or ``sensor_msgs/msg/Image`` in the spelling of ``encoding``:
    ``pkg/msg/Type`` for ROS 2, ``pkg/Type`` for ROS 1 (what Axon's subscriptions name)."""
    parts = message_type.split("/")
    if len(parts) == 3 and parts[1] == "msg":
        pkg, name = parts[0], parts[2]
    elif len(parts) == 2:
        pkg, name = parts
    else:
        raise ValueError(f"not a ROS message type name: {message_type!r}")
    return f"{pkg}/msg/{name}" if encoding == "ros2" else f"{pkg}/{name}"


def axon_default_topics(camera_payload_bytes: int = 8 * 1024) -> dict[str, TopicSpec]:
    """The simulated robot's subscriptions in MCAP mode: camera, joints, IMU, lidar, odometry.
    ``payload_bytes`` sizes the image (rgb8, 4:3) and the point cloud (16 bytes a point)."""
    return {
        "/camera/image_raw": TopicSpec(30.0, "sensor_msgs/Image", camera_payload_bytes),
        "/joint_states": TopicSpec(200.0, "sensor_msgs/JointState", 16 + 7 * 3 * 8),
        "/imu": TopicSpec(100.0, "sensor_msgs/Imu", 16 + 10 * 8),
        "/lidar/points": TopicSpec(10.0, "sensor_msgs/PointCloud2", 1024 * 16),
        "/odom": TopicSpec(50.0, "nav_msgs/Odometry", 16 + 13 * 8),
    }


AXON_DEFAULT_TOPICS: Mapping[str, TopicSpec] = axon_default_topics()


@dataclass(frozen=True)
class AxonRecordingResult:
    mcap_path: Path
    sidecar_path: Path | None
    done_path: Path
    checksum_sha256: str
    message_count: int
    file_size_bytes: int
    topics_summary: list[dict[str, Any]]
    started_at_ns: int
    finished_at_ns: int


def sanitize(value: Any, max_length: int) -> str:
    """Axon's ``sanitize_field``: control characters (but newline and tab) dropped, cut to length."""
    return "".join(c for c in str(value) if ord(c) >= 32 or c in "\n\t")[:max_length]


def write_axon_recording(
    output_dir: str | os.PathLike,
    *,
    task_config: Mapping[str, Any],
    device_id: str,
    started_at_ns: int,
    duration_s: float,
    pauses: Iterable[tuple[float, float]] = (),
    topics: Mapping[str, TopicSpec] = AXON_DEFAULT_TOPICS,
    faults: Faults = Faults(),
    seed: int = 0,
    encoding: str = "ros2",
    schema: str = "empty",
    compression: str = "zstd",
    sidecar_mode: str = "always",
    ros_distro: str | None = None,
    hostname: str | None = None,
) -> AxonRecordingResult:
    """Write ``<output_dir>/<task_id>.mcap`` (+ ``.json`` sidecar, + ``.mcap.done``) as Axon does.

    ``duration_s`` is the wall time from begin to finish, pauses included; ``pauses`` are
    ``(start_offset_s, length_s)`` wall-clock intervals (from begin) in which nothing is written.
    Like Axon, an existing recording of the same task id is overwritten.
    """
    task_id = validate_id(task_config.get("task_id"), "task_id")
    validate_id(device_id, "device_id")
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    if schema not in SCHEMA_MODES:
        raise ValueError(f"schema must be one of {SCHEMA_MODES}, got {schema!r}")
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
    if sidecar_mode not in SIDECAR_MODES:
        raise ValueError(f"sidecar_mode must be one of {SIDECAR_MODES}, got {sidecar_mode!r}")
    check_recording_args(started_at_ns, duration_s, topics, faults, start_name="started_at_ns")
    pause_list = _check_pauses(pauses, float(duration_s))
    for spec in topics.values():
        _Builder.kind_of(spec.message_type)  # refuses types we cannot serialize

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    mcap_path = output_dir / f"{task_id}.mcap"
    json_path = output_dir / f"{task_id}.json"
    done_path = output_dir / f"{task_id}.mcap.done"
    for stale in (json_path, done_path):  # a re-recording must not look complete early
        stale.unlink(missing_ok=True)

    generator = _Generator(topics, faults, started_at_ns, float(duration_s), pause_list, seed, encoding)
    finished_at_ns = started_at_ns + round(duration_s * 1e9)
    task_meta = _task_metadata(task_config)
    device_meta = _device_metadata(device_id, encoding, ros_distro, hostname)

    def recording_meta(summary: list[dict[str, Any]], message_count: int, file_size: str) -> dict[str, str]:
        return {
            "recorder_version": RECORDER_VERSION,
            "recording_started_at": format_axon_time(started_at_ns),
            "recording_finished_at": format_axon_time(finished_at_ns),
            "duration_sec": f"{duration_s:.3f}",  # wall time, pauses included
            "message_count": str(message_count),
            _FILE_SIZE_KEY: file_size,
            "topics_recorded": json.dumps([t["topic"] for t in summary]),
        }

    with open(mcap_path, "wb") as stream:
        writer = _writer(stream, compression)
        generator.write_messages(writer, schema)
        summary = generator.topics_summary()
        message_count = generator.written + faults.sidecar_count_delta
        writer.add_metadata("axon.sidecar", {"version": SIDECAR_VERSION, "mcap_file": mcap_path.name})
        writer.add_metadata("axon.task", task_meta)
        writer.add_metadata("axon.device", device_meta)
        writer.add_metadata("axon.recording", recording_meta(summary, message_count, "0" * _FILE_SIZE_WIDTH))
        writer.add_metadata("axon.topics", {"topics_summary": json.dumps(summary)})
        writer.finish()
    size = mcap_path.stat().st_size
    _patch_file_size(mcap_path, size)
    checksum = file_sha256(mcap_path)
    sidecar_file: Path | None = None
    if sidecar_mode == "always":
        recording = {
            **recording_meta(summary, message_count, ""),
            "duration_sec": round(float(duration_s), 3),
            "message_count": message_count,
            _FILE_SIZE_KEY: size,
            "topics_recorded": [t["topic"] for t in summary],
            "checksum_sha256": checksum,
        }
        sidecar = {
            "version": SIDECAR_VERSION,
            "mcap_file": mcap_path.name,
            "task": _sidecar_task(task_meta),
            "device": dict(device_meta),
            "recording": recording,
            "topics_summary": summary,
        }
        _write_atomically(json_path, json.dumps(sidecar, indent=2))
        sidecar_file = json_path
    if faults.truncate:
        # The file is damaged after the recorder hashed it (a disk error, a bad copy): its size
        # and checksum no longer match the sidecar, and the MCAP lost its summary and footer.
        with open(mcap_path, "r+b") as fh:
            fh.truncate(size // 2)
    _write_atomically(done_path, "done\n")
    return AxonRecordingResult(
        mcap_path=mcap_path,
        sidecar_path=sidecar_file,
        done_path=done_path,
        checksum_sha256=checksum,
        message_count=message_count,
        file_size_bytes=size,
        topics_summary=summary,
        started_at_ns=started_at_ns,
        finished_at_ns=finished_at_ns,
    )


# -- files -----------------------------------------------------------------------------------


def _writer(stream: Any, compression: str) -> Any:
    from mcap.writer import CompressionType, Writer

    kind = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}[compression]
    # Axon's C++ writer leaves the data-section CRC off (it patches file_size_bytes after close).
    return Writer(stream, compression=kind, enable_data_crcs=False)


def _patch_file_size(path: Path, size: int) -> None:
    """Replace the 20-digit ``file_size_bytes`` placeholder of ``axon.recording`` in place, as
    Axon's ``update_mcap_file_size_metadata`` does (the record sits in an uncompressed metadata
    record, so the bytes are findable). A file without the placeholder is an error."""
    value = f"{size:0{_FILE_SIZE_WIDTH}d}".encode()
    placeholder = b"0" * _FILE_SIZE_WIDTH
    key = _FILE_SIZE_KEY.encode()
    pattern = len(key).to_bytes(4, "little") + key + _FILE_SIZE_WIDTH.to_bytes(4, "little") + placeholder
    data = path.read_bytes() if size < (1 << 26) else None
    if data is not None:
        found = data.find(pattern)
    else:
        found = _find_in_file(path, pattern)
    if found < 0:
        raise RuntimeError(f"{path}: axon.recording file_size_bytes placeholder not found")
    with open(path, "r+b") as fh:
        fh.seek(found + len(pattern) - _FILE_SIZE_WIDTH)
        fh.write(value)


def _find_in_file(path: Path, pattern: bytes, block: int = 1 << 22) -> int:
    """Offset of the LAST occurrence of ``pattern`` in ``path`` (metadata records are near the
    end), scanning backwards block by block; -1 when absent."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        end = size
        while end > 0:
            start = max(0, end - block)
            fh.seek(start)
            window = fh.read(end - start + len(pattern) - 1)
            found = window.rfind(pattern)
            if found >= 0:
                return start + found
            end = start
    return -1


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _check_pauses(pauses: Iterable[tuple[float, float]], duration_s: float) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for item in pauses:
        try:
            start, length = (float(v) for v in item)
        except (TypeError, ValueError):
            raise ValueError(f"a pause is (start_offset_s, length_s), got {item!r}") from None
        if not (math.isfinite(start) and math.isfinite(length)) or start < 0 or length < 0 or start + length > duration_s + 1e-9:
            raise ValueError(f"pause {item!r} must lie within the recording's {duration_s} s")
        if out and start < out[-1][0] + out[-1][1]:
            raise ValueError(f"pauses must be in order and must not overlap: {item!r}")
        out.append((start, length))
    return out


# -- metadata --------------------------------------------------------------------------------


def _task_metadata(task_config: Mapping[str, Any]) -> dict[str, str]:
    """``axon.task``: task_id, scene, factory always; the others only when non-empty; skills as
    a JSON array string."""
    meta = {
        "task_id": sanitize(task_config.get("task_id", ""), _MAX_ID),
        "scene": sanitize(task_config.get("scene") or "", _MAX_SCENE),
        "factory": sanitize(task_config.get("factory") or "", _MAX_FACTORY),
    }
    for key, limit in (("order_id", _MAX_ID), ("subscene", _MAX_SCENE)):
        if task_config.get(key):
            meta[key] = sanitize(task_config[key], limit)
    skills = task_config.get("skills") or []
    if skills:
        meta["skills"] = json.dumps([sanitize(s, _MAX_SKILL) for s in skills])
    for key, limit in (("data_collector_id", _MAX_ID), ("operator_name", _MAX_OPERATOR)):
        if task_config.get(key):
            meta[key] = sanitize(task_config[key], limit)
    return meta


def _sidecar_task(task_meta: Mapping[str, str]) -> dict[str, Any]:
    task: dict[str, Any] = {}
    for key in ("task_id", "order_id", "scene", "subscene", "skills", "factory", "data_collector_id", "operator_name"):
        if key in task_meta:
            task[key] = json.loads(task_meta[key]) if key == "skills" else task_meta[key]
    return task


def _device_metadata(device_id: str, encoding: str, ros_distro: str | None, hostname: str | None) -> dict[str, str]:
    from axon_dagster.settings.ros import RosSettings, SimSettings

    meta = {
        "device_id": sanitize(device_id, _MAX_ID),
        "hostname": hostname if hostname is not None else socket.gethostname(),
        "ros_distro": ros_distro if ros_distro is not None else RosSettings.load().distro or ("humble" if encoding == "ros2" else "noetic"),
    }
    sim = SimSettings.load()
    for value, key in ((sim.device_model, "device_model"), (sim.device_serial, "device_serial")):
        if value:
            meta[key] = value
    return meta


# -- messages --------------------------------------------------------------------------------


_TYPESTORES: dict[str, Any] = {}


def typestore_for(encoding: str) -> Any:
    """The ``rosbags`` type store that serializes ``encoding`` (Humble for ROS 2, Noetic for ROS 1)."""
    if encoding not in _TYPESTORES:
        from rosbags.typesys import Stores, get_typestore

        _TYPESTORES[encoding] = get_typestore(Stores.ROS2_HUMBLE if encoding == "ros2" else Stores.ROS1_NOETIC)
    return _TYPESTORES[encoding]


class _Builder:
    """Builds and serializes one topic's messages (real ROS messages through ``rosbags``)."""

    KINDS = ("Image", "CompressedImage", "PointCloud2", "Imu", "JointState", "Odometry", "String")

    @classmethod
    def kind_of(cls, message_type: str) -> str:
        kind = message_type.rsplit("/", 1)[-1]
        if kind not in cls.KINDS or not message_type.split("/", 1)[0] in ("sensor_msgs", "nav_msgs", "std_msgs"):
            raise ValueError(
                f"the simulator cannot write messages of type {message_type!r}; it writes "
                "sensor_msgs/{Image,CompressedImage,PointCloud2,Imu,JointState}, nav_msgs/Odometry, std_msgs/String"
            )
        return kind

    def __init__(self, topic: str, spec: TopicSpec, encoding: str, rng: np.random.Generator, faults: Faults, duration_ns: int):
        self.topic, self.spec, self.encoding = topic, spec, encoding
        self.kind = self.kind_of(spec.message_type)
        self.type_name = ros_type_name(spec.message_type, encoding)
        self.store = typestore_for(encoding)
        self.types = self.store.types
        self.frozen = topic in faults.frozen_topics
        self.nan_from_ns = round(faults.nan_at_fraction * duration_ns) if topic in faults.nan_topics else None
        change = faults.image_change_at_fraction
        self.change_from_ns = round(change * duration_ns) if change is not None else None
        self.frame_id = topic.strip("/").replace("/", "_") or "base_link"
        size = max(spec.payload_bytes, 1)
        if self.kind == "Image":
            k = max(1, int(math.sqrt(size / 36)))
            self.width, self.height = 4 * k, 3 * k
            n = self.width * self.height * 3
        elif self.kind == "PointCloud2":
            self.points = max(1, size // 16)
            n = self.points * 16
        else:
            n = size
        self.pool = rng.integers(0, 256, size=2 * n + 1, dtype=np.uint8)
        self.rng = rng
        self.serialize = self.store.serialize_cdr if encoding == "ros2" else self.store.serialize_ros1

    def header(self, seq: int, stamp_ns: int) -> Any:
        T = self.types
        stamp = T["builtin_interfaces/msg/Time"](sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
        if self.encoding == "ros1":
            return T["std_msgs/msg/Header"](seq=seq & 0xFFFFFFFF, stamp=stamp, frame_id=self.frame_id)
        return T["std_msgs/msg/Header"](stamp=stamp, frame_id=self.frame_id)

    def message(self, seq: int, offset_ns: int, stamp_ns: int) -> bytes:
        T = self.types
        header = self.header(seq, stamp_ns)
        t = 0.0 if self.frozen else offset_ns / 1e9
        nan = self.nan_from_ns is not None and offset_ns >= self.nan_from_ns
        key = "sensor_msgs/msg/" + self.kind
        if self.kind == "Image":
            width, height, enc, channels = self.width, self.height, "rgb8", 3
            if self.change_from_ns is not None and offset_ns >= self.change_from_ns:
                width, height, enc, channels = max(1, self.width // 2), max(1, self.height // 2), "mono8", 1
            n = width * height * channels
            start = 0 if self.frozen else (seq * 7919) % (len(self.pool) - n)
            msg = T[key](
                header=header, height=height, width=width, encoding=enc, is_bigendian=0,
                step=width * channels, data=self.pool[start : start + n],
            )
        elif self.kind == "CompressedImage":
            n = max(1, self.spec.payload_bytes)
            start = 0 if self.frozen else (seq * 7919) % (len(self.pool) - n)
            msg = T[key](header=header, format="jpeg", data=self.pool[start : start + n])
        elif self.kind == "PointCloud2":
            F = T["sensor_msgs/msg/PointField"]
            fields = [F(name=c, offset=4 * i, datatype=7, count=1) for i, c in enumerate(("x", "y", "z", "intensity"))]
            n = self.points * 16
            start = 0 if self.frozen else (seq * 7919) % (len(self.pool) - n)
            msg = T[key](
                header=header, height=1, width=self.points, fields=fields, is_bigendian=False,
                point_step=16, row_step=n, data=self.pool[start : start + n], is_dense=True,
            )
        elif self.kind == "Imu":
            V, Q = T["geometry_msgs/msg/Vector3"], T["geometry_msgs/msg/Quaternion"]
            noise = 0.0 if self.frozen else self.rng.normal(0.0, 0.01)
            yaw = 0.1 * math.sin(2 * math.pi * 0.05 * t)
            cov = np.zeros(9)
            msg = T[key](
                header=header,
                orientation=Q(x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2)),
                orientation_covariance=cov,
                angular_velocity=V(x=math.nan if nan else noise, y=0.2 * math.cos(t) + noise, z=0.01 * t),
                angular_velocity_covariance=cov,
                linear_acceleration=V(x=0.5 * math.sin(t) + noise, y=noise, z=9.81 + noise),
                linear_acceleration_covariance=cov,
            )
        elif self.kind == "JointState":
            joints = max(1, (self.spec.payload_bytes - 16) // 24)
            phase = np.arange(joints)
            position = np.sin(2 * np.pi * 0.25 * t + phase)
            if not self.frozen:
                position = position + self.rng.normal(0.0, 0.001, joints)
            if nan:
                position[0] = math.nan
            msg = T[key](
                header=header, name=[f"joint_{i + 1}" for i in range(joints)], position=position,
                velocity=np.cos(2 * np.pi * 0.25 * t + phase), effort=np.full(joints, 0.0 if self.frozen else 1.0 + 0.1 * math.sin(t)),
            )
        elif self.kind == "Odometry":
            P = T["geometry_msgs/msg/Point"]
            Q = T["geometry_msgs/msg/Quaternion"]
            V = T["geometry_msgs/msg/Vector3"]
            pose = T["geometry_msgs/msg/Pose"](
                position=P(x=math.nan if nan else 0.5 * t, y=0.1 * math.sin(t), z=0.0), orientation=Q(x=0.0, y=0.0, z=0.0, w=1.0)
            )
            twist = T["geometry_msgs/msg/Twist"](linear=V(x=0.0 if self.frozen else 0.5, y=0.0, z=0.0), angular=V(x=0.0, y=0.0, z=0.0))
            msg = T["nav_msgs/msg/Odometry"](
                header=header, child_frame_id="base_link",
                pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
                twist=T["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=np.zeros(36)),
            )
        else:  # String
            n = max(1, self.spec.payload_bytes)
            text = ("frozen" if self.frozen else f"msg {seq} t={t:.3f} ").ljust(n, ".")[:n]
            msg = T["std_msgs/msg/String"](data=text)
        return bytes(self.serialize(msg, "nav_msgs/msg/Odometry" if self.kind == "Odometry" else (
            "std_msgs/msg/String" if self.kind == "String" else key)))

    def schema_text(self) -> bytes:
        store_name = ("nav_msgs/msg/" if self.kind == "Odometry" else "std_msgs/msg/" if self.kind == "String" else "sensor_msgs/msg/") + self.kind
        text, _md5 = self.store.generate_msgdef(store_name, ros_version=2 if self.encoding == "ros2" else 1)
        return text.encode()


class _Generator:
    """The recording's messages in receive order, window by window, with per-topic tallies."""

    def __init__(
        self,
        topics: Mapping[str, TopicSpec],
        faults: Faults,
        start_ns: int,
        duration_s: float,
        pauses: list[tuple[float, float]],
        seed: int,
        encoding: str,
    ):
        self.faults = faults
        self.start_ns = start_ns
        self.duration_s = duration_s
        self.pauses_ns = [(round(a * 1e9), round((a + b) * 1e9)) for a, b in pauses]
        self.encoding = encoding
        self.rng = np.random.default_rng(seed)
        self.all_topics = dict(topics)
        self.topics = {n: s for n, s in sorted(topics.items()) if n not in faults.missing_topics}
        duration_ns = round(duration_s * 1e9)
        # Every subscription gets its channel when recording begins, as Axon does — a topic that
        # never publishes (``missing_topics``) is declared in the file and has no messages.
        self.builders = {n: _Builder(n, s, encoding, self.rng, faults, duration_ns) for n, s in sorted(self.all_topics.items())}
        self.counts: dict[str, int] = {}
        self.received: dict[str, int] = {}
        self.written = 0

    def topics_summary(self) -> list[dict[str, Any]]:
        """Axon's ``topics_summary``: topics that wrote at least one message, sorted; frequency 0.0
        as the shipped recorder reports it."""
        return [
            {
                "topic": name,
                "message_type": self.builders[name].type_name,
                "message_count": count,
                "frequency_hz": 0.0,
            }
            for name, count in sorted(self.counts.items())
            if count > 0
        ]

    def _paused_before(self, t_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(inside a pause?, pause time accumulated before) for receive offsets ``t_ns``."""
        inside = np.zeros(len(t_ns), dtype=bool)
        offset = np.zeros(len(t_ns), dtype=np.int64)
        for lo, hi in self.pauses_ns:
            inside |= (t_ns >= lo) & (t_ns < hi)
            offset += np.clip(t_ns - lo, 0, hi - lo)
        return inside, offset

    def write_messages(self, writer: Any, schema_mode: str) -> None:
        writer.start(profile=self.encoding, library=f"axon {RECORDER_VERSION} (axon-dagster simulator)")
        channels: dict[str, int] = {}
        schemas: dict[str, int] = {}
        schema_encoding = "ros2msg" if self.encoding == "ros2" else "ros1msg"
        message_encoding = "cdr" if self.encoding == "ros2" else "ros1"
        for name, builder in self.builders.items():
            if builder.type_name not in schemas:
                data = builder.schema_text() if schema_mode == "full" else b""
                schemas[builder.type_name] = writer.register_schema(name=builder.type_name, encoding=schema_encoding, data=data)
            channels[name] = writer.register_channel(
                topic=name,
                message_encoding=message_encoding,
                schema_id=schemas[builder.type_name],
                metadata={"axon.source": self.encoding, "axon.plugin": self.encoding.upper()},
            )
        n_windows = max(1, math.ceil(self.duration_s / CHUNK_SECONDS))
        for window in range(n_windows):
            for recv_ns, name, seq, offset_ns, stamp_ns in self._window(window):
                body = self.builders[name].message(seq, offset_ns, stamp_ns)
                # Axon numbers a topic's messages as its workers dequeue them (worker_thread_pool.cpp):
                # messages discarded while paused or dropped at a full queue never get a number,
                # so the MCAP sequence has no holes.
                written = self.counts.get(name, 0)
                writer.add_message(channels[name], log_time=recv_ns, data=body, publish_time=recv_ns, sequence=written & 0xFFFFFFFF)
                self.counts[name] = written + 1
                self.written += 1

    def _window(self, window: int) -> list[tuple[int, str, int, int, int]]:
        rows: list[tuple[int, str, int, int, int]] = []
        f = self.faults
        for name, spec in self.topics.items():
            seq, capture_ns = window_messages(spec.rate_hz, self.duration_s, window)  # capture offsets from begin
            if not len(seq):
                continue
            period_ns = 1e9 / spec.rate_hz
            latency_ns = round(_LATENCY_S.get(self.builders[name].kind, _DEFAULT_LATENCY_S) * 1e9)
            jitter = np.minimum(np.abs(self.rng.normal(0.0, 0.03 * period_ns, len(seq))), 0.45 * period_ns).astype(np.int64)
            recv_ns = capture_ns + min(latency_ns, int(0.45 * period_ns)) + jitter
            keep = recv_ns < round(self.duration_s * 1e9)
            if f.drop_rate > 0:
                keep &= self.rng.random(len(seq)) >= f.drop_rate
            if f.gap_seconds > 0:
                gap_lo = f.gap_at_fraction * self.duration_s * 1e9
                keep &= ~((capture_ns >= gap_lo) & (capture_ns < gap_lo + f.gap_seconds * 1e9))
            if f.silent_from_fraction is not None:  # the sensors went quiet; the recorder did not notice
                keep &= capture_ns < f.silent_from_fraction * self.duration_s * 1e9
            paused, pause_offset = self._paused_before(recv_ns)
            self.received[name] = self.received.get(name, 0) + int((keep).sum())
            keep &= ~paused
            log_ns = self.start_ns + recv_ns - pause_offset
            if f.clock_backwards_at_fraction is not None:
                jumped = capture_ns >= f.clock_backwards_at_fraction * self.duration_s * 1e9
                log_ns = log_ns - jumped.astype(np.int64) * round(f.clock_backwards_seconds * 1e9)
            stamp_ns = self.start_ns + capture_ns - round(f.header_stamp_skew_seconds * 1e9)
            for i in np.flatnonzero(keep):
                rows.append((int(log_ns[i]), name, int(seq[i]), int(capture_ns[i]), int(stamp_ns[i]), int(recv_ns[i])))
        rows.sort(key=lambda r: (r[5], r[1]))  # arrival order, even when the clock jumps
        return [r[:5] for r in rows]
