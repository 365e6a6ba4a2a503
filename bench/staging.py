#!/usr/bin/env python
"""Staging a recording into the edge cache vs ``shutil.copytree`` on the same filesystem.

    python bench/staging.py [--size-mb 1024] [--files 64] [--rounds 3]

Builds a dataset directory of ``--size-mb`` of random bytes in ``--files`` files with its sidecar
(SHA-256 of every file, as the recorder writes it), then times, on the same filesystem:

- ``shutil.copytree`` of the dataset (the baseline: what a naive "move to edge cache" costs);
- ``EdgeCache.stage`` with the default ``verify_linked="inode"``: hardlinks, the sidecar's digest
  checked against its file list, every staged file checked to be the recorder's inode — no byte
  re-read (the upload hashes every byte it sends against the sidecar);
- ``EdgeCache.stage`` with ``verify_linked="hash"`` (re-hashes the linked files), for reference;
- for context, what the two spend on durability: copytree + fsync of every copied file and
  directory (a durable copy), and the staging time with its fsyncs counted apart (on a shared,
  busy disk an fsync waits for other writers' data: that wait, not the staging work, dominates).

Each stage goes into a fresh cache; every measurement starts after ``os.sync()`` (see ``timed``).
Note: copytree's copy is not fsynced (not durable); staging is (the rename into the cache is
fsynced, and a linked entry holds no new bytes: its files are the recorder's own inodes). The last line is ``staging ratio: X.XXXX`` (default stage time
/ copytree time; target <= 0.01).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable as a plain script from a checkout
    sys.path.insert(0, str(REPO))

from axon_dagster.storage.digest import digest_of_files, file_digests  # noqa: E402
from axon_dagster.storage.edge_cache import EdgeCache  # noqa: E402
from axon_dagster.storage.recording import Sidecar, sidecar_path  # noqa: E402

MiB = 1 << 20


def make_dataset(root: Path, size_mb: int, n_files: int) -> Path:
    ds = root / "recorder" / "task-bench.lance"
    (ds / "data").mkdir(parents=True)
    per_file = size_mb * MiB // n_files
    for i in range(n_files):
        with open(ds / "data" / f"{i:04d}.lance", "wb") as fh:
            left = per_file
            while left:
                chunk = os.urandom(min(left, 8 * MiB))
                fh.write(chunk)
                left -= len(chunk)
    (ds / "_versions").mkdir()
    (ds / "_versions" / "1.manifest").write_bytes(os.urandom(4096))
    files = file_digests(ds)
    Sidecar("task-bench", "robot-bench", {}, {}, 0, 1, files, digest_of_files(files)).write(sidecar_path(ds))
    return ds


def durable_copytree(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest)
    for dirpath, _dirs, files in os.walk(dest):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as fh:
                os.fsync(fh.fileno())
        fd = os.open(dirpath, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def timed(fn) -> float:
    # Start each measurement with no dirty data pending: otherwise the fsyncs that make staging
    # durable would pay for writing back the bytes the previous copytree left in the page cache.
    os.sync()
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to build the dataset (default: a temp dir)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="axon-bench-staging-", dir=args.dir))
    try:
        src = make_dataset(work, args.size_mb, args.files)
        print(f"dataset {args.size_mb} MiB in {args.files + 1} files at {src} (filesystem device {os.stat(src).st_dev})")
        copies, durable_copies, stages, fsyncs, hashed = [], [], [], [], []
        real_fsync = os.fsync

        def counted_fsync(fd: int) -> None:
            started = time.perf_counter()
            real_fsync(fd)
            fsyncs[-1] += time.perf_counter() - started

        for i in range(args.rounds):
            dest = work / f"copy-{i}"
            copies.append(timed(lambda: shutil.copytree(src, dest)))
            shutil.rmtree(dest)
            durable_copies.append(timed(lambda: durable_copytree(src, work / f"dcopy-{i}")))
            shutil.rmtree(work / f"dcopy-{i}")
            cache = EdgeCache(work / f"cache-{i}")
            fsyncs.append(0.0)
            os.fsync = counted_fsync
            try:
                stages.append(timed(lambda: cache.stage(src, f"task-{i}")))
            finally:
                os.fsync = real_fsync
            cache_h = EdgeCache(work / f"cache-hash-{i}", verify_linked="hash")
            hashed.append(timed(lambda: cache_h.stage(src, f"task-{i}")))
            print(f"round {i + 1}: copytree {copies[-1]:.3f}s, durable copytree {durable_copies[-1]:.3f}s, "
                  f"stage (inode check) {stages[-1] * 1000:.1f} ms of which fsync {fsyncs[-1] * 1000:.1f} ms, "
                  f"stage (re-hash) {hashed[-1]:.3f}s")
        copy, stage, rehash = statistics.median(copies), statistics.median(stages), statistics.median(hashed)
        work_only = statistics.median(s - f for s, f in zip(stages, fsyncs))
        print(f"shutil.copytree (median): {copy:.3f}s ({args.size_mb / copy:.0f} MiB/s); "
              f"durable copytree (median): {statistics.median(durable_copies):.3f}s")
        print(f"EdgeCache.stage, hardlinks + inode check (median): {stage * 1000:.1f} ms; "
              f"without its fsync waits: {work_only * 1000:.1f} ms ({work_only / copy:.4f} of copytree)")
        print(f"EdgeCache.stage, hardlinks + re-hash (median): {rehash:.3f}s ({rehash / copy:.2f} of copytree)")
        print(f"staging ratio: {stage / copy:.4f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
