"""The Daft pipelines behind inspection. (Over ~400 lines on purpose: every pipeline runs over the
one materialised read built here; split up, its columns and ordering would be spelled twice.)

The recording is read once (:func:`read_recording`): Lance reads ``topic``, ``sequence``,
``log_time_ns`` and the decoded columns the content checks use (a few dozen bytes per message), and
two hashes per payload (64-bit xxh3 of its header bytes and of its data bytes, split at
``data_offset``; large data parts fingerprinted, see :mod:`axon_dagster.ingest.payload_hash`): from
the columns our ingestion wrote them to, or else from the payloads, each hashed as it is read and
dropped, so the payload bytes never reach Python. Every check's pipeline runs over that small frame:

* steps — per topic, in write order (Lance's row address): log-time step to the previous row,
  sequence step, payload equal to the previous one; aggregated per topic into count, first/last
  time, largest step, backward steps, messages lost in isolated holes vs inside stalls, repeated
  payloads, duplicated rows (same sequence, time and payload as the previous row), repeated and
  reset sequence numbers, zero time steps;
* frozen runs — a running count of payload changes numbers the runs of identical consecutive
  payloads; the longest run per topic, in log time and messages;
* sync — an as-of join (nearest) of each ``sync_topic`` message to the ``sync_reference_topic``
  messages; the percentile and maximum of |offset|.

* content (recordings with decoded columns) — see :func:`content_profile`.

Lance reads in the process that runs the inspection (for the Ray job and KubeRay runners, a
process on the cluster); the pipelines run on the Daft runner that process uses (native, or Ray:
the same pipelines run on either). Daft is imported lazily so the package imports on machines
without it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axon_dagster.domain import Requirements
from axon_dagster.storage.recording import RECORDING_COLUMNS

from .errors import InspectionInfrastructureError, MalformedRecording

logger = logging.getLogger(__name__)

# The recording columns every check needs (the decoded columns are optional: MCAP recordings only).
PROFILE_COLUMNS = ("topic", "sequence", "log_time_ns", "payload")
assert set(PROFILE_COLUMNS) <= set(RECORDING_COLUMNS)
# What each profiled column must hold (pyarrow type predicates by name): anything else is a
# malformed recording, judged, not a crash in the pipelines.
COLUMN_KINDS = {"topic": "string", "sequence": "integer", "log_time_ns": "integer", "payload": "binary"}
# Target bytes per scanned payload batch. Lance's default (8192 rows) makes batches of hundreds of
# MB when camera frames are large. Batches above glibc's largest mmap threshold (32 MB) are
# mapped fresh and page-faulted in for every batch, which doubles the cost of a scan; a few MB
# per batch are reused from the heap and keep the per-batch overhead small (bench/qc_inspect.py).
TARGET_BATCH_BYTES = 2 << 20
MIN_BATCH_ROWS, MAX_BATCH_ROWS = 16, 65536
# Large data parts are fingerprinted, not hashed in full (axon_dagster.ingest.payload_hash); rows
# whose fingerprints repeat are read again, FULL_HASH_TAKE_ROWS at a time, and hashed in full.
FULL_HASH_TAKE_ROWS = 32


@dataclass(frozen=True)
class TopicProfile:
    """What the Daft pipelines measure for one topic."""

    count: int
    first_ns: int  # smallest log time
    last_ns: int  # largest log time
    max_step_ns: int  # largest log-time step between consecutive messages in sequence order
    backward_steps: int
    lost_messages: int = 0  # all holes in the sequence numbers
    dropped_messages: int = 0  # ... in isolated holes (step <= max_gap)
    lost_in_gaps: int = 0  # ... inside stalls (step > max_gap)
    active_ns: int = 0  # sum of forward steps: the span the topic covered, backward jumps excluded
    repeated_payloads: int = 0  # messages whose payload hash equals the previous message's
    longest_frozen_ns: int = 0  # log-time span of the longest run of identical consecutive payloads
    longest_frozen_messages: int = 1  # messages in that run (1 = no repeat)
    # In write order (the order the recorder wrote the rows):
    duplicate_messages: int = 0  # rows identical to the previous row (sequence, log time, payload)
    repeated_sequences: int = 0  # sequence number equal to the previous one (not a duplicate row)
    sequence_resets: int = 0  # sequence number below the previous one
    zero_steps: int = 0  # log time equal to the previous one (not a duplicate row)
    max_sequence: int = 0  # 0 on a topic of more than one message: the writer numbers nothing


@dataclass(frozen=True)
class SyncProfile:
    """Offsets of ``topic`` messages to the nearest ``reference`` message."""

    topic: str
    reference: str
    samples: int
    percentile: float  # which percentile, 0-100
    offset_percentile_ns: float  # that percentile of |offset|
    max_offset_ns: int


@dataclass(frozen=True)
class ContentProfile:
    """What the decoded columns of one topic say (recordings ingested from MCAP; see
    :mod:`axon_dagster.ingest.decode`)."""

    stamped: int = 0  # messages with a header stamp
    skew_p95_ns: float = 0.0  # p95 of |log time - header stamp|, pauses taken out
    skew_max_ns: int = 0
    pause_ns: int = 0  # stamp time that passed while log time did not: the recorder was paused
    nonfinite_messages: int = 0  # messages with NaN or Inf in a decoded numeric field
    nonfinite_columns: tuple[str, ...] = ()  # ... in these fields
    image_formats: tuple[str, ...] = ()  # distinct "WIDTHxHEIGHT ENCODING" (images, point clouds), first seen first
    valued: int = 0  # messages with decoded numeric fields
    keyed: int = 0  # messages compared for frozen values: decoded numerics, or image/cloud data bytes
    longest_frozen_values_ns: int = 0  # log-time span of the longest run of identical decoded values
    longest_frozen_values_messages: int = 1
    decode_errors: int = 0
    period_ns: float = 0.0  # median log-time step (stamped topics)
    timing_lost: int = 0  # messages missing from the log-time steps: a step of k periods lost k - 1


@dataclass(frozen=True)
class RecordingProfile:
    topics: dict[str, TopicProfile]
    sync: SyncProfile | None = None  # None when either sync topic is absent or the check is off
    scanned_bytes: int = 0  # on-disk size of the data files, for throughput logs
    # Per topic, from the decoded columns; None for a recording without them (the Lance-era layout).
    content: dict[str, ContentProfile] | None = None


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _local_path(path: str) -> Path:
    return Path(path[len("file://"):] if path.startswith("file://") else path)


def _open_dataset(path: str, io_config: Any) -> tuple[Any, int]:
    """Open with Lance (metadata only) to refuse non-datasets with a clear message and to size
    the scan batches. Returns (dataset, bytes on disk of the data files)."""
    import lance

    storage_options = None
    if _is_local(path):
        local = _local_path(path)
        if not local.is_dir():
            raise InspectionInfrastructureError(path, "dataset directory not found")
        try:
            os.listdir(local)
        except OSError as exc:
            raise InspectionInfrastructureError(path, f"dataset directory unreadable: {exc}") from exc
        uri, failure = str(local), "not a readable Lance dataset"
    else:
        from daft.io.object_store_options import io_config_to_storage_options

        storage_options = io_config_to_storage_options(io_config, path) if io_config is not None else None
        uri, failure = path, "cannot open the Lance dataset (storage unreachable, no access or not a dataset)"
    try:
        ds = lance.dataset(uri, storage_options=storage_options)
    except Exception as exc:
        raise InspectionInfrastructureError(path, f"{failure}: {exc}") from exc
    try:
        data_bytes = sum(f.bytes_on_disk for f in ds.stats.data_stats().fields)
    except Exception as exc:  # a data file lost or unreadable
        raise InspectionInfrastructureError(path, f"reading the dataset failed: {exc}") from exc
    return ds, data_bytes


def scan_batch_rows(rows: int, data_bytes: int) -> int | None:
    """Rows per scanned batch for ~TARGET_BATCH_BYTES batches; None (Lance's default) if unknown."""
    if rows <= 0 or data_bytes <= 0:
        return None
    return max(MIN_BATCH_ROWS, min(MAX_BATCH_ROWS, rows * TARGET_BATCH_BYTES // data_bytes))


def s3_io_config(environ: dict[str, str] | None = None):
    """Daft IOConfig for S3 from the usual AWS variables. ``AWS_ENDPOINT_URL`` may name an
    S3-compatible store at the site (MinIO); plain http is allowed when the endpoint says so.
    Without keys in the environment, Lance's own credential chain applies."""
    from daft.io import IOConfig, S3Config

    from axon_dagster.settings.storage import AwsSettings

    aws = AwsSettings.load(environ)
    kwargs: dict[str, Any] = {}
    if aws.s3_endpoint_url:
        kwargs["endpoint_url"] = aws.s3_endpoint_url
        kwargs["use_ssl"] = not aws.s3_endpoint_url.startswith("http://")
    if aws.region:
        kwargs["region_name"] = aws.region
    for key, value in (("key_id", aws.access_key_id), ("access_key", aws.secret_access_key),
                       ("session_token", aws.session_token)):
        if value:
            kwargs[key] = value
    return IOConfig(s3=S3Config(**kwargs))


def read_recording(path: str):
    """The one read every check shares, materialised as a small Daft frame: the metadata and decoded
    columns (a few dozen bytes per message) and two 64-bit hashes per payload, ``head_hash`` (the
    bytes before ``data_offset``: the message header) and ``tail_hash`` (from ``data_offset`` on: the
    pixel or point bytes; the whole payload where there is no ``data_offset``). Two payloads are
    equal when both hashes are; two frames' data bytes when their tail hashes are.

    A dataset our ingestion wrote carries these hashes as columns (:mod:`axon_dagster.ingest.payload_hash`,
    computed while the ingestion held the payloads): then only the small columns are read, and the
    rows whose data fingerprint repeats are read again and hashed in full. QC trusts those columns
    as it trusts the decoded ones: written by the cloud's own ingestion, covered by the sidecar's
    file digests. Without them (Lance-era recordings, older datasets) Lance reads the payloads in a
    second scan of ~TARGET_BATCH_BYTES batches, each hashed as it arrives (the same hasher) and
    dropped, so the payload bytes never reach Python. Returns (frame, data bytes on disk, whether the
    recording has decoded columns)."""
    import daft
    import pyarrow as pa
    import pyarrow.compute as pc

    from axon_dagster.ingest.decode import NUMERIC_LIST_COLUMNS
    from axon_dagster.ingest.payload_hash import DATA_HASH, FINGERPRINTED, HEAD_HASH, PAYLOAD_HASH_COLUMNS

    io_config = s3_io_config() if path.startswith(("s3://", "s3a://")) else None
    ds, data_bytes = _open_dataset(path, io_config)
    check_columns(path, ds.schema)
    names = set(ds.schema.names)
    has_content = "header_stamp_ns" in names
    hashed = all(c in names for c in PAYLOAD_HASH_COLUMNS)
    offsets = "data_offset" in names
    small = [c for c in ("topic", "sequence", "log_time_ns", "data_offset") if c in names]
    if has_content:
        small += [c for c in (*CONTENT_COLUMNS, *NUMERIC_LIST_COLUMNS) if c in names]
    try:
        if hashed:
            table = ds.to_table(columns=[*small, *PAYLOAD_HASH_COLUMNS], with_row_address=True)
            head = table.column(HEAD_HASH).combine_chunks()
            tail = _full_hashes_where_repeated(
                ds, table.column(DATA_HASH).combine_chunks(),
                _np_bool(table.column(FINGERPRINTED).combine_chunks()), offsets)
            table = table.drop_columns(list(PAYLOAD_HASH_COLUMNS))
        else:
            table = ds.to_table(columns=small, with_row_address=True)
            head, tail, addresses = _payload_hashes(ds, scan_batch_rows(ds.count_rows(), data_bytes), offsets)
            if not addresses.equals(table.column("_rowaddr").combine_chunks()):
                raise InspectionInfrastructureError(path, "the dataset changed while it was read (row addresses differ between scans)")
    except InspectionInfrastructureError:
        raise
    except Exception as exc:
        # Lost or corrupt data files, storage down: these surface only when the scan runs.
        raise InspectionInfrastructureError(path, f"reading the dataset failed: {exc}") from exc
    table = table.append_column("head_hash", head).append_column("tail_hash", tail)
    if offsets:  # the data bytes of images and clouds (null for messages without a data offset)
        table = table.append_column("pixels_hash", pc.if_else(pc.is_valid(table.column("data_offset")), tail, pa.scalar(None, pa.uint64())))
    return daft.from_arrow(table), data_bytes, has_content


def _np_bool(array):
    """A pyarrow bool array as numpy (nulls: False)."""
    import numpy as np

    return np.asarray(array.fill_null(False), dtype=bool)


def _payload_hashes(ds, batch_rows: int | None, split_at_offset: bool):
    """(head hashes, tail hashes, row addresses) of every payload, in scan order (see read_recording).

    As each batch arrives, the bytes to hash are picked out of it (see
    :class:`~axon_dagster.ingest.payload_hash.PayloadHasher`) and the batch is dropped; they are
    hashed in one go at the end; then :func:`_full_hashes_where_repeated`."""
    import pyarrow as pa

    from axon_dagster.ingest.payload_hash import PayloadHasher

    columns = ["payload", "data_offset"] if split_at_offset else ["payload"]
    hasher = PayloadHasher()
    addresses = []
    for b in ds.scanner(columns=columns, batch_size=batch_rows, with_row_address=True).to_batches():
        hasher.add(b.column("payload"), b.column("data_offset") if split_at_offset else None)
        addresses.append(b.column("_rowaddr"))
    head, tail, fingerprinted = hasher.hashes()
    tail = _full_hashes_where_repeated(ds, tail, fingerprinted, split_at_offset)
    return head, tail, pa.chunked_array(addresses, pa.uint64()).combine_chunks()


def _full_hashes_where_repeated(ds, tail, fingerprinted, split_at_offset: bool):
    """``tail`` (per row in scan order: data hashes, fingerprints where ``fingerprinted``) with the
    fingerprints that are not unique in the recording — the only rows that can equal another —
    replaced by the full hash of their data, read again. So two rows' tail hashes are equal exactly
    when their data bytes are (up to 64-bit collisions)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from axon_dagster.ingest.payload_hash import PayloadHasher

    if not fingerprinted.any():
        return tail
    columns = ["payload", "data_offset"] if split_at_offset else ["payload"]
    values = np.array(tail.fill_null(0), dtype=np.uint64)  # a writable copy
    counts = pc.value_counts(pa.array(values[fingerprinted]))
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    again = np.flatnonzero(fingerprinted & np.asarray(pc.is_in(pa.array(values), repeated), dtype=bool))
    if not len(again):
        return tail
    logger.info("%d payloads share a fingerprint: hashing their data in full", len(again))
    for start in range(0, len(again), FULL_HASH_TAKE_ROWS):
        rows = again[start:start + FULL_HASH_TAKE_ROWS]
        taken = ds.take(rows, columns=columns)
        exact = PayloadHasher(fingerprint=False)
        exact.add(taken.column("payload").combine_chunks(),
                  taken.column("data_offset").combine_chunks() if split_at_offset else None)
        values[rows] = np.asarray(exact.hashes()[1].fill_null(0), dtype=np.uint64)
    return pa.array(values, mask=np.asarray(tail.is_null()))


def check_columns(path: str, schema) -> None:
    """Refuse a dataset whose profiled columns are missing or of the wrong type (MalformedRecording)."""
    import pyarrow.types as pt

    kinds = {"string": lambda t: pt.is_string(t) or pt.is_large_string(t),
             "integer": pt.is_integer,
             "binary": lambda t: pt.is_binary(t) or pt.is_large_binary(t) or pt.is_fixed_size_binary(t),
             "boolean": pt.is_boolean}
    names = set(schema.names)
    missing = [c for c in PROFILE_COLUMNS if c not in names]
    if missing:
        raise MalformedRecording(path, f"not a recording: missing column(s) {', '.join(missing)}")
    # decoded columns QC reads raw, and the payload hashes the ingestion wrote (MCAP recordings only)
    optional = {"data_offset": "integer", "payload_head_hash": "integer", "payload_data_hash": "integer",
                "payload_data_fingerprinted": "boolean"}
    wrong = [f"{c} is {schema.field(c).type}, expected {k}" for c, k in {**COLUMN_KINDS, **optional}.items()
             if c in names and not kinds[k](schema.field(c).type)]
    if wrong:
        raise MalformedRecording(path, "not a recording: " + "; ".join(wrong))


def profile_recording(dataset_path: str | os.PathLike, requirements: Requirements | None = None) -> RecordingProfile:
    """Profile the Lance recording at ``dataset_path`` on the current Daft runner.

    Raises InspectionInfrastructureError when the dataset cannot be read (missing, not a Lance
    dataset, files lost or unreadable, storage unreachable, not in the recording format).
    """
    requirements = requirements or Requirements()
    path = str(dataset_path)
    started = time.monotonic()
    base, data_bytes, has_content = read_recording(path)
    scanned = time.monotonic()
    logger.info(
        "scanned %s: %.1f MB in %.2f s (payloads hashed as read)", path, data_bytes / 1e6, scanned - started
    )
    max_gap_ns = round(requirements.max_gap_seconds * 1e9)
    try:
        topics = _topic_profiles(base, max_gap_ns)
        sync = _sync_profile(base, requirements, topics)
    except Exception as exc:
        raise InspectionInfrastructureError(path, f"the inspection pipelines failed: {exc}") from exc
    content = content_profile(base, path, max_gap_ns) if has_content else None
    logger.info(
        "profiled %s: %d topics, %d messages%s; pipelines %.2f s",
        path, len(topics), sum(p.count for p in topics.values()),
        ", decoded content read" if content is not None else "", time.monotonic() - scanned,
    )
    return RecordingProfile(topics=topics, sync=sync, scanned_bytes=data_bytes, content=content)


# A step in (header stamp - log time) larger than this between consecutive messages of a topic is
# a pause: Axon subtracts paused time from log time, while the sensors' stamps keep running.
PAUSE_MIN_NS = 100_000_000
CONTENT_COLUMNS = ("header_stamp_ns", "width", "height", "encoding", "decode_error")


def content_profile(frame, path: str, max_gap_ns: int = 1_000_000_000) -> dict[str, ContentProfile]:
    """Per-topic content figures from the decoded columns of ``frame`` (:func:`read_recording`'s,
    of a recording that has them; ``path`` names it in errors).

    * skew: per topic in sequence order, ``jump`` = the stamp step minus the log-time step when it
      exceeds PAUSE_MIN_NS (a pause), running-summed; ``|log - stamp + jumps so far|`` is the skew
      with pauses taken out; its p95 and max per topic, and the jumps' sum (the topic's paused time);
    * non-finite: NaN/Inf in any decoded numeric list (the list's sum is NaN/Inf), per topic and field;
    * image formats: distinct width x height + encoding per topic;
    * frozen values: runs of identical decoded numeric values (a hash of the numeric fields,
      header excluded) or identical image/cloud data bytes, numbered by a running count of changes
      like the payload runs;
    * timing drops: Axon numbers messages as it writes them, so lost messages leave no hole in the
      sequence; on a stamped (sensor) topic they leave a log-time step of k periods (the median
      step) for k - 1 lost messages — counted from 1.5 periods, up to ``max_gap_ns`` (longer is a
      stall, for ``max_gap``). Paused time is not in the log time, so a pause is no step.
    """
    import daft
    from daft import Window, col, lit
    from daft.functions import list_sum, to_struct

    from axon_dagster.ingest.decode import NUMERIC_LIST_COLUMNS

    df = frame
    numeric = [c for c in NUMERIC_LIST_COLUMNS if c in df.column_names]
    int64 = daft.DataType.int64()
    try:
        # Image and cloud frames are compared by their data bytes (payload from data_offset on, header
        # excluded): the tail hash read_recording took as it read the payload.
        pixels = col("pixels_hash") if "pixels_hash" in df.column_names else lit(None).cast(daft.DataType.uint64()).alias("pixels_hash")
        df = df.select("topic", "sequence", "log_time_ns", *[c for c in CONTENT_COLUMNS if c in df.column_names], *numeric, pixels)
        flags = {c: (list_sum(col(c)).is_nan() | list_sum(col(c)).is_inf()).fill_null(False) for c in numeric}
        has_values = None
        for c in numeric:
            has_values = col(c).not_null() if has_values is None else (has_values | col(c).not_null())
        base = df.with_columns({
            **{f"nf_{c}": flag.cast(int64) for c, flag in flags.items()},
            "has_values": has_values if has_values is not None else lit(False),
            # a struct of the per-field hashes: hashing a struct of list fields directly gives one
            # value for every row when trailing fields are null (Daft 0.7)
            "values_hash": to_struct(*[col(c).hash().fill_null(0).alias(c) for c in numeric]).hash() if numeric else lit(0),
            "keyed": (has_values if has_values is not None else lit(False)) | col("pixels_hash").not_null(),
            "fmt": (col("width").cast(daft.DataType.string()).fill_null("?") + lit("x")
                    + col("height").cast(daft.DataType.string()).fill_null("?") + lit(" ")
                    + col("encoding").fill_null("")) if "width" in df.column_names else lit(None),
        }).with_column(
            "frozen_key", to_struct(col("values_hash").alias("v"), col("pixels_hash").fill_null(0).alias("p")).hash()
        ).exclude(*numeric, "values_hash", "pixels_hash").collect()  # the lists are not carried through the windows

        by_sequence = Window().partition_by("topic").order_by("sequence", "log_time_ns")
        running = by_sequence.rows_between(Window.unbounded_preceding, Window.current_row)
        stamped = base.where(col("header_stamp_ns").not_null()).select("topic", "sequence", "log_time_ns", "header_stamp_ns")
        step = (col("header_stamp_ns") - col("header_stamp_ns").lag(1).over(by_sequence)) - (
            col("log_time_ns") - col("log_time_ns").lag(1).over(by_sequence)
        )
        jumps = stamped.with_column("step", step.fill_null(0)).with_column(
            "jump", (col("step") > lit(PAUSE_MIN_NS)).cast(int64) * col("step")
        )
        skewed = jumps.with_column("paused_so_far", col("jump").sum().over(running)).with_column(
            "skew", (col("log_time_ns") - col("header_stamp_ns") + col("paused_so_far")).abs()
        )
        skew = {
            r["topic"]: r
            for r in skewed.groupby("topic").agg(
                col("skew").count().alias("stamped"),
                col("skew").percentile(0.95).alias("p95"),
                col("skew").max().alias("max"),
                col("jump").sum().alias("pause_ns"),
            ).to_pylist()
        }
        per_topic = {
            r["topic"]: r
            for r in base.groupby("topic").agg(
                col("log_time_ns").count().alias("count"),
                *[col(f"nf_{c}").sum().alias(f"nf_{c}") for c in numeric],
                (sum((col(f"nf_{c}") for c in numeric), lit(0)) > lit(0)).cast(int64).sum().alias("nonfinite")
                if numeric else lit(0).alias("nonfinite"),
                col("has_values").cast(int64).sum().alias("valued"),
                col("keyed").cast(int64).sum().alias("keyed"),
                (col("decode_error").not_null().cast(int64).sum() if "decode_error" in df.column_names else lit(0)).alias("decode_errors"),
            ).to_pylist()
        }
        formats: dict[str, list[str]] = {}
        if "width" in df.column_names:
            rows = (
                base.where(col("width").not_null() | col("encoding").not_null())
                .groupby("topic", "fmt").agg(col("log_time_ns").min().alias("first"))
                .sort(["topic", "first"]).to_pylist()
            )
            for r in rows:
                formats.setdefault(r["topic"], []).append(r["fmt"].replace("?x? ", ""))
        by_time = Window().partition_by("topic").order_by("log_time_ns")
        log_steps = (
            stamped.select("topic", "log_time_ns")
            .with_column("log_step", col("log_time_ns") - col("log_time_ns").lag(1).over(by_time))
            .where(col("log_step").not_null())
            .collect()
        )
        periods = log_steps.groupby("topic").agg(col("log_step").percentile(0.5).alias("period_ns"))
        lost = (col("log_step").cast(daft.DataType.float64()) / col("period_ns") - lit(0.5)).floor().cast(int64)
        timing = {
            r["topic"]: r
            for r in log_steps.join(periods, on="topic")
            .where((col("period_ns") > lit(0)) & (col("log_step") <= lit(max_gap_ns)))
            .with_column("lost", lost.clip(0, None))
            .groupby("topic")
            .agg(col("lost").sum().alias("lost"), col("period_ns").max().alias("period_ns"))
            .to_pylist()
        }
        valued = base.where(col("keyed")).select("topic", "sequence", "log_time_ns", "frozen_key")
        repeat = (col("frozen_key") == col("frozen_key").lag(1).over(by_sequence)).fill_null(False)
        runs = {
            r["topic"]: r
            for r in valued.with_column("repeat", repeat)
            .with_column("run", (~col("repeat")).cast(int64).sum().over(running))
            .groupby("topic", "run")
            .agg(col("log_time_ns").count().alias("messages"), (col("log_time_ns").max() - col("log_time_ns").min()).alias("span_ns"))
            .where(col("messages") > 1)
            .groupby("topic")
            .agg(col("span_ns").max().alias("span_ns"), col("messages").max().alias("messages"))
            .to_pylist()
        }
    except InspectionInfrastructureError:
        raise
    except Exception as exc:
        raise InspectionInfrastructureError(path, f"the content pipelines failed: {exc}") from exc

    out: dict[str, ContentProfile] = {}
    for topic, r in sorted(per_topic.items()):
        s, f = skew.get(topic, {}), runs.get(topic, {})
        out[topic] = ContentProfile(
            stamped=int(s.get("stamped") or 0),
            skew_p95_ns=float(s.get("p95") or 0.0),
            skew_max_ns=int(s.get("max") or 0),
            pause_ns=int(s.get("pause_ns") or 0),
            nonfinite_messages=int(r["nonfinite"] or 0),
            nonfinite_columns=tuple(c for c in numeric if r.get(f"nf_{c}")),
            image_formats=tuple(formats.get(topic, ())),
            valued=int(r["valued"] or 0),
            keyed=int(r["keyed"] or 0),
            longest_frozen_values_ns=int(f.get("span_ns") or 0),
            longest_frozen_values_messages=int(f.get("messages") or 1),
            decode_errors=int(r["decode_errors"] or 0),
            period_ns=float(timing.get(topic, {}).get("period_ns") or 0.0),
            timing_lost=int(timing.get(topic, {}).get("lost") or 0),
        )
    return out


def _topic_profiles(base, max_gap_ns: int) -> dict[str, TopicProfile]:
    """Per-topic figures in write order (Lance's row address: the order the recorder wrote the
    rows), so a sequence counter that resets and a clock that jumps back are told apart: each
    shows as a step back in its own column only."""
    import daft
    from daft import Window, col, lit

    int64 = daft.DataType.int64()
    by_write = Window().partition_by("topic").order_by("_rowaddr")
    steps = base.select("_rowaddr", "topic", "sequence", "log_time_ns", "head_hash", "tail_hash").with_columns(
        {
            "step_ns": col("log_time_ns") - col("log_time_ns").lag(1).over(by_write),
            "seq_step": col("sequence") - col("sequence").lag(1).over(by_write),
            # the same payload: the same header bytes and the same data bytes (see read_recording)
            "repeat": ((col("head_hash") == col("head_hash").lag(1).over(by_write))
                       & (col("tail_hash") == col("tail_hash").lag(1).over(by_write))).fill_null(False),
        }
    ).with_column(
        # the same message written twice in a row (a retried write): same number, time and bytes
        "dup", ((col("seq_step") == 0) & (col("step_ns") == 0) & col("repeat")).fill_null(False)
    ).collect()  # once: both pipelines below read it
    # a step of k in the sequence means k - 1 messages never arrived
    lost = (col("seq_step") - 1).clip(0, None)
    in_stall = (col("step_ns") > lit(max_gap_ns)).cast(int64)
    not_dup = lit(1) - col("dup").cast(int64)
    per_topic = steps.groupby("topic").agg(
        col("log_time_ns").count().alias("count"),
        col("log_time_ns").min().alias("first_ns"),
        col("log_time_ns").max().alias("last_ns"),
        col("step_ns").max().alias("max_step_ns"),
        col("step_ns").clip(0, None).sum().alias("active_ns"),
        (col("step_ns") < 0).cast(int64).sum().alias("backward_steps"),
        lost.sum().alias("lost_messages"),
        (lost * (lit(1) - in_stall)).sum().alias("dropped_messages"),
        (lost * in_stall).sum().alias("lost_in_gaps"),
        (col("repeat").cast(int64) * not_dup).sum().alias("repeated_payloads"),
        col("dup").cast(int64).sum().alias("duplicate_messages"),
        ((col("seq_step") == 0).cast(int64) * not_dup).sum().alias("repeated_sequences"),
        (col("seq_step") < 0).cast(int64).sum().alias("sequence_resets"),
        ((col("step_ns") == 0).cast(int64) * not_dup).sum().alias("zero_steps"),
        col("sequence").max().alias("max_sequence"),
    )
    # Runs of identical consecutive payloads: a running count of changes numbers the runs
    # (a duplicated row is not a frozen sensor: it neither starts nor extends a run).
    running = by_write.rows_between(Window.unbounded_preceding, Window.current_row)
    runs = (
        steps.where(~col("dup"))
        .with_column("run", (~col("repeat")).cast(int64).sum().over(running))
        .groupby("topic", "run")
        .agg(
            col("log_time_ns").count().alias("messages"),
            (col("log_time_ns").max() - col("log_time_ns").min()).alias("span_ns"),
        )
        .where(col("messages") > 1)
        .groupby("topic")
        .agg(col("span_ns").max().alias("longest_frozen_ns"), col("messages").max().alias("longest_frozen_messages"))
    )
    frozen = {r["topic"]: r for r in runs.to_pylist()}

    def n(value: Any) -> int:
        return int(value or 0)  # null for a single-message topic

    out: dict[str, TopicProfile] = {}
    for r in per_topic.to_pylist():
        f = frozen.get(r["topic"], {})
        out[r["topic"]] = TopicProfile(
            count=int(r["count"]),
            first_ns=int(r["first_ns"]),
            last_ns=int(r["last_ns"]),
            max_step_ns=n(r["max_step_ns"]),
            backward_steps=n(r["backward_steps"]),
            lost_messages=n(r["lost_messages"]),
            dropped_messages=n(r["dropped_messages"]),
            lost_in_gaps=n(r["lost_in_gaps"]),
            active_ns=n(r["active_ns"]),
            repeated_payloads=n(r["repeated_payloads"]),
            longest_frozen_ns=n(f.get("longest_frozen_ns")),
            longest_frozen_messages=int(f.get("longest_frozen_messages") or 1),
            duplicate_messages=n(r["duplicate_messages"]),
            repeated_sequences=n(r["repeated_sequences"]),
            sequence_resets=n(r["sequence_resets"]),
            zero_steps=n(r["zero_steps"]),
            max_sequence=n(r["max_sequence"]),
        )
    return dict(sorted(out.items()))


def _sync_profile(base, req: Requirements, topics: dict[str, TopicProfile]) -> SyncProfile | None:
    from daft import col

    topic, reference = req.sync_topic, req.sync_reference_topic
    if not topic or not reference or topic not in topics or reference not in topics:
        return None
    left = base.where(col("topic") == topic).select(col("log_time_ns").alias("t"))
    right = base.where(col("topic") == reference).select(col("log_time_ns").alias("t_ref"))
    offsets = left.join_asof(right, left_on="t", right_on="t_ref", strategy="nearest").select(
        (col("t") - col("t_ref")).abs().alias("offset_ns")
    )
    (row,) = offsets.agg(
        col("offset_ns").count().alias("samples"),
        col("offset_ns").percentile(req.sync_percentile / 100.0).alias("pct"),
        col("offset_ns").max().alias("max"),
    ).to_pylist()
    return SyncProfile(
        topic=topic,
        reference=reference,
        samples=int(row["samples"] or 0),
        percentile=float(req.sync_percentile),
        offset_percentile_ns=float(row["pct"] or 0.0),
        max_offset_ns=int(row["max"] or 0),
    )
