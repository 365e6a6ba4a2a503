"""Human review: act on review decisions (``review_decision_sensor`` -> ``dispose_rejected``) and
wait for one (``manual_inspection``). See :mod:`.jobs`."""

import dagster as dg

from .jobs import (
    DISPOSE_REJECTED_JOB,
    ReviewPolicy,
    decision_run_request,
    dispose_rejected,
    manual_inspection,
    review_decision_sensor,
    review_policy_from_env,
)

defs = dg.Definitions(jobs=[dispose_rejected, manual_inspection], sensors=[review_decision_sensor])

__all__ = [
    "DISPOSE_REJECTED_JOB",
    "ReviewPolicy",
    "decision_run_request",
    "defs",
    "dispose_rejected",
    "manual_inspection",
    "review_decision_sensor",
    "review_policy_from_env",
]
