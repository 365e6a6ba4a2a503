#!/usr/bin/env python
"""Stop of recording -> published, for a ~1 GB recording, against the sum of its floors.

    python bench/e2e.py [--size-mb 1024] [--isolation auto|on|off] [--keep]

One simulated robot (recorder simulator + edge agent, as its own OS user where the demo can make
one), the control plane and Dagster (as ``axon-cloud``), as ``make demo`` runs them; one task whose
recording is ~``--size-mb`` of Axon MCAP (640x480 rgb8 camera at 30 Hz and the other default
topics, zstd). Measured:

- end to end: from the moment the recorder has finished the file (its ``finished task`` log line)
  to the task's UPLOADED (the control plane's ``updated_at``): the robot verifies, moves and gates
  it and reports EXECUTED, Dagster grants the upload, the robot PUTs its parts through the control
  plane's ingest endpoint (the embedded ``file://`` store) while the data_flow run Dagster started
  at the grant ingests the MCAP to Lance as the parts arrive; the control plane verifies the
  staged file, the run keeps its ingest (completion vouched for the bytes it read), runs QC and
  publishes (digest-verified);
- the floors, on the published copy of the same file, in the same run: the plain upload (one HTTP
  PUT of the file, streamed on loopback to a process that writes it to disk and fsyncs) and the
  plain ingest (:func:`axon_dagster.ingest.ingest_mcap` of the file to a Lance dataset); best of
  ``--rounds``.

Memory is warmed first and the VM's free page reporting is off for the bench
(``bench/guest_memory.py``: on our CI machines freed memory goes back to the host within seconds
and costs 1.6-3.4 CPU s per GB when touched again — charged to the flow's fresh writes, never to
the floors' best round); the first output line says whether it could be switched off.

Also prints when each step was seen after the recorder finished (the robot's log lines; the task's
and dataset's states as the control plane reports them, polled every 0.25 s), so the gap to the
floors has names. Prints the figures and, last, ``ratio: X`` = end to end / (upload + ingest)
(target <= 1.3). Data
lives in a temporary directory under /tmp, deleted at the end (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable as a plain script from a checkout
    sys.path.insert(0, str(REPO))

from axon_dagster.demo.sim.axon_mcap import axon_default_topics  # noqa: E402
from guest_memory import memory_kept_by_the_guest, warm_memory  # noqa: E402  (bench/, first on sys.path)

MB = 1_000_000
CAMERA_BYTES = 640 * 480 * 3

RECEIVER = r"""
import os, sys
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
import uvicorn

target = sys.argv[2]

