#!/usr/bin/env python
"""MCAP -> Lance ingestion vs reading and decoding the same MCAP with the ``mcap`` reader alone.

    python bench/ingest.py [--size-mb 1024] [--rounds 2] [--keep]

Writes an Axon-shaped MCAP with the simulator's writer (zstd, empty schemas as Axon leaves them,
real CDR messages): 640x480 rgb8 images at 30 Hz, 32k-point clouds at 10 Hz, IMU at 200 Hz, joint
states at 500 Hz, odometry at 50 Hz — as many seconds as it takes to hold ``--size-mb`` of message
bytes. Memory is warmed (3x that much scratch data written and deleted: see ``warm_memory``),
then, alternating, ``--rounds`` times each (the file in the page cache for both):

- baseline: ``mcap``'s reader, ``iter_decoded_messages`` with the same ROS decoders the ingestion
  uses (rosbags type stores by type name: Axon's schemas are empty, so the schema-text decoders of
  ``mcap-ros2-support`` cannot decode them), every message decoded, nothing kept;
- ingestion: :func:`axon_dagster.ingest.ingest_mcap` — read, decode, decoded columns, raw payloads,
  Lance dataset written, its files hashed into the sidecar.

Prints the figures per round (wall seconds, MB/s, CPU seconds user + system of all threads, the
load average), the best of each, the CPU ratio (less sensitive to a busy machine: on 2 cores the
ingestion's hashing and Lance's writer run beside the reader, so its wall time only gains from a
free core) and, last, ``ratio: X`` = best ingestion wall time / best baseline wall time (target <= 1.5). Generated data lives in a temporary
directory under /tmp and is deleted at the end (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable as a plain script from a checkout
    sys.path.insert(0, str(REPO))

from axon_dagster.ingest import RosDecoderFactory, ingest_mcap  # noqa: E402
from guest_memory import memory_kept_by_the_guest, warm_memory  # noqa: E402  (bench/, first on sys.path)
from axon_dagster.demo.sim.axon_mcap import write_axon_recording  # noqa: E402
from axon_dagster.demo.sim.synthetic import TopicSpec  # noqa: E402

MB = 1_000_000
CPU: dict[str, list[tuple[float, float]]] = {"baseline": [], "ingestion": []}  # (user, system) CPU s, all threads
TOPICS = {
    "/camera/image_raw": TopicSpec(30.0, "sensor_msgs/Image", 640 * 480 * 3),
    "/lidar/points": TopicSpec(10.0, "sensor_msgs/PointCloud2", 32768 * 16),
    "/imu": TopicSpec(200.0, "sensor_msgs/Imu", 16 + 10 * 8),
    "/joint_states": TopicSpec(500.0, "sensor_msgs/JointState", 16 + 7 * 3 * 8),
    "/odom": TopicSpec(50.0, "nav_msgs/Odometry", 16 + 13 * 8),
}


def bytes_per_second() -> float:
    return sum(spec.rate_hz * spec.payload_bytes for spec in TOPICS.values())


def make_mcap(root: Path, size_mb: int):
    seconds = max(1.0, round(size_mb * MB / bytes_per_second() + 0.5))
    started = time.monotonic()
    rec = write_axon_recording(
        root / "recording", task_config={"task_id": "bench-ingest", "scene": "bench", "skills": ["ingest"]},
        device_id="bench-robot", started_at_ns=1_780_000_000_000_000_000, duration_s=seconds, topics=TOPICS, seed=1,
    )
    print(f"wrote {rec.mcap_path.name}: {rec.file_size_bytes / MB:.0f} MB on disk (zstd), {rec.message_count} messages, "
          f"{seconds:.0f} s of recording, in {time.monotonic() - started:.1f} s", flush=True)
    return rec


def read_through(path: Path) -> None:
    """Bring the file into the page cache, so both measurements read from memory."""
    with open(path, "rb") as fh:
        while fh.read(16 * 1024 * 1024):
            pass


def baseline(mcap_path: Path) -> tuple[float, int, int]:
    """(seconds, messages, message bytes): mcap's reader with the ROS decoders, every message decoded."""
    from mcap.reader import make_reader

    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    messages = payload = 0
    with open(mcap_path, "rb") as fh:
        reader = make_reader(fh, decoder_factories=[RosDecoderFactory()])
        for _schema, _channel, message, decoded in reader.iter_decoded_messages(log_time_order=False):
            messages += 1
            payload += len(message.data)
            assert decoded is not None
    elapsed = time.perf_counter() - started
    CPU["baseline"].append(_cpu_since(usage))
    return elapsed, messages, payload


