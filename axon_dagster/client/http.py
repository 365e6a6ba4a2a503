"""Python clients of the control-plane API, over httpx only.

The edge agent imports this module on robots, so it must never import FastAPI, SQLAlchemy,
Dagster, Ray or Daft (a test checks it). Responses are the API's JSON, decoded.

- :class:`ControlPlaneClient`: admin and data-flow calls (optional admin bearer token).
- :class:`EdgeSyncClient`: a robot's pull of its tasks and push of its status events.

Errors: :class:`ControlPlaneError` carries the API's status code and ``detail``;
:class:`ControlPlaneUnavailable` means the API could not be reached or is temporarily down
(connection refused, timeout, 502/503/504): callers retry those.
"""

from __future__ import annotations

import logging
import math
import ssl
from datetime import datetime
from functools import lru_cache
from types import TracebackType
from typing import Any, Mapping, Sequence, TypedDict
from urllib.parse import quote

import httpx

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
_RETRYABLE_STATUS = frozenset({502, 503, 504})


class ControlPlaneError(Exception):
    """The API refused a request (4xx) or failed (5xx other than 502/503/504)."""

    def __init__(self, status_code: int, detail: str):
        self.status_code = status_code
        self.detail = detail
        super().__init__(f"control plane answered {status_code}: {detail}")


class ControlPlaneUnavailable(Exception):
    """The control plane could not be reached or is temporarily unavailable; try again later."""


class TaskPage(TypedDict):
    tasks: list[dict[str, Any]]
    cursor: int


class EventPage(TypedDict):
    events: list[dict[str, Any]]
    cursor: int


class EventResult(TypedDict, total=False):
    event_id: str
    result: str  # applied | duplicate | rejected
    error: str | None


