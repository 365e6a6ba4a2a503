"""Inspect a recording: profile it with Daft, run the checks, score it, decide the outcome.

Runners (``inspect_recording(..., runner=...)``):

* ``native`` (default) — Daft's native runner in this process.
* ``ray`` — Daft's Ray runner on a Ray cluster (``host:6379`` or ``ray://host:10001``). Daft fixes
  its runner once per process and ``ray.init`` leaves a driver connection behind, so the
  inspection runs in a child process (``python -m axon_dagster.inspection.job --runner ray``); the
  caller keeps its own runner, can inspect on native and Ray alternately, and a hung cluster is
  bounded by a timeout that kills the child.
* ``ray-job`` — submitted through the Ray Jobs API of a head (``http://head:8265``: a local head or
  a KubeRay head service); the job runs the same entry point on the cluster and prints the report,
  which is read back from the job's logs.
* ``kuberay`` — a ``ray.io/v1`` RayJob created through the Kubernetes API
  (:class:`~axon_dagster.inspection.kuberay.KubeRayRunner`); the report goes to ``output_uri``.

Whatever the runner, the checks are the same pure functions over the same Daft aggregates, so
the verdicts agree. Failures to run (Ray unreachable, storage unreadable, timeouts) raise
InspectionInfrastructureError — never a verdict on the data. Malformed data is the opposite: a
local dataset whose every file reads but that Lance cannot read, or whose columns are missing or
of the wrong type, gets a verdict (``well_formed`` fails: rejected, with the reason). The line
between them is drawn in this process, without the runner (see ``_lance_fault``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from axon_dagster.domain import Requirements

from .checks import checked_requirements, outcome_of, run_checks, score_of
from .daft_profile import profile_recording
from .errors import InspectionInfrastructureError, MalformedRecording
from .report import InspectionReport
from .sidecar_check import start_sidecar_check

if TYPE_CHECKING:
    from .kuberay import KubeRayRunner
    from .ray_runners import RayConfig

logger = logging.getLogger(__name__)

NATIVE = "native"
RAY = "ray"
RAY_JOB = "ray-job"
KUBERAY = "kuberay"
RUNNERS = (NATIVE, RAY, RAY_JOB, KUBERAY)


def inspect_recording(
    dataset_path: str | os.PathLike,
    requirements: Requirements | Mapping[str, Any],
    runner: str = NATIVE,
    ray_address: str | None = None,
    *,
    ray_config: RayConfig | None = None,
    timeout_s: float | None = None,
    kuberay_runner: KubeRayRunner | None = None,
    output_uri: str | None = None,
    verify_digest: bool = True,
) -> InspectionReport:
    """Inspect the Lance recording at ``dataset_path`` against ``requirements``.

    ``ray_address`` (or ``ray_config.address``, or ``AXON_RAY_ADDRESS``) names the cluster for the
    Ray runners: ``host:port`` / ``ray://host:port`` for ``ray``, ``http://head:8265`` for
    ``ray-job``. ``ray_config`` carries the auth token, the job's Python and timeouts
    (default: :meth:`RayConfig.from_env`). ``kuberay_runner`` and ``output_uri`` are for
    ``kuberay`` (default runner: from the chart's environment; default output: the report path
    beside the dataset). ``verify_digest=False`` skips hashing the files against the sidecar's
    SHA-256 digests (names, counts and time ranges are still compared) — for a dataset whose
    digest was just verified, e.g. by ``EdgeCache.stage``; it saves a second full read.

    Raises PlanningError (a ValueError) for bad requirements and ValueError for an unknown runner
    or bad runner settings, before touching the data; InspectionInfrastructureError when the
    inspection could not run.
    """
    requirements = checked_requirements(requirements)
    if runner not in RUNNERS:
        raise ValueError(f"unknown inspection runner {runner!r}: expected one of {', '.join(RUNNERS)}")
    path = os.fspath(dataset_path)
    if runner == NATIVE:
        use_native_runner(path)
        return run_inspection(path, requirements, runner=NATIVE, verify_digest=verify_digest)
    if runner == KUBERAY:
        from .ray_runners import run_on_kuberay

        return run_on_kuberay(path, requirements, runner=kuberay_runner, output_uri=output_uri)

    from .ray_runners import RayConfig, run_as_ray_job, run_on_ray_address

    config = ray_config or RayConfig.from_env()
    if ray_address is not None:
        config = config.with_address(ray_address)
    if timeout_s is not None:
        config = config.with_timeout(timeout_s)
    if runner == RAY:
        return run_on_ray_address(path, requirements, config, verify_digest=verify_digest)
    return run_as_ray_job(path, requirements, config, verify_digest=verify_digest)


def run_inspection(
    dataset_path: str | os.PathLike,
    requirements: Requirements | Mapping[str, Any],
    runner: str = NATIVE,
    *,
    verify_digest: bool = True,
) -> InspectionReport:
    """Inspect on whatever Daft runner this process already uses (``runner`` is only recorded).

    The sidecar's files are hashed in a thread while Daft scans the columns."""
    requirements = checked_requirements(requirements)
    path = os.fspath(dataset_path)
    started = time.monotonic()
    logger.info("inspecting %s on the %s runner", path, runner)
    sidecar_job = start_sidecar_check(path, verify_digest)
    unmeasured = ""
    try:
        profile = profile_recording(path, requirements)
    except MalformedRecording as exc:
        findings = _sidecar_result(sidecar_job, path)
        logger.warning("%s is malformed: %s", path, exc.reason)
        profile, unmeasured = None, exc.reason
    except InspectionInfrastructureError as exc:
        findings = _sidecar_result(sidecar_job, path)
        if findings is not None and (findings.missing_files or findings.changed_files or findings.error):
            # The sidecar proves the dataset lost or changed files since it was written: a defect
            # of the data (a truncated dataset), not of the infrastructure. It gets a verdict.
            logger.warning("%s is incomplete (files differ from its sidecar); the scan failed: %s", path, exc.reason)
            profile, unmeasured = None, f"the dataset is incomplete (see sidecar_consistency): {exc.reason}"
        else:
            # Data or infrastructure? Decided here, without the runner: every byte must read and
            # Lance itself must fail on them for a verdict; otherwise this stays a failed run.
            fault = _lance_fault(path, exc)
            if fault is None:
                raise
            logger.warning("%s is malformed (%s); the scan failed: %s", path, fault, exc.reason)
            profile, unmeasured = None, fault
    else:
        findings = _sidecar_result(sidecar_job, path)
    report = _report(path, requirements, runner, started, profile, findings, unmeasured)
    logger.info(
        "inspected %s: %s (score %.3f, %d rows, %.2f s) in %.2f s%s",
        report.dataset_path,
        report.outcome.value,
        report.score,
        report.row_count,
        report.duration_s,
        report.elapsed_s,
        "; failed: " + "; ".join(f"{c.name}: {c.detail}" for c in report.failed_checks) if report.failed_checks else "",
    )
    return report


