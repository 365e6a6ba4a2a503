"""Robots' uploads: ``upload_grant_sensor`` decides which robot uploads what next (:mod:`.sensor`,
rules in :mod:`.grants`)."""

import dagster as dg

from .grants import GrantRules, in_windows, plan_grants
from .sensor import UploadGrantPolicy, evaluate_grants, upload_grant_policy_from_env, upload_grant_sensor

defs = dg.Definitions(sensors=[upload_grant_sensor])

__all__ = ["GrantRules", "UploadGrantPolicy", "defs", "evaluate_grants", "in_windows", "plan_grants",
           "upload_grant_policy_from_env", "upload_grant_sensor"]