def _api_base(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith(API_PREFIX) else base + API_PREFIX


def _seg(value: str) -> str:
    # Ids travel as one path segment: '/' and friends are escaped, never interpreted.
    return quote(str(value), safe="")


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    # httpx builds a fresh TLS context (loading the CA bundle) per client otherwise: ~50 ms each.
    return httpx.create_ssl_context()


class _HttpClient:
    def __init__(self, base_url: str, token: str | None, timeout: float):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = _api_base(base_url)
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, verify=_tls_context())

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        extra_timeout: float = 0.0,
    ) -> Any:
        # Pairs, not a dict, so a parameter may repeat (?skill=a&skill=b); None means "not given".
        pairs = params.items() if isinstance(params, Mapping) else (params or ())
        query = [(k, item) for k, v in pairs for item in (v if isinstance(v, (list, tuple)) else (v,)) if item is not None]
        timeout: Any = httpx.USE_CLIENT_DEFAULT
        if extra_timeout:  # a long-poll: the server may hold the answer this much longer
            base = self._http.timeout
            timeout = httpx.Timeout(connect=base.connect, read=(base.read or 0) + extra_timeout, write=base.write, pool=base.pool)
        try:
            response = self._http.request(method, path, json=json, params=query, timeout=timeout)
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            raise ControlPlaneUnavailable(f"{method} {self.base_url}{path}: {exc.__class__.__name__}: {exc}") from exc
        if response.status_code in _RETRYABLE_STATUS:
            raise ControlPlaneUnavailable(f"{method} {self.base_url}{path}: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise ControlPlaneError(response.status_code, _detail(response))
        if not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text or response.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return str(body)


class ControlPlaneClient(_HttpClient):
    """Admin and data-flow side of the API. ``token`` is ``AXON_ADMIN_TOKEN`` when one is configured."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10):
        super().__init__(base_url, token, timeout)

    # ---------------------------------------------------------------- health
    def healthz(self) -> dict[str, Any]:
        return self._request("GET", "/healthz")

    # ---------------------------------------------------------------- robots
    def register_robot(self, robot_id: str, name: str = "") -> dict[str, Any]:
        """Returns ``{robot_id, token}``; the token is shown only this once."""
        return self._request("POST", "/robots", json={"robot_id": robot_id, "name": name})

    def list_robots(self) -> list[dict[str, Any]]:
        return self._request("GET", "/robots")

    # ---------------------------------------------------------------- orders and batches
    def create_order(
        self,
        order_id: str,
        scene: str,
        skills: Sequence[str],
        *,
        sub_scene: str = "",
        requirements: Mapping[str, Any] | None = None,
        priority: int = 0,
        created_by: str = "",
    ) -> dict[str, Any]:
        body = {
            "order_id": order_id,
            "scene": scene,
            "sub_scene": sub_scene,
            "skills": list(skills),
            "requirements": dict(requirements or {}),
            "priority": priority,
            "created_by": created_by,
        }
        return self._request("POST", "/orders", json=body)

    def plan_order(
        self,
        order_id: str,
        *,
        strategy: str = "per_skill",
        task_count: int = 1,
        duration_seconds: float = 60.0,
        topics: Sequence[str] = (),
        manual_batches: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Returns ``{order_id, batches, tasks}``."""
        body: dict[str, Any] = {
            "strategy": strategy,
            "task_count": task_count,
            "duration_seconds": duration_seconds,
            "topics": list(topics),
        }
        if manual_batches is not None:
            body["manual_batches"] = [dict(m) for m in manual_batches]
        return self._request("POST", f"/orders/{_seg(order_id)}/plan", json=body)

    def dispatch_order(self, order_id: str, robot_ids: Sequence[str] | None = None) -> dict[str, str]:
        """Assign the order's unassigned PENDING tasks; returns ``{task_id: robot_id}``."""
        body = {"robot_ids": list(robot_ids)} if robot_ids is not None else {}
        return self._request("POST", f"/orders/{_seg(order_id)}/dispatch", json=body)["assignments"]

    def list_orders(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        return self._request("GET", "/orders", params={"limit": limit, "offset": offset})

    def get_order(self, order_id: str) -> dict[str, Any]:
        return self._request("GET", f"/orders/{_seg(order_id)}")

    def list_batches(self, order_id: str | None = None) -> list[dict[str, Any]]:
        return self._request("GET", "/batches", params={"order_id": order_id})

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        return self._request("GET", f"/batches/{_seg(batch_id)}")

    # ---------------------------------------------------------------- tasks and events
    def list_tasks(
        self,
        *,
        order_id: str | None = None,
        batch_id: str | None = None,
        robot_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        params = {"order_id": order_id, "batch_id": batch_id, "robot_id": robot_id, "status": status, "limit": limit, "offset": offset}
        return self._request("GET", "/tasks", params=params)

    def get_task(self, task_id: str) -> dict[str, Any]:
        return self._request("GET", f"/tasks/{_seg(task_id)}")

    def transition_task(
        self, task_id: str, status: str, *, reason: str | None = None, data: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """A cloud-side move (UPLOADED, CANCELLED, FAILED); idempotent; 409 if illegal."""
        body: dict[str, Any] = {"status": getattr(status, "value", status)}
        if reason is not None:
            body["reason"] = reason
        if data is not None:
            body["data"] = dict(data)
        return self._request("POST", f"/tasks/{_seg(task_id)}/transition", json=body)

    def events_after(self, after: int = 0, limit: int = 100) -> EventPage:
        """Status events with ``seq > after`` (oldest first) and the cursor to pass next time."""
        return self._request("GET", "/events", params={"after": after, "limit": limit})

    # ---------------------------------------------------------------- datasets (dataset_id = task_id)
    def list_datasets(
        self, *, status: str | None = None, outcome: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        return self._request("GET", "/datasets", params={"status": status, "outcome": outcome, "limit": limit, "offset": offset})

    def search_datasets(self, *, skills: Sequence[str] = (), limit: int = 100, offset: int = 0, **filters: str | None) -> dict[str, Any]:
        """``GET /dataset-search``: ``{datasets, total, limit, offset}``; each dataset carries its
        lineage and its order's priority. ``filters``: scene, sub_scene, status, outcome, order_id,
        batch_id, robot_id, collector_id, since, until."""
        params = [*filters.items(), *(("skill", s) for s in skills), ("limit", limit), ("offset", offset)]
        return self._request("GET", "/dataset-search", params=params)

    def get_dataset(self, dataset_id: str) -> dict[str, Any]:
        return self._request("GET", f"/datasets/{_seg(dataset_id)}")

    def dataset_cached(
        self, dataset_id: str, *, cache_path: str, dataset_digest: str, size_bytes: int, task_id: str | None = None
    ) -> dict[str, Any]:
        body = {"task_id": task_id or dataset_id, "cache_path": cache_path, "dataset_digest": dataset_digest, "size_bytes": size_bytes}
        return self._request("POST", f"/datasets/{_seg(dataset_id)}/cached", json=body)

    def dataset_inspected(
        self, dataset_id: str, *, score: float, outcome: str, report: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        # The API refuses NaN/Infinity (not JSON); a measured infinity in the report travels as text.
        body = {"score": score, "outcome": getattr(outcome, "value", outcome), "report": _finite(dict(report or {}))}
        return self._request("POST", f"/datasets/{_seg(dataset_id)}/inspection", json=body)

    def review_dataset(self, dataset_id: str, *, reviewer: str, approve: bool, comment: str = "") -> dict[str, Any]:
        body = {"reviewer": reviewer, "approve": approve, "comment": comment}
        return self._request("POST", f"/datasets/{_seg(dataset_id)}/review", json=body)

    def dataset_upload_started(self, dataset_id: str) -> dict[str, Any]:
        return self._request("POST", f"/datasets/{_seg(dataset_id)}/upload-started")

    def dataset_upload_failed(self, dataset_id: str, reason: str) -> dict[str, Any]:
        """The upload of ``dataset_id`` failed for good: back to INSPECTED, with ``reason`` kept."""
        return self._request("POST", f"/datasets/{_seg(dataset_id)}/upload-failed", json={"reason": reason})

    def dataset_uploaded(self, dataset_id: str, *, cloud_uri: str, dataset_digest: str) -> dict[str, Any]:
        body = {"cloud_uri": cloud_uri, "dataset_digest": dataset_digest}
        return self._request("POST", f"/datasets/{_seg(dataset_id)}/uploaded", json=body)


    # ---------------------------------------------------------------- edge caches
    def report_cache_usage(self, cache_id: str, usage: Mapping[str, Any]) -> dict[str, Any]:
        """Store ``usage`` (``EdgeCache.disk_usage()``) as the current usage of edge cache ``cache_id``."""
        return self._request("PUT", f"/edge-caches/{_seg(cache_id)}/usage", json=dict(usage))

    def list_cache_usage(self) -> list[dict[str, Any]]:
        """The last usage report of every edge cache, by cache id."""
        return self._request("GET", "/edge-caches")

    # ---------------------------------------------------------------- robots' uploads (issue 13)
    def grant_upload(self, task_id: str, ttl_seconds: int = 900) -> dict[str, Any]:
        """Let the robot of ``task_id`` upload its recording for ``ttl_seconds`` (RECORDED, gate
        passed). Returns the grant ``{grant_id, dataset_id, task_id, robot_id, status, granted_at,
        expires_at, finished_at}``; the same grant while an unexpired one exists."""
        return self._request("POST", f"/datasets/{_seg(task_id)}/upload-grant", json={"ttl_seconds": ttl_seconds})

    def upload_queue(self, limit: int = 1000) -> dict[str, Any]:
        """``{candidates: [{dataset_id, task_id, robot_id, order_id, priority, size_bytes, recorded_at,
        age_seconds, last_upload_error}], active_grants: [grant], robots: [robot with uplink]}``;
        candidates by order priority (highest first), then age (oldest first)."""
        return self._request("GET", "/upload-queue", params={"limit": limit})

    def expire_upload_grants(self) -> int:
        """Expire every grant past its expiry now (the API also does it every few seconds)."""
        return self._request("POST", "/upload-grants/expire")["expired"]

    def dataset_publish_attempt(self, dataset_id: str) -> dict[str, Any]:
        """A data-flow run starts to publish the dataset: its ``publish_attempts`` + 1 (the dataset)."""
        return self._request("POST", f"/datasets/{_seg(dataset_id)}/publish-attempt")


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

    def upload_plan(self, task_id: str, grant_id: str) -> dict[str, Any]:
        """Part targets of every file of the task's recording under ``grant_id`` (again: a resume)."""
        return self._request("POST", f"/edge/uploads/{_seg(task_id)}/plan", json={"grant_id": grant_id})

    def complete_upload(self, task_id: str, grant_id: str, files: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
        """``files``: ``{name: [{number, etag}, ...]}`` for every file of the manifest. Returns the dataset (STAGED)."""
        body = {"grant_id": grant_id, "files": {name: [{"number": p["number"], "etag": p["etag"]} for p in parts] for name, parts in files.items()}}
        return self._request("POST", f"/edge/uploads/{_seg(task_id)}/complete", json=body)

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


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its text (``"inf"``, ``"-inf"``, ``"nan"``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
