"""Synthetic robot recordings: real Lance datasets of simulated sensor streams, with optional faults.

The simulator (``axon-sim``) and the tests use this to produce what the Axon recorder would write:
one row per message (topic, log time, per-topic sequence, message type, payload) plus the JSON
sidecar. Faults reproduce what goes wrong on real robots — dropped messages, a stall in every
topic, a topic that never published, a frozen sensor, a clock that jumps back, a data file lost
after writing — so inspection and the data flow can be exercised against them.

Rows are generated and written one time window at a time, so a long recording never needs all its
rows in memory.

Just over ~400 lines: the Lance-era writer and its fault injection are one concept (every fault is
applied in the same window loop), kept together.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from axon_dagster.domain.ids import validate_id
from axon_dagster.storage.digest import digest_of_files, file_digests
from axon_dagster.storage.recording import Sidecar, TopicSummary, recording_schema, sidecar_path

logger = logging.getLogger(__name__)

# Seconds of simulated time generated per record batch (bounds memory for long recordings).
CHUNK_SECONDS = 1.0
# Bytes at the start of every payload that carry (sequence, log_time_ns) so no two messages of a
# healthy topic are identical — a frozen sensor is then detectable as repeated payloads.
_HEADER_BYTES = 16
DEFAULT_CAMERA_PAYLOAD_BYTES = 8 * 1024


@dataclass(frozen=True)
class TopicSpec:
    rate_hz: float
    message_type: str
    payload_bytes: int

    def __post_init__(self) -> None:
        if not isinstance(self.rate_hz, (int, float)) or not math.isfinite(self.rate_hz) or self.rate_hz <= 0:
            raise ValueError(f"TopicSpec rate_hz must be a positive number, got {self.rate_hz!r}")
        if not isinstance(self.payload_bytes, int) or self.payload_bytes < 0:
            raise ValueError(f"TopicSpec payload_bytes must be a non-negative integer, got {self.payload_bytes!r}")
        if not isinstance(self.message_type, str) or not self.message_type:
            raise ValueError("TopicSpec message_type must be a non-empty string")


def default_topics(camera_payload_bytes: int = DEFAULT_CAMERA_PAYLOAD_BYTES) -> dict[str, TopicSpec]:
    """The simulated robot's sensors; raise ``camera_payload_bytes`` for realistic image sizes
    (a 640x480 rgb8 frame is 921,600 bytes) when data volume matters more than speed."""
    return {
        "/camera/image_raw": TopicSpec(30.0, "sensor_msgs/Image", camera_payload_bytes),
        # 7 joints x (position, velocity, effort) float64 + header
        "/joint_states": TopicSpec(200.0, "sensor_msgs/JointState", _HEADER_BYTES + 7 * 3 * 8),
        # orientation(4) + angular velocity(3) + linear acceleration(3) float64 + header
        "/imu": TopicSpec(100.0, "sensor_msgs/Imu", _HEADER_BYTES + 10 * 8),
    }


DEFAULT_TOPICS: Mapping[str, TopicSpec] = default_topics()
# What a topic the simulator does not know publishes (a task config may name any topic).
FALLBACK_TOPIC = TopicSpec(10.0, "std_msgs/String", 64)


def topic_specs_for(
    names: Iterable[str], known: Mapping[str, TopicSpec] = DEFAULT_TOPICS, fallback: TopicSpec = FALLBACK_TOPIC
) -> dict[str, TopicSpec]:
    """Specs for a task config's ``topics[]``: the known sensor where there is one, else ``fallback``;
    no names means all known topics."""
    names = list(names)
    if not names:
        return dict(known)
    return {name: known.get(name, fallback) for name in dict.fromkeys(names)}


@dataclass(frozen=True)
class Faults:
    """Faults to inject into a synthetic recording. The default injects none."""

    drop_rate: float = 0.0  # probability each message is lost (sequence gaps)
    gap_seconds: float = 0.0  # a stall: no topic publishes for this long ...
    gap_at_fraction: float = 0.5  # ... starting at this fraction of the recording
    missing_topics: tuple[str, ...] = ()  # topics that never publish
    fail_start: bool = False  # the recorder refuses to begin (used by the sim server only)
    frozen_topics: tuple[str, ...] = ()  # topics whose every payload is identical
    clock_backwards_at_fraction: float | None = None  # log time jumps back once, here ...
    clock_backwards_seconds: float = 0.5  # ... by this much
    truncate: bool = False  # a data file is lost after writing: the dataset is unreadable
    # Content faults, applied by the MCAP writer (:mod:`.axon_mcap`); the Lance layout ignores them.
    nan_topics: tuple[str, ...] = ()  # numeric fields of these topics turn NaN ...
    nan_at_fraction: float = 0.5  # ... from this fraction of the recording on
    image_change_at_fraction: float | None = None  # images change size and encoding here
    header_stamp_skew_seconds: float = 0.0  # every header.stamp lags its log time by this much
    sidecar_count_delta: int = 0  # the sidecar (and axon.recording) claim this many extra messages
    silent_from_fraction: float | None = None  # every topic stops publishing here; the recorder runs on
    # Sanity faults, applied by the Lance writer (this module):
    duplicate_rate: float = 0.0  # probability each message is written twice in a row (a retried write)
    sequence_reset_at_fraction: float | None = None  # every topic's sequence numbers restart at 0 here
    constant_time_topics: tuple[str, ...] = ()  # these topics log every message at the recording's start
    clock_offset_topics: tuple[str, ...] = ()  # these topics log on another clock ...
    clock_offset_seconds: float = 0.0  # ... this far ahead of the recording's

    def __post_init__(self) -> None:
        # Coerce JSON lists to tuples so Faults.from_dict(json.loads(...)) works and stays hashable.
        object.__setattr__(self, "missing_topics", _topic_tuple("missing_topics", self.missing_topics))
        object.__setattr__(self, "frozen_topics", _topic_tuple("frozen_topics", self.frozen_topics))
        object.__setattr__(self, "nan_topics", _topic_tuple("nan_topics", self.nan_topics))
        object.__setattr__(self, "constant_time_topics", _topic_tuple("constant_time_topics", self.constant_time_topics))
        object.__setattr__(self, "clock_offset_topics", _topic_tuple("clock_offset_topics", self.clock_offset_topics))
        _require_number("duplicate_rate", self.duplicate_rate, 0.0, 1.0)
        if self.sequence_reset_at_fraction is not None:
            _require_number("sequence_reset_at_fraction", self.sequence_reset_at_fraction, 0.0, 1.0)
        _require_number("clock_offset_seconds", self.clock_offset_seconds, -math.inf, math.inf)
        _require_number("nan_at_fraction", self.nan_at_fraction, 0.0, 1.0)
        if self.image_change_at_fraction is not None:
            _require_number("image_change_at_fraction", self.image_change_at_fraction, 0.0, 1.0)
        _require_number("header_stamp_skew_seconds", self.header_stamp_skew_seconds, -math.inf, math.inf)
        if self.silent_from_fraction is not None:
            _require_number("silent_from_fraction", self.silent_from_fraction, 0.0, 1.0)
        if isinstance(self.sidecar_count_delta, bool) or not isinstance(self.sidecar_count_delta, int):
            raise ValueError(f"fault sidecar_count_delta must be an integer, got {self.sidecar_count_delta!r}")
        _require_number("drop_rate", self.drop_rate, 0.0, 1.0, upper_open=True)
        _require_number("gap_seconds", self.gap_seconds, 0.0, math.inf)
        _require_number("gap_at_fraction", self.gap_at_fraction, 0.0, 1.0)
        _require_number("clock_backwards_seconds", self.clock_backwards_seconds, 0.0, math.inf)
        if self.clock_backwards_at_fraction is not None:
            _require_number("clock_backwards_at_fraction", self.clock_backwards_at_fraction, 0.0, 1.0)
        for name in ("fail_start", "truncate"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"fault {name} must be true or false, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Faults":
        """Build from JSON (``axon-sim --faults``, ``POST /sim/faults``); unknown keys are refused."""
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["missing_topics"] = list(self.missing_topics)
        out["frozen_topics"] = list(self.frozen_topics)
        out["nan_topics"] = list(self.nan_topics)
        out["constant_time_topics"] = list(self.constant_time_topics)
        out["clock_offset_topics"] = list(self.clock_offset_topics)
        return out

    @property
    def any(self) -> bool:
        return self != Faults()


def _require_number(name: str, value: object, low: float, high: float, upper_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = low <= value < high if upper_open else low <= value <= high
    if not ok:
        bound = f"[{low}, {high})" if upper_open else f"[{low}, {high}]"
        raise ValueError(f"fault {name} must be a number in {bound}, got {value!r}")


def _topic_tuple(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(t, str) for t in value):
        raise ValueError(f"fault {name} must be a list of topic names, got {value!r}")
    return tuple(value)


def window_messages(rate_hz: float, duration_s: float, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The (sequence numbers, nominal time offsets in ns) of a topic's messages in time window
    ``window`` (``CHUNK_SECONDS`` long) of a ``duration_s`` recording. The same boundary function
    for a window's end and the next window's start: every message lands in exactly one window."""
    total = math.ceil(duration_s * rate_hz - 1e-9)
    k_lo = min(total, math.ceil(window * CHUNK_SECONDS * rate_hz - 1e-9))
    k_hi = min(total, math.ceil((window + 1) * CHUNK_SECONDS * rate_hz - 1e-9))
    seq = np.arange(k_lo, max(k_lo, k_hi), dtype=np.int64)
    return seq, np.round(seq * (1e9 / rate_hz)).astype(np.int64)


