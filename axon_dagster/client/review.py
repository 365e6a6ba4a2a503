"""The review routes of the control-plane API (``axon_dagster.api.review``) for Python callers."""

from __future__ import annotations

from typing import Any

from .admin import ControlPlaneClient
from .http import _seg


class ReviewClient(ControlPlaneClient):
    """The control-plane client plus the review routes."""

    def review_queue(self, limit: int = 50, offset: int = 0, **filters: Any) -> list[dict[str, Any]]:
        """``filters``: scene, sub_scene, skill (a string or a list), robot_id, since."""
        return self._request("GET", "/review/queue", params={"limit": limit, "offset": offset, **filters})

    def review_decisions(self, after: str = "", limit: int = 100) -> dict[str, Any]:
        return self._request("GET", "/review/decisions", params={"after": after, "limit": limit})

    def dispose_rejected(self, dataset_id: str, policy: str) -> dict[str, Any]:
        return self._request("POST", f"/datasets/{_seg(dataset_id)}/disposal", json={"policy": policy})
