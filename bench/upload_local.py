#!/usr/bin/env python
"""The robot's upload into the embedded ``file://`` store vs one plain HTTP PUT of the same file.

    python bench/upload_local.py [--size-mb 1024] [--rounds 3] [--part-mb N] [--concurrency N]

The control plane runs as ``make demo`` runs it (``axon-dagster api``, its own process, SQLite,
``AXON_OBJECT_STORE_URL=file://...``); the robot is the edge agent's uploader (``axon_edge.upload``)
in this process, over the robot's own client (bearer token), as the agent wires it. Each round
uploads the same file as a new task's recording: plan -> signed parts through the control plane's
ingest endpoint -> completion (the staged file checked against the manifest's SHA-256) -> STAGED.

The baseline, in the same run, alternating with it: one streamed HTTP PUT of the file to a process
that writes it and fsyncs it (``bench/e2e.py``'s plain upload, the upload floor of ``make bench-e2e``).

Prints each round, then ``ratio: X`` = the uploader's median seconds / the plain PUT's median.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "edge", REPO / "bench"):
    if str(path) not in sys.path:  # runnable as a plain script from a checkout
        sys.path.insert(0, str(path))

from e2e import plain_upload  # noqa: E402
from upload_throughput import MiB, write_random_file  # noqa: E402

from axon_dagster.client import ControlPlaneClient, EdgeSyncClient  # noqa: E402
from axon_dagster.demo.processes import free_port, wait_healthy  # noqa: E402
from axon_edge.db import EdgeDB  # noqa: E402
from axon_edge.upload import PartSender, UploadApi, Uploader, UploadState  # noqa: E402

ADMIN = "bench-upload-local-admin"


def start_control_plane(work: Path, env_extra: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "AXON_DATABASE_URL": f"sqlite:///{work / 'cp.db'}",
        "AXON_ADMIN_TOKEN": ADMIN,
        "AXON_OBJECT_STORE_URL": f"file://{work / 'lake'}",
        "AXON_PUBLIC_API_URL": url,
        **env_extra,
    }
    subprocess.run([sys.executable, "-m", "axon_dagster.cli", "db", "upgrade"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = open(work / "control-plane.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "axon_dagster.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_healthy(f"{url}/healthz", proc, log_path=work / "control-plane.log")
    return proc, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--part-mb", type=int, default=0, help="the control plane's part size (default: its own)")
    parser.add_argument("--concurrency", type=int, default=4, help="the robot's parts in flight (the agent's default: 4)")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="axon-bench-upload-local-", dir="/tmp"))
    env_extra = {"AXON_UPLOAD_PART_BYTES": str(args.part_mb * MiB)} if args.part_mb else {}
    cp, url = start_control_plane(work, env_extra)
    try:
        cache = work / "robot"
        cache.mkdir()
        admin = ControlPlaneClient(url, token=ADMIN)
        token = admin.register_robot("robot-1")["token"]
        robot = EdgeSyncClient(url, token)
        admin.create_order("bench", "bench", ["upload"])
        admin.plan_order("bench", task_count=args.rounds + 1)
        tasks = sorted(admin.dispatch_order("bench", ["robot-1"]))
        size = args.size_mb * MiB
        sha = {}
        for task_id in tasks:  # one name per task: a link to the one file
            name = cache / f"{task_id}.mcap"
            if not sha:
                sha["v"] = write_random_file(name, args.size_mb)
                first = name
            else:
                os.link(first, name)
        api = UploadApi(robot)
        sender = PartSender(control_plane_origin=api.origin, control_plane_auth=api.auth_headers(), concurrency=args.concurrency)
        db = EdgeDB(work / "edge.db")
        gate = {"passed": True, "reasons": [], "checks": {}}

        def run_robot(task_id: str) -> float:
            manifest = {"files": [{"name": f"{task_id}.mcap", "size": size, "sha256": sha["v"]}], "dataset_digest": sha["v"]}
            robot.push_events([
                {"event_id": f"{task_id}-READY", "task_id": task_id, "status": "READY"},
                {"event_id": f"{task_id}-EXECUTING", "task_id": task_id, "status": "EXECUTING"},
                {"event_id": f"{task_id}-EXECUTED", "task_id": task_id, "status": "EXECUTED",
                 "data": {"recording_format": "mcap", "manifest": manifest, "gate": gate, "dataset_path": "/robot"}},
            ])
            grant = admin.grant_upload(task_id, ttl_seconds=900)
            uploader = Uploader(api, UploadState(db), sender, concurrency=args.concurrency, progress_interval=3600)
            started = time.perf_counter()
            result = uploader.upload(task_id, grant["grant_id"], cache, manifest)
            elapsed = time.perf_counter() - started
            assert result.parts_skipped == 0 and result.bytes_sent == size, result
            assert admin.get_dataset(task_id)["status"] == "STAGED"
            return elapsed

        load = os.getloadavg()
        print(f"file {args.size_mb} MiB, control plane {url} (file:// store), robot concurrency {args.concurrency}, "
              f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores", flush=True)
        ours, plain = [], []
        run_robot(tasks[0])  # warm both paths (imports, connection pools, page cache)
        plain_upload(first, work)
        for i, task_id in enumerate(tasks[1:], start=1):
            for name in (("robot", "plain") if i % 2 else ("plain", "robot")):
                if name == "robot":
                    ours.append(run_robot(task_id))
                    print(f"round {i} robot: {ours[-1]:.2f} s ({size / 1e6 / ours[-1]:.0f} MB/s)", flush=True)
                else:
                    plain.append(plain_upload(first, work))
                    print(f"round {i} plain PUT: {plain[-1]:.2f} s ({size / 1e6 / plain[-1]:.0f} MB/s)", flush=True)
        robot_s, plain_s = statistics.median(ours), statistics.median(plain)
        print(f"robot uploader -> STAGED (median): {robot_s:.2f} s; plain PUT + fsync (median): {plain_s:.2f} s")
        load = os.getloadavg()
        print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        print(f"ratio: {robot_s / plain_s:.2f}")
        sender.close()
        db.close()
        robot.close()
        admin.close()
    finally:
        cp.terminate()
        cp.wait(10)
        if args.keep:
            print(f"kept {work}")
        else:
            import shutil

            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
