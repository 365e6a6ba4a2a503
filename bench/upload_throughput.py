#!/usr/bin/env python
"""Upload throughput: our uploader vs boto3's ``upload_file`` (``make bench-upload``).

    python bench/upload_throughput.py [--size-mb 128] [--part-mb 8] [--concurrency 4] [--rounds 5]

Both upload the same file to the same S3 endpoint — moto's server, started here as its own
process on a localhost port — with the same part size and concurrency, in alternating rounds of
the same run (rotating the order every round), each round to a fresh key. Ours runs as the data
flow uses it: uncapped, verification on (SHA-256 of every part sent as its checksum, SHA-256 of
the whole file checked against the expected digest, the store's composite checksum compared
after completion, resumable state written per part), with the client options ``S3ObjectStore``
gives its own client (``S3ObjectStore.client_options()``: the body is not signed a second time
because its signed checksum header already covers it). boto3 runs as users run it: a default
client (CRC32 checksums, SigV4 payload signing over http) and no verification. For reference,
boto3 also runs with our client options ("boto3*"). The last line is ``ratio: X.XX`` = our median
throughput / default boto3's (target >= 0.90).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable as a plain script from a checkout
    sys.path.insert(0, str(REPO))

import boto3  # noqa: E402
from boto3.s3.transfer import TransferConfig  # noqa: E402

from axon_dagster.storage.bandwidth import RateLimiter, UploadQueue  # noqa: E402
from axon_dagster.storage.object_stores.s3_multipart import MultipartUploader  # noqa: E402

MiB = 1 << 20
CREDENTIALS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench", "region_name": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("moto server did not start")
            time.sleep(0.1)


def write_random_file(path: Path, size_mb: int) -> str:
    """``size_mb`` MiB of random bytes (incompressible, like a zstd MCAP) at ``path``; their SHA-256."""
    h = hashlib.sha256()
    with open(path, "wb") as fh:
        for _ in range(size_mb):
            chunk = os.urandom(MiB)
            fh.write(chunk)
            h.update(chunk)
    return h.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=128)
    parser.add_argument("--part-mb", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    size, part = args.size_mb * MiB, args.part_mb * MiB
    work = Path(tempfile.mkdtemp(prefix="axon-bench-upload-"))
    moto, url = start_moto()
    try:
        path = work / "payload.bin"
        sha = write_random_file(path, args.size_mb)

        client = boto3.client("s3", endpoint_url=url, **CREDENTIALS)
        client.create_bucket(Bucket="bench")
        transfer = TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=args.concurrency)
        from botocore.config import Config

        from axon_dagster.storage.object_stores import S3ObjectStore

        ours_client = boto3.client("s3", endpoint_url=url, config=Config(**S3ObjectStore.client_options()), **CREDENTIALS)
        same_options = boto3.client("s3", endpoint_url=url, config=Config(**S3ObjectStore.client_options()), **CREDENTIALS)

        def run_ours(i: int) -> float:
            uploader = MultipartUploader(
                ours_client, state_dir=work / f"state-{i}", part_size=part, concurrency=args.concurrency,
                rate_limiter=RateLimiter(None), queue=UploadQueue(), progress_interval=3600,
            )
            started = time.perf_counter()
            result = uploader.upload_file(path, "bench", f"ours/{i}", sha256=sha, metadata={"dataset-digest": sha})
            elapsed = time.perf_counter() - started
            uploader.close()
            assert result.parts_sent == result.parts_total and not result.skipped
            return size / elapsed

        def run_boto3(i: int) -> float:
            started = time.perf_counter()
            client.upload_file(str(path), "bench", f"boto3/{i}", Config=transfer)
            return size / (time.perf_counter() - started)

        def run_boto3_same(i: int) -> float:
            started = time.perf_counter()
            same_options.upload_file(str(path), "bench", f"boto3-same/{i}", Config=transfer)
            return size / (time.perf_counter() - started)

        print(f"file {args.size_mb} MiB, part size {args.part_mb} MiB, concurrency {args.concurrency}, moto server at {url}")
        run_boto3(-1)  # warm every path (connection pools, imports) before measuring
        run_boto3_same(-1)
        run_ours(-1)
        runs = {"ours": (run_ours, []), "boto3": (run_boto3, []), "boto3*": (run_boto3_same, [])}
        names = list(runs)
        for i in range(args.rounds):
            for name in names[i % 3:] + names[: i % 3]:
                fn, rates = runs[name]
                rates.append(fn(i))
                print(f"round {i + 1} {name:6s}: {rates[-1] / 1e6:7.1f} MB/s")
        ours, theirs, same = runs["ours"][1], runs["boto3"][1], runs["boto3*"][1]
        # Ours verified every byte; check boto3's copy once so both produced the same object.
        head = client.head_object(Bucket="bench", Key="boto3/0")
        assert head["ContentLength"] == size
        mine, base = statistics.median(ours), statistics.median(theirs)
        print(f"boto3* upload_file, our client options (median): {statistics.median(same) / 1e6:.1f} MB/s "
              f"(ours / boto3*: {mine / statistics.median(same):.2f})")
        print(f"boto3 upload_file, default client (median): {base / 1e6:.1f} MB/s")
        print(f"axon uploader, verified (median): {mine / 1e6:.1f} MB/s")
        print(f"ratio: {mine / base:.2f}")
    finally:
        moto.terminate()
        moto.wait(10)
        for p in sorted(work.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        work.rmdir()


if __name__ == "__main__":
    main()
