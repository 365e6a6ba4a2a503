"""MCAP (as Axon writes it) -> a Lance recording with decoded columns, and the Lance-era sidecar.

One pass over the MCAP in file order (chunks read from a memory map — or, from a stream still
being uploaded, every record read in order, see ``ingest_mcap(stream=...)`` — and decompressed
once, see :class:`McapMessages`): every message becomes one row with the columns every recording has
(``topic``, ``log_time_ns``, ``sequence``, ``message_type``, ``payload`` = the raw message bytes,
untouched) plus the decoded columns of :mod:`.decode` and the payload hashes of :mod:`.payload_hash`. Rows are written to Lance in bounded record
batches while the file is read — the reading on a thread of its own, a few batches ahead of Lance's
writer — so memory stays flat however large the recording; each payload is copied once, from its
decompressed chunk into its batch, and the chunk and batch buffers are reused. Lance's data files
are hashed for the sidecar as Lance finishes them; with ``hash_mcap`` the MCAP itself is hashed in
the same pass (and checked against the digest the caller expects). Progress is logged every
``progress_every_s`` seconds (bytes read of the file, messages, rate).

The dataset appears atomically (built beside the target, then renamed); the sidecar is written
last. It records where the data came from (``extra.source``): the MCAP's name, size and SHA-256,
Axon's checksum and sidecar (or the ``axon.*`` metadata records standing in for one), and how many
messages could not be decoded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from axon_dagster.storage.axon_recording import AxonRecordingError, AxonSidecar, AxonRecordingFiles, load_sidecar
from axon_dagster.storage.digest import DigestMismatch, digest_of_files, file_digests
from axon_dagster.storage.files import start_write_back
from axon_dagster.storage.recording import RECORDING_COLUMNS, Sidecar, TopicSummary, sidecar_path

from .decode import DECODED_COLUMNS, RosDecoderFactory, columns_decoder, decoded_schema_fields, ros2_type_name
from .payload_hash import PAYLOAD_HASH_COLUMNS, payload_hash_arrays, payload_hash_fields

log = logging.getLogger(__name__)

# Payload bytes per written record batch. Below glibc's largest mmap threshold (32 MB) a batch's
# buffers are reused from the heap; above it every batch is mapped fresh and page-faulted in,
# which cost about half as much again as the whole read (as in inspection.daft_profile).
TARGET_BATCH_BYTES = 8 << 20
MAX_BATCH_ROWS = 65536
SOURCE_FORMAT = "mcap"
# Lance file format 2.0: writes payload-sized binary columns (camera frames, clouds) about twice as
# fast as 2.1 (measured with bench/ingest.py's data on lance 14); Daft and Lance read both.
LANCE_FILE_VERSION = "2.0"
# Lance's writer buffers each column up to data_cache_bytes / columns before it encodes a page,
# concatenating (copying) the batches it holds. Below one batch's payload per column, every payload
# array is encoded as it arrives, without that copy: 0.17 instead of 0.42 user CPU s per GB of
# payload (bench/ingest.py's data, lance 14), pages of about one batch.
LANCE_DATA_CACHE_BYTES = 64 << 20
# Data files of at most this size: each is hashed for the sidecar as soon as Lance has finished it,
# on another core while the rest is written, so small files start the hashing early and leave
# little of it for after the write (a 256 MB file is 0.2 s of SHA-256 at the end on this machine).
MAX_BYTES_PER_FILE = 64 << 20
DIGEST_WORKERS = max(1, min(4, os.cpu_count() or 1))
# Record batches read ahead of Lance's writer (see _ReadAhead): a few, so memory stays bounded.
READ_AHEAD_BATCHES = 4


class IngestError(Exception):
    """The MCAP cannot be ingested (unreadable, not an MCAP, target exists). Nothing was written."""


class McapDigestMismatch(IngestError, DigestMismatch):
    """The MCAP's SHA-256, hashed while it was read (``hash_mcap=True``), is not the one the caller
    expected (``mcap_sha256``). Nothing was written. ``expected`` / ``actual`` carry both."""


def ingested_schema():
    """The recording schema plus the decoded columns and the payload hashes QC compares messages by
    (:mod:`.payload_hash`: computed here, where every payload is in memory, so QC need not read them)."""
    import pyarrow as pa

    from axon_dagster.storage.recording import recording_schema

    base = recording_schema()
    return pa.schema(list(base) + decoded_schema_fields() + payload_hash_fields())


@dataclass
class IngestResult:
    dataset_path: Path
    sidecar: Sidecar
    rows: int
    decoded: int  # messages whose type was decoded
    undecodable: dict[str, str] = field(default_factory=dict)  # message type -> why it was kept raw
    decode_errors: int = 0  # messages of a known type whose bytes failed to decode
    mcap_bytes: int = 0
    seconds: float = 0.0
    mcap_sha256: str | None = None  # what the sidecar records: hashed during the read with hash_mcap, else as given


_RECORD = struct.Struct("<BQ")  # opcode, length
_MESSAGE = struct.Struct("<HIQQ")  # channel_id, sequence, log_time, publish_time
_CHUNK_BODY = struct.Struct("<QQQII")  # message start/end time, uncompressed size and crc, compression name length
_U64 = struct.Struct("<Q")
_MAGIC = b"\x89MCAP0\r\n"
_OP_HEADER = 0x01
_OP_FOOTER = 0x02
_OP_SCHEMA = 0x03
_OP_CHANNEL = 0x04
_OP_MESSAGE = 0x05
_OP_CHUNK = 0x06
_OP_METADATA = 0x0C


class RawMessage(NamedTuple):
    channel_id: int
    sequence: int
    log_time: int
    publish_time: int
    data: Any  # bytes, or a memoryview into the decompressed chunk


class McapMessages:
    """``(schema, channel, message)`` for every message of the MCAP in ``fh`` — or read from
    ``stream`` — in file order; ``position`` is how far into the file the reading has got,
    ``channels`` and ``schemas`` what it has met so far (all the file declares once it is read),
    ``metadata`` the ``axon.*`` metadata records met when it was read sequentially.

    An indexed MCAP (Axon's: chunks + summary) in a file is read chunk by chunk: ``mcap`` reads the
    summary, the chunks are read from a read-only memory map of the file (no copy of the compressed
    bytes). Given a ``stream`` instead (an object with ``readinto``, see :class:`_SequentialReader`),
    or a file without summary or chunk index, the MCAP is read sequentially from byte 0 to its
    closing magic — every top-level record in order, each byte once, no seeking, hashed as it is
    read when ``hash_stream`` (``sha256``). Either way chunks are decompressed once by one reused
    decompressor and their records go through one loop (:meth:`_records`): message records are
    sliced out of the decompressed bytes as memoryviews — no copy per message — and schema and
    channel records met in chunks are declared."""

    def __init__(self, fh=None, *, stream=None, reuse_chunk_buffer: bool = False, hash_stream: bool = False):
        if (fh is None) == (stream is None):
            raise ValueError("McapMessages reads a file or a stream: give one of fh, stream")
        self.fh = fh
        self.stream = stream
        self.reuse_chunk_buffer = reuse_chunk_buffer
        self.hash_stream = hash_stream
        self.position = 0
        self.channels: dict[int, Any] = {}
        self.schemas: dict[int, Any] = {}
        self.metadata: dict[str, dict[str, str]] = {}
        self.reader: _SequentialReader | None = None

    @property
    def stream_failure(self) -> BaseException | None:
        """What ``stream.readinto`` raised, if it did (the caller's error, not a malformed MCAP; a
        file's read errors are the file's: an unreadable MCAP)."""
        return self.reader.failure if self.reader is not None and self.stream is not None else None

    @property
    def sha256(self) -> str | None:
        """SHA-256 of the bytes read from the stream (with ``hash_stream``, once it is read)."""
        return self.reader.sha256() if self.reader is not None else None

    def __iter__(self) -> Iterator[tuple[Any, Any, RawMessage]]:
        channels, schemas = self.channels, self.schemas
        for channel_id, sequence, log_time, publish_time, data in self.records():
            channel = channels[channel_id]
            schema = schemas.get(channel.schema_id) if channel.schema_id else None
            yield schema, channel, RawMessage(channel_id, sequence, log_time, publish_time, data)

    def records(self) -> Iterator[tuple[int, int, int, int, Any]]:
        """``(channel_id, sequence, log_time, publish_time, data)`` of every message, in file order
        (``channels[channel_id]`` is known by the time its first message comes)."""
        if self.stream is not None:
            yield from self._sequential(_SequentialReader(self.stream, hash_bytes=self.hash_stream))
            return
        from mcap.reader import make_reader

        fh = self.fh
        summary = make_reader(fh).get_summary()
        if summary is None or not summary.chunk_indexes:
            fh.seek(0)
            yield from self._sequential(_SequentialReader(fh, hash_bytes=False))
            return
        self.channels.update(summary.channels)
        self.schemas.update(summary.schemas)
        for offset, data in self._chunks(summary):
            self.position = offset
            yield from self._records(data, offset)

    def _records(self, data: memoryview, offset: int) -> Iterator[tuple[int, int, int, int, Any]]:
        """The messages of the records in ``data`` (a chunk's decompressed records, or one top-level
        record) as :meth:`records` yields them; schema and channel records are declared."""
        channels = self.channels
        end, o = len(data), 0
        while o < end:
            opcode, length = _RECORD.unpack_from(data, o)
            body = o + _RECORD.size
            if body + length > end:
                raise ValueError(f"records at {offset}: a record runs past their end")
            if opcode == _OP_MESSAGE:
                channel_id, sequence, log_time, publish_time = _MESSAGE.unpack_from(data, body)
                if channel_id not in channels:
                    raise ValueError(f"records at {offset}: message on channel {channel_id}, which the file does not declare before it")
                yield channel_id, sequence, log_time, publish_time, data[body + _MESSAGE.size: body + length]
            elif opcode == _OP_CHANNEL or opcode == _OP_SCHEMA:
                self._declare(opcode, data[body: body + length])
            o = body + length

    def _declare(self, opcode: int, body: memoryview) -> None:
        import io

        from mcap.data_stream import ReadDataStream
        from mcap.records import Channel, Metadata, Schema

        stream = ReadDataStream(io.BytesIO(bytes(body)))
        if opcode == _OP_CHANNEL:
            channel = Channel.read(stream)
            self.channels[channel.id] = channel
        elif opcode == _OP_SCHEMA:
            schema = Schema.read(stream)
            self.schemas[schema.id] = schema
        else:
            record = Metadata.read(stream)
            if record.name.startswith("axon."):
                self.metadata[record.name] = dict(record.metadata)

    def _sequential(self, reader: _SequentialReader) -> Iterator[tuple[int, int, int, int, Any]]:
        """Every top-level record from byte 0 to the footer and the closing magic, read in order
        (chunks whole, into reused buffers); attachments, indexes, statistics are read past."""
        self.reader = reader
        try:
            if bytes(reader.read(len(_MAGIC))) != _MAGIC:
                raise ValueError("no MCAP magic at byte 0")
            decompress = _Decompressor(reuse=self.reuse_chunk_buffer)
            records = self._records
            opcode = None
            while True:
                at = self.position = reader.position
                first = opcode is None
                opcode, record = reader.record()
                if first and opcode != _OP_HEADER:
                    raise ValueError(f"the first record is not a header (opcode {opcode:#x})")
                if opcode == _OP_CHUNK:
                    yield from records(_chunk_records(record[_RECORD.size:], decompress, at), at)
                elif opcode == _OP_MESSAGE or opcode == _OP_CHANNEL or opcode == _OP_SCHEMA:
                    # the reader's buffers are reused: a message kept past the next one needs bytes of its own
                    yield from records(record if self.reuse_chunk_buffer else memoryview(bytes(record)), at)
                elif opcode == _OP_METADATA:
                    self._declare(opcode, record[_RECORD.size:])
                elif opcode == _OP_FOOTER:
                    reader.finish()
                    self.position = reader.position
                    return
        finally:
            reader.close()

    def _chunks(self, summary) -> Iterator[tuple[int, memoryview]]:
        """(file offset, decompressed records as a memoryview) of every chunk, in file order."""
        import mmap

        mm = mmap.mmap(self.fh.fileno(), 0, access=mmap.ACCESS_READ)
        with contextlib.suppress(AttributeError, OSError):
            mm.madvise(mmap.MADV_SEQUENTIAL)
        try:
            yield from self._decompressed(mm, summary, _Decompressor(reuse=self.reuse_chunk_buffer))
        finally:
            with contextlib.suppress(BufferError):  # a view still held by the caller: unmapped when it goes
                mm.close()

    @staticmethod
    def _decompressed(mm, summary, decompress: _Decompressor) -> Iterator[tuple[int, memoryview]]:
        size = len(mm)
        for index in sorted(summary.chunk_indexes, key=lambda c: c.chunk_start_offset):
            o = index.chunk_start_offset
            if o + _RECORD.size > size:
                raise ValueError(f"chunk at {o} lies past the end of the file ({size} bytes)")
            opcode, length = _RECORD.unpack_from(mm, o)
            if opcode != _OP_CHUNK:
                raise ValueError(f"no chunk record at {o} (opcode {opcode:#x})")
            body = o + _RECORD.size
            if body + length > size:
                raise ValueError(f"chunk at {o} runs past the end of the file")
            with memoryview(mm) as whole:
                data = _chunk_records(whole[body: body + length], decompress, o)
            yield o, data


def _chunk_records(body: memoryview, decompress: _Decompressor, offset: int) -> memoryview:
    """The decompressed records of the chunk record whose body is ``body`` (at ``offset`` in the file)."""
    _start, _end, uncompressed_size, _crc, name_length = _CHUNK_BODY.unpack_from(body, 0)
    o = _CHUNK_BODY.size
    compression = bytes(body[o: o + name_length]).decode("utf-8")
    (data_length,) = _U64.unpack_from(body, o + name_length)
    o += name_length + _U64.size
    if o + data_length > len(body):
        raise ValueError(f"chunk at {offset}: its data runs past its record")
    data = decompress(compression, body[o: o + data_length], uncompressed_size)
    return data if isinstance(data, memoryview) else memoryview(data)


class _HashBehind:
    """SHA-256 of the bytes handed to ``update``, in the order handed, hashed on a thread of its own
    (hashlib lets go of the GIL): the reading goes on meanwhile. ``update`` returns a future, done
    once those bytes are hashed (their buffer may be reused then)."""

    def __init__(self):
        import concurrent.futures
        import hashlib

        self.hash = hashlib.sha256()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-mcap-sha")  # one worker: in order

    def update(self, data) -> Any:
        return self.pool.submit(self.hash.update, data)

    def hexdigest(self) -> str:
        self.pool.shutdown(wait=True)
        return self.hash.hexdigest()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class _SequentialReader:
    """An MCAP's bytes from ``stream.readinto`` (RawIOBase semantics: at least one byte, maybe fewer
    than asked, 0 only at the end), each read once and in order — hashed with ``hash_bytes``, on a
    thread of its own (:class:`_HashBehind`) — handed out record by record: small records from a
    small buffer filled a block at a time (its bytes hashed from a copy), big ones (chunks) read
    whole, by ``readinto`` straight into one of two big buffers used in turn (one is hashed while
    the next record is read into the other). A record is a view valid until the next one is asked for.

    ``failure`` keeps what ``readinto`` raised, so that it reaches the caller as it was raised,
    not as an unreadable MCAP."""

    SMALL = 1 << 16  # bytes per read for small records; bigger records go into the big buffer
    GROW = 64 << 20  # a big buffer grows as bytes arrive, by at most this much ahead of them

    def __init__(self, stream, *, hash_bytes: bool = False):
        self.stream = stream
        self.hash = _HashBehind() if hash_bytes else None
        self.small = bytearray(self.SMALL)
        self.view = memoryview(self.small)
        self.lo = self.hi = 0  # bytes read but not handed out: small[lo:hi]
        self.bigs: list[Any] = [memoryview(b""), memoryview(b"")]
        self.hashing: list[Any] = [None, None]  # per big buffer: its bytes' hash, while pending
        self.turn = 0
        self.position = 0  # bytes handed out
        self.failure: BaseException | None = None
        self.digest: str | None = None

    def sha256(self) -> str | None:
        """The SHA-256 of every byte read (with ``hash_bytes``, once :meth:`finish` has read the last)."""
        return self.digest

    def close(self) -> None:
        """Stops the hashing (what is still queued is dropped: call after :meth:`finish`, or on failure)."""
        if self.hash is not None:
            self.hash.close()

    def _readinto(self, view: memoryview) -> int:
        try:
            n = self.stream.readinto(view)
        except BaseException as exc:
            self.failure = exc
            raise
        if n is None or not 0 <= n <= len(view):
            raise ValueError(f"stream.readinto returned {n!r} for {len(view)} bytes (a blocking stream must return 1..{len(view)}, 0 at its end)")
        return n

    def _buffered(self, n: int) -> int:
        """At least ``n`` (<= SMALL) bytes in the small buffer unless the stream ends first: how many."""
        if self.hi - self.lo < n:
            if self.lo:
                self.small[: self.hi - self.lo] = self.small[self.lo: self.hi]
                self.lo, self.hi = 0, self.hi - self.lo
            while self.hi < n and (got := self._readinto(self.view[self.hi:])):
                if self.hash is not None:
                    self.hash.update(bytes(self.view[self.hi: self.hi + got]))
                self.hi += got
        return self.hi - self.lo

    def read(self, n: int) -> memoryview:
        """The next ``n`` bytes; ValueError if the stream ends first."""
        if n <= self.SMALL:
            if self._buffered(n) < n:
                raise ValueError(f"the MCAP ends at byte {self.position + self.hi - self.lo}, {n - self.hi + self.lo} bytes short of a record (truncated?)")
            out = self.view[self.lo: self.lo + n]
            self.lo += n
            self.position += n
            return out
        return self._read_big(n)

    def _read_big(self, n: int) -> memoryview:
        import numpy as np

        turn = self.turn = 1 - self.turn
        if self.hashing[turn] is not None:  # this buffer's last bytes hashed before it is overwritten
            self.hashing[turn].result()
            self.hashing[turn] = None
        have = self.hi - self.lo
        want = min(n, have + self.GROW)  # a record's claimed length gets room as its bytes arrive
        if len(self.bigs[turn]) < want:
            self.bigs[turn] = memoryview(np.empty(max(want, min(2 * len(self.bigs[turn]), have + self.GROW)), dtype=np.uint8))
        big = self.bigs[turn]
        big[:have] = self.view[self.lo: self.hi]  # already hashed, as read into the small buffer
        self.lo = self.hi = 0
        start = have
        while have < n:
            if have == len(big):  # a record longer than any so far: more room as its bytes arrive
                grown = memoryview(np.empty(min(n, have + max(have, self.GROW)), dtype=np.uint8))
                grown[:have] = big[:have]
                self.bigs[turn] = big = grown
            got = self._readinto(big[have: min(n, len(big))])
            if not got:
                raise ValueError(f"the MCAP ends at byte {self.position + have}, {n - have} bytes short of a record (truncated?)")
            have += got
        if self.hash is not None:
            self.hashing[turn] = self.hash.update(big[start:n])
        self.position += n
        return big[:n]

    def record(self) -> tuple[int, memoryview]:
        """(opcode, the whole next record: its opcode and length, then its body)."""
        if self._buffered(_RECORD.size) < _RECORD.size:
            raise ValueError(f"the MCAP ends at byte {self.position + self.hi - self.lo} without its footer (truncated?)")
        opcode, length = _RECORD.unpack_from(self.view, self.lo)
        return opcode, self.read(_RECORD.size + length)

    def finish(self) -> None:
        """After the footer: the closing magic, then the end of the stream."""
        if bytes(self.read(len(_MAGIC))) != _MAGIC:
            raise ValueError(f"no closing MCAP magic after the footer at byte {self.position - len(_MAGIC)}")
        if self._buffered(1):
            raise ValueError(f"bytes after the MCAP's closing magic at byte {self.position}")
        if self.hash is not None:
            self.digest = self.hash.hexdigest()


class _Decompressor:
    """Chunk records -> decompressed bytes, one zstd context reused for every chunk.

    With ``reuse``, zstd chunks are decompressed into one buffer, reused for the next chunk (the
    caller must be done with a chunk's bytes when it asks for the next): no fresh memory per chunk,
    whose first touch (page faults, zeroed pages) cost more than the decompression itself."""

    def __init__(self, reuse: bool = False):
        self.zstd = None
        self.reuse = reuse
        self.buffer: Any = None

    def _zstd(self):
        if self.zstd is None:
            import zstandard

            self.zstd = zstandard.ZstdDecompressor()
        return self.zstd

    def _into_buffer(self, data: memoryview, uncompressed_size: int) -> memoryview:
        import numpy as np

        if self.buffer is None or len(self.buffer) < uncompressed_size + 1:
            self.buffer = memoryview(np.empty(max(uncompressed_size + 1, 2 * len(self.buffer or b"")), dtype=np.uint8))
        out = self.buffer[: uncompressed_size + 1]  # one byte more: a frame longer than its record says is caught
        n = 0
        with self._zstd().stream_reader(data, read_across_frames=True) as reader:
            while n < len(out) and (got := reader.readinto(out[n:])):
                n += got
        if n != uncompressed_size:
            raise ValueError(f"chunk decompressed to {n}{'+' if n > uncompressed_size else ''} bytes, its record says {uncompressed_size}")
        return out[:n]

    def __call__(self, compression: str, data: memoryview, uncompressed_size: int) -> Any:
        if compression == "zstd":
            import zstandard

            try:
                if self.reuse:
                    return self._into_buffer(data, uncompressed_size)
                out = self._zstd().decompress(data, max_output_size=uncompressed_size)
            except zstandard.ZstdError as exc:
                raise ValueError(f"zstd: {exc}") from None
        elif compression == "lz4":
            import lz4.frame

            out = lz4.frame.decompress(data)
        elif compression == "":
            out = bytes(data)
        else:
            raise ValueError(f"unsupported chunk compression {compression!r}")
        if len(out) != uncompressed_size:
            raise ValueError(f"chunk decompressed to {len(out)} bytes, its record says {uncompressed_size}")
        return out


def iter_messages(fh) -> Iterator[tuple[Any, Any, RawMessage]]:
    """``(schema, channel, message)`` for every message of the MCAP, in file order (see :class:`McapMessages`)."""
    return iter(McapMessages(fh))


_NO_COLUMNS: dict[str, Any] = {}


class _Channel:
    """Per channel: the row's fixed values, the decoder, and the counts for its topic's summary."""

    __slots__ = ("topic", "message_type", "decode", "count", "first_ns", "last_ns")

    def __init__(self, topic: str, message_type: str, decode, log_time: int):
        self.topic, self.message_type, self.decode = topic, message_type, decode
        self.count, self.first_ns, self.last_ns = 0, log_time, log_time


def record_batches(mcap_path: str | os.PathLike, stats: dict[str, Any], *, progress_every_s: float = 10.0,
                   stream=None, hash_stream: bool = False) -> Iterator[Any]:
    """The MCAP's messages as pyarrow record batches of :func:`ingested_schema` (file order, at most
    ``TARGET_BATCH_BYTES`` of payload — a bigger message alone — or ``MAX_BATCH_ROWS`` rows each).
    Fills ``stats`` (topics, counts, undecodable types, decode errors, bytes read, the channels the
    file declares). Raises IngestError if the file is not a readable MCAP.

    With ``stream`` the MCAP is read from it sequentially (see :class:`McapMessages`; ``mcap_path``
    only names it) — hashed as it is read with ``hash_stream`` (``stats["mcap_sha256"]``), its
    ``axon.*`` metadata records kept (``stats["axon_metadata"]``) — and what ``stream.readinto``
    raises is raised as it is."""
    schema = ingested_schema()
    factory = RosDecoderFactory()
    channels: dict[int, _Channel] = {}
    undecodable = stats.setdefault("undecodable", {})
    decoded_count = errors = 0
    size = os.path.getsize(mcap_path) if stream is None else None
    started = last_log = time.monotonic()
    columns = _Columns(schema)
    with open(mcap_path, "rb") if stream is None else contextlib.nullcontext() as fh:
        # each chunk done with before the next: see _Decompressor
        messages = McapMessages(fh, stream=stream, reuse_chunk_buffer=True, hash_stream=hash_stream)
        try:
            for channel_id, sequence, log_time, _publish_time, data in _readable(messages, mcap_path):
                ch = channels.get(channel_id)
                if ch is None:
                    ch = channels[channel_id] = _channel(factory, messages, channel_id, log_time, undecodable)
                decode = ch.decode
                if decode is None:
                    decoded = _NO_COLUMNS
                else:
                    try:
                        decoded = decode(data)
                        decoded_count += 1
                    except Exception as exc:  # corrupt bytes: keep the row, say why
                        decoded = {"decode_error": f"{type(exc).__name__}: {exc}"[:200]}
                        errors += 1
                ch.count += 1
                if log_time < ch.first_ns:
                    ch.first_ns = log_time
                elif log_time > ch.last_ns:
                    ch.last_ns = log_time
                full = columns.make_room(len(data))
                if full is not None:
                    yield full
                columns.add(ch, log_time, sequence, data, decoded)
                now = time.monotonic()
                if now - last_log >= progress_every_s:
                    done = messages.position
                    of = f"{size / 1e6:.0f} MB ({100.0 * done / size if size else 100.0:.0f}%)" if size is not None \
                        else "a size not known while streaming"
                    log.info("ingesting %s: %d messages, %.0f MB read of %s, %.1f MB/s",
                             mcap_path, columns.total_rows + columns.rows, done / 1e6, of, done / 1e6 / (now - started))
                    last_log = now
        finally:
            stats.update(decoded=decoded_count, decode_errors=errors, topics=_topic_summaries(channels.values()))
    if columns.rows:
        yield columns.flush()
    stats["rows"] = columns.total_rows
    stats["bytes_read"] = size if size is not None else messages.position
    stats["channels"] = sorted({c.topic for c in messages.channels.values()})
    stats["axon_metadata"] = messages.metadata
    stats["mcap_sha256"] = messages.sha256


def _readable(messages: McapMessages, mcap_path) -> Iterator[Any]:
    """``messages.records()``; a malformed MCAP raised as IngestError, what the stream raised as it is."""
    from mcap.exceptions import McapError

    try:
        yield from messages.records()
    except (McapError, EOFError, ValueError, OSError, KeyError, struct.error) as exc:
        if exc is messages.stream_failure:
            raise
        raise IngestError(f"{mcap_path} is not a readable MCAP file: {type(exc).__name__}: {exc}") from None


def _channel(factory: RosDecoderFactory, messages: McapMessages, channel_id: int, log_time: int, undecodable: dict[str, str]) -> _Channel:
    channel = messages.channels[channel_id]
    schema = messages.schemas.get(channel.schema_id) if channel.schema_id else None
    type_name = schema.name if schema is not None else ""
    decode = columns_decoder(factory, channel.message_encoding, schema)
    if decode is None:
        reason = (factory.type_problem(channel.message_encoding, schema) if schema is not None else None) \
            or f"no decoder for message encoding {channel.message_encoding!r}"
        undecodable[type_name or channel.topic] = reason
    return _Channel(channel.topic, ros2_type_name(type_name) if type_name else "", decode, log_time)


def _topic_summaries(channels) -> dict[str, TopicSummary]:
    """Per topic (channels of one topic added up, in the order their first messages came)."""
    topics: dict[str, TopicSummary] = {}
    for ch in channels:
        t = topics.get(ch.topic)
        if t is None:
            topics[ch.topic] = TopicSummary(ch.count, ch.message_type, ch.first_ns, ch.last_ns)
        else:
            t.count += ch.count
            t.first_ns, t.last_ns = min(t.first_ns, ch.first_ns), max(t.last_ns, ch.last_ns)
    return topics


class _PayloadBuffers:
    """The payload buffers of the record batches, each reused once Arrow and Lance have let go of
    the batch that had it (a finalizer on the view lent to Arrow returns it): a few buffers, touched
    once, instead of fresh memory for every batch — whose first touch (page faults; numpy asks for
    huge pages above 4 MB, which may compact memory first) cost about a third of the reader
    thread's time. Buffers of another size than ``TARGET_BATCH_BYTES`` (a batch for one bigger
    message) are not kept."""

    def __init__(self):
        self.free: list[Any] = []

    def get(self, capacity: int):
        import numpy as np

        if capacity <= TARGET_BATCH_BYTES and self.free:
            return self.free.pop()
        return np.empty(max(capacity, TARGET_BATCH_BYTES), dtype=np.uint8)  # uninitialised: no page zeroed here

    def lend(self, buffer, size: int):
        """``buffer[:size]`` to hand to Arrow; ``buffer`` comes back when that view is gone."""
        import weakref

        view = buffer[:size]
        if len(buffer) == TARGET_BATCH_BYTES:
            weakref.finalize(view, self.free.append, buffer)
        return view


class _Columns:
    """One record batch being gathered: a list per column (a decoded column's list is padded with
    nulls up to the row when a value comes: a message fills only a few); and the payloads, copied one by one into
    the batch's payload buffer as they arrive — while their decompressed chunk is still in the
    CPU's cache, one copy per payload and no second pass."""

    def __init__(self, schema):
        self.schema = schema
        self.decoded_fields = [f for f in schema if f.name in DECODED_COLUMNS]
        self.total_rows = 0
        self.buffers = _PayloadBuffers()
        self._reset(0)

    def _reset(self, capacity: int) -> None:
        self.topic: list[str] = []
        self.log_time: list[int] = []
        self.sequence: list[int] = []
        self.message_type: list[str] = []
        self.ends: list[int] = []
        self.decoded: dict[str, list[Any]] = {f.name: [] for f in self.decoded_fields}
        self.rows = 0
        self.bytes = 0
        self.buffer = self.buffers.get(capacity)
        self.view = memoryview(self.buffer)

    def make_room(self, size: int):
        """Room for a payload of ``size`` bytes: None, or the full batch that had to go first."""
        if self.bytes + size <= len(self.buffer) and self.rows < MAX_BATCH_ROWS:
            return None
        if self.rows:
            return self.flush(size)
        self._reset(max(TARGET_BATCH_BYTES, size))
        return None

    def add(self, ch: _Channel, log_time: int, sequence: int, data, decoded: dict[str, Any]) -> None:
        """Adds a row (after ``make_room``)."""
        start, row = self.bytes, self.rows
        self.bytes = end = start + len(data)
        self.view[start:end] = data
        self.ends.append(end)
        self.topic.append(ch.topic)
        self.log_time.append(log_time)
        self.sequence.append(sequence)
        self.message_type.append(ch.message_type)
        if decoded:
            columns = self.decoded
            for name, value in decoded.items():
                values = columns[name]
                if len(values) < row:
                    values += [None] * (row - len(values))
                values.append(value)
        self.rows = row + 1

    def flush(self, next_size: int = 0):
        """The gathered rows as a record batch; the next batch has room for at least ``next_size`` bytes."""
        import numpy as np
        import pyarrow as pa

        n = self.rows
        offsets = np.empty(n + 1, dtype=np.int32)
        offsets[0] = 0
        offsets[1:] = self.ends
        columns = {
            "topic": pa.array(self.topic, pa.string()), "log_time_ns": pa.array(self.log_time, pa.int64()),
            "sequence": pa.array(self.sequence, pa.int64()), "message_type": pa.array(self.message_type, pa.string()),
            "payload": pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(self.buffers.lend(self.buffer, self.bytes))]),
        }
        for f in self.decoded_fields:
            values = self.decoded[f.name]
            if not values:
                columns[f.name] = pa.nulls(n, f.type)
            else:
                values += [None] * (n - len(values))
                columns[f.name] = pa.array(values, type=f.type)
        if PAYLOAD_HASH_COLUMNS[0] in self.schema.names:
            columns.update(zip(PAYLOAD_HASH_COLUMNS, payload_hash_arrays(columns["payload"], columns["data_offset"])))
        batch = pa.RecordBatch.from_arrays([columns[f.name] for f in self.schema], schema=self.schema)
        self.total_rows += n
        self._reset(max(TARGET_BATCH_BYTES, next_size))
        return batch


