"""Shared by the fuzz suite: tokens, the checks and the bounded example counts, and a count of what
every request answered (printed at the end of the run by conftest.py)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "edge"))

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis import checks as st_checks  # noqa: E402

ADMIN_TOKEN = "fuzz-admin-token"
EDGE_PIN = "fuzz-pin-2468"
# Per operation: enough to reach the bounds (schemathesis also walks each schema's edges), small enough for CI.
MAX_EXAMPLES = 40

CHECKS = [st_checks.not_a_server_error, st_checks.status_code_conformance, st_checks.response_schema_conformance,
          st_checks.content_type_conformance]
SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

# What every request of the suite answered, by API and status class (printed at the end).
OUTCOMES: Counter[str] = Counter()
