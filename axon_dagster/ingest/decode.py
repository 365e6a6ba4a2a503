"""Decoding ROS 1 / ROS 2 messages out of an MCAP, and the decoded columns of the common sensor types.

Axon leaves schema data empty unless it can find the ``.msg`` files, so decoding goes by type name:
rosbags' type stores know the standard ROS 2 (Humble) and ROS 1 (Noetic) messages. A schema that
does carry its definition registers its types in the store first (custom messages decode too); a
type neither the store nor the schema knows is kept raw (payload bytes only, ``decode_error`` says
why). :class:`RosDecoderFactory` has the ``mcap`` decoder-factory interface, so the same decoders
serve ``mcap``'s ``iter_decoded_messages`` and the Lance ingestion.

Decoded columns (null where a message has no such field):

* ``header_stamp_ns``, ``frame_id`` — every message with a ``std_msgs/Header`` ``header``;
* Imu: ``orientation`` [x,y,z,w], ``angular_velocity`` [x,y,z], ``linear_acceleration`` [x,y,z];
* JointState: ``joint_names``, ``joint_position``, ``joint_velocity``, ``joint_effort``;
* Odometry: ``position`` [x,y,z], ``orientation``, ``linear_velocity`` [x,y,z], ``angular_velocity``;
* Image / CompressedImage / PointCloud2: ``width``, ``height``, ``encoding`` (CompressedImage: its
  ``format``), ``point_count`` (PointCloud2: width x height), ``data_offset`` (where the pixel or
  point bytes start in ``payload``, so QC can compare frames without the header).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# Numeric list columns (float64 lists); QC looks for NaN/Inf and frozen values in these.
NUMERIC_LIST_COLUMNS = (
    "orientation", "angular_velocity", "linear_acceleration", "position", "linear_velocity",
    "joint_position", "joint_velocity", "joint_effort",
)
DECODED_COLUMNS = (
    "header_stamp_ns", "frame_id", "decode_error", *NUMERIC_LIST_COLUMNS, "joint_names",
    "width", "height", "encoding", "point_count", "data_offset",
)


def decoded_schema_fields():
    import pyarrow as pa

    f64 = pa.list_(pa.float64())
    types = {
        "header_stamp_ns": pa.int64(), "frame_id": pa.string(), "decode_error": pa.string(),
        **{c: f64 for c in NUMERIC_LIST_COLUMNS},
        "joint_names": pa.list_(pa.string()),
        "width": pa.int64(), "height": pa.int64(), "encoding": pa.string(), "point_count": pa.int64(),
        "data_offset": pa.int64(),
    }
    return [pa.field(name, types[name]) for name in DECODED_COLUMNS]


def ros2_type_name(name: str) -> str:
    """``sensor_msgs/Imu`` (ROS 1, Axon's schema name) and ``sensor_msgs/msg/Imu`` -> ``sensor_msgs/msg/Imu``."""
    parts = name.strip().split("/")
    if len(parts) == 2:
        return f"{parts[0]}/msg/{parts[1]}"
    return name.strip()


class UndecodableType(Exception):
    pass


class RosDecoderFactory:
    """``mcap`` DecoderFactory: ``decoder_for(message_encoding, schema)`` -> bytes -> message, for
    ``cdr`` (ROS 2) and ``ros1`` channels. Decodes by type name with rosbags' type stores; a schema
    with a definition registers its types first. Returns None for other encodings."""

    def __init__(self):
        self._stores: dict[str, Any] = {}
        self._decoders: dict[tuple[str, int | None, str], Callable[[bytes], Any] | None] = {}

    def _store(self, encoding: str):
        if encoding not in self._stores:
            from rosbags.typesys import Stores, get_typestore

            self._stores[encoding] = get_typestore(Stores.ROS1_NOETIC if encoding == "ros1" else Stores.ROS2_HUMBLE)
        return self._stores[encoding]

    def decoder_for(self, message_encoding: str, schema) -> Callable[[bytes], Any] | None:
        if message_encoding not in ("cdr", "ros1") or schema is None:
            return None
        key = (message_encoding, getattr(schema, "id", None), schema.name)
        if key not in self._decoders:
            self._decoders[key] = self._make(message_encoding, schema)
        return self._decoders[key]

    def type_problem(self, message_encoding: str, schema) -> str | None:
        """Why messages of this schema cannot be decoded, or None."""
        try:
            self._resolve(message_encoding, schema)
        except UndecodableType as exc:
            return str(exc)
        return None

    def _resolve(self, message_encoding: str, schema) -> tuple[Any, str]:
        store = self._store(message_encoding)
        name = ros2_type_name(schema.name)
        if name not in store.types:
            text = bytes(schema.data or b"").decode("utf-8", errors="replace").strip()
            if not text:
                raise UndecodableType(f"type {schema.name} is not in the {message_encoding} type store and the schema is empty")
            try:
                from rosbags.typesys import get_types_from_msg

                store.register(_types_from_concatenated(text, name, get_types_from_msg))
            except Exception as exc:
                raise UndecodableType(f"schema of {schema.name} could not be parsed: {exc}") from None
            if name not in store.types:
                raise UndecodableType(f"schema of {schema.name} does not define it")
        return store, name

    def _make(self, message_encoding: str, schema) -> Callable[[bytes], Any] | None:
        try:
            store, name = self._resolve(message_encoding, schema)
        except UndecodableType as exc:
            log.warning("%s: messages kept raw", exc)
            return None
        deserialize = store.deserialize_ros1 if message_encoding == "ros1" else store.deserialize_cdr

        def decode(data: bytes | memoryview) -> Any:
            return deserialize(data, name)

        return decode


def _types_from_concatenated(text: str, name: str, get_types_from_msg) -> dict:
    """A ROS concatenated message definition (the main type, then ``MSG: pkg/Type`` sections
    separated by ``=====`` lines) -> rosbags type definitions."""
    types: dict = {}
    sections = [s.strip() for s in _split_sections(text)]
    types.update(get_types_from_msg(sections[0], name))
    for section in sections[1:]:
        first, _, body = section.partition("\n")
        if first.startswith("MSG:"):
            types.update(get_types_from_msg(body, ros2_type_name(first[4:].strip())))
    return types


def _split_sections(text: str) -> list[str]:
    out, current = [], []
    for line in text.splitlines():
        if line.startswith("=" * 10):
            out.append("\n".join(current))
            current = []
        else:
            current.append(line)
    out.append("\n".join(current))
    return out


# ---------------------------------------------------------------------- decoded columns


def _stamp_ns(stamp) -> int:
    sec = getattr(stamp, "sec", None)
    if sec is None:  # ROS 1 Time in rosbags: sec / nanosec too; be liberal
        sec = getattr(stamp, "secs", 0)
    nsec = getattr(stamp, "nanosec", None)
    if nsec is None:
        nsec = getattr(stamp, "nsecs", 0)
    return int(sec) * 1_000_000_000 + int(nsec)


def _v3(v) -> list[float]:
    return [float(v.x), float(v.y), float(v.z)]


def _q(q) -> list[float]:
    return [float(q.x), float(q.y), float(q.z), float(q.w)]


def _floats(a) -> list[float]:
    return [float(x) for x in a]


def _imu(m, out: dict) -> None:
    out["orientation"] = _q(m.orientation)
    out["angular_velocity"] = _v3(m.angular_velocity)
    out["linear_acceleration"] = _v3(m.linear_acceleration)


def _joint_state(m, out: dict) -> None:
    out["joint_names"] = list(m.name)
    out["joint_position"] = _floats(m.position)
    out["joint_velocity"] = _floats(m.velocity)
    out["joint_effort"] = _floats(m.effort)


def _odometry(m, out: dict) -> None:
    pose, twist = m.pose.pose, m.twist.twist
    out["position"] = _v3(pose.position)
    out["orientation"] = _q(pose.orientation)
    out["linear_velocity"] = _v3(twist.linear)
    out["angular_velocity"] = _v3(twist.angular)


def _image(m, out: dict) -> None:
    out["width"], out["height"], out["encoding"] = int(m.width), int(m.height), str(m.encoding)


def _compressed_image(m, out: dict) -> None:
    out["encoding"] = str(m.format)


def _point_cloud(m, out: dict) -> None:
    out["width"], out["height"] = int(m.width), int(m.height)
    out["point_count"] = int(m.width) * int(m.height)


EXTRACTORS: dict[str, Callable[[Any, dict], None]] = {
    "sensor_msgs/msg/Imu": _imu,
    "sensor_msgs/msg/JointState": _joint_state,
    "nav_msgs/msg/Odometry": _odometry,
    "sensor_msgs/msg/Image": _image,
    "sensor_msgs/msg/CompressedImage": _compressed_image,
    "sensor_msgs/msg/PointCloud2": _point_cloud,
}


# ---------------------------------------------------------------- bulky messages: fields, not arrays
#
# Images and point clouds are almost all array bytes that no decoded column needs (the raw payload
# keeps them). For these types the columns are read straight from the serialized bytes — header,
# then the fixed leading fields — instead of deserializing (and copying) megabytes per message.
# ROS 2 CDR: 4-byte encapsulation header (little endian only), fields aligned to their size
# relative to the end of it, strings as uint32 length (with the NUL) + bytes + NUL. ROS 1: no
# alignment, Header starts with a uint32 seq, strings as uint32 length + bytes (no NUL).

_U32 = struct.Struct("<I")
_TIME = struct.Struct("<iI")
_TIME1 = struct.Struct("<II")
_HW = struct.Struct("<II")


class _Reader:
    __slots__ = ("data", "o", "base", "ros1")

    def __init__(self, data, ros1: bool):
        self.data, self.ros1 = data, ros1
        if ros1:
            self.base = self.o = 0
        else:
            if len(data) < 4 or data[1] != 1:  # CDR_LE (0x0001) / PL_CDR_LE: little endian only
                raise ValueError("not little-endian CDR")
            self.base = self.o = 4

    def align(self, k: int) -> None:
        if not self.ros1:
            self.o += (-(self.o - self.base)) % k

    def u32(self) -> int:
        self.align(4)
        (v,) = _U32.unpack_from(self.data, self.o)
        self.o += 4
        return v

    def string(self) -> str:
        n = self.u32()
        end = self.o + n
        if end > len(self.data):
            raise ValueError("string runs past the message")
        raw = bytes(self.data[self.o: end - (0 if self.ros1 else 1)])
        self.o = end
        return raw.decode("utf-8")

    def header(self, out: dict) -> None:
        if self.ros1:
            self.u32()  # seq
            sec, nsec = _TIME1.unpack_from(self.data, self.o)
        else:
            self.align(4)
            sec, nsec = _TIME.unpack_from(self.data, self.o)
        self.o += 8
        out["header_stamp_ns"] = int(sec) * 1_000_000_000 + int(nsec)
        out["frame_id"] = self.string()

    def skip(self, n: int) -> None:
        self.o += n

    def data_offset(self) -> int:
        """Where a ``uint8[]`` array's bytes start (after its length), checked to lie inside the message."""
        n = self.u32()
        if self.o + n > len(self.data):
            raise ValueError("array runs past the message")
        return self.o

    def height_width(self) -> tuple[int, int]:
        self.align(4)
        h, w = _HW.unpack_from(self.data, self.o)
        self.o += 8
        return h, w


def _fast_image(r: _Reader, out: dict) -> None:
    r.header(out)
    out["height"], out["width"] = r.height_width()
    out["encoding"] = r.string()
    r.skip(1)  # is_bigendian
    r.u32()  # step
    out["data_offset"] = r.data_offset()


def _fast_compressed_image(r: _Reader, out: dict) -> None:
    r.header(out)
    out["encoding"] = r.string()
    out["data_offset"] = r.data_offset()


def _fast_point_cloud(r: _Reader, out: dict) -> None:
    r.header(out)
    h, w = r.height_width()
    out["height"], out["width"], out["point_count"] = h, w, h * w
    for _ in range(r.u32()):  # fields: name, offset, datatype, count
        r.string()
        r.u32()
        r.skip(1)
        r.u32()
    r.skip(1)  # is_bigendian
    r.u32()  # point_step
    r.u32()  # row_step
    out["data_offset"] = r.data_offset()


FAST_EXTRACTORS: dict[str, Callable[[_Reader, dict], None]] = {
    "sensor_msgs/msg/Image": _fast_image,
    "sensor_msgs/msg/CompressedImage": _fast_compressed_image,
    "sensor_msgs/msg/PointCloud2": _fast_point_cloud,
}


def fast_columns(message_encoding: str, type_name: str) -> Callable[[bytes], dict[str, Any]] | None:
    """The columns of a bulky standard message read from its bytes, or None for other types.
    Raises (struct.error, ValueError, UnicodeDecodeError) on bytes that do not parse."""
    if message_encoding not in ("cdr", "ros1"):
        return None
    extract = FAST_EXTRACTORS.get(ros2_type_name(type_name))
    if extract is None:
        return None
    ros1 = message_encoding == "ros1"

    def columns(data: bytes) -> dict[str, Any]:
        out: dict[str, Any] = {}
        extract(_Reader(data, ros1), out)
        return out

    return columns


def decoded_columns(type_name: str, msg: Any) -> dict[str, Any]:
    """The decoded columns of one message (only the ones it has)."""
    out: dict[str, Any] = {}
    header = getattr(msg, "header", None)
    if header is not None and hasattr(header, "stamp"):
        out["header_stamp_ns"] = _stamp_ns(header.stamp)
        out["frame_id"] = str(getattr(header, "frame_id", ""))
    extract = EXTRACTORS.get(ros2_type_name(type_name))
    if extract is not None:
        extract(msg, out)
    return out
