"""QC throughput: the full inspection suite vs merely reading the same data, in the same run.

    python bench/qc_throughput.py [--cache-dir DIR] [--gb 1.0] [--repeat 5]

A synthetic recording of at least ``--gb`` GB (camera frames of 640x480 rgb8, 921,600 bytes, at
30 Hz, plus joint states and IMU) is generated once into the cache dir (default
``.axon/bench/``) and reused. Then, alternately and ``--repeat`` times each, after one untimed
warm-up of each (imports, page cache):

* raw scan — Lance reads the columns the suite reads (topic, sequence, log_time_ns, payload) into
  Arrow batches, with the same batch size the suite's scan uses, and does nothing with them;
* QC suite — ``run_inspection`` on Daft's native runner: the read with payload hashing (the
  small columns in one Lance scan, the payloads hashed as a second scan reads them), every check's pipeline, the sidecar
  digest (SHA-256 of every file, one GIL-free call per file in a thread beside the scan), scoring;
* for information, the suite with ``verify_digest=False`` (what it costs when the edge cache has
  just verified the digest): the SHA-256 pass is a second full read of the bytes.

Prints MB/s (best run: the least disturbed by other load on the machine) and, as the last line,
``ratio: X.XX`` = full QC suite time / raw scan time. Target: <= 1.50.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from axon_dagster.domain import QcOutcome, Requirements  # noqa: E402
from axon_dagster.demo.sim.synthetic import default_topics, write_recording  # noqa: E402

VGA_RGB8 = 640 * 480 * 3
COLUMNS = ["topic", "sequence", "log_time_ns", "payload"]
START_NS = 1_700_000_000_000_000_000


def dataset_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def ensure_recording(cache_dir: Path, gb: float) -> Path:
    topics = default_topics(VGA_RGB8)
    bytes_per_s = sum(spec.rate_hz * spec.payload_bytes for spec in topics.values())
    duration_s = float(int(gb * 1e9 / bytes_per_s) + 2)
    path = cache_dir / f"qc-{gb:g}gb-{int(duration_s)}s.lance"
    sidecar = path.with_suffix(".json")
    if path.is_dir() and sidecar.exists():
        print(f"reusing {path} ({dataset_bytes(path) / 1e9:.2f} GB)", flush=True)
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    print(f"generating {path}: {duration_s:.0f} s of camera (VGA rgb8 @ 30 Hz), joint states, IMU ...", flush=True)
    started = time.monotonic()
    write_recording(path, task_id=path.stem.replace(".", "-"), robot_id="bench-robot", start_ns=START_NS,
                    duration_s=duration_s, topics=topics, seed=7)
    print(f"generated {dataset_bytes(path) / 1e9:.2f} GB in {time.monotonic() - started:.1f} s", flush=True)
    return path


def raw_scan(path: Path, batch_rows: int | None) -> int:
    import lance

    scanned = 0
    for batch in lance.dataset(str(path)).scanner(columns=COLUMNS, batch_size=batch_rows).to_batches():
        scanned += batch.nbytes
    return scanned


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("AXON_BENCH_DIR", ROOT / ".axon" / "bench")))
    parser.add_argument("--gb", type=float, default=1.0, help="minimum recording size in GB (default 1.0)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each (default 5)")
    args = parser.parse_args(argv)
    if args.gb <= 0 or args.repeat < 1:
        parser.error("--gb must be positive and --repeat at least 1")
    logging.basicConfig(level=logging.WARNING)

    import lance

    from axon_dagster.inspection.daft_profile import scan_batch_rows
    from axon_dagster.inspection.inspector import run_inspection, use_native_runner

    path = ensure_recording(args.cache_dir, args.gb)
    on_disk = dataset_bytes(path)
    if on_disk < args.gb * 1e9:
        raise SystemExit(f"{path} holds {on_disk / 1e9:.2f} GB < {args.gb} GB: delete it and rerun")
    ds = lance.dataset(str(path))
    # The same batch size the suite's scan uses (see daft_profile.read_recording).
    batch_rows = scan_batch_rows(ds.count_rows(), sum(f.bytes_on_disk for f in ds.stats.data_stats().fields))
    topics = default_topics(VGA_RGB8)
    requirements = Requirements.from_dict({
        "required_topics": list(topics),
        "expected_rates_hz": {t: s.rate_hz for t, s in topics.items()},
        "rate_tolerance": 0.05,
    })
    use_native_runner(str(path))

    print(f"dataset {path.name}: {ds.count_rows()} messages, {on_disk / 1e6:.0f} MB on disk; "
          f"scan batches of {batch_rows} rows; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
    # Warm-up: imports, Daft's first plan, the page cache.
    scanned = raw_scan(path, batch_rows)
    report = run_inspection(path, requirements)
    if report.outcome is not QcOutcome.APPROVED:
        raise SystemExit(f"the clean benchmark recording was not approved: {[c.detail for c in report.failed_checks]}")

    raw_times, qc_times, trusted_times = [], [], []
    for i in range(args.repeat):
        t = time.perf_counter()
        raw_scan(path, batch_rows)
        raw_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        report = run_inspection(path, requirements)
        qc_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        run_inspection(path, requirements, verify_digest=False)
        trusted_times.append(time.perf_counter() - t)
        print(f"run {i + 1}: raw scan {raw_times[-1]:.3f} s, QC suite {qc_times[-1]:.3f} s "
              f"({len(report.checks)} checks, {report.outcome.value}), without digest {trusted_times[-1]:.3f} s",
              flush=True)
    raw, qc, trusted = min(raw_times), min(qc_times), min(trusted_times)
    mb = scanned / 1e6
    print(f"raw scan (Lance -> Arrow, {', '.join(COLUMNS)}): {mb / raw:.0f} MB/s "
          f"(best {raw:.3f} s, median {statistics.median(raw_times):.3f} s over {mb:.0f} MB)")
    print(f"QC suite without the SHA-256 of the files (verify_digest=False): {mb / trusted:.0f} MB/s "
          f"(best {trusted:.3f} s; ratio {trusted / raw:.2f})")
    print(f"QC suite (Daft native, {len(report.checks)} checks incl. sidecar digest): {mb / qc:.0f} MB/s "
          f"(best {qc:.3f} s, median {statistics.median(qc_times):.3f} s)")
    print(f"ratio: {qc / raw:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