async def put(request):
    with open(target, "wb") as fh:
        async for chunk in request.stream():
            fh.write(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    return PlainTextResponse("ok")

uvicorn.run(Starlette(routes=[Route("/upload", put, methods=["PUT"])]), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning", access_log=False)
"""


def recording_seconds(size_mb: int, root: Path) -> float:
    """Seconds of recording whose MCAP is ~``size_mb`` on disk: the simulator's zstd ratio measured
    on a 3 s sample of the same topics first."""
    from axon_dagster.demo.sim.axon_mcap import write_axon_recording

    topics = axon_default_topics(CAMERA_BYTES)
    sample = write_axon_recording(root / "sample", task_config={"task_id": "sample", "skills": ["x"]}, device_id="bench",
                                  started_at_ns=1_780_000_000_000_000_000, duration_s=3.0, topics=topics, seed=1)
    bytes_per_second = sample.file_size_bytes / 3.0
    shutil.rmtree(root / "sample", ignore_errors=True)
    return max(2.0, round(size_mb * MB / bytes_per_second, 1))


def end_to_end(root: Path, size_mb: int, isolation: str, timeout_s: float) -> dict:
    from axon_dagster.client.orders import all_tasks
    from axon_dagster.demo.collectors import SimulatedCollector
    from axon_dagster.demo.fleet import SimulatedFleet

    seconds = recording_seconds(size_mb, root)
    order = {
        "order_id": "bench-e2e",
        "scene": "bench",
        "sub_scene": "e2e",
        "skills": ["navigation"],
        "task_count": 1,
        "duration_seconds": seconds,
        "requirements": {
            "required_topics": ["/camera/image_raw", "/joint_states", "/imu"],
            "expected_rates_hz": {"/camera/image_raw": 30.0, "/joint_states": 200.0, "/imu": 100.0},
            "max_gap_seconds": 0.5,
            "min_duration_seconds": seconds * 0.5,
        },
    }
    # Axon's finish (re-scan and hash of the file) is the recorder's time, before the stop; not ours
    sim_args = ["--camera-bytes", str(CAMERA_BYTES), "--finish-seconds-per-gb", "0"]
    with SimulatedFleet(root / "work", robots=1, isolation=isolation, sim_args=sim_args) as fleet:
        print(f"isolation: {fleet.plan.reason}", flush=True)
        cloud, cloud_log, result_path = fleet.spawn_dagster(order, timeout_s)
        stop = threading.Event()
        robot = fleet.robot_processes[0]
        collector = SimulatedCollector(robot.edge_url, "collector-bench", stop_event=stop)
        collector.start()
        client = fleet.admin_client()
        started = time.monotonic()
        seen: dict[str, float] = {}  # "task X" / "dataset Y" -> when first seen (wall clock)
        try:
            while cloud.poll() is None and time.monotonic() < started + timeout_s + 60:
                tasks = list(all_tasks(client, order_id="bench-e2e"))
                states = [f"task {tasks[0]['status']}"] if tasks else []
                if tasks and tasks[0]["status"] not in ("PENDING", "READY", "ASSIGNED", "EXECUTING"):
                    try:
                        dataset = client.get_dataset(tasks[0]["task_id"])
                        states.append(f"dataset {dataset['status'].upper()}")
                        if dataset.get("publish_attempts"):  # counted when a data_flow run starts its ingest
                            states.append(f"data_flow attempt {dataset['publish_attempts']} started")
                    except Exception:  # noqa: BLE001 - not reported yet
                        pass
                for state in states:
                    if state not in seen:
                        seen[state] = time.time()
                        print(f"{time.monotonic() - started:7.1f} s  {state}", flush=True)
                time.sleep(0.25)
        finally:
            stop.set()
            collector.join(timeout=30)
        if not result_path.exists():
            raise SystemExit(f"bench-e2e: the cloud process wrote no result; see {cloud_log}")
        (row,) = json.loads(result_path.read_text())["tasks"]
        task = next(iter(all_tasks(client, order_id="bench-e2e")))
        if row["status"] != "UPLOADED" or not row["digest_verified"]:
            raise SystemExit(f"bench-e2e: the task ended {row['status']} (verified: {row['digest_verified']}): "
                             f"{row.get('failure_reason')}; logs in {fleet.logs}")
        finished_at = _finished_at(fleet.logs / f"{robot.robot_id}-sim.log", task["task_id"])
        uploaded_at = datetime.fromisoformat(task["updated_at"]).timestamp()
        lake_mcap = Path(row["cloud_path"].removeprefix("file://")).with_suffix(".mcap")
        copy = root / "recording.mcap"  # the floors read it as this process's user
        shutil.copyfile(lake_mcap, copy)
        timeline = {state: round(at - finished_at, 2) for state, at in seen.items() if at >= finished_at}
        timeline.update(_log_timeline(fleet.logs / f"{robot.robot_id}-edge.log", EDGE_MARKS, finished_at))
        timeline.update(_log_timeline(cloud_log, CLOUD_MARKS, finished_at))
        return {"seconds": uploaded_at - finished_at, "mcap": copy, "recorded_s": seconds, "task": task["task_id"],
                "timeline": dict(sorted(timeline.items(), key=lambda kv: kv[1]))}


EDGE_MARKS = {
    "into the edge cache": "robot: moved into its edge cache",
    "-> EXECUTED": "robot: EXECUTED reported",
    "matches the recorder's checksum": "robot: Axon's checksum verified",
    "part(s),": "robot: upload started",
    " uploaded: ": "robot: upload done",
}


CLOUD_MARKS = {
    "following upload ": "cloud: data_flow follows the upload",
    "while it was uploaded: ": "cloud: ingested while uploaded",
    "ingested staged ": "cloud: ingested and parked",
    "published ": "cloud: published and recorded",
}


def _log_timeline(log_path: Path, marks: dict[str, str], since: float) -> dict[str, float]:
    """Seconds after the recorder finished at which a process (the robot's agent, the cloud's
    Dagster) logged each step."""
    out = {}
    if not log_path.is_file():
        return out
    for line in log_path.read_text(errors="replace").splitlines():
        for mark, name in marks.items():
            if mark in line and name not in out:
                try:
                    at = datetime.strptime(" ".join(line.split()[:2]), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                except ValueError:
                    continue
                if at >= since:
                    out[name] = round(at - since, 2)
    return out


def _finished_at(sim_log: Path, task_id: str) -> float:
    """When the recorder had the file complete: its ``finished task`` line (local time, ms)."""
    for line in sim_log.read_text(errors="replace").splitlines():
        if f"finished task {task_id}" in line:
            stamp = " ".join(line.split()[:2])  # "2026-12-02 09:37:44,123"
            return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
    raise SystemExit(f"bench-e2e: no 'finished task {task_id}' line in {sim_log}")


def plain_upload(mcap: Path, root: Path) -> float:
    """One streamed HTTP PUT of the file to a receiver process that writes and fsyncs it."""
    import httpx

    from axon_dagster.demo.processes import free_port

    port = free_port()
    target = root / "plain-upload.bin"
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port), str(target)])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.put(f"http://127.0.0.1:{port}/upload", content=b"", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

        def chunks():
            with open(mcap, "rb") as fh:
                while block := fh.read(8 * 1024 * 1024):
                    yield block

        started = time.perf_counter()
        response = httpx.put(f"http://127.0.0.1:{port}/upload", content=chunks(), timeout=600)
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        assert target.stat().st_size == mcap.stat().st_size
        return elapsed
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
        target.unlink(missing_ok=True)


def plain_ingest(mcap: Path, root: Path) -> float:
    from axon_dagster.ingest import ingest_mcap

    out = root / "plain-ingest" / "bench.lance"
    shutil.rmtree(out.parent, ignore_errors=True)
    started = time.perf_counter()
    result = ingest_mcap(mcap, out, progress_every_s=3600)
    elapsed = time.perf_counter() - started
    assert result.decode_errors == 0 and result.rows > 0
    shutil.rmtree(out.parent, ignore_errors=True)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="recording size to aim for (default 1024 = 1 GB)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each floor (best kept)")
    parser.add_argument("--isolation", default="auto", choices=["auto", "on", "off"])
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args(argv)
    import lance  # noqa: F401  (imported before timing: its import costs seconds, once per process)

    root = Path(tempfile.mkdtemp(prefix="axon-bench-e2e-", dir="/tmp"))
    root.chmod(0o711)  # the demo's users find their directories below
    guest = contextlib.ExitStack()
    memory = guest.enter_context(memory_kept_by_the_guest())
    try:
        print(memory, flush=True)
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)", flush=True)
        warm_memory(root, 4 * args.size_mb)  # what the flow writes: the staged file, the Lance dataset
        e2e = end_to_end(root, args.size_mb, args.isolation, args.timeout)
        size = e2e["mcap"].stat().st_size
        print(f"recording: {e2e['recorded_s']:.0f} s, MCAP {size / MB:.0f} MB; stop of recording -> published: "
              f"{e2e['seconds']:.2f} s", flush=True)
        print("after the recorder finished (s): " + "; ".join(f"{name} {t:.1f}" for name, t in e2e["timeline"].items()), flush=True)
        uploads, ingests = [], []
        for round_ in range(1, args.rounds + 1):
            uploads.append(plain_upload(e2e["mcap"], root))
            ingests.append(plain_ingest(e2e["mcap"], root))
            print(f"round {round_}: plain upload {uploads[-1]:.2f} s ({size / MB / uploads[-1]:.0f} MB/s), "
                  f"plain ingest {ingests[-1]:.2f} s", flush=True)
        floor = min(uploads) + min(ingests)
        print(f"floors (best): upload {min(uploads):.2f} s + ingest {min(ingests):.2f} s = {floor:.2f} s")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"ratio: {e2e['seconds'] / floor:.3f}")
    finally:
        guest.close()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
