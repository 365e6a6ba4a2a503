"""The edge cache's retention schedule (see :mod:`.jobs`)."""

import dagster as dg

from .jobs import edge_cache_retention, edge_cache_retention_schedule

defs = dg.Definitions(jobs=[edge_cache_retention], schedules=[edge_cache_retention_schedule])

__all__ = ["defs", "edge_cache_retention", "edge_cache_retention_schedule"]
