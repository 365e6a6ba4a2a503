"""Inspection on Ray: Daft's Ray runner at a Ray address, a Ray Jobs submission, or a KubeRay RayJob.

All three run :mod:`axon_dagster.inspection.job` (the same entry point, the same checks) somewhere
else and bring its report back:

* :func:`run_on_ray_address` — a child process of this one connects Daft to the cluster
  (``daft.set_runner_ray(address=...)``) and writes the report to a temporary file. A child,
  because Daft fixes its runner once per process and ``ray.init`` keeps a driver connection: the
  caller (a Dagster op, the CLI) keeps its own runner, and a cluster that hangs is bounded by a
  timeout that kills the child's process group. The address is probed first (TCP), because
  ``ray.init`` on a dead address retries for minutes.
* :func:`run_as_ray_job` — the Ray Jobs API (``JobSubmissionClient("http://head:8265")``), the same
  against a local head and a KubeRay head service. The job prints the report on one marked line
  of its logs, so no shared storage is needed to fetch it.
* :func:`run_on_kuberay` — a ``ray.io/v1`` RayJob through the Kubernetes API
  (:class:`.kuberay.KubeRayRunner`); the report is written to ``output_uri`` and read back.

Token auth (Ray >= 2.59, ``RAY_AUTH_MODE=token``): ``RayConfig.auth_token`` is sent as a bearer
header to the Jobs API and passed to the child as ``RAY_AUTH_MODE=token`` / ``RAY_AUTH_TOKEN``.
Without it Ray's own sources apply (``RAY_AUTH_TOKEN``, ``~/.ray/auth_token``). The token never
appears on a command line or in a log.

Every failure to run or to fetch the report is an InspectionInfrastructureError.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from axon_dagster.domain import Requirements
from axon_dagster.settings.environ import child_environ
from axon_dagster.settings.inspection import RaySettings

from .errors import InspectionInfrastructureError
from .job_output import ENTRYPOINT_MODULE, REPORT_MARKER, read_report
from .report import InspectionReport

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 30
MAX_STATUS_READ_ERRORS = 5
# Daft draws progress bars on stderr; in logs they are noise.
QUIET_ENV = {"DAFT_PROGRESS_BAR": "0"}


@dataclass(frozen=True)
class RayConfig:
    """Where and how to inspect on Ray. :meth:`from_env` reads ``AXON_RAY_*``."""

    # `ray`: GCS address "host:6379" or Ray client "ray://host:10001";
    # `ray-job`: Jobs API "http://head:8265" (a bare "host:port" means http://host:port).
    address: str | None = None
    auth_token: str | None = field(default=None, repr=False)
    # Python that runs the job entry point on the cluster (`ray-job`): "python" in the Ray image;
    # a local head started from a virtualenv needs that venv's python.
    job_python: str = "python"
    timeout_s: float = 1800.0
    poll_interval_s: float = 1.0
    connect_timeout_s: float = 5.0
    runtime_env: Mapping[str, Any] | None = None  # extra runtime_env for `ray-job` (env_vars, py_modules, ...)

    def __post_init__(self) -> None:
        if self.address is not None and (not isinstance(self.address, str) or not self.address.strip()):
            raise ValueError(f"Ray address must be a non-empty string, got {self.address!r}")
        if self.auth_token is not None and (not isinstance(self.auth_token, str) or not self.auth_token.strip()):
            raise ValueError("Ray auth token must be a non-empty string")
        if not isinstance(self.job_python, str) or not self.job_python.strip():
            raise ValueError("RayConfig.job_python must name a Python executable")
        for name in ("timeout_s", "poll_interval_s", "connect_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"RayConfig.{name} must be a positive number of seconds, got {value!r}")
        if self.runtime_env is not None and not isinstance(self.runtime_env, Mapping):
            raise ValueError("RayConfig.runtime_env must be a mapping")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RayConfig:
        """``AXON_RAY_ADDRESS``, ``AXON_RAY_AUTH_TOKEN`` (or ``AXON_RAY_AUTH_TOKEN_FILE``),
        ``AXON_RAY_JOB_PYTHON``, ``AXON_RAY_TIMEOUT_SECONDS``."""
        ray = RaySettings.load(environ)
        return cls(
            address=ray.address,
            auth_token=ray.auth_token,
            job_python=ray.job_python or cls.job_python,
            timeout_s=cls.timeout_s if ray.timeout_seconds is None else ray.timeout_seconds,
        )

    def with_address(self, address: str) -> RayConfig:
        return dataclasses.replace(self, address=address)

    def with_timeout(self, timeout_s: float) -> RayConfig:
        return dataclasses.replace(self, timeout_s=timeout_s)


# ------------------------------------------------------------------------------ addresses

def gcs_target(address: str) -> tuple[str, int] | None:
    """(host, port) to probe for the `ray` runner's address; None for "auto" (no probe).
    Refuses a Jobs API (http) address with a clear message."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme in ("http", "https"):
        raise ValueError(
            f"{address!r} is a Ray Jobs API (dashboard) address: the `ray` runner needs the cluster "
            "address (host:6379 or ray://host:10001); use the `ray-job` runner for http://head:8265"
        )
    if address == "auto":
        return None
    if parts.scheme not in ("tcp", "ray") or not parts.hostname:
        raise ValueError(f"Ray address must be host:port or ray://host:port, got {address!r}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        raise ValueError(f"Ray address {address!r} has no valid port: expected host:port or ray://host:port")
    return parts.hostname, port


def jobs_api_url(address: str) -> str:
    """The Jobs API URL for the `ray-job` runner: http(s)://host:port; bare host:port -> http."""
    if "://" not in address:
        address = f"http://{address}"
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"the `ray-job` runner needs the Ray Jobs API address http://head:8265, got {address!r}"
            + (" (ray:// is the Ray client address: use the `ray` runner)" if parts.scheme == "ray" else "")
        )
    return address.rstrip("/")


