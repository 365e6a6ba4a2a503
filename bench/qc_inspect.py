#!/usr/bin/env python
"""QC of an ingested ~1 GB Axon recording vs Lance reading the columns QC reads, in the same run.

    python bench/qc_inspect.py [--size-mb 1024] [--rounds 5] [--cache-dir DIR]

The recording is what ``bench/e2e.py`` records: an Axon MCAP of ~``--size-mb`` MB (zstd; 640x480
rgb8 camera at 30 Hz and the simulator's other default topics), ingested to Lance with
:func:`axon_dagster.ingest.ingest_mcap` (raw payloads + decoded columns). Both are generated once
into the cache dir (default ``.axon/bench/``) and reused. Then, after one untimed warm-up of each
(imports, Daft's first plan, the page cache), alternately ``--rounds`` times:

- floor: Lance reads, into Arrow, exactly the columns QC reads, as QC reads them (the small ones in
  one scan, the payloads in a second with QC's batch size) — the metadata and decoded columns, and
  the payloads (``frozen_streams`` compares whole payloads and ``frozen_values`` the
  camera's pixel bytes, so every byte is read once) — and does nothing with them;
- QC: :func:`axon_dagster.inspection.inspect_recording` on Daft's native runner with
  ``verify_digest=False`` and the requirements of ``bench/e2e.py``'s order, as the data flow runs it.

Also printed, for information: Lance reading the small columns alone (no payloads). Prints the best
and median of each and, last, ``ratio: X`` = best QC time / best floor time. Time it on a quiet
machine (or ``chrt -f 10 python bench/qc_inspect.py`` as a proxy for one).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable as a plain script from a checkout
    sys.path.insert(0, str(REPO))

from axon_dagster.demo.sim.axon_mcap import axon_default_topics, write_axon_recording  # noqa: E402

MB = 1_000_000
CAMERA_BYTES = 640 * 480 * 3
START_NS = 1_780_000_000_000_000_000
# bench/e2e.py's order, without its duration (set from the recording's)
REQUIREMENTS = {
    "required_topics": ["/camera/image_raw", "/joint_states", "/imu"],
    "expected_rates_hz": {"/camera/image_raw": 30.0, "/joint_states": 200.0, "/imu": 100.0},
    "max_gap_seconds": 0.5,
}


def dataset_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def ensure_recording(cache_dir: Path, size_mb: int) -> tuple[Path, float]:
    """(Lance dataset, recorded seconds) of an ingested Axon MCAP of ~size_mb MB, made once."""
    from axon_dagster.ingest import ingest_mcap

    topics = axon_default_topics(CAMERA_BYTES)
    root = cache_dir / f"inspect-{size_mb}mb"
    dataset = root / "lake" / "inspect.lance"
    seconds_file = root / "seconds"
    if dataset.is_dir() and seconds_file.exists():
        print(f"reusing {dataset} ({dataset_bytes(dataset) / MB:.0f} MB)", flush=True)
        return dataset, float(seconds_file.read_text())
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    # Seconds for ~size_mb of MCAP: the simulator's zstd ratio measured on a 3 s sample first.
    sample = write_axon_recording(root / "sample", task_config={"task_id": "sample", "skills": ["x"]}, device_id="bench",
                                  started_at_ns=START_NS, duration_s=3.0, topics=topics, seed=1)
    seconds = max(2.0, round(size_mb * MB / (sample.file_size_bytes / 3.0), 1))
    shutil.rmtree(root / "sample")
    print(f"generating {root}: {seconds:.1f} s of Axon MCAP (camera 640x480 rgb8 @ 30 Hz + default topics) ...", flush=True)
    started = time.monotonic()
    rec = write_axon_recording(root / "robot", task_config={"task_id": "bench-inspect", "skills": ["navigation"]},
                               device_id="bench", started_at_ns=START_NS, duration_s=seconds, topics=topics, seed=1)
    ingest_mcap(rec.mcap_path, dataset, mcap_sha256=rec.checksum_sha256)
    seconds_file.write_text(str(seconds))
    print(f"MCAP {rec.file_size_bytes / MB:.0f} MB -> Lance {dataset_bytes(dataset) / MB:.0f} MB "
          f"in {time.monotonic() - started:.1f} s", flush=True)
    return dataset, seconds


def qc_columns(dataset) -> list[str]:
    """The columns inspection reads (see axon_dagster.inspection.daft_profile.read_recording)."""
    from axon_dagster.inspection.daft_profile import CONTENT_COLUMNS
    from axon_dagster.ingest.decode import NUMERIC_LIST_COLUMNS

    wanted = ("topic", "sequence", "log_time_ns", *CONTENT_COLUMNS, "data_offset", *NUMERIC_LIST_COLUMNS, "payload")
    return [c for c in wanted if c in dataset.schema.names]


def lance_read(path: Path, columns: list[str], batch_rows: int | None) -> int:
    """Read ``columns`` into Arrow batches and drop them: the small ones in Lance's default batches,
    the payloads in ``batch_rows`` batches (the cheapest plain read: as QC reads them)."""
    import lance

    ds = lance.dataset(str(path))
    small = [c for c in columns if c != "payload"]
    scanned = ds.to_table(columns=small).nbytes if small else 0
    if "payload" in columns:
        for batch in ds.scanner(columns=["payload"], batch_size=batch_rows).to_batches():
            scanned += batch.nbytes
    return scanned


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="MCAP size in MB (default 1024, as bench-e2e)")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each (default 5)")
    parser.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("AXON_BENCH_DIR", REPO / ".axon" / "bench")))
    args = parser.parse_args(argv)
    if args.size_mb < 1 or args.rounds < 1:
        parser.error("--size-mb and --rounds must be at least 1")
    logging.basicConfig(level=logging.WARNING)

    import lance

    from axon_dagster.domain import Requirements
    from axon_dagster.inspection import inspect_recording
    from axon_dagster.inspection.daft_profile import scan_batch_rows

    path, seconds = ensure_recording(args.cache_dir, args.size_mb)
    ds = lance.dataset(str(path))
    columns = qc_columns(ds)
    small = [c for c in columns if c != "payload"]
    # The batch size QC's payload scan uses.
    batch_rows = scan_batch_rows(ds.count_rows(), sum(f.bytes_on_disk for f in ds.stats.data_stats().fields))
    requirements = Requirements.from_dict({**REQUIREMENTS, "min_duration_seconds": seconds * 0.5})
    print(f"dataset {path}: {ds.count_rows()} messages, {dataset_bytes(path) / MB:.0f} MB on disk; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)

    def qc():
        return inspect_recording(path, requirements, verify_digest=False)

    # Warm-up: imports, Daft's first plan, the page cache.
    scanned = lance_read(path, columns, batch_rows)
    report = qc()
    if report.failed_checks:
        raise SystemExit(f"bench-inspect: the clean recording failed checks: {[c.detail for c in report.failed_checks]}")

    floor_times, qc_times, small_times = [], [], []
    for i in range(args.rounds):
        t = time.perf_counter()
        lance_read(path, columns, batch_rows)
        floor_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        report = qc()
        qc_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        lance_read(path, small, None)
        small_times.append(time.perf_counter() - t)
        print(f"round {i + 1}: Lance read of QC's columns {floor_times[-1]:.3f} s, QC {qc_times[-1]:.3f} s "
              f"({len(report.checks)} checks, {report.outcome.value}), small columns alone {small_times[-1]:.3f} s",
              flush=True)
    floor, best_qc = min(floor_times), min(qc_times)
    print(f"Lance read of QC's columns ({len(columns)} columns, {scanned / MB:.0f} MB in Arrow): best {floor:.3f} s, "
          f"median {statistics.median(floor_times):.3f} s")
    print(f"Lance read of the small columns alone (no payloads): best {min(small_times):.3f} s")
    print(f"QC (inspect_recording, native, verify_digest=False, {len(report.checks)} checks): best {best_qc:.3f} s, "
          f"median {statistics.median(qc_times):.3f} s")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"ratio: {best_qc / floor:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
