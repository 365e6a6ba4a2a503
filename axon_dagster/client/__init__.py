"""Python clients of the control-plane API (httpx only: the edge agent imports this on robots,
so nothing here may import FastAPI, SQLAlchemy, Dagster, Ray or Daft; a test checks it).

- ``admin``: :class:`ControlPlaneClient` (admin and data-flow calls)
- ``edge``: :class:`EdgeSyncClient` (a robot's task pull, event push, uplink and uploads)
- ``http``: what both share (session, errors)
- ``review``: :class:`ReviewClient` (the review routes besides)
- ``orders``: submitting an order spec step by step, tolerant of Dagster's retries
"""

from __future__ import annotations

from .admin import ControlPlaneClient
from .edge import EdgeSyncClient
from .http import ControlPlaneError, ControlPlaneUnavailable

__all__ = ["ControlPlaneClient", "ControlPlaneError", "ControlPlaneUnavailable", "EdgeSyncClient"]