def iter_mcap_rows(mcap_path: str | os.PathLike, stats: dict[str, Any], *, progress_every_s: float = 10.0) -> Iterator[dict[str, Any]]:
    """Rows of the MCAP as dicts (every column of :func:`ingested_schema`), in file order; see :func:`record_batches`."""
    for batch in record_batches(mcap_path, stats, progress_every_s=progress_every_s):
        yield from batch.to_pylist()


class _ReadAhead:
    """An iterator's items produced by a thread of their own, at most ``depth`` ahead of the consumer.

    Lance pulls the record batches from the thread that writes them and does not ask for the next
    one until it has encoded the last (measured: the reading and the writing took turns). Here the
    reading runs on while Lance writes: the reader thread's Python work (which holds the GIL) and
    Lance's encoding and writes (which do not) overlap. The producer's exception is raised in the
    consumer; ``close`` (or the consumer dropping the iterator) stops the producer."""

    _END = object()

    def __init__(self, items: Iterator[Any], depth: int, name: str = "ingest-read"):
        import queue
        import threading

        self.queue: Any = queue.Queue(maxsize=max(1, depth))
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._produce, args=(items,), name=name, daemon=True)
        self.thread.start()

    def _put(self, item: Any) -> bool:
        import queue

        while not self.stopped.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, items: Iterator[Any]) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(_Raised(exc))
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        self._put(self._END)

    def __iter__(self) -> Iterator[Any]:
        try:
            while True:
                item = self.queue.get()
                if item is self._END:
                    return
                if isinstance(item, _Raised):
                    raise item.exc
                yield item
        finally:
            self.close()

    def close(self) -> None:
        import threading

        self.stopped.set()
        if self.thread is not threading.current_thread():
            self.thread.join()


