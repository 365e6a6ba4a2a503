"""Data flow: ``data_flow`` (one run per staged dataset and attempt: ingest -> QC -> publish) with
``staged_dataset_sensor`` (:mod:`.staged`); until every robot uploads its own recordings, the legacy
``legacy_data_flow`` / ``upload_approved`` with ``task_status_sensor`` (:mod:`.jobs`, :mod:`.sensors`)."""

import dagster as dg

from .jobs import legacy_data_flow, report_upload_failed, upload_approved, upload_error_reason
from .sensors import data_flow_run_request, task_status_sensor
from .staged import DataFlowPolicy, data_flow, data_flow_policy_from_env, evaluate_staged, staged_dataset_sensor

defs = dg.Definitions(jobs=[data_flow, legacy_data_flow, upload_approved], sensors=[staged_dataset_sensor, task_status_sensor])

__all__ = [
    "DataFlowPolicy",
    "data_flow",
    "data_flow_policy_from_env",
    "data_flow_run_request",
    "defs",
    "evaluate_staged",
    "legacy_data_flow",
    "report_upload_failed",
    "staged_dataset_sensor",
    "task_status_sensor",
    "upload_approved",
    "upload_error_reason",
]
