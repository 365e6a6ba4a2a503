"""The Dagster code location: `dagster api grpc -m axon_dagster.defs` / `dagster dev -m axon_dagster.defs`."""

from __future__ import annotations

import dagster as dg

from .bandwidth import bandwidth_resource_from_env, bandwidth_sensor
from .control_flow import order_processing
from .data_flow import data_flow, upload_approved
from axon_dagster.observability import OBSERVABILITY_DEFS

from .lineage import LINEAGE_SPECS
from .recording import RECORDING_DEFS
from .review import REVIEW_DEFS
from .resources import resources_from_env
from .retention import RETENTION_DEFS
from .sensors import task_status_sensor


def build_definitions(resources: dict | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[*LINEAGE_SPECS, *RECORDING_DEFS["assets"]],
        jobs=[order_processing, data_flow, upload_approved, *RECORDING_DEFS["jobs"], *REVIEW_DEFS["jobs"], *RETENTION_DEFS["jobs"]],
        schedules=[*RECORDING_DEFS["schedules"], *RETENTION_DEFS["schedules"]],
        sensors=[task_status_sensor, bandwidth_sensor, *RECORDING_DEFS["sensors"], *REVIEW_DEFS["sensors"], *OBSERVABILITY_DEFS["sensors"]],
        resources={
            **RECORDING_DEFS["resources"],
            **REVIEW_DEFS["resources"],
            **OBSERVABILITY_DEFS["resources"],
            "bandwidth": bandwidth_resource_from_env(),
            **resources_from_env(),
            **(resources or {}),
        },
    )


defs = build_definitions()
