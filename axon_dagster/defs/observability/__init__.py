"""Observability in the code location: the run-failure alert sensor (:mod:`axon_dagster.observability`)."""

import dagster as dg

from axon_dagster.observability.sensors import run_failure_alert_sensor

defs = dg.Definitions(sensors=[run_failure_alert_sensor])

__all__ = ["defs"]