def probe(dataset_path: str, host: str, port: int, timeout_s: float, what: str) -> None:
    """TCP connect, so a dead cluster fails in seconds rather than after ray.init's retries."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise InspectionInfrastructureError(dataset_path, f"{what} unreachable at {host}:{port}: {exc}") from exc


def _requirements_json(requirements: Requirements) -> str:
    return json.dumps(requirements.to_dict(), sort_keys=True, separators=(",", ":"))


def _tail(lines: collections.abc.Iterable[str]) -> str:
    return "\n".join(list(lines)[-LOG_TAIL_LINES:])


# ------------------------------------------------------------------------------ ray (Daft on a Ray address)

def run_on_ray_address(dataset_path: str, requirements: Requirements, config: RayConfig, *,
                       verify_digest: bool = True) -> InspectionReport:
    """Inspect with Daft's Ray runner on ``config.address``, in a child process."""
    if not config.address:
        raise ValueError("the `ray` runner needs a Ray address (ray_address=, --ray-address or AXON_RAY_ADDRESS)")
    target = gcs_target(config.address)
    if target is not None:
        probe(dataset_path, *target, config.connect_timeout_s, "Ray cluster")
    env = child_environ(QUIET_ENV)
    if config.auth_token:
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=config.auth_token)
    with tempfile.TemporaryDirectory(prefix="axon-qc-") as tmp:
        output = Path(tmp) / "report.json"
        argv = [sys.executable, "-m", ENTRYPOINT_MODULE, "--dataset", dataset_path,
                "--requirements", _requirements_json(requirements), "--output", str(output),
                "--runner", "ray", "--ray-address", config.address, *([] if verify_digest else ["--no-digest"])]
        logger.info("inspecting %s with Daft on Ray at %s (child process, timeout %.0f s)",
                    dataset_path, config.address, config.timeout_s)
        started = time.monotonic()
        code, tail = _run_child(argv, env, config.timeout_s, dataset_path)
        if code != 0:
            raise InspectionInfrastructureError(
                dataset_path, f"the Ray inspection process exited with {code}; last output:\n{tail}")
        try:
            report = InspectionReport.read(output)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InspectionInfrastructureError(dataset_path, f"the Ray inspection wrote no readable report: {exc}") from exc
    logger.info("Ray inspection of %s done in %.1f s: %s (score %.3f)",
                dataset_path, time.monotonic() - started, report.outcome.value, report.score)
    return report


