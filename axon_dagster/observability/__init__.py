"""Observability of the Dagster side: metric definitions (:mod:`.metrics`), the run-failure alert
sensor (:mod:`.sensors`; the code location's ``defs/observability`` area wires it in).

Set ``AXON_METRICS_PORT`` on the code-location process to serve ``/metrics`` there (see the
endpoint-vs-Pushgateway note in :mod:`.metrics`).
"""

from __future__ import annotations

from .metrics import (
    STAGES,
    observe_qc,
    observe_run_finished,
    observe_stage,
    serve_metrics,
    serve_metrics_from_env,
)
from .sensors import RunFailureAlertResource, run_failure_alert_sensor

__all__ = [
    "RunFailureAlertResource",
    "STAGES",
    "observe_qc",
    "observe_run_finished",
    "observe_stage",
    "run_failure_alert_sensor",
    "serve_metrics",
    "serve_metrics_from_env",
]
