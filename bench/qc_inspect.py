#!/usr/bin/env python
"""QC of an ingested ~1 GB Axon recording vs Lance reading the columns QC reads, in the same run.

    python bench/qc_inspect.py [--size-mb 1024] [--rounds 5] [--cache-dir DIR] [--without-hash-columns]

The recording is what ``bench/e2e.py`` records: an Axon MCAP of ~``--size-mb`` MB (zstd; 640x480
rgb8 camera at 30 Hz and the simulator's other default topics), ingested to Lance with
:func:`axon_dagster.ingest.ingest_mcap` (raw payloads + decoded columns + the payload hash columns,
:mod:`axon_dagster.ingest.payload_hash`). Both are generated once into the cache dir (default
``.axon/bench/``) and reused. First, in a fresh process, QC's first and second call (what the data
flow's run pays: one call per process). Then, after one untimed warm-up of each (imports, Daft's
first plan, the page cache), alternately ``--rounds`` times:

- floor: Lance reads, into Arrow, exactly the columns QC reads, as QC reads them — the metadata, the
  decoded columns and the payload hash columns in one scan (the payloads themselves only for the
  few rows whose data fingerprint repeats: none in this recording) — and does nothing with them;
- QC: :func:`axon_dagster.inspection.inspect_recording` on Daft's native runner with
  ``verify_digest=False`` and the requirements of ``bench/e2e.py``'s order, as the data flow runs it.

``--without-hash-columns`` measures a dataset ingested without the hash columns (as older
ingestions wrote it): QC then reads every payload (hashing each as it is read) and the floor reads
them too (the small columns in one scan, the payloads in a second with QC's batch size).
Also printed, for information: the payload bytes on disk QC does not read. Prints the best and
median of each and, last, ``ratio: X`` = best QC time / best floor time. Time it on a quiet
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


def ensure_recording(cache_dir: Path, size_mb: int, hash_columns: bool = True) -> tuple[Path, float]:
    """(Lance dataset, recorded seconds) of an ingested Axon MCAP of ~size_mb MB, made once (with or
    without the payload hash columns)."""
    import shutil

    import lance

    from axon_dagster.ingest import ingest_mcap
    from axon_dagster.ingest.payload_hash import PAYLOAD_HASH_COLUMNS

    topics = axon_default_topics(CAMERA_BYTES)
    root = cache_dir / f"inspect-{size_mb}mb"
    dataset = root / "lake" / ("inspect.lance" if hash_columns else "inspect-without-hash-columns.lance")
    seconds_file = root / "seconds"
    mcap = root / "robot" / "bench-inspect.mcap"
    if dataset.is_dir() and seconds_file.exists():
        if hash_columns == set(PAYLOAD_HASH_COLUMNS) <= set(lance.dataset(str(dataset)).schema.names):
            print(f"reusing {dataset} ({dataset_bytes(dataset) / MB:.0f} MB)", flush=True)
            return dataset, float(seconds_file.read_text())
        shutil.rmtree(dataset)  # made by an older ingestion
        dataset.with_suffix(".json").unlink(missing_ok=True)
    if mcap.is_file() and seconds_file.exists():
        _ingest(mcap, dataset, hash_columns)
        return dataset, float(seconds_file.read_text())
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
    _ingest(rec.mcap_path, dataset, hash_columns)
    seconds_file.write_text(str(seconds))
    print(f"MCAP {rec.file_size_bytes / MB:.0f} MB -> Lance {dataset_bytes(dataset) / MB:.0f} MB "
          f"in {time.monotonic() - started:.1f} s", flush=True)
    return dataset, seconds


def _ingest(mcap: Path, dataset: Path, hash_columns: bool) -> None:
    from axon_dagster.ingest import ingest_mcap, mcap_to_lance
    from axon_dagster.ingest.payload_hash import PAYLOAD_HASH_COLUMNS

    full = mcap_to_lance.ingested_schema
    if not hash_columns:  # as older ingestions wrote it
        import pyarrow as pa

        schema = pa.schema([f for f in full() if f.name not in PAYLOAD_HASH_COLUMNS])
        mcap_to_lance.ingested_schema = lambda: schema
    try:
        ingest_mcap(mcap, dataset, hash_mcap=True)  # what integrity checks against Axon's checksum
    finally:
        mcap_to_lance.ingested_schema = full


def qc_columns(dataset) -> list[str]:
    """The columns inspection reads (see axon_dagster.inspection.daft_profile.read_recording): the
    payload hash columns where the ingestion wrote them, else the payloads."""
    from axon_dagster.inspection.daft_profile import CONTENT_COLUMNS
    from axon_dagster.ingest.decode import NUMERIC_LIST_COLUMNS
    from axon_dagster.ingest.payload_hash import PAYLOAD_HASH_COLUMNS

    names = dataset.schema.names
    hashes = PAYLOAD_HASH_COLUMNS if set(PAYLOAD_HASH_COLUMNS) <= set(names) else ("payload",)
    wanted = ("topic", "sequence", "log_time_ns", *CONTENT_COLUMNS, "data_offset", *NUMERIC_LIST_COLUMNS, *hashes)
    return [c for c in wanted if c in names]


def first_calls(path: Path, requirements: dict) -> tuple[float, float]:
    """QC's first and second call in a fresh process (imports done before the first, not timed)."""
    import json
    import subprocess

    code = (
        "import json, sys, time\n"
        "from axon_dagster.domain import Requirements\n"
        "from axon_dagster.inspection import inspect_recording\n"
        "import daft, lance\n"
        "req = Requirements.from_dict(json.loads(sys.argv[2]))\n"
        "times = []\n"
        "for _ in range(2):\n"
        "    t = time.perf_counter(); inspect_recording(sys.argv[1], req, verify_digest=False); times.append(time.perf_counter() - t)\n"
        "print(json.dumps(times))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path), json.dumps(requirements)], cwd=REPO,
                         capture_output=True, text=True, check=True)
    first, second = json.loads(out.stdout.strip().splitlines()[-1])
    return first, second


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
    parser.add_argument("--without-hash-columns", action="store_true",
                        help="a dataset ingested without the payload hash columns (QC reads the payloads)")
    args = parser.parse_args(argv)
    if args.size_mb < 1 or args.rounds < 1:
        parser.error("--size-mb and --rounds must be at least 1")
    logging.basicConfig(level=logging.WARNING)

    import lance

    from axon_dagster.domain import Requirements
    from axon_dagster.inspection import inspect_recording
    from axon_dagster.inspection.daft_profile import scan_batch_rows

    path, seconds = ensure_recording(args.cache_dir, args.size_mb, hash_columns=not args.without_hash_columns)
    ds = lance.dataset(str(path))
    columns = qc_columns(ds)
    from axon_dagster.ingest.payload_hash import PAYLOAD_HASH_COLUMNS

    small = [c for c in columns if c != "payload" and c not in PAYLOAD_HASH_COLUMNS]
    # The batch size QC's payload scan uses.
    batch_rows = scan_batch_rows(ds.count_rows(), sum(f.bytes_on_disk for f in ds.stats.data_stats().fields))
    requirements = Requirements.from_dict({**REQUIREMENTS, "min_duration_seconds": seconds * 0.5})
    print(f"dataset {path}: {ds.count_rows()} messages, {dataset_bytes(path) / MB:.0f} MB on disk; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)

    lance_read(path, columns, batch_rows)  # the page cache, as in the data flow (the dataset just written)
    first, second = first_calls(path, {**REQUIREMENTS, "min_duration_seconds": seconds * 0.5})
    print(f"fresh process: QC's first call {first:.3f} s, second {second:.3f} s", flush=True)

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
    print(f"Lance read of the small columns alone (no payloads, no hashes): best {min(small_times):.3f} s")
    print(f"QC (inspect_recording, native, verify_digest=False, {len(report.checks)} checks): best {best_qc:.3f} s, "
          f"median {statistics.median(qc_times):.3f} s")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"ratio: {best_qc / floor:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