def _run_child(argv: list[str], env: Mapping[str, str], timeout_s: float, dataset_path: str) -> tuple[int, str]:
    """Run ``argv`` in its own process group, relaying its output to the log; kill the group on
    timeout. Returns (exit code, last lines of output)."""
    tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
    try:
        proc = subprocess.Popen(argv, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
    except OSError as exc:
        raise InspectionInfrastructureError(dataset_path, f"cannot start the inspection process: {exc}") from exc

    def relay() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                tail.append(line)
                logger.info("[ray runner %d] %s", proc.pid, line)

    reader = threading.Thread(target=relay, name="qc-ray-runner-log", daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        reader.join(timeout=5)
        raise InspectionInfrastructureError(
            dataset_path, f"the Ray inspection did not finish in {timeout_s:g} s; stopped. Last output:\n{_tail(tail)}"
        ) from None
    except BaseException:
        _kill_group(proc)
        raise
    reader.join(timeout=5)
    return code, _tail(tail)


def _kill_group(proc: subprocess.Popen) -> None:
    """Stop the child and everything it started (its own session): SIGTERM, then SIGKILL."""
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


# ------------------------------------------------------------------------------ ray-job (Ray Jobs API)

def submission_id_for(dataset_path: str, nonce: str | None = None) -> str:
    digest = hashlib.sha256(dataset_path.encode()).hexdigest()[:10]
    return f"axon-inspect-{digest}-{nonce or secrets.token_hex(4)}"


def job_entrypoint(dataset_path: str, requirements: Requirements, python: str = "python", *,
                   verify_digest: bool = True) -> str:
    """The shell command of the inspection job; it prints the report on one marked line."""
    return shlex.join([python, "-m", ENTRYPOINT_MODULE, "--dataset", dataset_path,
                       "--requirements", _requirements_json(requirements), "--output", "-", "--runner", "ray",
                       *([] if verify_digest else ["--no-digest"])])


def parse_report_from_logs(logs: str) -> InspectionReport | None:
    """The last ``AXON_QC_REPORT {json}`` line of the job's logs, or None."""
    for line in reversed(logs.splitlines()):
        if line.startswith(REPORT_MARKER):
            return InspectionReport.from_dict(json.loads(line[len(REPORT_MARKER):]))
    return None


def _runtime_env(config: RayConfig) -> dict[str, Any]:
    extra = dict(config.runtime_env or {})
    env_vars = {**QUIET_ENV, **dict(extra.pop("env_vars", {}) or {})}
    return {**extra, "env_vars": env_vars}


def jobs_client(dataset_path: str, config: RayConfig):
    """A JobSubmissionClient for ``config.address``; InspectionInfrastructureError if unreachable."""
    if not config.address:
        raise ValueError("the `ray-job` runner needs the Ray Jobs API address "
                         "(ray_address=, --ray-address or AXON_RAY_ADDRESS), e.g. http://head:8265")
    url = jobs_api_url(config.address)
    parts = urlsplit(url)
    probe(dataset_path, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
          config.connect_timeout_s, "Ray Jobs API")
    from ray.job_submission import JobSubmissionClient

    headers = {"Authorization": f"Bearer {config.auth_token}"} if config.auth_token else None
    try:
        return JobSubmissionClient(url, headers=headers)
    except Exception as exc:  # ConnectionError, auth refusal, version mismatch
        raise InspectionInfrastructureError(dataset_path, f"Ray Jobs API at {url} refused the connection: {exc}") from exc


def run_as_ray_job(dataset_path: str, requirements: Requirements, config: RayConfig, *,
                   verify_digest: bool = True, clock=time.monotonic, sleep=time.sleep) -> InspectionReport:
    """Submit the inspection as a Ray job, wait for it (stopping it on timeout), read the report
    from its logs."""
    client = jobs_client(dataset_path, config)
    entrypoint = job_entrypoint(dataset_path, requirements, config.job_python, verify_digest=verify_digest)
    sid = submission_id_for(dataset_path)
    try:
        client.submit_job(entrypoint=entrypoint, submission_id=sid, runtime_env=_runtime_env(config),
                          metadata={"axon.io/dataset": dataset_path[:200], "axon.io/kind": "inspection"})
    except Exception as exc:
        raise InspectionInfrastructureError(dataset_path, f"could not submit the Ray job: {exc}") from exc
    logger.info("submitted Ray job %s to %s for %s", sid, config.address, dataset_path)
    started = clock()
    deadline = started + config.timeout_s
    status, errors, last_logged = None, 0, None
    while True:
        try:
            status = client.get_job_status(sid)
            errors = 0
        except Exception as exc:
            errors += 1
            if errors >= MAX_STATUS_READ_ERRORS:
                raise InspectionInfrastructureError(
                    dataset_path, f"lost the Ray job {sid}: status unreadable {errors} times: {exc}") from exc
            logger.warning("reading the status of Ray job %s failed (%s); retrying", sid, exc)
        if status is not None and status != last_logged:
            logger.info("Ray job %s: %s after %.1f s", sid, status.value, clock() - started)
            last_logged = status
        if status is not None and status.is_terminal():
            break
        remaining = deadline - clock()
        if remaining <= 0:
            try:
                client.stop_job(sid)
            except Exception as exc:
                logger.warning("could not stop Ray job %s: %s", sid, exc)
            raise InspectionInfrastructureError(
                dataset_path, f"Ray job {sid} still {getattr(status, 'value', 'unknown')} after {config.timeout_s:g} s; stopped")
        sleep(min(config.poll_interval_s, remaining))
    try:
        logs = client.get_job_logs(sid)
    except Exception as exc:
        raise InspectionInfrastructureError(dataset_path, f"cannot read the logs of Ray job {sid}: {exc}") from exc
    if status.value != "SUCCEEDED":
        message = ""
        try:
            message = client.get_job_info(sid).message or ""
        except Exception:  # the logs say enough
            pass
        raise InspectionInfrastructureError(
            dataset_path, f"Ray job {sid} {status.value}: {message.splitlines()[0] if message else ''}\n"
            f"{_tail(logs.splitlines())}")
    try:
        report = parse_report_from_logs(logs)
    except (ValueError, KeyError, TypeError) as exc:
        raise InspectionInfrastructureError(dataset_path, f"Ray job {sid} printed an unreadable report: {exc}") from exc
    if report is None:
        raise InspectionInfrastructureError(
            dataset_path, f"Ray job {sid} succeeded but printed no report; last logs:\n{_tail(logs.splitlines())}")
    logger.info("Ray job %s done in %.1f s: %s (score %.3f)", sid, clock() - started, report.outcome.value, report.score)
    return dataclasses.replace(report, runner="ray-job")


# ------------------------------------------------------------------------------ kuberay (RayJob CRD)

def default_report_uri(dataset_path: str) -> str:
    """Beside the dataset: ``.../name.lance`` -> ``.../name.qc.json`` (paths and URIs alike)."""
    base = dataset_path.rstrip("/")
    return (base[: -len(".lance")] if base.endswith(".lance") else base) + ".qc.json"


def run_on_kuberay(dataset_path: str, requirements: Requirements, *, runner=None,
                   output_uri: str | None = None) -> InspectionReport:
    """Run the inspection as a KubeRay RayJob and read back the report it wrote."""
    from .kuberay import KubeRayRunner, KubeRayRunnerConfig

    if runner is None:
        runner = KubeRayRunner(KubeRayRunnerConfig.from_env())
    output_uri = output_uri or default_report_uri(dataset_path)
    result = runner.run(dataset_path, requirements.to_dict(), output_uri)
    try:
        report = read_report(result.output_uri)
    except Exception as exc:
        raise InspectionInfrastructureError(
            dataset_path, f"RayJob {result.name} succeeded but its report at {result.output_uri} is unreadable: {exc}") from exc
    logger.info("KubeRay inspection of %s (RayJob %s): %s (score %.3f)",
                dataset_path, result.name, report.outcome.value, report.score)
    return dataclasses.replace(report, runner="kuberay")
