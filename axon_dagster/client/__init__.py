"""Python clients of the control-plane API (httpx only: the edge agent imports this on robots,
so nothing here may import FastAPI, SQLAlchemy, Dagster, Ray or Daft; a test checks it).

- ``http``: :class:`ControlPlaneClient` (admin and data-flow calls), :class:`EdgeSyncClient`
  (a robot's task pull, event push and uploads), the errors
- ``review``: :class:`ReviewClient` (the review routes besides)
- ``orders``: submitting an order spec step by step, tolerant of Dagster's retries
"""

from __future__ import annotations

from .http import ControlPlaneClient, ControlPlaneError, ControlPlaneUnavailable, EdgeSyncClient

__all__ = ["ControlPlaneClient", "ControlPlaneError", "ControlPlaneUnavailable", "EdgeSyncClient"]
