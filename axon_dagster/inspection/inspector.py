"""Inspect a recording: profile it with Daft, run the checks, score it, decide the outcome."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from axon_dagster.domain import Requirements

from .checks import checked_requirements, outcome_of, run_checks, score_of
from .daft_profile import profile_recording
from .errors import InspectionInfrastructureError
from .report import InspectionReport

logger = logging.getLogger(__name__)

NATIVE = "native"


def inspect_recording(
    dataset_path: str | os.PathLike,
    requirements: Requirements | Mapping[str, Any],
    runner: str = NATIVE,
) -> InspectionReport:
    """Inspect the Lance recording at ``dataset_path`` against ``requirements``.

    ``runner="native"`` runs Daft's native runner in this process. Ray and KubeRay runners live in
    :mod:`axon_dagster.inspection.kuberay`; inside a Ray job, call :func:`run_inspection`.

    Raises PlanningError (a ValueError) for bad requirements and ValueError for an unknown runner,
    before touching the data; InspectionInfrastructureError when the data cannot be read.
    """
    requirements = checked_requirements(requirements)
    if runner != NATIVE:
        raise ValueError(f"unknown inspection runner {runner!r}: inspect_recording runs {NATIVE!r} only")
    use_native_runner(str(dataset_path))
    return run_inspection(dataset_path, requirements, runner=NATIVE)


def run_inspection(
    dataset_path: str | os.PathLike,
    requirements: Requirements | Mapping[str, Any],
    runner: str = NATIVE,
) -> InspectionReport:
    """Inspect on whatever Daft runner this process already uses (``runner`` is only recorded)."""
    requirements = checked_requirements(requirements)
    started = time.monotonic()
    profile = profile_recording(dataset_path)
    checks, per_topic, duration_s = run_checks(profile, requirements)
    score = score_of(checks)
    report = InspectionReport(
        dataset_path=str(dataset_path),
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
    logger.info(
        "inspected %s: %s (score %.3f, %d rows, %.2f s)%s",
        report.dataset_path,
        report.outcome.value,
        report.score,
        report.row_count,
        report.duration_s,
        "; failed: " + "; ".join(f"{c.name}: {c.detail}" for c in report.failed_checks) if report.failed_checks else "",
    )
    return report


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