def check_recording_args(
    start_ns: object, duration_s: object, topics: Mapping[str, TopicSpec], faults: object, *, start_name: str
) -> None:
    """The checks every synthetic-recording writer (Lance or MCAP) makes before writing anything."""
    if not isinstance(start_ns, int) or isinstance(start_ns, bool) or start_ns < 0:
        raise ValueError(f"{start_name} must be a non-negative integer, got {start_ns!r}")
    if not isinstance(duration_s, (int, float)) or not math.isfinite(duration_s) or duration_s <= 0:
        raise ValueError(f"duration_s must be a positive number of seconds, got {duration_s!r}")
    if not topics:
        raise ValueError("a recording needs at least one topic")
    for name, spec in topics.items():
        if not isinstance(name, str) or not name.startswith("/"):
            raise ValueError(f"topic names must be absolute ROS names starting with '/', got {name!r}")
        if not isinstance(spec, TopicSpec):
            raise ValueError(f"topic {name}: expected a TopicSpec, got {type(spec).__name__}")
    if not isinstance(faults, Faults):
        raise ValueError(f"faults must be a Faults, got {type(faults).__name__}")


def write_recording(
    dataset_dir: str | os.PathLike,
    *,
    task_id: str,
    robot_id: str,
    start_ns: int,
    duration_s: float,
    topics: Mapping[str, TopicSpec] = DEFAULT_TOPICS,
    faults: Faults = Faults(),
    metadata: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> Sidecar:
    """Write a synthetic recording as a Lance dataset at ``dataset_dir`` (``<task_id>.lance`` by
    convention) and its sidecar beside it; return the sidecar.

    The dataset appears atomically (written in a temporary directory beside it, then renamed); the
    sidecar is written last, so a sidecar implies a complete dataset. Refuses to overwrite.
    """
    import lance
    import pyarrow as pa

    dataset_dir = Path(dataset_dir)
    validate_id(task_id, "task_id")
    validate_id(robot_id, "robot_id")
    check_recording_args(start_ns, duration_s, topics, faults, start_name="start_ns")
    try:
        json.dumps(dict(metadata or {}))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata must be JSON-serialisable: {exc}") from None
    sidecar_file = sidecar_path(dataset_dir)
    if dataset_dir.exists() or sidecar_file.exists():
        raise FileExistsError(f"recording already exists: {dataset_dir}")
    dataset_dir.parent.mkdir(parents=True, exist_ok=True)

    generator = _Generator(topics, faults, start_ns, float(duration_s), seed)
    # Same parent directory as the target, so the final rename is atomic.
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{dataset_dir.name}.", suffix=".tmp", dir=dataset_dir.parent))
    try:
        staged = tmp_dir / dataset_dir.name
        reader = pa.RecordBatchReader.from_batches(recording_schema(), generator.batches())
        lance.write_dataset(reader, str(staged), schema=recording_schema(), mode="create")
        files = file_digests(staged)
        if faults.truncate:
            _lose_a_data_file(staged)
        os.rename(staged, dataset_dir)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)

    end_ns = start_ns + round(duration_s * 1e9)
    sidecar = Sidecar(
        task_id=task_id,
        robot_id=robot_id,
        metadata=dict(metadata or {}),
        topics=generator.summaries(),
        start_ns=start_ns,
        end_ns=end_ns,
        files=files,
        dataset_digest=digest_of_files(files),
        extra={"synthetic": True, "seed": seed, "faults": faults.to_dict()},
    )
    sidecar.write(sidecar_file)
    logger.info(
        "wrote synthetic recording %s: %d rows in %d topics over %.1f s%s",
        dataset_dir,
        sidecar.row_count,
        len(sidecar.topics),
        duration_s,
        f" with faults {faults.to_dict()}" if faults.any else "",
    )
    return sidecar