def malformed_report(dataset_path: str, requirements: Requirements | Mapping[str, Any], reason: str,
                     runner: str = NATIVE) -> InspectionReport:
    """The verdict on a recording that could not even be turned into a dataset (e.g. an MCAP that
    is not a readable MCAP): ``well_formed`` fails with ``reason``; rejected."""
    requirements = checked_requirements(requirements)
    logger.warning("%s is malformed: %s", dataset_path, reason)
    return _report(os.fspath(dataset_path), requirements, runner, time.monotonic(), None, None, reason)


def _report(path: str, requirements: Requirements, runner: str, started: float, profile, findings, unmeasured: str) -> InspectionReport:
    checks, per_topic, duration_s = run_checks(profile, findings, requirements, unmeasured_reason=unmeasured)
    score = score_of(checks)
    return InspectionReport(
        dataset_path=path,
        checks=checks,
        score=score,
        outcome=outcome_of(checks, score, requirements),
        per_topic=per_topic,
        row_count=sum(s.count for s in per_topic.values()),
        duration_s=round(duration_s, 6),
        requirements=requirements.to_dict(),
        runner=runner,
        inspected_at=datetime.now(timezone.utc).isoformat(),
        elapsed_s=round(time.monotonic() - started, 3),
    )


def _lance_fault(path: str, failure: InspectionInfrastructureError) -> str | None:
    """Why the local dataset at ``path`` is malformed, or None when the scan's failure was not the
    data's fault. Decided in this process, without the runner (Ray may be what failed): every file
    must read to its end at the OS level (else InspectionInfrastructureError: permissions, I/O
    errors), then Lance itself must fail to open or scan the dataset. Remote datasets and missing
    directories are never judged malformed (the store may be down or the path wrong)."""
    from .sidecar_check import dataset_files, local_dataset_dir

    root = local_dataset_dir(path)
    if root is None or not root.is_dir():
        return None
    try:
        for file in dataset_files(root):
            with open(file, "rb") as fh:
                while fh.read(8 << 20):
                    pass
    except OSError as exc:
        raise InspectionInfrastructureError(path, f"{failure.reason}; and a file cannot be read: {exc}") from exc
    import lance

    try:
        ds = lance.dataset(str(root))
        for _batch in ds.to_batches(columns=[c for c in ("topic", "sequence", "log_time_ns", "payload") if c in ds.schema.names]):
            pass
    except Exception as exc:  # noqa: BLE001 - Lance's errors are the data's: every byte read above
        return f"not a readable Lance dataset although every file reads: {type(exc).__name__}: {str(exc)[:300]}"
    return None


def _sidecar_result(job, path: str):
    try:
        return job.result()
    except InspectionInfrastructureError:
        raise
    except Exception as exc:  # a bug or an odd filesystem: never a verdict
        raise InspectionInfrastructureError(path, f"checking the sidecar failed: {exc}") from exc


def use_native_runner(dataset_path: str = "") -> None:
    """Pin Daft to its native runner, so a stray RAY_ADDRESS or DAFT_RUNNER cannot move inspection
    onto a cluster. Daft fixes the runner once per process: if another is already set, refuse."""
    import daft
    from daft.exceptions import DaftCoreException

    try:
        daft.set_runner_native()
    except DaftCoreException as exc:
        current = daft.get_or_infer_runner_type()
        if current != NATIVE:
            raise InspectionInfrastructureError(
                dataset_path, f"this process already runs Daft on the {current!r} runner, not native ({exc})"
            ) from exc
