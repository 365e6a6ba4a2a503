"""Fixtures for the inspection room: real synthetic Lance recordings written into tmp_path, and a
real local Ray head (token auth on) for the Ray runners."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from axon_dagster.domain import Requirements
from axon_dagster.demo.sim.synthetic import DEFAULT_TOPICS, Faults, write_recording

try:
    from tests.s3_fixture import s3_bucket, s3_client, s3_env, s3_server  # noqa: F401
except ImportError:  # pragma: no cover - running from inside tests/
    from s3_fixture import s3_bucket, s3_client, s3_env, s3_server  # type: ignore[no-redef]  # noqa: F401

# Every recording of these tests starts here and lasts this long unless a test says otherwise.
START_NS = 1_700_000_000_000_000_000
DURATION_S = 5.0


@pytest.fixture
def start_ns() -> int:
    return START_NS


@pytest.fixture
def duration_s() -> float:
    return DURATION_S


@pytest.fixture
def make_recording(tmp_path: Path) -> Callable[..., Path]:
    """``make_recording("name", faults=Faults(...), **write_recording kwargs) -> dataset path``."""

    def make(name: str = "clean", faults: Faults = Faults(), **kwargs) -> Path:
        path = tmp_path / f"{name}.lance"
        kwargs.setdefault("duration_s", DURATION_S)
        kwargs.setdefault("start_ns", START_NS)
        write_recording(path, task_id=name, robot_id="robot-1", faults=faults, **kwargs)
        return path

    return make


def strict_requirements_dict() -> dict:
    """Every check has something to check: all default topics at their rates, 5 % tolerance."""
    return {
        "required_topics": list(DEFAULT_TOPICS),
        "expected_rates_hz": {topic: spec.rate_hz for topic, spec in DEFAULT_TOPICS.items()},
        "rate_tolerance": 0.05,
        "max_gap_seconds": 1.0,
        "min_duration_seconds": 4.0,
        "max_duration_seconds": 6.0,
    }


@pytest.fixture
def strict_requirements() -> Requirements:
    return Requirements.from_dict(strict_requirements_dict())


# ------------------------------------------------------------------------------ a real Ray head

@dataclass(frozen=True)
class RayHead:
    gcs_address: str  # for the `ray` runner
    jobs_url: str  # for the `ray-job` runner
    token: str
    temp_dir: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_jobs_api(url: str, token: str, deadline: float) -> None:
    request = urllib.request.Request(f"{url}/api/version", headers={"Authorization": f"Bearer {token}"})
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                if reply.status == 200:
                    return
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(1)
    raise RuntimeError(f"Ray Jobs API at {url} did not come up: {last}")


def _stop_head(pgid: int, temp_dir: str) -> None:
    """Stop exactly this head: its process group (``ray start`` ran in its own session, and
    every Ray process of the head inherits that group), then any straggler whose command line
    names this head's temp dir. Never ``ray stop``: it would stop other people's Ray too."""
    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        end = time.monotonic() + grace
        while time.monotonic() < end:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if temp_dir in cmdline:
            try:
                os.kill(int(pid_dir.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _start_head(ray_bin: Path, token: str) -> tuple[RayHead, int]:
    """``ray start --head`` in its own session; returns the head and its process group."""
    temp_dir = tempfile.mkdtemp(prefix="axr-", dir="/tmp")  # short: Ray's socket paths have a length limit
    gcs, dashboard = free_port(), free_port()
    ports = {name: free_port() for name in (
        "ray-client-server-port", "node-manager-port", "object-manager-port", "dashboard-agent-grpc-port",
        "dashboard-agent-listen-port", "runtime-env-agent-port", "metrics-export-port")}
    # Below the ephemeral range free_port() draws from (32768+), so the two never collide.
    worker_lo = 20000 + secrets.randbelow(12000)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_agent_register_timeout_ms": "300000"}
    argv = [str(ray_bin), "start", "--head", f"--port={gcs}", f"--dashboard-port={dashboard}",
            "--dashboard-host=127.0.0.1", "--include-dashboard=true", "--num-cpus=1",
            "--object-store-memory=200000000", f"--temp-dir={temp_dir}", "--disable-usage-stats",
            f"--min-worker-port={worker_lo}", f"--max-worker-port={worker_lo + 200}",
            *(f"--{name}={port}" for name, port in ports.items())]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    head = RayHead(gcs_address=f"127.0.0.1:{gcs}", jobs_url=f"http://127.0.0.1:{dashboard}", token=token,
                   temp_dir=temp_dir)
    try:
        out, _ = proc.communicate(timeout=240)
        if proc.returncode != 0:
            raise RuntimeError(f"ray start failed ({proc.returncode}):\n{out[-3000:]}")
        _wait_for_jobs_api(head.jobs_url, token, time.monotonic() + 120)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        _stop_head(proc.pid, temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    return head, proc.pid


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayHead]:
    """A real local Ray head (1 CPU, 200 MB object store, token auth) on free ports, in its own
    temp dir and process group; stopped at the end of the session.

    On a loaded machine the raylet can give up waiting for its (Python) dashboard agent after
    ~15 s, a wait Ray does not let us configure: the start is retried a few times."""
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists():
        pytest.skip("the ray CLI is not installed in this environment")
    token = secrets.token_hex(32)
    errors: list[str] = []
    for _attempt in range(3):
        try:
            head, pgid = _start_head(ray_bin, token)
            break
        except RuntimeError as exc:
            errors.append(str(exc)[-600:])
    else:
        raise RuntimeError("could not start a local Ray head in 3 attempts:\n" + "\n---\n".join(errors))
    try:
        yield head
    finally:
        _stop_head(pgid, head.temp_dir)
        shutil.rmtree(head.temp_dir, ignore_errors=True)


# Axon recordings (content checks) start here and last this long.
AXON_T0 = 1_780_000_000_000_000_000
AXON_DURATION_S = 6.0


@pytest.fixture(params=["hash-columns", "payload-scan"])
def axon_lance(tmp_path, request):
    """Write an Axon recording with the simulator's writer, ingest it; the Lance path. Twice: as the
    ingestion writes it today (with the payload hash columns QC reads instead of the payloads), and
    as older ingestions wrote it (without them: QC hashes the payloads as it scans them)."""
    from axon_dagster.demo.sim.axon_mcap import write_axon_recording
    from axon_dagster.ingest import ingest_mcap
    from axon_dagster.ingest import mcap_to_lance

    def make(name: str, faults: Faults = Faults(), pauses=(), encoding: str = "ros2", sidecar_mode: str = "always"):
        out = tmp_path / name
        rec = write_axon_recording(
            out / "robot", task_config={"task_id": name, "scene": "warehouse", "subscene": "aisle_1", "skills": ["pick"]},
            device_id="robot-1", started_at_ns=AXON_T0, duration_s=AXON_DURATION_S, pauses=pauses, faults=faults,
            encoding=encoding, sidecar_mode=sidecar_mode, seed=3,
        )
        with pytest.MonkeyPatch.context() as patch:
            if request.param == "payload-scan":
                schema = _schema_without_payload_hashes()
                patch.setattr(mcap_to_lance, "ingested_schema", lambda: schema)
            return ingest_mcap(rec.mcap_path, out / "lake" / f"{name}.lance", mcap_sha256=rec.checksum_sha256).dataset_path

    return make


def _schema_without_payload_hashes():
    """The schema older ingestions wrote (no payload hash columns)."""
    import pyarrow as pa

    from axon_dagster.ingest.mcap_to_lance import ingested_schema
    from axon_dagster.ingest.payload_hash import PAYLOAD_HASH_COLUMNS

    return pa.schema([f for f in ingested_schema() if f.name not in PAYLOAD_HASH_COLUMNS])
