"""How the control-plane API answers: views serialized straight to JSON, errors as ``{"detail"}``
with the status code each domain or service error means."""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter

from axon_dagster.control_plane.errors import (
    AlreadyExistsError,
    AuthenticationError,
    CrossSiteRequestError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from axon_dagster.domain import DomainError, IllegalTransitionError, InvalidIdError, ManifestError, PlanningError, ReviewDecisionFinal
from axon_dagster.domain.identity import ActorMismatchError

log = logging.getLogger(__name__)

_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def json_response(view_type: Any, value: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialize a (possibly 10,000-task) view straight to JSON bytes in pydantic's Rust core.
    The route's ``response_model`` still documents the shape; this skips FastAPI's generic
    validate-then-encode pass, which dominated the time of big answers."""
    adapter = _ADAPTERS.get(view_type)
    if adapter is None:
        adapter = _ADAPTERS[view_type] = TypeAdapter(view_type)
    return Response(adapter.dump_json(value), status_code=status_code, media_type="application/json", headers=headers)


def error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def handler(status: int, headers: dict[str, str] | None = None) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """An exception handler answering ``status`` with the exception's message as ``detail``."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        log.info("%s %s -> %d: %s", request.method, request.url.path, status, exc)
        return error_response(status, str(exc), headers)

    return handle


def install_error_handlers(app: FastAPI) -> None:
    """Domain and service errors -> 4xx with ``{"detail": "..."}``. Starlette picks the handler of
    the most specific class in the exception's MRO, so subclasses win over DomainError."""
    app.add_exception_handler(InvalidIdError, handler(422))
    app.add_exception_handler(PlanningError, handler(422))
    app.add_exception_handler(ManifestError, handler(422))
    app.add_exception_handler(InvalidRequestError, handler(422))
    app.add_exception_handler(IllegalTransitionError, handler(409))
    app.add_exception_handler(ReviewDecisionFinal, handler(409))
    app.add_exception_handler(DomainError, handler(409))  # a step the entity's current state refuses
    app.add_exception_handler(AlreadyExistsError, handler(409))
    app.add_exception_handler(NotFoundError, handler(404))
    app.add_exception_handler(AuthenticationError, handler(401, {"WWW-Authenticate": "Bearer"}))
    app.add_exception_handler(PermissionDeniedError, handler(403))
    app.add_exception_handler(CrossSiteRequestError, handler(403))
    app.add_exception_handler(ActorMismatchError, handler(403))

    async def validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()))
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        detail = "; ".join(problems) or "invalid request"
        log.info("%s %s -> 422: %s", request.method, request.url.path, detail)
        return error_response(422, detail)

    app.add_exception_handler(RequestValidationError, validation)  # type: ignore[arg-type]
