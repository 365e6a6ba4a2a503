"""Quality inspection of recordings (QC checks in Daft). Importing this package does not import
Daft: the Daft parts load when an inspection runs."""

from .checks import CHECK_WEIGHTS, CRITICAL_CHECKS
from .errors import InspectionInfrastructureError
from .inspector import inspect_recording, run_inspection
from .report import CheckResult, InspectionReport, TopicStats

__all__ = [
    "CHECK_WEIGHTS",
    "CRITICAL_CHECKS",
    "CheckResult",
    "InspectionInfrastructureError",
    "InspectionReport",
    "TopicStats",
    "inspect_recording",
    "run_inspection",
]