class _Raised(NamedTuple):
    exc: BaseException


class _HashedAside:
    """SHA-256 of a file computed on a thread of its own (one hashlib call over a memory map, which
    lets go of the GIL: another core), started at once; ``result`` waits for it."""

    def __init__(self, path: Path):
        import concurrent.futures

        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-mcap-sha")
        self.future = self.pool.submit(_sha256_in_one_call, path)

    def result(self) -> str:
        return self.future.result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _sha256_in_one_call(path: Path) -> str:
    """:func:`~axon_dagster.storage.digest.file_sha256` of a file, in one hashlib call over a
    read-only memory map of it.

    hashlib lets go of the GIL for the whole call, so the hashing runs beside the ingestion's own
    Python thread instead of waiting for it: a loop of 1 MB reads needs the GIL back twice per MB,
    and while the reader thread runs Python each of those waits its switch interval (5 ms) — many
    times the 0.7 ms of hashing per MB."""
    import hashlib
    import mmap

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size:
            flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)  # mapped in one go, not page by page
            with mmap.mmap(fh.fileno(), size, flags=flags, prot=mmap.PROT_READ) as mm, memoryview(mm) as view:
                h.update(view)
    return h.hexdigest()


class _DigestsAsWritten:
    """SHA-256 of a dataset's files, hashed while Lance is still writing the rest.

    Lance writes every file under a hidden temporary name (``.tmp…``) and renames it when complete,
    so a file under its final name is finished: a watcher thread hashes each one as it appears (in
    one call that does not hold the GIL, see :func:`_sha256_in_one_call` — another core), instead
    of all of them after the write. ``finish`` hashes what is left and re-hashes any file whose
    size or mtime changed since it was hashed, so the result is what :func:`file_digests` would give.
    ``write_back``: each file hashed is also started on its way to disk (for a caller that will
    fsync the dataset soon: little is left to flush then)."""

    def __init__(self, root: Path, workers: int, write_back: bool = False):
        import concurrent.futures
        import threading

        self.root = root
        self.hash = _sha256_and_write_back if write_back else _sha256_in_one_call
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="ingest-digest")
        self.jobs: dict[str, tuple[Any, tuple[int, int]]] = {}
        self.stop = threading.Event()
        self.watcher = threading.Thread(target=self._watch, name="ingest-digest-watch", daemon=True)
        self.watcher.start()

    def _finished_files(self) -> list[tuple[str, Path]]:
        out = []
        for dirpath, dirnames, names in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            out.extend((Path(dirpath, n).relative_to(self.root).as_posix(), Path(dirpath, n)) for n in sorted(names) if not n.startswith("."))
        return out

    def _submit_new(self) -> None:
        for rel, path in self._finished_files():
            if rel not in self.jobs:
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                self.jobs[rel] = (self.pool.submit(self.hash, path), (st.st_size, st.st_mtime_ns))

    def _watch(self) -> None:
        while not self.stop.wait(0.05):
            if self.root.exists():
                self._submit_new()

    def cancel(self) -> None:
        self.stop.set()
        self.watcher.join()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def finish(self) -> dict[str, str]:
        self.stop.set()
        self.watcher.join()
        self._submit_new()
        out: dict[str, str] = {}
        try:
            for rel, path in self._finished_files():
                future, (size, mtime) = self.jobs[rel]
                sha = future.result()
                st = path.stat()
                out[rel] = sha if (st.st_size, st.st_mtime_ns) == (size, mtime) else _sha256_in_one_call(path)
        finally:
            self.pool.shutdown(wait=True)
        return out


