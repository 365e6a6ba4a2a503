"""Data flow: one ``data_flow`` run per recording (stage -> inspect), ``upload_approved`` per approved
dataset, and the sensor that starts the data flow from the control plane's task events."""

import dagster as dg

from .jobs import data_flow, report_upload_failed, upload_approved, upload_error_reason
from .sensors import data_flow_run_request, task_status_sensor

defs = dg.Definitions(jobs=[data_flow, upload_approved], sensors=[task_status_sensor])

__all__ = [
    "data_flow",
    "data_flow_run_request",
    "defs",
    "report_upload_failed",
    "task_status_sensor",
    "upload_approved",
    "upload_error_reason",
]