def ingestion(mcap_path: Path, out: Path) -> tuple[float, int]:
    if out.exists():
        shutil.rmtree(out)
        out.with_suffix(".json").unlink(missing_ok=True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    result = ingest_mcap(mcap_path, out, progress_every_s=3600)
    elapsed = time.perf_counter() - started
    CPU["ingestion"].append(_cpu_since(usage))
    assert result.decode_errors == 0 and not result.undecodable and result.decoded == result.rows
    return elapsed, result.rows


def _cpu_since(before) -> tuple[float, float]:
    now = resource.getrusage(resource.RUSAGE_SELF)
    return now.ru_utime - before.ru_utime, now.ru_stime - before.ru_stime


def _cpu(kind: str) -> str:
    user, system = CPU[kind][-1]
    return f"CPU {user + system:.2f} s (user {user:.2f}, system {system:.2f}), load {os.getloadavg()[0]:.2f}"


def _best_cpu(kind: str) -> float:
    return min(user + system for user, system in CPU[kind])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="message bytes to write (default 1024 = 1 GB)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args(argv)
    import daft  # noqa: F401  (imported before timing: imports cost seconds, once per process;
    import lance  # noqa: F401  daft hashes the payloads for the hash columns)

    root = Path(tempfile.mkdtemp(prefix="axon-bench-ingest-", dir="/tmp"))
    guest = contextlib.ExitStack()
    memory = guest.enter_context(memory_kept_by_the_guest())
    try:
        print(memory, flush=True)
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)", flush=True)
        rec = make_mcap(root, args.size_mb)
        warm_memory(root, 3 * args.size_mb)
        read_through(rec.mcap_path)
        base_times, ingest_times = [], []
        for round_ in range(1, args.rounds + 1):
            b, messages, payload = baseline(rec.mcap_path)
            base_times.append(b)
            print(f"round {round_}: mcap reader + decode {b:.2f} s ({payload / MB / b:.0f} MB/s of messages, "
                  f"{messages / b:.0f} msgs/s), {_cpu('baseline')}", flush=True)
            i, rows = ingestion(rec.mcap_path, root / "lake" / "bench-ingest.lance")
            ingest_times.append(i)
            assert rows == messages
            print(f"round {round_}: ingestion to Lance {i:.2f} s ({payload / MB / i:.0f} MB/s of messages), {_cpu('ingestion')}", flush=True)
        lance_bytes = sum(p.stat().st_size for p in (root / "lake" / "bench-ingest.lance").rglob("*") if p.is_file())
        print(f"messages: {messages}, message bytes: {payload / MB:.0f} MB, MCAP {rec.file_size_bytes / MB:.0f} MB, "
              f"Lance dataset {lance_bytes / MB:.0f} MB")
        print(f"best: mcap reader + decode {min(base_times):.2f} s, ingestion {min(ingest_times):.2f} s")
        print(f"CPU seconds (all threads; less sensitive to a busy machine): mcap reader + decode "
              f"{_best_cpu('baseline'):.2f}, ingestion {_best_cpu('ingestion'):.2f}, "
              f"cpu ratio {_best_cpu('ingestion') / _best_cpu('baseline'):.3f}")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"ratio: {min(ingest_times) / min(base_times):.3f}")
    finally:
        guest.close()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
