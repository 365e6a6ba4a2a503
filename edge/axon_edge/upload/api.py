"""The robot-facing upload routes of the control plane (CONTRACT-13), over the robot's own
authenticated client (``axon_dagster.client.EdgeSyncClient``: its bearer token, pooled
connection and error mapping: ``ControlPlaneError`` for refusals, ``ControlPlaneUnavailable`` for
an unreachable or overloaded control plane)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote


def _seg(value: str) -> str:
    return quote(str(value), safe="")


class UploadApi:
    def __init__(self, client: Any):
        self._client = client

    @property
    def origin(self) -> str:
        """The control plane's base URL (part URLs on it are the embedded store's ingest endpoint)."""
        return str(getattr(self._client, "base_url", ""))

    def auth_headers(self) -> dict[str, str]:
        http = getattr(self._client, "_http", None)
        auth = http.headers.get("Authorization") if http is not None else None
        return {"Authorization": auth} if auth else {}

    # The client's own methods when it has them (EdgeSyncClient, issue 13), else the same request.

    def plan(self, task_id: str, grant_id: str) -> Any:
        if hasattr(self._client, "upload_plan"):
            return self._client.upload_plan(task_id, grant_id)
        return self._client._request("POST", f"/edge/uploads/{_seg(task_id)}/plan", json={"grant_id": grant_id})

    def complete(self, task_id: str, grant_id: str, files: Mapping[str, Sequence[Mapping[str, Any]]]) -> Any:
        if hasattr(self._client, "complete_upload"):
            return self._client.complete_upload(task_id, grant_id, files)
        body = {"grant_id": grant_id, "files": {name: [dict(p) for p in parts] for name, parts in files.items()}}
        return self._client._request("POST", f"/edge/uploads/{_seg(task_id)}/complete", json=body)

    def report_recorder(self, report: Mapping[str, Any]) -> Any:
        if hasattr(self._client, "report_recorder"):
            return self._client.report_recorder(report)
        return self._client._request("PUT", "/edge/recorder", json=dict(report))

    def report_uplink(self, mbps: float | None, windows: Sequence[Mapping[str, str]], timezone: str = "UTC") -> Any:
        if hasattr(self._client, "report_uplink"):
            return self._client.report_uplink(mbps, windows, timezone)
        body = {"mbps": mbps, "windows": [dict(w) for w in windows], "timezone": timezone}
        return self._client._request("PUT", "/edge/uplink", json=body)
