"""The two routes every robot calls all the time: pull its tasks (long-poll) and push its events;
and its edge cache's usage report (``PUT /edge/cache-usage``, every few minutes at most).

They parse their own input (no dependency injection, no request model): most of what a request
costs is what FastAPI does around it. Keep them cheap (issue 17): an idle pull is one primary-key
read, a long-poll waits on the shared revision watch, not on the database.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, Awaitable, Callable

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from axon_dagster import control_plane as cp
from axon_dagster.control_plane.errors import InvalidRequestError
from axon_dagster.control_plane.caches import CacheUsageReport
from axon_dagster.control_plane.views import EdgeCacheUsageView, EventResult, TaskPage

from . import schemas
from .asgi import INT64_MAX, INT64_MIN
from .fleet_sync import MAX_WAIT_SECONDS, RevisionWatch
from .metrics import ControlPlaneMetrics
from .responses import json_response as _json


class EventResultsResponse(BaseModel):
    results: list[EventResult]


def install(edge: APIRouter, current_robot: Callable[[Request], Awaitable[str]], watch: RevisionWatch, uow_factory: Callable[[], Any],
            api_metrics: ControlPlaneMetrics, max_file_bytes: int) -> None:
    @edge.get("/tasks", response_model=TaskPage, openapi_extra={"parameters": _PULL_PARAMETERS})
    async def pull_tasks(request: Request) -> Any:
        """Query ``after`` (cursor, default 0), ``limit`` (default 100), ``wait`` (seconds, default
        0). ``wait`` > 0 long-polls: with nothing new for this robot the answer comes when its tasks
        change or after ``wait`` seconds (an empty page), and the wait costs no database access.
        ``Server-Timing: wait;dur=<ms>`` says how long the answer was held."""
        robot = await current_robot(request)
        query = request.query_params
        after, limit = _query_number(query, "after", 0, int), _query_number(query, "limit", 100, int)
        wait = _query_number(query, "wait", 0.0, float)
        if not 0 <= wait <= MAX_WAIT_SECONDS:
            raise InvalidRequestError(f"wait must be between 0 and {MAX_WAIT_SECONDS:g} seconds, got {wait!r}")
        held, known = 0.0, None
        if wait > 0 and after >= 0:
            known = watch.known_changed(robot, after)
            if known is None:  # the watch has not read yet: ask the store once
                page = await run_in_threadpool(cp.pull_tasks, uow_factory(), robot, after, limit)
                if page.tasks:
                    return _json(TaskPage, page)
            if not known:
                started = time.monotonic()
                known = await watch.wait(robot, after, wait)
                held = time.monotonic() - started
                if not known:
                    return _json(TaskPage, TaskPage(tasks=[], cursor=after), headers=_held(held))
        # The watch saw the revision move: straight to the tasks, no revision read.
        page = await run_in_threadpool(cp.pull_tasks, uow_factory(), robot, after, limit, bool(known))
        return _json(TaskPage, page, headers=_held(held))

    @edge.post("/events", response_model=EventResultsResponse, openapi_extra={"requestBody": _PUSH_BODY})
    async def push_events(request: Request) -> Any:
        """Body ``{"events": [{event_id, task_id, status, occurred_at?, data?}, ...]}``, applied in
        order in one transaction."""
        robot = await current_robot(request)
        events = cp.parse_events(_edge_events(await request.body()))
        results = await run_in_threadpool(lambda: cp.apply_events(uow_factory(), robot, events, max_file_bytes=max_file_bytes))
        api_metrics.events_received(robot, (e.occurred_at for e in events), results)
        return _json(EventResultsResponse, EventResultsResponse(results=results))

    @edge.put("/cache-usage", response_model=EdgeCacheUsageView, openapi_extra={"requestBody": _CACHE_USAGE_BODY})
    async def report_cache_usage(request: Request) -> Any:
        """Body: the robot's ``EdgeCache.disk_usage()`` report (used/quota/pending bytes, datasets
        by state, pressure, ...). Kept as the usage of the authenticated robot's cache, replacing
        its previous report; a bad body is refused with 422 and changes nothing."""
        robot = await current_robot(request)  # the cache id: the token's robot, never the body's
        usage = cp.parse_cache_usage(await request.body())
        view = await run_in_threadpool(cp.report_cache_usage, uow_factory(), robot, usage)
        return _json(EdgeCacheUsageView, view)


_EVENT_KEYS = frozenset(schemas.EdgeEvent.model_fields)


def _edge_events(body: bytes) -> list[dict[str, Any]]:
    """The ``events`` of a push body, refused with a clear 422 unless it has exactly that shape."""
    try:
        parsed = json.loads(body)
    except ValueError:
        raise InvalidRequestError("the request body is not JSON") from None
    if not isinstance(parsed, dict) or set(parsed) != {"events"} or not isinstance(parsed["events"], list):
        raise InvalidRequestError('the body must be {"events": [{event_id, task_id, status, occurred_at?, data?}, ...]}')
    for index, item in enumerate(parsed["events"]):
        if not isinstance(item, dict):
            raise InvalidRequestError(f"events[{index}] must be an object")
        unknown = sorted(set(item) - _EVENT_KEYS)
        if unknown:
            raise InvalidRequestError(f"events[{index}] has unknown fields {unknown}")
    return parsed["events"]


def _query_number(query: Any, name: str, default: Any, kind: type) -> Any:
    raw = query.get(name)
    if raw is None:
        return default
    what = "a 64-bit integer" if kind is int else "a finite number"
    try:
        value = kind(raw) if len(raw) <= 32 else None
    except ValueError:
        value = None
    if value is None or (kind is int and not INT64_MIN <= value <= INT64_MAX) or (kind is float and not math.isfinite(value)):
        raise InvalidRequestError(f"{name} must be {what}, got {raw[:40]!r}")
    return value


_INT64 = {"type": "integer", "minimum": 0, "maximum": INT64_MAX}
_PULL_PARAMETERS = [
    {"name": "after", "in": "query", "required": False, "schema": {**_INT64, "default": 0},
     "description": "the cursor: the last revision this robot has (0 at first)"},
    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 100}},
    {"name": "wait", "in": "query", "required": False,
     "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT_SECONDS, "default": 0},
     "description": "long-poll: seconds to hold the answer while nothing is new"},
]
_PUSH_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["events"], "additionalProperties": False,
        "properties": {"events": {"type": "array", "items": {
            "type": "object", "required": ["event_id", "task_id", "status"], "additionalProperties": False,
            "properties": {
                "event_id": {"type": "string"}, "task_id": {"type": "string"}, "status": {"type": "string"},
                "occurred_at": {"type": ["string", "null"], "format": "date-time"},
                "data": {"type": ["object", "null"]},
            },
        }}},
    }}},
}


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its ``$defs`` inlined (OpenAPI resolves refs under components only)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items()}
        return [walk(v) for v in node] if isinstance(node, list) else node

    return walk(schema)


_CACHE_USAGE_BODY = {"required": True, "content": {"application/json": {"schema": _inlined(CacheUsageReport.model_json_schema())}}}


def _held(seconds: float) -> dict[str, str]:
    return {"Server-Timing": f"wait;dur={seconds * 1000:.1f}"}
