"""Submitting an order to the control plane from an order spec (the launchpad form or the CLI).

Dagster retries ops, so each step tolerates having already happened: a 409 on retry means the
previous attempt got through, and we continue from what the control plane holds.
"""

from __future__ import annotations

from typing import Any, Iterator

from .http import ControlPlaneError

ORDER_FIELDS = ("order_id", "scene", "sub_scene", "skills", "requirements", "priority")
PAGE_SIZE = 1000


def all_tasks(client, **filters: Any) -> Iterator[dict[str, Any]]:
    """Every task matching ``filters``, fetched a page at a time."""
    offset = 0
    while True:
        page = client.list_tasks(**filters, limit=PAGE_SIZE, offset=offset)
        yield from page
        if len(page) < PAGE_SIZE:
            return
        offset += PAGE_SIZE


def create_order(client, spec: dict[str, Any], created_by: str = "") -> dict[str, Any]:
    try:
        return client.create_order(**{k: spec[k] for k in ORDER_FIELDS if k in spec}, created_by=created_by)
    except ControlPlaneError as exc:
        if exc.status_code != 409:
            raise
        existing = client.get_order(spec["order_id"])
        if existing["scene"] != spec["scene"] or list(existing["skills"]) != list(spec["skills"]):
            raise  # a different order already holds this id
        return existing


def plan_order(client, spec: dict[str, Any]) -> dict[str, Any]:
    try:
        return client.plan_order(
            spec["order_id"],
            strategy=spec.get("batch_strategy", "per_skill"),
            task_count=spec.get("task_count", 1),
            duration_seconds=spec.get("duration_seconds", 60.0),
            topics=spec.get("topics", []),
            manual_batches=spec.get("manual_batches", []),
        )
    except ControlPlaneError as exc:
        if exc.status_code != 409:
            raise
        return {
            "order_id": spec["order_id"],
            "batches": client.list_batches(order_id=spec["order_id"]),
            "tasks": list(all_tasks(client, order_id=spec["order_id"])),
        }