def _lose_a_data_file(dataset_dir: Path) -> None:
    data_files = sorted((dataset_dir / "data").glob("*.lance"))
    if not data_files:
        raise RuntimeError(f"truncate fault: no data file found in {dataset_dir}")
    data_files[-1].unlink()
    logger.info("truncate fault: deleted data file %s", data_files[-1].name)


class _Generator:
    """Produces the recording's record batches window by window, and tallies per-topic summaries."""

    def __init__(self, topics: Mapping[str, TopicSpec], faults: Faults, start_ns: int, duration_s: float, seed: int):
        self.faults = faults
        self.start_ns = start_ns
        self.duration_s = duration_s
        self.rng = np.random.default_rng(seed)
        self.topics = {name: spec for name, spec in topics.items() if name not in faults.missing_topics}
        self._tally: dict[str, list[int]] = {}  # topic -> [count, min_ns, max_ns]
        # A random byte pool that camera frames are cut from at moving offsets: frames differ
        # without paying for fresh random bytes every frame.
        biggest = max((s.payload_bytes for s in self.topics.values()), default=0)
        self._pool = self.rng.integers(0, 256, size=2 * biggest + 1, dtype=np.uint8)

    def summaries(self) -> dict[str, TopicSummary]:
        return {
            name: TopicSummary(count=c, message_type=self.topics[name].message_type, first_ns=lo, last_ns=hi)
            for name, (c, lo, hi) in sorted(self._tally.items())
        }

    def batches(self) -> Iterator[Any]:
        n_windows = max(1, math.ceil(self.duration_s / CHUNK_SECONDS))
        for window in range(n_windows):
            batch = self._window(window)
            if batch is not None:
                yield batch

    def _window(self, window: int) -> Any:
        import pyarrow as pa

        parts: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, pa.Array]] = []  # topic, seq, log, arrival, payload
        for name, spec in self.topics.items():
            seq, offset_ns = window_messages(spec.rate_hz, self.duration_s, window)
            if not len(seq):
                continue
            keep = self._kept(offset_ns)
            if not keep.any():
                continue
            seq, offset_ns = seq[keep], offset_ns[keep]
            period_ns = 1e9 / spec.rate_hz
            # Log time is a little after the nominal publish time (transport + scheduling latency);
            # jitter stays under half a period so a healthy topic remains monotonic.
            jitter_ns = np.minimum(np.abs(self.rng.normal(0.0, 0.03 * period_ns, len(seq))), 0.45 * period_ns)
            arrival_ns = self.start_ns + offset_ns + jitter_ns.astype(np.int64)
            log_ns = self._clock_jump(offset_ns, arrival_ns)
            if name in self.faults.constant_time_topics:  # a stuck clock
                log_ns = np.full(len(seq), self.start_ns, dtype=np.int64)
            if name in self.faults.clock_offset_topics:  # another clock domain
                log_ns = log_ns + round(self.faults.clock_offset_seconds * 1e9)
            seq = self._reset_sequences(spec, seq, offset_ns)
            payloads = self._payloads(name, spec, seq, log_ns)
            if self.faults.duplicate_rate > 0:  # the same row written again right after itself
                again = np.repeat(np.arange(len(seq)), 1 + (self.rng.random(len(seq)) < self.faults.duplicate_rate))
                seq, log_ns, arrival_ns, payloads = seq[again], log_ns[again], arrival_ns[again], payloads.take(pa.array(again))
            parts.append((name, seq, log_ns, arrival_ns, payloads))
            count, lo, hi = self._tally.get(name, [0, int(log_ns.min()), int(log_ns.max())])
            self._tally[name] = [count + len(seq), min(lo, int(log_ns.min())), max(hi, int(log_ns.max()))]
        if not parts:
            return None
        topic = pa.array([p[0] for p in parts for _ in range(len(p[1]))], pa.string())
        mtype = pa.array([self.topics[p[0]].message_type for p in parts for _ in range(len(p[1]))], pa.string())
        table = pa.table(
            {
                "topic": topic,
                "log_time_ns": pa.array(np.concatenate([p[2] for p in parts]), pa.int64()),
                "sequence": pa.array(np.concatenate([p[1] for p in parts]), pa.int64()),
                "message_type": mtype,
                "payload": pa.chunked_array([p[4] for p in parts], pa.binary()),
            },
            schema=recording_schema(),
        )
        # Interleave topics in true arrival order, as a recorder writes them — even when its clock
        # (the log time) jumps.
        order = np.argsort(np.concatenate([p[3] for p in parts]), kind="stable")
        return table.take(pa.array(order)).combine_chunks().to_batches()[0]

    def _kept(self, offset_ns: np.ndarray) -> np.ndarray:
        keep = np.ones(len(offset_ns), dtype=bool)
        f = self.faults
        if f.drop_rate > 0:
            keep &= self.rng.random(len(offset_ns)) >= f.drop_rate
        if f.gap_seconds > 0:
            gap_lo = f.gap_at_fraction * self.duration_s * 1e9
            keep &= ~((offset_ns >= gap_lo) & (offset_ns < gap_lo + f.gap_seconds * 1e9))
        return keep

    def _reset_sequences(self, spec: TopicSpec, seq: np.ndarray, offset_ns: np.ndarray) -> np.ndarray:
        """A restarted driver: sequence numbers start again from 0 at the fault's fraction."""
        at = self.faults.sequence_reset_at_fraction
        if at is None:
            return seq
        first_after = math.ceil(at * self.duration_s * spec.rate_hz - 1e-9)
        return np.where(offset_ns >= at * self.duration_s * 1e9, seq - first_after, seq)

    def _clock_jump(self, offset_ns: np.ndarray, log_ns: np.ndarray) -> np.ndarray:
        at = self.faults.clock_backwards_at_fraction
        if at is None:
            return log_ns
        jumped = offset_ns >= at * self.duration_s * 1e9
        return log_ns - jumped.astype(np.int64) * round(self.faults.clock_backwards_seconds * 1e9)

    def _payloads(self, name: str, spec: TopicSpec, seq: np.ndarray, log_ns: np.ndarray) -> Any:
        import pyarrow as pa

        n, size = len(seq), spec.payload_bytes
        if size == 0:
            return pa.array([b""] * n, pa.binary())
        if name in self.faults.frozen_topics:
            # A stuck driver republishes the same message: identical bytes, header included.
            rows = np.broadcast_to(self._pool[:size], (n, size))
        elif spec.message_type == "sensor_msgs/Image":
            starts = (seq * 7919) % (len(self._pool) - size)
            rows = self._pool[starts[:, None] + np.arange(size)]
        else:
            rows = self._signal_rows(seq, log_ns, size)
        if name not in self.faults.frozen_topics and size >= _HEADER_BYTES:
            rows = np.array(rows)  # writable copy
            rows[:, :_HEADER_BYTES] = np.stack([seq, log_ns], axis=1).astype("<i8").view(np.uint8)
        data = np.ascontiguousarray(rows).reshape(-1)
        offsets = np.arange(0, (n + 1) * size, size, dtype=np.int32)
        return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])

    def _signal_rows(self, seq: np.ndarray, log_ns: np.ndarray, size: int) -> np.ndarray:
        """Smooth float64 signals (joint motion, IMU readings) with sensor noise, as raw bytes."""
        n_values = max(1, (size + 7) // 8)
        t = (log_ns - self.start_ns)[:, None] / 1e9
        phase = np.arange(n_values)[None, :]
        values = np.sin(2 * np.pi * 0.25 * t + phase) + self.rng.normal(0.0, 0.01, (len(seq), n_values))
        return values.astype("<f8").view(np.uint8)[:, :size]
