"""The admin and data-flow side of the control-plane API (optional admin bearer token)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .http import EventPage, _finite, _HttpClient, _seg


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


    # ---------------------------------------------------------------- robots' edge caches
    def list_cache_usage(self) -> list[dict[str, Any]]:
        """The last usage report of every robot's edge cache (its edge agent sends it), by robot id."""
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
