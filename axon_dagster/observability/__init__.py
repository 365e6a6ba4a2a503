"""Observability of the Dagster side: metric definitions (:mod:`.metrics`), the run-failure alert
sensor (:mod:`.sensors`) and what the code location wires in::

    Definitions(sensors=[..., *OBSERVABILITY_DEFS["sensors"]],
                resources={..., **OBSERVABILITY_DEFS["resources"]})

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

OBSERVABILITY_DEFS: dict = {
    "sensors": [run_failure_alert_sensor],
    "resources": {"run_failure_alert": RunFailureAlertResource.from_env()},
}

__all__ = [
    "OBSERVABILITY_DEFS",
    "RunFailureAlertResource",
    "STAGES",
    "observe_qc",
    "observe_run_finished",
    "observe_stage",
    "run_failure_alert_sensor",
    "serve_metrics",
    "serve_metrics_from_env",
]
