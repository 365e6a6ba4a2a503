"""The Dagster code location: `dagster api grpc -m axon_dagster.defs` / `dagster dev -m axon_dagster.defs`."""

from __future__ import annotations

import dagster as dg

from .control_flow import order_processing
from .data_flow import data_flow
from .lineage import LINEAGE_SPECS
from .resources import resources_from_env
from .sensors import task_status_sensor


def build_definitions(resources: dict | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=LINEAGE_SPECS,
        jobs=[order_processing, data_flow],
        sensors=[task_status_sensor],
        resources=resources if resources is not None else resources_from_env(),
    )


defs = build_definitions()
