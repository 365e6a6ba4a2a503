"""The control plane's published OpenAPI document, made to say what the API answers: errors are
``{"detail": "..."}`` (422 included, not FastAPI's default list), and 400/401/403/404/409/413/422 are
documented on the routes that can give them. ``tests/fuzz`` holds the API to it with schemathesis."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR = {"title": "Error", "type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}}
_WORDS = {
    "400": "a body that is not JSON at all (or a bad Content-Length)",
    "401": "not signed in, or a missing/invalid token",
    "403": "the principal's role does not allow it, or a cross-site / non-JSON browser write",
    "404": "unknown id",
    "409": "illegal transition, a final decision, or a duplicate create",
    "413": "request body over the limit",
    "422": "invalid input (named in detail); nothing was changed",
}
_OPEN = {"/healthz", "/metrics", "/readyz"}


def _codes(method: str, path: str) -> tuple[str, ...]:
    if path in _OPEN:
        return ()
    codes = ["401", "403", "404", "409", "422"]
    if method in ("post", "put", "patch", "delete"):
        codes += ["400", "413"]
    return tuple(codes)


def install_openapi(app: FastAPI) -> None:
    def document() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        components["Error"] = ERROR
        ref = {"$ref": "#/components/schemas/Error"}
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                for code in _codes(method, path):
                    responses[code] = {"description": _WORDS[code], "content": {"application/json": {"schema": ref}}}
        app.openapi_schema = schema
        return schema

    app.openapi = document  # type: ignore[method-assign]
