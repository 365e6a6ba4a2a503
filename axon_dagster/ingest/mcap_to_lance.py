"""MCAP (as Axon writes it) -> a Lance recording with decoded columns, and the Lance-era sidecar.

One pass over the MCAP in file order (chunks decompressed once, by ``mcap``'s reader): every
message becomes one row with the columns every recording has (``topic``, ``log_time_ns``,
``sequence``, ``message_type``, ``payload`` = the raw message bytes, untouched) plus the decoded
columns of :mod:`.decode`. Rows are written to Lance in bounded record batches while the file is
read, so memory stays flat however large the recording. Progress is logged every
``progress_every_s`` seconds (bytes read of the file, messages, rate).

The dataset appears atomically (built beside the target, then renamed); the sidecar is written
last. It records where the data came from (``extra.source``): the MCAP's name, size and SHA-256,
Axon's checksum and sidecar (or the ``axon.*`` metadata records standing in for one), and how many
messages could not be decoded.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axon_dagster.storage.axon_recording import AxonRecordingError, AxonSidecar, AxonRecordingFiles, load_sidecar
from axon_dagster.storage.digest import digest_of_files, file_digests, file_sha256
from axon_dagster.storage.recording import RECORDING_COLUMNS, Sidecar, TopicSummary, sidecar_path

from .decode import DECODED_COLUMNS, RosDecoderFactory, decoded_columns, decoded_schema_fields, fast_columns, ros2_type_name

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
# Data files of at most this size, so the sidecar's SHA-256s are computed on every core at once.
MAX_BYTES_PER_FILE = 256 << 20
DIGEST_WORKERS = max(1, min(4, os.cpu_count() or 1))


class IngestError(Exception):
    """The MCAP cannot be ingested (unreadable, not an MCAP, target exists). Nothing was written."""


def ingested_schema():
    """The recording schema plus the decoded columns."""
    import pyarrow as pa

    from axon_dagster.storage.recording import recording_schema

    base = recording_schema()
    return pa.schema(list(base) + decoded_schema_fields())


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


class _Batcher:
    """Accumulates rows column-wise; yields pyarrow record batches of bounded size."""

    def __init__(self, schema):
        self.schema = schema
        self.names = [f.name for f in schema]
        self._reset()

    def _reset(self):
        self.cols: dict[str, list] = {n: [] for n in self.names}
        self.rows = 0
        self.bytes = 0

    def add(self, row: dict[str, Any]) -> None:
        for n in self.names:
            self.cols[n].append(row.get(n))
        self.rows += 1
        self.bytes += len(row["payload"])

    def full(self) -> bool:
        return self.bytes >= TARGET_BATCH_BYTES or self.rows >= MAX_BATCH_ROWS

    def flush(self):
        import pyarrow as pa

        arrays = [_binary(self.cols[n]) if n == "payload" else pa.array(self.cols[n], type=f.type)
                  for n, f in zip(self.names, self.schema)]
        batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        self._reset()
        return batch


def _binary(values: list) -> Any:
    """A pyarrow binary array from byte strings: one join (a single allocation and copy) and the
    offsets from the lengths. ``pa.array`` appends value by value into a growing buffer, which
    costs several times more for camera-frame-sized values."""
    import numpy as np
    import pyarrow as pa

    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum([len(v) for v in values], out=offsets[1:])
    return pa.Array.from_buffers(pa.binary(), len(values), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(values))])


_RECORD = struct.Struct("<BQ")  # opcode, length
_MESSAGE = struct.Struct("<HIQQ")  # channel_id, sequence, log_time, publish_time
_OP_MESSAGE = 0x05


@dataclass(frozen=True)
class RawMessage:
    channel_id: int
    sequence: int
    log_time: int
    publish_time: int
    data: Any  # bytes, or a memoryview into the decompressed chunk


def iter_messages(fh) -> Iterator[tuple[Any, Any, Any]]:
    """``(schema, channel, message)`` for every message of the MCAP, in file order.

    An indexed MCAP (Axon's: chunks + summary) is read chunk by chunk: ``mcap`` reads the summary
    and each chunk record, the chunk is decompressed once, and its message records are sliced out
    of the decompressed bytes as memoryviews — no copy per message (``mcap``'s own iteration reads
    each message into new bytes, a second pass over every payload). Without a summary or chunk
    index, ``mcap``'s reader does it all."""
    from mcap.data_stream import ReadDataStream
    from mcap.reader import make_reader
    from mcap.records import Chunk

    reader = make_reader(fh)
    summary = reader.get_summary()
    if summary is None or not summary.chunk_indexes:
        fh.seek(0)
        yield from make_reader(fh).iter_messages(log_time_order=False)
        return
    channels, schemas = summary.channels, summary.schemas
    for index in sorted(summary.chunk_indexes, key=lambda c: c.chunk_start_offset):
        fh.seek(index.chunk_start_offset + 1 + 8)
        chunk = Chunk.read(ReadDataStream(fh))
        data = _decompress(chunk)
        view, end, o = memoryview(data), len(data), 0
        while o < end:
            opcode, length = _RECORD.unpack_from(data, o)
            body = o + _RECORD.size
            if body + length > end:
                raise ValueError(f"chunk at {index.chunk_start_offset}: record runs past the chunk")
            if opcode == _OP_MESSAGE:
                channel_id, sequence, log_time, publish_time = _MESSAGE.unpack_from(data, body)
                channel = channels[channel_id]
                schema = schemas.get(channel.schema_id) if channel.schema_id else None
                yield schema, channel, RawMessage(channel_id, sequence, log_time, publish_time,
                                                  view[body + _MESSAGE.size: body + length])
            o = body + length


def _decompress(chunk) -> bytes:
    if chunk.compression == "zstd":
        import zstandard

        return zstandard.decompress(chunk.data, chunk.uncompressed_size)
    if chunk.compression == "lz4":
        import lz4.frame

        return lz4.frame.decompress(chunk.data)
    if chunk.compression == "":
        return chunk.data
    raise ValueError(f"unsupported chunk compression {chunk.compression!r}")


def iter_mcap_rows(mcap_path: str | os.PathLike, stats: dict[str, Any], *, progress_every_s: float = 10.0) -> Iterator[dict[str, Any]]:
    """Rows of the MCAP, in file order, decoded. Fills ``stats`` as it goes (topics, counts,
    undecodable types, decode errors, bytes read). Raises IngestError if the file is not a readable MCAP."""
    from mcap.exceptions import McapError

    factory = RosDecoderFactory()
    decoders: dict[int, Any] = {}
    topics: dict[str, TopicSummary] = stats.setdefault("topics", {})
    stats.setdefault("undecodable", {})
    stats.setdefault("decode_errors", 0)
    stats.setdefault("decoded", 0)
    size = os.path.getsize(mcap_path)
    started = last_log = time.monotonic()
    rows = 0
    with open(mcap_path, "rb") as fh:
        try:
            for schema, channel, message in iter_messages(fh):
                type_name = schema.name if schema is not None else ""
                if channel.id not in decoders:
                    fast = fast_columns(channel.message_encoding, type_name)
                    if fast is not None:
                        decoders[channel.id] = fast
                    else:
                        decode = factory.decoder_for(channel.message_encoding, schema)
                        if decode is None:
                            reason = (factory.type_problem(channel.message_encoding, schema) if schema is not None else None) \
                                or f"no decoder for message encoding {channel.message_encoding!r}"
                            stats["undecodable"][type_name or channel.topic] = reason
                        decoders[channel.id] = None if decode is None else _full(type_name, decode)
                decode = decoders[channel.id]
                row: dict[str, Any] = {
                    "topic": channel.topic,
                    "log_time_ns": message.log_time,
                    "sequence": message.sequence,
                    "message_type": ros2_type_name(type_name) if type_name else "",
                    "payload": message.data,
                }
                if decode is not None:
                    try:
                        row.update(decode(message.data))
                        stats["decoded"] += 1
                    except Exception as exc:  # corrupt bytes: keep the row, say why
                        row["decode_error"] = f"{type(exc).__name__}: {exc}"[:200]
                        stats["decode_errors"] += 1
                t = topics.get(channel.topic)
                if t is None:
                    topics[channel.topic] = TopicSummary(1, row["message_type"], message.log_time, message.log_time)
                else:
                    t.count += 1
                    t.first_ns = min(t.first_ns, message.log_time)
                    t.last_ns = max(t.last_ns, message.log_time)
                rows += 1
                yield row
                now = time.monotonic()
                if now - last_log >= progress_every_s:
                    done = fh.tell()
                    log.info(
                        "ingesting %s: %d messages, %.0f of %.0f MB read (%.0f%%), %.1f MB/s",
                        mcap_path, rows, done / 1e6, size / 1e6, 100.0 * done / size if size else 100.0,
                        done / 1e6 / (now - started),
                    )
                    last_log = now
        except (McapError, EOFError, ValueError, OSError, KeyError, struct.error) as exc:
            raise IngestError(f"{mcap_path} is not a readable MCAP file: {type(exc).__name__}: {exc}") from None
    stats["rows"] = rows
    stats["bytes_read"] = size


def _full(type_name: str, decode):
    """bytes -> decoded columns, through a full deserialization."""

    def columns(data: bytes) -> dict[str, Any]:
        return decoded_columns(type_name, decode(data))

    return columns


class _DigestsAsWritten:
    """SHA-256 of a dataset's files, hashed while Lance is still writing the rest.

    Lance writes every file under a hidden temporary name (``.tmp…``) and renames it when complete,
    so a file under its final name is finished: a watcher thread hashes each one as it appears
    (hashlib releases the GIL — another core), instead of all of them after the write. ``finish``
    hashes what is left and re-hashes any file whose size or mtime changed since it was hashed, so
    the result is what :func:`file_digests` would give."""

    def __init__(self, root: Path, workers: int):
        import concurrent.futures
        import threading

        self.root = root
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
                self.jobs[rel] = (self.pool.submit(file_sha256, path), (st.st_size, st.st_mtime_ns))

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
                out[rel] = sha if (st.st_size, st.st_mtime_ns) == (size, mtime) else file_sha256(path)
        finally:
            self.pool.shutdown(wait=True)
        return out


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
) -> IngestResult:
    """Ingest ``mcap_path`` into a new Lance dataset at ``dataset_dir`` and write its sidecar beside it.

    ``axon_sidecar`` defaults to Axon's sidecar beside the MCAP, or the MCAP's ``axon.*`` metadata
    records (a plain MCAP without them ingests too: task and device then come from the arguments).
    ``mcap_sha256``: the verified SHA-256 of the MCAP, recorded in the sidecar's ``extra.source``;
    ``recorder_checksum_sha256``: the checksum the recorder reported for it (its RPC stats), recorded
    beside Axon's — the evidence QC's ``integrity`` needs when Axon wrote no sidecar.
    Refuses to overwrite; a failure leaves nothing behind."""
    import lance
    import pyarrow as pa

    mcap_path, dataset_dir = Path(mcap_path), Path(dataset_dir)
    started = time.monotonic()
    if not mcap_path.is_file():
        raise IngestError(f"MCAP file not found: {mcap_path}")
    side = sidecar_path(dataset_dir)
    if dataset_dir.exists() or side.exists():
        raise IngestError(f"refusing to overwrite {dataset_dir} (or its sidecar {side})")
    if axon_sidecar is None and mcap_path.suffix == ".mcap":
        try:
            axon_sidecar = load_sidecar(AxonRecordingFiles.for_mcap(mcap_path))
        except AxonRecordingError as exc:  # a plain MCAP: no Axon facts, still ingestible
            log.info("%s has no Axon sidecar or axon.* metadata (%s); ingesting without them", mcap_path, exc)
    schema = ingested_schema()
    stats: dict[str, Any] = {}
    log.info("ingesting %s (%.1f MB) into %s", mcap_path, mcap_path.stat().st_size / 1e6, dataset_dir)

    def batches() -> Iterator[Any]:
        batcher = _Batcher(schema)
        try:
            for row in iter_mcap_rows(mcap_path, stats, progress_every_s=progress_every_s):
                batcher.add(row)
                if batcher.full():
                    yield batcher.flush()
        except IngestError as exc:  # Lance wraps what the stream raises: keep ours to re-raise
            stats["error"] = exc
            raise
        if batcher.rows:
            yield batcher.flush()

    dataset_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{dataset_dir.name}.", suffix=".tmp", dir=dataset_dir.parent))
    try:
        staged = tmp_dir / dataset_dir.name
        reader = pa.RecordBatchReader.from_batches(schema, batches())
        digests = _DigestsAsWritten(staged, DIGEST_WORKERS)
        try:
            lance.write_dataset(reader, str(staged), schema=schema, mode="create", data_storage_version=LANCE_FILE_VERSION,
                                max_bytes_per_file=MAX_BYTES_PER_FILE)
        except Exception:
            digests.cancel()
            if "error" in stats:
                raise stats["error"] from None
            raise
        if not stats.get("rows"):
            # Lance writes no dataset for an empty stream: make an empty one so the recording exists.
            if not staged.exists():
                lance.write_dataset(pa.Table.from_batches([], schema=schema), str(staged), schema=schema, mode="create",
                                    data_storage_version=LANCE_FILE_VERSION)
        files = digests.finish() if staged.exists() else {}
        if not files:
            files = file_digests(staged, workers=DIGEST_WORKERS)
        os.rename(staged, dataset_dir)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)

    topics: dict[str, TopicSummary] = dict(sorted(stats.get("topics", {}).items()))
    first = min((t.first_ns for t in topics.values()), default=0)
    last = max((t.last_ns for t in topics.values()), default=0)
    start_ns = (axon_sidecar.recording.started_at_ns if axon_sidecar else None) or first
    end_ns = (axon_sidecar.recording.finished_at_ns if axon_sidecar else None) or last
    source: dict[str, Any] = {
        "format": SOURCE_FORMAT,
        "mcap_file": mcap_path.name,
        "mcap_size_bytes": mcap_path.stat().st_size,
        "mcap_sha256": mcap_sha256,
        "axon_checksum_sha256": axon_sidecar.checksum_sha256 if axon_sidecar else None,
        "recorder_checksum_sha256": recorder_checksum_sha256.lower() if recorder_checksum_sha256 else None,
        "axon_sidecar_origin": axon_sidecar.source if axon_sidecar else None,
        # The recorder's subscriptions as the file declares them (one channel each, messages or not):
        # QC's topic_set compares them with the topics that have messages.
        "channels": declared_channels(mcap_path),
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
        mcap_bytes=mcap_path.stat().st_size,
        seconds=time.monotonic() - started,
    )
    log.info(
        "ingested %s: %d messages in %d topics (%d decoded, %d decode errors%s) -> %s in %.2f s (%.1f MB/s)",
        mcap_path.name, result.rows, len(topics), result.decoded, result.decode_errors,
        f", kept raw: {', '.join(sorted(result.undecodable))}" if result.undecodable else "",
        dataset_dir, result.seconds, result.mcap_bytes / 1e6 / max(result.seconds, 1e-9),
    )
    return result


