"""Data flow: ``data_flow`` (one run per staged dataset and attempt: ingest -> QC -> publish, park or
discard; :mod:`.jobs`) and ``staged_dataset_sensor`` that starts it (:mod:`.sensors`)."""

import dagster as dg

from .jobs import DATA_FLOW_JOB, DataFlowPolicy, data_flow, data_flow_policy_from_env
from .reporting import report_upload_failed, upload_error_reason
from .sensors import data_flow_run_key, evaluate_staged, staged_candidates, staged_dataset_sensor

defs = dg.Definitions(jobs=[data_flow], sensors=[staged_dataset_sensor])

__all__ = [
    "DATA_FLOW_JOB",
    "DataFlowPolicy",
    "data_flow",
    "data_flow_policy_from_env",
    "data_flow_run_key",
    "defs",
    "evaluate_staged",
    "report_upload_failed",
    "staged_candidates",
    "staged_dataset_sensor",
    "upload_error_reason",
]
