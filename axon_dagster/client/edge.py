"""A robot's side of the control-plane API, authenticated by its own token: its task pull, event
push, uplink, recorder and edge-cache reports, and uploads."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping, Sequence

import httpx

from .http import _RETRYABLE_STATUS, ControlPlaneError, ControlPlaneUnavailable, EventResult, TaskPage, _detail, _HttpClient, _seg, _tls_context


COMPLETE_VERIFY_SECONDS = 600.0  # room for the control plane to hash a large recording's staged files


class EdgeSyncClient(_HttpClient):
    """A robot's side of the API, authenticated by its own token (``AXON_ROBOT_TOKEN``)."""

    def __init__(self, base_url: str, robot_token: str, timeout: float = 10):
        if not robot_token:
            raise ValueError("EdgeSyncClient needs the robot's token")
        super().__init__(base_url, robot_token, timeout)

    def pull_tasks(self, after: int = 0, limit: int = 100, wait: float = 0) -> TaskPage:
        """This robot's tasks changed since revision ``after``, oldest change first, and the new
        cursor. With ``wait`` > 0 a long-poll: when nothing changed, the answer comes as soon as
        something does, or after ``wait`` seconds with no tasks (the server holds it for free)."""
        params: dict[str, Any] = {"after": after, "limit": limit}
        if wait > 0:
            params["wait"] = wait
        return self._request("GET", "/edge/tasks", params=params, extra_timeout=wait)

    def push_events(self, events: Sequence[Any]) -> list[EventResult]:
        """Deliver status events in order. Each is a ``domain.TaskEvent`` or a mapping with
        ``event_id, task_id, status, occurred_at?, data?``. Returns one result per event:
        ``applied``, ``duplicate`` or ``rejected`` (with ``error``)."""
        body = {"events": [_event_json(e) for e in events]}
        return self._request("POST", "/edge/events", json=body)["results"]

    # ---------------------------------------------------------------- uploads (issue 13)
    def report_uplink(self, mbps: float | None, windows: Sequence[Mapping[str, str]] = (), timezone: str = "UTC") -> dict[str, Any]:
        """The robot's uplink bandwidth (Mbit/s) and daily upload windows ``[{start: "HH:MM", end: "HH:MM"}]``."""
        return self._request("PUT", "/edge/uplink", json={"mbps": mbps, "windows": [dict(w) for w in windows], "timezone": timezone})

    def report_recorder(self, report: Mapping[str, Any]) -> dict[str, Any]:
        """What the robot's edge agent last saw of its recorder (``robot["recorder"]`` for the cloud)."""
        return self._request("PUT", "/edge/recorder", json=dict(report))

    def report_cache_usage(self, usage: Mapping[str, Any]) -> dict[str, Any]:
        """The robot's edge-cache usage (``EdgeCache.disk_usage()``), kept by the control plane under
        this robot's id (``GET /api/v1/edge-caches`` for admins; ``axon_edge_cache_*{robot_id}``)."""
        return self._request("PUT", "/edge/cache-usage", json=dict(usage))

    def upload_plan(self, task_id: str, grant_id: str) -> dict[str, Any]:
        """Part targets of every file of the task's recording under ``grant_id`` (again: a resume)."""
        return self._request("POST", f"/edge/uploads/{_seg(task_id)}/plan", json={"grant_id": grant_id})

    def complete_upload(self, task_id: str, grant_id: str, files: Mapping[str, Sequence[Mapping[str, Any]]],
                        verify_seconds: float = COMPLETE_VERIFY_SECONDS) -> dict[str, Any]:
        """``files``: ``{name: [{number, etag}, ...]}`` for every file of the manifest. Returns the
        dataset (STAGED). The control plane reads every staged byte back to check its SHA-256 before
        it answers: the answer may take ``verify_seconds`` longer than other calls. Retrying after a
        timeout is safe (the same answer)."""
        body = {"grant_id": grant_id, "files": {name: [{"number": p["number"], "etag": p["etag"]} for p in parts] for name, parts in files.items()}}
        return self._request("POST", f"/edge/uploads/{_seg(task_id)}/complete", json=body, extra_timeout=verify_seconds)

    def put_part(self, target: Mapping[str, Any], data: bytes) -> str:
        """Send one part to its target (a plan's ``parts[i]``); returns the ETag to report. The
        robot's token goes only to this control plane's own ingest endpoint, never to a store."""
        url = str(target["url"])
        headers = dict(target.get("headers") or {})
        own = url.startswith(self.base_url.rsplit("/api/v1", 1)[0] + "/")
        try:
            if own:
                response = self._http.request(target.get("method", "PUT"), url, content=data, headers=headers)
            else:
                response = httpx.request(target.get("method", "PUT"), url, content=data, headers=headers, timeout=self._http.timeout,
                                         verify=_tls_context())
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            raise ControlPlaneUnavailable(f"PUT part {target.get('number')}: {exc.__class__.__name__}: {exc}") from exc
        if response.status_code in _RETRYABLE_STATUS:
            raise ControlPlaneUnavailable(f"PUT part {target.get('number')}: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise ControlPlaneError(response.status_code, _detail(response))
        return str(target.get("etag") or response.headers.get("etag", ""))


def _event_json(event: Any) -> dict[str, Any]:
    if isinstance(event, Mapping):
        item = dict(event)
    else:  # a domain TaskEvent (duck-typed: this module imports nothing of the domain)
        item = {
            "event_id": event.event_id,
            "task_id": event.task_id,
            "status": event.status,
            "occurred_at": event.occurred_at,
            "data": dict(event.data or {}),
        }
    item["status"] = getattr(item.get("status"), "value", item.get("status"))
    if isinstance(item.get("occurred_at"), datetime):
        item["occurred_at"] = item["occurred_at"].isoformat()
    return item
