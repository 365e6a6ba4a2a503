#!/usr/bin/env python
"""The robot's upload through pre-signed S3 part URLs vs boto3's ``upload_file`` (``make bench-upload``).

    python bench/upload_presigned.py [--size-mb 128] [--part-mb 8] [--concurrency 4] [--rounds 5]

Both send the same file to the same S3 endpoint — moto's server, started here as its own process
on a localhost port — with the same part size and concurrency, in alternating rounds of the same
run (the order swapped every round), each round to a fresh key:

- **robot**: the edge agent's uploader (``axon_edge.upload``) as it runs on a robot: no bucket
  credentials, an upload plan of pre-signed UploadPart URLs made by the same staging code the
  control plane uses (``S3ObjectStore.start_multipart/part_targets/list_parts``), every part read,
  MD5-hashed, sent with ``Content-MD5`` and its ETag checked, each verified part written to the
  agent's SQLite state (resumable), then CompleteMultipartUpload; uncapped;
- **boto3**: ``upload_file`` with a default client (what users run), the same part size and
  concurrency, no verification of its own.

Timed from the plan request (robot) / the call (boto3) to the completed object. The last line is
``ratio: X.XX`` = the robot's median throughput / boto3's (target >= 0.90).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "edge", REPO / "bench"):
    if str(path) not in sys.path:  # runnable as a plain script from a checkout
        sys.path.insert(0, str(path))

import boto3  # noqa: E402
from boto3.s3.transfer import TransferConfig  # noqa: E402
from upload_throughput import CREDENTIALS, MiB, start_moto, write_random_file  # noqa: E402

from axon_dagster.storage.object_stores import S3ObjectStore  # noqa: E402
from axon_dagster.storage.object_stores.staging import plan_parts  # noqa: E402
from axon_edge.db import EdgeDB  # noqa: E402
from axon_edge.upload import PartSender, Uploader, UploadState  # noqa: E402


class StagingPlans:
    """The control plane's plan and complete for one file, without its HTTP: the same staging calls."""

    def __init__(self, store: S3ObjectStore, key: str, name: str, size: int, sha256: str, part_size: int):
        self.store, self.key, self.name, self.size, self.sha256, self.part_size = store, key, name, size, sha256, part_size
        self.upload_id = ""

    def plan(self, task_id: str, grant_id: str) -> dict:
        if not self.upload_id:
            self.upload_id = self.store.start_multipart(self.key)
        specs = plan_parts(self.size, self.part_size)
        targets = self.store.part_targets(self.key, self.upload_id, specs, expires_s=900)
        parts = [{**t.to_json(), "offset": s.offset, "size": s.size} for s, t in zip(specs, targets)]
        done = [{"number": n, "etag": e} for n, e in self.store.list_parts(self.key, self.upload_id).items()]
        return {"grant_id": grant_id, "expires_at": "", "part_size": self.part_size,
                "files": [{"name": self.name, "size": self.size, "sha256": self.sha256, "upload_id": self.upload_id,
                           "parts": parts, "done_parts": done}]}

    def complete(self, task_id: str, grant_id: str, files: dict) -> dict:
        self.store.complete_multipart(self.key, self.upload_id, {p["number"]: p["etag"] for p in files[self.name]})
        return {"status": "STAGED"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=128)
    parser.add_argument("--part-mb", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    size, part = args.size_mb * MiB, args.part_mb * MiB
    work = Path(tempfile.mkdtemp(prefix="axon-bench-presigned-"))
    moto, url = start_moto()
    try:
        path = work / "t-1.mcap"
        sha = write_random_file(path, args.size_mb)
        manifest = {"files": [{"name": path.name, "size": size, "sha256": sha}], "dataset_digest": sha}
        client = boto3.client("s3", endpoint_url=url, **CREDENTIALS)
        client.create_bucket(Bucket="bench")
        store = S3ObjectStore("bench", endpoint_url=url, client=boto3.client("s3", endpoint_url=url, **CREDENTIALS))
        transfer = TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=args.concurrency)
        sender = PartSender(concurrency=args.concurrency)
        db = EdgeDB(work / "edge.db")

        def run_robot(i: int) -> float:
            key = f"staging/robot-1/t-{i}/{path.name}"
            api = StagingPlans(store, key, path.name, size, sha, part)
            uploader = Uploader(api, UploadState(db), sender, concurrency=args.concurrency, progress_interval=3600)  # type: ignore[arg-type]
            started = time.perf_counter()
            result = uploader.upload(f"t-{i}", f"g-{i}", work, manifest)
            elapsed = time.perf_counter() - started
            assert result.parts_sent == -(-size // part) and result.parts_skipped == 0
            return size / elapsed

        def run_boto3(i: int) -> float:
            started = time.perf_counter()
            client.upload_file(str(path), "bench", f"boto3/{i}", Config=transfer)
            return size / (time.perf_counter() - started)

        load = os.getloadavg()
        print(f"file {args.size_mb} MiB, part size {args.part_mb} MiB, concurrency {args.concurrency}, moto server at {url}, "
              f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
        run_boto3(-1)  # warm both paths (connection pools, imports) before measuring
        run_robot(-1)
        runs = {"robot": (run_robot, []), "boto3": (run_boto3, [])}
        names = list(runs)
        for i in range(args.rounds):
            for name in (names if i % 2 == 0 else names[::-1]):
                fn, rates = runs[name]
                rates.append(fn(i))
                print(f"round {i + 1} {name:5s}: {rates[-1] / 1e6:7.1f} MB/s")
        # Both objects are the file: the robot's checked against its SHA-256 (as the control plane does), boto3's by size.
        staged = client.get_object(Bucket="bench", Key=f"staging/robot-1/t-0/{path.name}")["Body"].read()
        assert hashlib.sha256(staged).hexdigest() == sha
        assert client.head_object(Bucket="bench", Key="boto3/0")["ContentLength"] == size
        robot, base = statistics.median(runs["robot"][1]), statistics.median(runs["boto3"][1])
        print(f"boto3 upload_file, default client (median): {base / 1e6:.1f} MB/s")
        print(f"robot uploader, pre-signed parts, verified (median): {robot / 1e6:.1f} MB/s")
        load = os.getloadavg()
        print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        print(f"ratio: {robot / base:.2f}")
        sender.close()
        db.close()
    finally:
        moto.terminate()
        moto.wait(10)
        for p in sorted(work.rglob("*"), reverse=True):
            p.unlink() if p.is_file() or p.is_symlink() else p.rmdir()
        work.rmdir()


if __name__ == "__main__":
    main()
