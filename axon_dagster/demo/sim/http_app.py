"""The simulator over Axon's HTTP RPC (v0.4): a Starlette app around a :class:`.recorder.SimulatedRecorder`
(typed by :class:`RpcRecorder`, what the app needs of it: the recorder builds its app, so this module
does not import it)."""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Mapping, Protocol

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .faults import FaultsError, SimFaults
from .session import RpcRefusal

logger = logging.getLogger(__name__)

# What each RPC sends over HTTP, as Axon does (rpc_handlers.cpp); None = everything.
WIRE_FIELDS: dict[str, tuple[str, ...] | None] = {
    "config": ("state", "task_id"),
    "begin": ("state", "task_id"),
    "finish": ("state", "task_id"),
    "pause": ("state",),
    "resume": ("state",),
    "cancel": ("state",),
    "clear": ("state",),
    "state": ("version", "state", "task_config", "running", "duration_sec", "message_count", "bytes_written"),
    "stats": (
        "state",
        "messages_received",
        "messages_written",
        "messages_dropped",
        "bytes_written",
        "bytes_received",
        "receive_rate_mbps",
        "write_rate_mbps",
        "duration_sec",
        "message_count",
        "topic_message_counts",
        "disk_usage",
        "metadata",
    ),
}
WIRE_FIELDS["status"] = WIRE_FIELDS["stats"]


def on_wire(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """The fields Axon sends for RPC ``name`` (:data:`WIRE_FIELDS`)."""
    keep = WIRE_FIELDS.get(name)
    return dict(data) if keep is None else {k: data[k] for k in keep if k in data}


Reply = tuple[str, dict[str, Any]]  # (message, data) of one RPC


class RpcRecorder(Protocol):
    """What the HTTP app calls on the recorder: its RPCs, its state and its faults."""

    robot_id: str

    @property
    def state(self) -> str: ...
    @property
    def faults(self) -> SimFaults: ...
    def set_faults(self, faults: SimFaults | Mapping[str, Any] | None) -> SimFaults: ...
    def rpc_config(self, body: Mapping[str, Any]) -> Reply: ...
    def rpc_begin(self, body: Mapping[str, Any]) -> Reply: ...
    def rpc_finish(self, body: Mapping[str, Any]) -> Reply: ...
    def rpc_pause(self, body: Mapping[str, Any]) -> Reply: ...
    def rpc_resume(self, body: Mapping[str, Any]) -> Reply: ...
    def rpc_cancel(self, body: Mapping[str, Any]) -> Reply: ...
    def rpc_clear(self, body: Mapping[str, Any]) -> Reply: ...
    def rpc_quit(self, body: Mapping[str, Any]) -> Reply: ...
    def rpc_batch(self, action: str, body: Mapping[str, Any]) -> Reply: ...
    def rpc_task_status(self, body: Mapping[str, Any]) -> Reply: ...
    def rpc_state(self) -> Reply: ...
    def rpc_stats(self) -> Reply: ...
    def rpc_tasks(self) -> Reply: ...
    def rpc_drop_stats(self) -> Reply: ...
    def rpc_latency_stats(self) -> Reply: ...
    def rpc_log_levels(self) -> Reply: ...
    def rpc_health(self) -> dict[str, Any]: ...


def build_app(recorder: RpcRecorder) -> Starlette:
    def envelope(success: bool, message: str, data: dict[str, Any] | None = None, status: int = 200) -> JSONResponse:
        return JSONResponse({"success": success, "message": message, "data": data or {}}, status_code=status)

    async def rpc(request: Request) -> JSONResponse:
        """Axon's router: ``/rpc/<method>`` by (method, HTTP verb); anything else is a 404."""
        method = request.path_params["method"]
        handler = routes.get((method, request.method))
        if handler is None:
            return envelope(False, f"Unknown RPC method or invalid HTTP method: {method}", None, 404)
        if request.method == "GET":
            message, data = await run_in_threadpool(handler)
            return envelope(True, message, on_wire(method, data))
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            return JSONResponse({"success": False, "message": f"JSON parse error: {exc}"}, status_code=400)
        if not isinstance(body, dict):
            body = {}  # Axon reads parameters from an object; anything else has none
        try:
            message, data = await run_in_threadpool(handler, body)
        except RpcRefusal as refusal:
            logger.info("simulator %s refused %s: %s", recorder.robot_id, request.url.path, refusal.message)
            refused = {"state": recorder.state}
            if "validation_errors" in refusal.data:
                refused["validation_errors"] = refusal.data["validation_errors"]
            refused.update(refusal.data.get("batch") or {})
            # Axon answers a refusal with HTTP 200 and success=false
            return envelope(False, refusal.message, refused)
        return envelope(True, message, on_wire(method, data))

    routes: dict[tuple[str, str], Callable[..., tuple[str, dict[str, Any]]]] = {
        ("config", "POST"): recorder.rpc_config,
        ("begin", "POST"): recorder.rpc_begin,
        ("finish", "POST"): recorder.rpc_finish,
        ("pause", "POST"): recorder.rpc_pause,
        ("resume", "POST"): recorder.rpc_resume,
        ("cancel", "POST"): recorder.rpc_cancel,
        ("clear", "POST"): recorder.rpc_clear,
        ("quit", "POST"): recorder.rpc_quit,
        ("task_status", "POST"): recorder.rpc_task_status,
        ("begin_batch", "POST"): lambda body: recorder.rpc_batch("begin", body),
        ("finish_batch", "POST"): lambda body: recorder.rpc_batch("finish", body),
        ("cancel_batch", "POST"): lambda body: recorder.rpc_batch("cancel", body),
        ("log_levels", "POST"): lambda body: recorder.rpc_log_levels(),
        ("state", "GET"): recorder.rpc_state,
        ("stats", "GET"): recorder.rpc_stats,
        ("status", "GET"): lambda: ("Status retrieved successfully", recorder.rpc_stats()[1]),
        ("drop_stats", "GET"): recorder.rpc_drop_stats,
        ("latency_stats", "GET"): recorder.rpc_latency_stats,
        ("tasks", "GET"): recorder.rpc_tasks,
        ("log_levels", "GET"): recorder.rpc_log_levels,
    }

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(recorder.rpc_health())

    async def faults_endpoint(request: Request) -> JSONResponse:
        if request.method == "GET":
            return envelope(True, "current faults", recorder.faults.to_dict())
        try:
            body = await request.json()
        except ValueError:
            return envelope(False, "request body is not valid JSON", None, 400)
        try:
            faults = recorder.set_faults(body)
        except FaultsError as exc:
            return envelope(False, str(exc), recorder.faults.to_dict(), 400)
        return envelope(True, "faults set", faults.to_dict())

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code in (404, 405):
            return JSONResponse({"success": False, "message": "Not found"}, status_code=404)
        return envelope(False, str(exc.detail), {"state": recorder.state}, exc.status_code)

    return Starlette(
        routes=[
            Route("/rpc/{method}", rpc, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
            Route("/health", health, methods=["GET"]),
            Route("/", health, methods=["GET"]),
            Route("/sim/faults", faults_endpoint, methods=["GET", "POST"]),
        ],
        exception_handlers={HTTPException: http_error},
    )
