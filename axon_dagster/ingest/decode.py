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


# ------------------------------------------------------- standard messages: columns from the bytes
#
# The common sensor types are read straight from their serialized bytes, field by field, instead
# of a full deserialization: images and point clouds are almost all array bytes that no decoded
# column needs (the raw payload keeps them), and for Imu / JointState / Odometry building message
# objects costs several times what reading the few numbers does. The reader checks what rosbags'
# deserializer checks (lengths inside the message, CDR string terminators, nothing left over but
# CDR padding), so bytes it refuses are refused here too (a ``decode_error``), not misread.
# ROS 2 CDR: 4-byte encapsulation header, fields aligned to their size relative to the end of it,
# strings as uint32 length (with the NUL) + bytes + NUL, sequences as uint32 count + elements
# (aligned only when there is one). Big-endian CDR goes through the full deserialization.
# ROS 1: no alignment, Header starts with a uint32 seq, strings as uint32 length + bytes (no NUL).

_U32 = struct.Struct("<I")
_HEADER = struct.Struct("<iII")  # CDR: stamp sec, nanosec, frame_id length
_HEADER1 = struct.Struct("<IIII")  # ROS 1: seq, stamp sec, nsec, frame_id length
_HW = struct.Struct("<II")


class _Reader:
    """Reads fields in order from one serialized message. CDR alignment is relative to the end of
    the 4-byte encapsulation header (``(4 - o) & (k - 1)`` pads to a multiple of ``k``)."""

    __slots__ = ("data", "o", "cdr", "cache")

    def __init__(self, data, ros1: bool, cache: dict | None = None):
        self.data, self.cdr, self.cache = data, not ros1, cache
        if ros1:
            self.o = 0
        else:
            if len(data) < 4 or data[0] != 0 or data[1] not in (0, 1):  # CDR_BE 0x0000 / CDR_LE 0x0001
                raise ValueError("invalid or unsupported CDR encapsulation")
            if data[1] != 1:
                raise _BigEndian
            self.o = 4

    def u32(self) -> int:
        o = self.o
        if self.cdr:
            o += (4 - o) & 3
        (v,) = _U32.unpack_from(self.data, o)
        self.o = o + 4
        return v

    def _chars(self, n: int) -> str:
        """The characters of a string whose uint32 length ``n`` has just been read."""
        o, data = self.o, self.data
        end = o + n
        if end > len(data):
            raise ValueError("string runs past the message")
        self.o = end
        if self.cdr:
            if n < 1 or data[end - 1] != 0:
                raise ValueError("CDR string without its terminator")
            end -= 1
        return str(data[o: end], "utf-8")

    def string(self) -> str:
        return self._chars(self.u32())

    def strings(self) -> list[str]:
        """A ``string[]``. The same bytes at the same alignment as this channel's previous message
        (joint names, every message) give the same list, without reading it again."""
        start, cache = self.o, self.cache
        phase = (4 - start) & 3 if self.cdr else 0
        if cache is not None:
            known = cache.get("strings")
            if known is not None and known[0] == phase:
                raw = known[1]
                end = start + len(raw)
                if self.data[start: end] == raw:
                    self.o = end
                    return known[2]
        n = self.u32()
        if self.o + n * (5 if self.cdr else 4) > len(self.data):
            raise ValueError("string sequence runs past the message")
        values = [self.string() for _ in range(n)]
        if cache is not None:
            cache["strings"] = (phase, bytes(self.data[start: self.o]), values)
        return values

    def f64s(self, n: int) -> list[float]:
        """``n`` float64 fields in a row (a Vector3, a Quaternion, a Pose...)."""
        o = self.o
        if self.cdr:
            o += (4 - o) & 7
        values = _f64s(n).unpack_from(self.data, o)
        self.o = o + 8 * n
        return list(values)

    def skip_f64s(self, n: int) -> None:
        """Step over a ``float64[n]`` (a covariance), checking it lies inside the message."""
        o = self.o
        if self.cdr:
            o += (4 - o) & 7
        self.o = o = o + 8 * n
        if o > len(self.data):
            raise ValueError("array runs past the message")

    def f64_sequence(self) -> list[float]:
        """A ``float64[]``: uint32 count, then the values (aligned only when there are some)."""
        n = self.u32()
        if not n:
            return []
        if self.o + 8 * n > len(self.data):
            raise ValueError("array runs past the message")
        return self.f64s(n)

    def end(self) -> None:
        """The message must end here (CDR: up to 3 bytes of padding after the last field)."""
        if self.o > len(self.data) or len(self.data) - self.o > (3 if self.cdr else 0):
            raise ValueError(f"message size mismatch: {len(self.data)} bytes, fields end at {self.o}")

    def header(self, out: dict) -> None:
        """``std_msgs/Header`` (the first field: no alignment needed) -> header_stamp_ns, frame_id."""
        if self.cdr:
            sec, nsec, n = _HEADER.unpack_from(self.data, self.o)
            self.o += 12
        else:
            _seq, sec, nsec, n = _HEADER1.unpack_from(self.data, self.o)
            self.o += 16
        out["header_stamp_ns"] = sec * 1_000_000_000 + nsec
        out["frame_id"] = self._chars(n)

    def skip(self, n: int) -> None:
        self.o += n

    def data_offset(self) -> int:
        """Where a ``uint8[]`` array's bytes start (after its length), checked to lie inside the message;
        the reader moves past the array."""
        n = self.u32()
        start = self.o
        if start + n > len(self.data):
            raise ValueError("array runs past the message")
        self.o = start + n
        return start

    def height_width(self) -> tuple[int, int]:
        o = self.o
        if self.cdr:
            o += (4 - o) & 3
        h, w = _HW.unpack_from(self.data, o)
        self.o = o + 8
        return h, w


