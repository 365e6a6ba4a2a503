"""The agent's HTTP surface, for collectors (list, pick up, teleop) and for operators (status,
metrics). Starlette only — robots never load FastAPI.

Errors are JSON ``{"detail": ...}``: 404 unknown task, 409 illegal transition or busy recorder,
422 bad input (including invalid ids), 502 recorder refused or answered nonsense, 503 recorder
unreachable; 401/403/413/429 from the access rules (``access.py``). A refused request changes
nothing. The routes are described in ``GET /openapi.json`` (``openapi.py``).
"""

from __future__ import annotations

import hmac
import logging
import sys
from typing import Any, Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.middleware import Middleware
from starlette.routing import Route

from axon_dagster.api.asgi import BodySizeLimit, SecurityHeaders
from axon_dagster.domain import DomainError, IllegalTransitionError, InvalidIdError, parse_task_status

from .access import HttpAccess, CollectorGuard
from .agent import EdgeAgent
from .errors import Conflict, InvalidRequest, RecorderFailure, UnknownTask
from .metrics import metrics_registry
from .openapi import OPENAPI
from .web import collector as collector_page

log = logging.getLogger(__name__)


def create_app(agent: EdgeAgent, access: HttpAccess | None = None) -> Starlette:
    """The agent's routes behind :class:`axon_edge.access.CollectorGuard` (who may call), a body
    limit and the security headers. ``access`` defaults to loopback-only, no debug routes."""
    access = access or HttpAccess()
    registry = metrics_registry(agent)

    def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "robot_id": agent.robot_id})

    def list_tasks(request: Request) -> JSONResponse:
        _only_keys(dict(request.query_params), {"status"}, "query parameter")
        raw = request.query_params.get("status")
        try:
            status = parse_task_status(raw) if raw else None
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        return JSONResponse({"tasks": [t.to_dict() for t in agent.list_tasks(status)]})

    def get_task(request: Request) -> JSONResponse:
        return JSONResponse(agent.get_task(request.path_params["task_id"]).to_dict())

    async def pickup(request: Request) -> JSONResponse:
        body = await _json_object(request, required={"collector_id"})
        task = await run_in_threadpool(agent.pickup, request.path_params["task_id"], body["collector_id"])
        return JSONResponse(task.to_dict())

    async def recording_callback(request: Request) -> JSONResponse:
        # Axon's start/finish callbacks; the bearer is the token this agent put into the config.
        auth = request.headers.get("authorization", "")
        if not hmac.compare_digest(auth.encode(), f"Bearer {agent.callback_token}".encode()):
            return JSONResponse({"detail": "missing or wrong callback token"}, status_code=401)
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("task_id"), str) or not isinstance(body.get("status"), str):
            raise InvalidRequest("callback body must be a JSON object with string fields task_id and status")
        dataset_path = body.get("output_path") or body.get("dataset_path")  # Axon's name first
        sidecar = body.get("sidecar_path")
        task = await run_in_threadpool(
            lambda: agent.recording_callback(
                body["task_id"],
                body["status"],
                dataset_path if isinstance(dataset_path, str) else None,
                body.get("error") if isinstance(body.get("error"), str) else None,
                sidecar_path=sidecar if isinstance(sidecar, str) else None,
            )
        )
        return JSONResponse(task.to_dict())

    async def teleop(request: Request) -> JSONResponse:
        body = await _json_object(request, required={"task_id", "command"})
        task = await run_in_threadpool(agent.teleop, body["task_id"], body["command"])
        return JSONResponse(task.to_dict())

    def status(request: Request) -> JSONResponse:
        return JSONResponse(agent.status())

    def outbox(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "events": [
                    {**e.wire(), "id": e.id, "attempts": e.attempts, "result": e.result,
                     "last_error": e.last_error, "delivered_at": e.delivered_at}
                    for e in agent.db.outbox()
                ]
            }
        )

    def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def loaded_modules(request: Request) -> JSONResponse:
        # Robots are small: tests (and operators) check that no heavy framework got imported.
        return JSONResponse({"modules": sorted({name.split(".")[0] for name in list(sys.modules)})})

    routes = [
        Route("/healthz", healthz),
        Route("/tasks", list_tasks),
        Route("/tasks/{task_id}", get_task),
        Route("/tasks/{task_id}/pickup", pickup, methods=["POST"]),
        Route("/teleop", teleop, methods=["POST"]),
        Route("/callbacks/recording", recording_callback, methods=["POST"]),
        *collector_page.routes(agent),  # the collector page: /, /collector, /collector/live, assets
        Route("/status", status),
        Route("/outbox", outbox),
        Route("/metrics", metrics),
        Route("/openapi.json", lambda request: JSONResponse(OPENAPI)),
    ]
    if access.debug_routes:
        routes.append(Route("/debug/modules", loaded_modules))
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(BodySizeLimit, max_bytes=access.max_body_bytes),
        Middleware(CollectorGuard, access=access),
    ]
    return Starlette(routes=routes, exception_handlers=_exception_handlers(), middleware=middleware)


def _exception_handlers() -> dict[Any, Callable[[Request, Exception], Awaitable[Response]]]:
    def handler(status_code: int, level: int = logging.INFO):
        async def respond(request: Request, exc: Exception) -> JSONResponse:
            log.log(level, "%s %s -> %d: %s", request.method, request.url.path, status_code, exc)
            return JSONResponse({"detail": str(exc)}, status_code=status_code)

        return respond

    async def http_exception(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    async def recorder_failure(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RecorderFailure)
        code = 503 if exc.unreachable else 502
        log.warning("%s %s -> %d: %s", request.method, request.url.path, code, exc)
        return JSONResponse({"detail": str(exc), "task_failed": exc.task_failed}, status_code=code)

    return {
        HTTPException: http_exception,
        InvalidIdError: handler(422),
        InvalidRequest: handler(422),
        UnknownTask: handler(404),
        Conflict: handler(409),
        IllegalTransitionError: handler(409),
        DomainError: handler(409),
        RecorderFailure: recorder_failure,
    }


async def _json_object(request: Request, *, required: set[str]) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise InvalidRequest("request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    _only_keys(body, required, "field")
    missing = sorted(required - set(body))
    if missing:
        raise InvalidRequest(f"missing field(s): {', '.join(missing)}")
    for key in required:
        if not isinstance(body[key], str):
            raise InvalidRequest(f"field {key} must be a string, got {type(body[key]).__name__}")
    return body


def _only_keys(given: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise InvalidRequest(f"unknown {what}(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