def _sha256_and_write_back(path: Path) -> str:
    sha = _sha256_in_one_call(path)
    start_write_back(path)
    return sha


def _task_metadata(axon: AxonSidecar | None, extra: dict[str, Any] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if axon is not None:
        t = axon.task
        meta.update({
            "order_id": t.order_id, "scene": t.scene, "sub_scene": t.subscene, "skills": list(t.skills),
            "factory": t.factory, "data_collector_id": t.data_collector_id, "operator_name": t.operator_name,
        })
    meta.update(extra or {})
    return meta


def ingest_mcap(
    mcap_path: str | os.PathLike,
    dataset_dir: str | os.PathLike,
    *,
    axon_sidecar: AxonSidecar | None = None,
    task_id: str | None = None,
    robot_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    mcap_sha256: str | None = None,
    recorder_checksum_sha256: str | None = None,
    progress_every_s: float = 10.0,
    hash_mcap: bool = False,
    stream=None,
    write_back: bool = False,
) -> IngestResult:
    """Ingest ``mcap_path`` into a new Lance dataset at ``dataset_dir`` and write its sidecar beside it.

    ``axon_sidecar`` defaults to Axon's sidecar beside the MCAP, or the MCAP's ``axon.*`` metadata
    records (a plain MCAP without them ingests too: task and device then come from the arguments).
    ``mcap_sha256``: the verified SHA-256 of the MCAP, recorded in the sidecar's ``extra.source``;
    ``recorder_checksum_sha256``: the checksum the recorder reported for it (its RPC stats), recorded
    beside Axon's — the evidence QC's ``integrity`` needs when Axon wrote no sidecar.
    ``hash_mcap``: hash the MCAP in the same pass — on a thread of its own, over a memory map of the
    file, beside the reading and writing instead of a read of its own before them — and record that
    digest; given ``mcap_sha256`` too, a different digest raises :class:`McapDigestMismatch` (an
    IngestError and a DigestMismatch) after the write and before anything is renamed into place or
    a sidecar written.

    ``stream``: read the MCAP from it instead of from ``mcap_path`` — an object with
    ``readinto(memoryview) -> int`` (RawIOBase semantics: blocks until a byte is there, may return
    fewer than asked, 0 only at the end; called from a reader thread of the ingestion), e.g. an
    upload still under way. Every byte is read from it once, in order, from byte 0 to the closing
    magic and the end of the stream (no summary, no memory map, no seeking); ``mcap_path`` only
    names the recording (logs, ``extra.source.mcap_file``; Axon's sidecar beside it is used when it
    exists) and need not exist. ``hash_mcap`` then hashes the bytes as they are parsed. Without
    ``axon_sidecar`` or a sidecar beside ``mcap_path``, the ``axon.*`` metadata records met in the
    stream describe the task (as they do for a file without a sidecar); without those either, it
    ingests as a plain MCAP. What ``stream.readinto`` raises reaches the caller as it was raised
    (nothing left behind); a stream that ends before the MCAP's closing magic is an IngestError.
    The result is the file's for the same bytes (``mcap_size_bytes``: the bytes read).
    ``write_back``: start writing each finished Lance file to disk during the ingestion, for a
    caller that makes the dataset durable soon after (the data flow publishes it).
    Refuses to overwrite; a failure leaves nothing behind."""
    import lance
    import pyarrow as pa

    mcap_path, dataset_dir = Path(mcap_path), Path(dataset_dir)
    started = time.monotonic()
    streamed = stream is not None
    if not streamed and not mcap_path.is_file():
        raise IngestError(f"MCAP file not found: {mcap_path}")
    side = sidecar_path(dataset_dir)
    if dataset_dir.exists() or side.exists():
        raise IngestError(f"refusing to overwrite {dataset_dir} (or its sidecar {side})")
    axon_from_stream = False  # Axon's facts from the stream's axon.* metadata records, once it is read
    if axon_sidecar is None and mcap_path.suffix == ".mcap":
        files = AxonRecordingFiles.for_mcap(mcap_path)
        axon_from_stream = streamed and not files.sidecar_path.exists()
        if not axon_from_stream:
            axon_sidecar = _axon_sidecar(mcap_path, lambda: load_sidecar(files))
    schema = ingested_schema()
    stats: dict[str, Any] = {}
    log.info("ingesting %s (%s) into %s", mcap_path, "streamed, size not known" if streamed else f"{mcap_path.stat().st_size / 1e6:.1f} MB",
             dataset_dir)

    def batches(ahead: _ReadAhead) -> Iterator[Any]:
        try:
            yield from ahead
        except Exception as exc:  # Lance wraps what the reading raises: keep it to re-raise as it was
            stats["error"] = exc
            raise

    dataset_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{dataset_dir.name}.", suffix=".tmp", dir=dataset_dir.parent))
    mcap_hash = _HashedAside(mcap_path) if hash_mcap and not streamed else None  # a stream is hashed as it is read
    ahead = _ReadAhead(record_batches(mcap_path, stats, progress_every_s=progress_every_s, stream=stream, hash_stream=hash_mcap),
                       READ_AHEAD_BATCHES)
    try:
        staged = tmp_dir / dataset_dir.name
        reader = pa.RecordBatchReader.from_batches(schema, batches(ahead))
        digests = _DigestsAsWritten(staged, DIGEST_WORKERS, write_back=write_back)
        try:
            lance.write_dataset(reader, str(staged), schema=schema, mode="create", data_storage_version=LANCE_FILE_VERSION,
                                max_bytes_per_file=MAX_BYTES_PER_FILE, data_cache_bytes=LANCE_DATA_CACHE_BYTES)
        except Exception:
            digests.cancel()
            if "error" not in stats:
                raise
        if "error" in stats:  # raised here, out of Lance's exception, as the reading raised it
            digests.cancel()
            raise stats["error"]
        if not stats.get("rows"):
            # Lance writes no dataset for an empty stream: make an empty one so the recording exists.
            if not staged.exists():
                lance.write_dataset(pa.Table.from_batches([], schema=schema), str(staged), schema=schema, mode="create",
                                    data_storage_version=LANCE_FILE_VERSION)
        files = digests.finish() if staged.exists() else {}
        if not files:
            files = file_digests(staged, workers=DIGEST_WORKERS)
        if hash_mcap:
            actual = mcap_hash.result() if mcap_hash is not None else stats["mcap_sha256"]
            if mcap_sha256 and actual != mcap_sha256.lower():
                raise McapDigestMismatch(f"MCAP {mcap_path}", mcap_sha256.lower(), actual)
            mcap_sha256 = actual
        os.rename(staged, dataset_dir)
    finally:
        ahead.close()
        if mcap_hash is not None:
            mcap_hash.close()
        shutil.rmtree(tmp_dir, ignore_errors=True)

    if axon_from_stream:
        axon_sidecar = _axon_sidecar(mcap_path, lambda: AxonSidecar.from_metadata(stats["axon_metadata"], source=f"{mcap_path} metadata"))
    mcap_size = stats["bytes_read"]
    topics: dict[str, TopicSummary] = dict(sorted(stats.get("topics", {}).items()))
    first = min((t.first_ns for t in topics.values()), default=0)
    last = max((t.last_ns for t in topics.values()), default=0)
    start_ns = (axon_sidecar.recording.started_at_ns if axon_sidecar else None) or first
    end_ns = (axon_sidecar.recording.finished_at_ns if axon_sidecar else None) or last
    source: dict[str, Any] = {
        "format": SOURCE_FORMAT,
        "mcap_file": mcap_path.name,
        "mcap_size_bytes": mcap_size,
        "mcap_sha256": mcap_sha256,
        "axon_checksum_sha256": axon_sidecar.checksum_sha256 if axon_sidecar else None,
        "recorder_checksum_sha256": recorder_checksum_sha256.lower() if recorder_checksum_sha256 else None,
        "axon_sidecar_origin": axon_sidecar.source if axon_sidecar else None,
        # The recorder's subscriptions as the file declares them (one channel each, messages or not):
        # QC's topic_set compares them with the topics that have messages.
        "channels": stats["channels"],
        "decoded_messages": stats.get("decoded", 0),
        "decode_errors": stats.get("decode_errors", 0),
        "undecodable_types": dict(stats.get("undecodable", {})),
    }
    sidecar = Sidecar(
        task_id=task_id or (axon_sidecar.task_id if axon_sidecar else mcap_path.stem),
        robot_id=robot_id or (axon_sidecar.device.device_id if axon_sidecar else ""),
        metadata=_task_metadata(axon_sidecar, metadata),
        topics=topics,
        start_ns=int(start_ns),
        end_ns=int(end_ns),
        files=files,
        dataset_digest=digest_of_files(files),
        extra={"source": source, "axon": axon_sidecar.to_dict() if axon_sidecar else None},
    )
    sidecar.write(side)
    result = IngestResult(
        dataset_path=dataset_dir,
        sidecar=sidecar,
        rows=stats.get("rows", 0),
        decoded=stats.get("decoded", 0),
        undecodable=dict(stats.get("undecodable", {})),
        decode_errors=stats.get("decode_errors", 0),
        mcap_bytes=mcap_size,
        seconds=time.monotonic() - started,
        mcap_sha256=mcap_sha256,
    )
    log.info(
        "ingested %s: %d messages in %d topics (%d decoded, %d decode errors%s) -> %s in %.2f s (%.1f MB/s)",
        mcap_path.name, result.rows, len(topics), result.decoded, result.decode_errors,
        f", kept raw: {', '.join(sorted(result.undecodable))}" if result.undecodable else "",
        dataset_dir, result.seconds, result.mcap_bytes / 1e6 / max(result.seconds, 1e-9),
    )
    return result


def _axon_sidecar(mcap_path: Path, load) -> AxonSidecar | None:
    """``load()``: Axon's facts about the recording, or None for a plain MCAP (no Axon facts, still ingestible)."""
    try:
        return load()
    except AxonRecordingError as exc:
        log.info("%s has no Axon sidecar or axon.* metadata (%s); ingesting without them", mcap_path, exc)
        return None


def axon_facts(sidecar: Sidecar) -> AxonSidecar | None:
    """Axon's sidecar as recorded in a Lance-era sidecar written by :func:`ingest_mcap` (None for
    recordings that did not come from an Axon MCAP)."""
    raw = (sidecar.extra or {}).get("axon")
    if not raw:
        return None
    origin = ((sidecar.extra or {}).get("source") or {}).get("axon_sidecar_origin") or "sidecar"
    return AxonSidecar.from_dict(raw, source=f"{sidecar.task_id} (recorded at ingestion)",
                                 require_checksum=origin == "sidecar", origin=origin)


__all__ = ["DECODED_COLUMNS", "IngestError", "IngestResult", "RECORDING_COLUMNS", "axon_facts", "ingest_mcap", "ingested_schema", "iter_mcap_rows", "record_batches"]