_F64S: dict[int, struct.Struct] = {}


def _f64s(n: int) -> struct.Struct:
    s = _F64S.get(n)
    if s is None:
        s = _F64S[n] = struct.Struct(f"<{n}d")
    return s


class _BigEndian(Exception):
    """Big-endian CDR: decoded by the full deserialization instead."""


def _fast_image(r: _Reader, out: dict) -> None:
    r.header(out)
    out["height"], out["width"] = r.height_width()
    out["encoding"] = r.string()
    r.skip(1)  # is_bigendian
    r.u32()  # step
    out["data_offset"] = r.data_offset()
    r.end()


def _fast_compressed_image(r: _Reader, out: dict) -> None:
    r.header(out)
    out["encoding"] = r.string()
    out["data_offset"] = r.data_offset()
    r.end()


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
    r.skip(1)  # is_dense
    r.end()


def _fast_imu(r: _Reader, out: dict) -> None:
    r.header(out)
    out["orientation"] = r.f64s(4)
    r.skip_f64s(9)
    out["angular_velocity"] = r.f64s(3)
    r.skip_f64s(9)
    out["linear_acceleration"] = r.f64s(3)
    r.skip_f64s(9)
    r.end()


def _fast_joint_state(r: _Reader, out: dict) -> None:
    r.header(out)
    out["joint_names"] = r.strings()
    out["joint_position"] = r.f64_sequence()
    out["joint_velocity"] = r.f64_sequence()
    out["joint_effort"] = r.f64_sequence()
    r.end()


def _fast_odometry(r: _Reader, out: dict) -> None:
    r.header(out)
    r.string()  # child_frame_id
    pose = r.f64s(7)  # Point position, Quaternion orientation
    out["position"], out["orientation"] = pose[:3], pose[3:]
    r.skip_f64s(36)
    twist = r.f64s(6)  # Vector3 linear, Vector3 angular
    out["linear_velocity"], out["angular_velocity"] = twist[:3], twist[3:]
    r.skip_f64s(36)
    r.end()


FAST_EXTRACTORS: dict[str, Callable[[_Reader, dict], None]] = {
    "sensor_msgs/msg/Image": _fast_image,
    "sensor_msgs/msg/CompressedImage": _fast_compressed_image,
    "sensor_msgs/msg/PointCloud2": _fast_point_cloud,
    "sensor_msgs/msg/Imu": _fast_imu,
    "sensor_msgs/msg/JointState": _fast_joint_state,
    "nav_msgs/msg/Odometry": _fast_odometry,
}


def fast_columns(message_encoding: str, type_name: str,
                 big_endian: Callable[[bytes], dict[str, Any]] | None = None) -> Callable[[bytes], dict[str, Any]] | None:
    """The columns of a standard message read from its bytes, or None for types without a reader.
    ``big_endian`` decodes big-endian CDR messages (without it they are refused). Raises
    (struct.error, ValueError, UnicodeDecodeError) on bytes that do not parse."""
    if message_encoding not in ("cdr", "ros1"):
        return None
    extract = FAST_EXTRACTORS.get(ros2_type_name(type_name))
    if extract is None:
        return None
    ros1 = message_encoding == "ros1"
    cache: dict = {}  # what the channel's previous message had (see _Reader.strings)

    def columns(data: bytes) -> dict[str, Any]:
        out: dict[str, Any] = {}
        try:
            extract(_Reader(data, ros1, cache), out)
        except _BigEndian:
            if big_endian is None:
                raise ValueError("big-endian CDR") from None
            return big_endian(data)
        return out

    return columns


def columns_decoder(factory: RosDecoderFactory, message_encoding: str, schema) -> Callable[[bytes], dict[str, Any]] | None:
    """bytes -> decoded columns for the messages of one channel, or None when its type cannot be
    decoded (``factory.type_problem`` says why). Standard types are read from the bytes; others
    (custom types from their schema) through the full deserialization."""
    type_name = schema.name if schema is not None else ""
    decode = factory.decoder_for(message_encoding, schema)
    full = None if decode is None else _full(type_name, decode)
    return fast_columns(message_encoding, type_name, big_endian=full) or full


def _full(type_name: str, decode: Callable[[bytes], Any]) -> Callable[[bytes], dict[str, Any]]:
    def columns(data: bytes) -> dict[str, Any]:
        return decoded_columns(type_name, decode(data))

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