def declared_channels(mcap_path: str | os.PathLike) -> list[str] | None:
    """The topics of the MCAP's channels, from its summary (sorted); None without a summary."""
    from mcap.reader import make_reader

    try:
        with open(mcap_path, "rb") as fh:
            summary = make_reader(fh).get_summary()
    except Exception:  # noqa: BLE001 - read fully above; a summary that does not parse declares nothing
        return None
    if summary is None:
        return None
    return sorted({c.topic for c in summary.channels.values()})


def axon_facts(sidecar: Sidecar) -> AxonSidecar | None:
    """Axon's sidecar as recorded in a Lance-era sidecar written by :func:`ingest_mcap` (None for
    recordings that did not come from an Axon MCAP)."""
    raw = (sidecar.extra or {}).get("axon")
    if not raw:
        return None
    origin = ((sidecar.extra or {}).get("source") or {}).get("axon_sidecar_origin") or "sidecar"
    return AxonSidecar.from_dict(raw, source=f"{sidecar.task_id} (recorded at ingestion)",
                                 require_checksum=origin == "sidecar", origin=origin)


__all__ = ["DECODED_COLUMNS", "IngestError", "IngestResult", "RECORDING_COLUMNS", "axon_facts", "ingest_mcap", "ingested_schema", "iter_mcap_rows"]
