#!/usr/bin/env python
"""Recorder RPC round trip: ``get_status`` over ROS 2, ROS 1 and Axon's HTTP RPC (``make bench-rpc``).

    python bench/recorder_rpc.py [--calls N] [--rounds R]

Starts three simulators on this machine, each its own process — ``axon-sim --transport ros2``
(rclpy + Fast DDS, on loopback in a ROS_DOMAIN_ID of this run's own), ``--transport ros1`` (on a
rosmaster this script starts) and the HTTP RPC server — and times ``RecorderClient.get_status()``
through our three backends from this process: warm-up first, then R interleaved rounds of N calls
per transport (so a busy moment hurts all three alike). The HTTP backend's ``get_status`` is two
requests (``/rpc/state`` + ``/rpc/stats``, the way Axon v0.4 exposes it); one ``GET /rpc/state``
is printed too, for scale.

The last line is ``ratio: X`` = median ROS 2 round trip / median HTTP round trip.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable as a plain script from a checkout
    sys.path.insert(0, str(REPO))

from axon_dagster.demo.processes import free_port, wait_for_log_line, wait_healthy  # noqa: E402
from axon_dagster.recorder.axon_http import AxonHttpRecorder  # noqa: E402
from axon_dagster.recorder.ros2_env import load_srv_module, reserve_domain_id  # noqa: E402

WARMUP = 50


def start(name: str, argv: list[str], env: dict[str, str], workdir: Path) -> subprocess.Popen:
    log = open(workdir / f"{name}.log", "wb")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per transport per round (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.rounds < 1:
        parser.error("--calls and --rounds must be positive")

    from axon_dagster.recorder.ros1_env import import_ros1

    load_srv_module()  # builds the ROS 2 interface package first if needed (not timed)
    rosgraph = import_ros1("rosgraph")
    workdir = Path(tempfile.mkdtemp(prefix="axon-bench-rpc-"))
    domain = reserve_domain_id()
    ros2_env = domain.env()
    os.environ.update(ros2_env)  # this process's ROS 2 client joins the same loopback domain
    master = f"http://127.0.0.1:{free_port()}"
    ros1_env = {"ROS_MASTER_URI": master, "ROS_HOME": str(workdir / "ros_home"), "ROS_IP": "127.0.0.1", "ROS_HOSTNAME": "127.0.0.1"}
    os.environ.update(ros1_env)
    sim = [sys.executable, "-m", "axon_dagster.demo.sim.cli", "--log-level", "warning"]
    http_port = free_port()
    procs: list[subprocess.Popen] = []
    clients: dict[str, object] = {}
    try:
        procs.append(start("rosmaster", [shutil.which("rosmaster") or "rosmaster", "--core", "-p", master.rsplit(":", 1)[1]], ros1_env, workdir))
        deadline = time.monotonic() + 60
        while not rosgraph.is_master_online(master):
            if time.monotonic() > deadline:
                raise RuntimeError(f"rosmaster did not come up on {master}")
            time.sleep(0.1)
        http = start("sim-http", [*sim, "--port", str(http_port), "--data-dir", str(workdir / "http")], {}, workdir)
        ros1 = start("sim-ros1", [*sim, "--transport", "ros1", "--namespace", "bench1", "--data-dir", str(workdir / "ros1")], ros1_env, workdir)
        ros2 = start("sim-ros2", [*sim, "--transport", "ros2", "--namespace", "bench2", "--data-dir", str(workdir / "ros2")], ros2_env, workdir)
        procs += [http, ros1, ros2]
        wait_healthy(f"http://127.0.0.1:{http_port}/health", http, log_path=workdir / "sim-http.log")
        wait_for_log_line("serving ROS 1 services under /bench1/", ros1, workdir / "sim-ros1.log")
        wait_for_log_line("serving ROS 2 services under /bench2/", ros2, workdir / "sim-ros2.log")

        from axon_dagster.recorder.ros1 import Ros1Recorder
        from axon_dagster.recorder.ros2 import Ros2Recorder

        clients = {
            "ROS 2 (rclpy, Fast DDS)": Ros2Recorder("bench2", timeout_seconds=10, retry_attempts=5),
            "ROS 1 (rospy, TCPROS)": Ros1Recorder("bench1", timeout_seconds=10, retry_attempts=5),
            "Axon HTTP RPC (state + stats)": AxonHttpRecorder(f"http://127.0.0.1:{http_port}", timeout_seconds=10),
        }
        calls: dict[str, Callable[[], object]] = {name: client.get_status for name, client in clients.items()}
        http_client = clients["Axon HTTP RPC (state + stats)"]
        calls["one HTTP request (GET /rpc/state)"] = http_client.state
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for call in calls.values():
            for _ in range(WARMUP):
                call()
        for _round in range(args.rounds):
            for name, call in calls.items():
                for _ in range(args.calls):
                    started = time.perf_counter()
                    call()
                    samples[name].append(time.perf_counter() - started)
    finally:
        for client in clients.values():
            close = getattr(client, "close", None)
            if close is not None:
                close()
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        domain.release()
        shutil.rmtree(workdir, ignore_errors=True)

    total = args.calls * args.rounds
    print(f"get_status round trip against the simulator, {total} calls per transport in {args.rounds} interleaved rounds "
          f"(ROS_DOMAIN_ID {domain.domain_id}, loopback):")
    for name, values in samples.items():
        p90 = statistics.quantiles(values, n=10)[-1] * 1000
        print(f"  {name:34s} median {median_ms(values):7.3f} ms   p90 {p90:7.3f} ms")
    ros2 = median_ms(samples["ROS 2 (rclpy, Fast DDS)"])
    http = median_ms(samples["Axon HTTP RPC (state + stats)"])
    print(f"ROS 2 / HTTP get_status: {ros2:.3f} ms / {http:.3f} ms")
    print(f"ratio: {ros2 / http:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
