"""Fixtures of the observability suite (helpers live in obs_support.py)."""

from obs_support import promtool  # noqa: F401  (fixture)
