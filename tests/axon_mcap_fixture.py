"""Axon-shaped MCAP recordings for tests, written with the real ``mcap`` writer and real ROS message
serialization (rosbags' type stores: CDR for ROS 2, the ROS 1 wire format for ROS 1).

What Axon v0.4 writes (AXON_V04.md): schema name = the ROS type, schema data empty unless told
otherwise, encodings ``ros2msg``/``cdr`` or ``ros1msg``/``ros1``, zstd chunks, log_time = publish_time,
channel metadata ``axon.source``/``axon.plugin``, the five ``axon.*`` metadata records, then the
``<task_id>.json`` sidecar (v1.0) and ``<task_id>.mcap.done``, each through ``.tmp`` + rename.

The simulator's writer (``axon_dagster.demo.sim.axon_mcap``) is the product's; this one is the
tests' own, small and explicit, so a test can shape exactly the bytes it needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

T0_NS = 1_780_000_000_000_000_000


def typestore(encoding: str):
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS1_NOETIC if encoding == "ros1" else Stores.ROS2_HUMBLE)


def type_name(ros2_name: str, encoding: str) -> str:
    """``sensor_msgs/msg/Imu`` as Axon names it: unchanged for ROS 2, ``sensor_msgs/Imu`` for ROS 1."""
    return ros2_name.replace("/msg/", "/") if encoding == "ros1" else ros2_name


@dataclass
class Msg:
    topic: str
    type: str  # ROS 2 style name, e.g. sensor_msgs/msg/Imu
    log_time_ns: int
    fields: dict[str, Any]  # builder input, see build_message
    stamp_ns: int | None = None  # header stamp; defaults to log_time_ns


def _time(ts, ns: int, encoding: str):
    T = ts.types["builtin_interfaces/msg/Time"]
    return T(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def build_message(ts, encoding: str, m: Msg):
    """A real rosbags message object for ``m`` (only the types the tests use)."""
    t = ts.types
    stamp = _time(ts, m.stamp_ns if m.stamp_ns is not None else m.log_time_ns, encoding)
    if encoding == "ros1":
        header = t["std_msgs/msg/Header"](seq=0, stamp=stamp, frame_id="base")
    else:
        header = t["std_msgs/msg/Header"](stamp=stamp, frame_id="base")
    f = m.fields
    V3 = t["geometry_msgs/msg/Vector3"]
    Q = t["geometry_msgs/msg/Quaternion"]
    if m.type == "sensor_msgs/msg/Imu":
        av = f.get("angular_velocity", (0.01, 0.02, 0.03))
        la = f.get("linear_acceleration", (0.0, 0.0, 9.81))
        return t[m.type](
            header=header,
            orientation=Q(x=0.0, y=0.0, z=0.0, w=1.0),
            orientation_covariance=np.zeros(9),
            angular_velocity=V3(x=av[0], y=av[1], z=av[2]),
            angular_velocity_covariance=np.zeros(9),
            linear_acceleration=V3(x=la[0], y=la[1], z=la[2]),
            linear_acceleration_covariance=np.zeros(9),
        )
    if m.type == "sensor_msgs/msg/JointState":
        pos = f.get("position", (0.1, 0.2))
        return t[m.type](
            header=header,
            name=[f"j{i}" for i in range(len(pos))],
            position=np.array(pos, dtype=np.float64),
            velocity=np.array(f.get("velocity", [0.0] * len(pos)), dtype=np.float64),
            effort=np.array(f.get("effort", [0.0] * len(pos)), dtype=np.float64),
        )
    if m.type == "nav_msgs/msg/Odometry":
        P = t["geometry_msgs/msg/Point"]
        pose = t["geometry_msgs/msg/Pose"](position=P(x=f.get("x", 1.0), y=f.get("y", 2.0), z=0.0), orientation=Q(x=0.0, y=0.0, z=0.0, w=1.0))
        twist = t["geometry_msgs/msg/Twist"](linear=V3(x=f.get("vx", 0.5), y=0.0, z=0.0), angular=V3(x=0.0, y=0.0, z=f.get("wz", 0.1)))
        return t[m.type](
            header=header,
            child_frame_id="base_link",
            pose=t["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
            twist=t["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=np.zeros(36)),
        )
    if m.type == "sensor_msgs/msg/Image":
        w, h = f.get("width", 8), f.get("height", 6)
        enc = f.get("encoding", "rgb8")
        step = w * (1 if enc in ("mono8", "8UC1") else 3)
        fill = f.get("fill", 7)
        return t[m.type](header=header, height=h, width=w, encoding=enc, is_bigendian=0, step=step,
                         data=np.full(step * h, fill, dtype=np.uint8))
    if m.type == "sensor_msgs/msg/CompressedImage":
        return t[m.type](header=header, format=f.get("format", "jpeg"), data=np.frombuffer(f.get("data", b"\xff\xd8jpegdata"), dtype=np.uint8))
    if m.type == "sensor_msgs/msg/PointCloud2":
        n = f.get("points", 16)
        PF = t["sensor_msgs/msg/PointField"]
        fields = [PF(name=c, offset=4 * i, datatype=7, count=1) for i, c in enumerate("xyz")]
        return t[m.type](header=header, height=1, width=n, fields=fields, is_bigendian=False, point_step=12,
                         row_step=12 * n, data=np.zeros(12 * n, dtype=np.uint8), is_dense=True)
    if m.type == "std_msgs/msg/String":
        return t[m.type](data=f.get("data", "hello"))
    raise ValueError(f"fixture cannot build {m.type}")


def serialize(ts, encoding: str, m: Msg) -> bytes:
    msg = build_message(ts, encoding, m)
    if encoding == "ros1":
        return bytes(ts.serialize_ros1(msg, m.type))
    return bytes(ts.serialize_cdr(msg, m.type))


def standard_messages(start_ns: int = T0_NS, seconds: float = 2.0) -> list[Msg]:
    """A little of everything: Image 10 Hz, CompressedImage 5 Hz, PointCloud2 5 Hz, Imu 100 Hz,
    JointState 50 Hz, Odometry 20 Hz, a String without a header. Values vary, stamps are 2 ms
    before the log time (as a driver stamps at capture)."""
    out: list[Msg] = []
    rates = {"/camera/image_raw": 10, "/camera/compressed": 5, "/lidar/points": 5, "/imu": 100, "/joint_states": 50, "/odom": 20, "/status": 2}
    types = {"/camera/image_raw": "sensor_msgs/msg/Image", "/camera/compressed": "sensor_msgs/msg/CompressedImage",
             "/lidar/points": "sensor_msgs/msg/PointCloud2", "/imu": "sensor_msgs/msg/Imu",
             "/joint_states": "sensor_msgs/msg/JointState", "/odom": "nav_msgs/msg/Odometry", "/status": "std_msgs/msg/String"}
    for topic, hz in rates.items():
        period = int(1e9 / hz)
        for i in range(int(seconds * hz)):
            t = start_ns + i * period + hash(topic) % 1000
            k = i + 1
            fields: dict[str, Any] = {
                "sensor_msgs/msg/Imu": {"angular_velocity": (0.01 * k, 0.02, 0.03), "linear_acceleration": (0.1 * (k % 7), 0.0, 9.81)},
                "sensor_msgs/msg/JointState": {"position": (0.01 * k, -0.01 * k), "velocity": (0.5, -0.5)},
                "nav_msgs/msg/Odometry": {"x": 0.05 * k, "y": 1.0, "vx": 0.5},
                "sensor_msgs/msg/Image": {"fill": k % 250},
                "sensor_msgs/msg/PointCloud2": {"points": 16},
            }.get(types[topic], {})
            out.append(Msg(topic, types[topic], t, fields, stamp_ns=t - 2_000_000))
    out.sort(key=lambda m: m.log_time_ns)
    return out


@dataclass
class Written:
    mcap_path: Path
    sidecar_path: Path | None
    done_path: Path | None
    checksum_sha256: str
    messages: list[Msg] = field(default_factory=list)


def _iso(ns: int) -> str:
    from axon_dagster.storage.axon_recording import format_axon_time

    return format_axon_time(ns)


def write_axon_mcap(
    output_dir: Path,
    task_id: str = "task-1",
    messages: Iterable[Msg] | None = None,
    *,
    encoding: str = "ros2",
    schema: str = "empty",
    compression: str = "zstd",
    sidecar: bool = True,
    done: bool = True,
    metadata: bool = True,
    started_at_ns: int | None = None,
    finished_at_ns: int | None = None,
    sidecar_edit: Callable[[dict], None] | None = None,
    task: dict | None = None,
) -> Written:
    """Write ``<task_id>.mcap`` (+ sidecar, + done) the way Axon does; returns the paths and checksum."""
    from mcap.writer import CompressionType, Writer

    output_dir.mkdir(parents=True, exist_ok=True)
    msgs = list(standard_messages() if messages is None else messages)
    ts = typestore(encoding)
    mcap_path = output_dir / f"{task_id}.mcap"
    schema_enc, msg_enc = ("ros1msg", "ros1") if encoding == "ros1" else ("ros2msg", "cdr")
    started = started_at_ns if started_at_ns is not None else (msgs[0].log_time_ns if msgs else T0_NS) - 50_000_000
    finished = finished_at_ns if finished_at_ns is not None else (msgs[-1].log_time_ns if msgs else T0_NS) + 50_000_000
    counts: dict[str, int] = {}
    mtypes: dict[str, str] = {}
    with open(mcap_path, "wb") as fh:
        w = Writer(fh, compression=CompressionType[compression.upper()])
        w.start(profile="ros2" if encoding == "ros2" else "ros1", library="axon-recorder-test")
        channels: dict[str, int] = {}
        schemas: dict[str, int] = {}
        for m in msgs:
            name = type_name(m.type, encoding)
            if m.type not in schemas:
                data = b""
                if schema == "full":
                    text, _ = ts.generate_msgdef(m.type, ros_version=1 if encoding == "ros1" else 2)
                    data = text.encode()
                schemas[m.type] = w.register_schema(name=name, encoding=schema_enc, data=data)
            if m.topic not in channels:
                channels[m.topic] = w.register_channel(
                    topic=m.topic, message_encoding=msg_enc, schema_id=schemas[m.type],
                    metadata={"axon.source": "ros2" if encoding == "ros2" else "ros1", "axon.plugin": f"axon_{encoding}"},
                )
            counts[m.topic] = counts.get(m.topic, 0) + 1
            mtypes[m.topic] = name
            w.add_message(channels[m.topic], log_time=m.log_time_ns, publish_time=m.log_time_ns,
                          data=serialize(ts, encoding, m), sequence=counts[m.topic] - 1)
        task_meta = {"task_id": task_id, "scene": "warehouse", "factory": "factory-a", "order_id": "order-1",
                     "subscene": "aisle_1", "skills": json.dumps(["pick_place"]), "data_collector_id": "dc-1",
                     **(task or {})}
        summary = [{"topic": t, "message_type": mtypes[t], "message_count": counts[t], "frequency_hz": 0.0} for t in sorted(counts)]
        recording_meta = {
            "recorder_version": "0.4.0", "recording_started_at": _iso(started), "recording_finished_at": _iso(finished),
            "duration_sec": f"{(finished - started) / 1e9:.3f}", "message_count": str(len(msgs)),
            "file_size_bytes": "0" * 20, "topics_recorded": json.dumps(sorted(counts)),
        }
        if metadata:
            w.add_metadata("axon.sidecar", {"version": "1.0", "mcap_file": mcap_path.name})
            w.add_metadata("axon.task", task_meta)
            w.add_metadata("axon.device", {"device_id": "robot-1", "hostname": "robot-1-host", "ros_distro": "humble" if encoding == "ros2" else "noetic"})
            w.add_metadata("axon.recording", recording_meta)
            w.add_metadata("axon.topics", {"topics_summary": json.dumps(summary)})
        w.finish()
    size = mcap_path.stat().st_size
    if metadata:  # Axon patches the real size into the zero-filled placeholder after closing
        key = b"file_size_bytes"
        pattern = struct.pack("<I", len(key)) + key + struct.pack("<I", 20)
        raw = mcap_path.read_bytes()
        at = raw.index(pattern + b"0" * 20) + len(pattern)
        mcap_path.write_bytes(raw[:at] + f"{size:020d}".encode() + raw[at + 20:])
    checksum = hashlib.sha256(mcap_path.read_bytes()).hexdigest()
    sidecar_path = None
    if sidecar:
        doc = {
            "version": "1.0", "mcap_file": mcap_path.name,
            "task": {**{k: v for k, v in task_meta.items() if k != "skills"}, "skills": json.loads(task_meta["skills"])},
            "device": {"device_id": "robot-1", "hostname": "robot-1-host", "ros_distro": "humble" if encoding == "ros2" else "noetic"},
            "recording": {
                "recorder_version": "0.4.0", "recording_started_at": _iso(started), "recording_finished_at": _iso(finished),
                "duration_sec": round((finished - started) / 1e9, 3), "message_count": len(msgs), "file_size_bytes": size,
                "topics_recorded": sorted(counts), "checksum_sha256": checksum,
            },
            "topics_summary": summary,
        }
        if sidecar_edit:
            sidecar_edit(doc)
        sidecar_path = output_dir / f"{task_id}.json"
        tmp = Path(f"{sidecar_path}.tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        os.replace(tmp, sidecar_path)
    done_path = None
    if done:
        done_path = output_dir / f"{task_id}.mcap.done"
        tmp = Path(f"{done_path}.tmp")
        tmp.write_text("done\n")
        os.replace(tmp, done_path)
    return Written(mcap_path, sidecar_path, done_path, checksum, msgs)
