"""The bandwidth sensor: which approved dataset's upload goes next (see :mod:`.sensor`)."""

import dagster as dg

from .sensor import (
    UPLOAD_JOB_NAME,
    UPLOAD_OP_NAME,
    BandwidthGate,
    bandwidth_resource_from_env,
    bandwidth_sensor,
    evaluate_bandwidth,
)

defs = dg.Definitions(sensors=[bandwidth_sensor])

__all__ = [
    "UPLOAD_JOB_NAME",
    "UPLOAD_OP_NAME",
    "BandwidthGate",
    "bandwidth_resource_from_env",
    "bandwidth_sensor",
    "defs",
    "evaluate_bandwidth",
]
