"""Quality inspection of recordings (QC checks in Daft). Importing this package imports neither
Daft nor Ray: they load when an inspection runs.

``inspect_recording(path, requirements, runner="native"|"ray"|"ray-job"|"kuberay", ray_address=None)``
is the entry point; ``axon-dagster inspect`` is :func:`axon_dagster.inspection.cli.main`.
"""

from .checks import CHECK_NAMES, CHECK_WEIGHTS, CRITICAL_CHECKS
from .errors import InspectionInfrastructureError, MalformedRecording
from .inspector import RUNNERS, inspect_recording, run_inspection
from .ray_runners import RayConfig
from .report import CheckResult, InspectionReport, TopicStats

__all__ = [
    "CHECK_NAMES",
    "CHECK_WEIGHTS",
    "CRITICAL_CHECKS",
    "RUNNERS",
    "CheckResult",
    "InspectionInfrastructureError",
    "InspectionReport",
    "MalformedRecording",
    "RayConfig",
    "TopicStats",
    "inspect_recording",
    "run_inspection",
]
