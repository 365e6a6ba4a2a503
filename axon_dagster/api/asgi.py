"""ASGI middleware shared by the control plane and the edge agent: request-body limits and the
security headers of every response. Plain ASGI, no FastAPI: robots import this too."""

from __future__ import annotations

import json
import math
import re
import threading
import time
from typing import Any, Awaitable, Callable

# ---------------------------------------------------------------------- guessing secrets


class FailureLockout:
    """Wrong secrets (passwords, PINs) per client: after ``max_failures`` the client is locked out
    for ``lockout_seconds`` (in memory, per process: enough to make guessing slow)."""

    def __init__(self, max_failures: int = 5, lockout_seconds: float = 60.0, max_clients: int = 4096):
        self.max_failures, self.lockout_seconds, self.max_clients = max_failures, lockout_seconds, max_clients
        self._lock = threading.Lock()
        self._failures: dict[str, tuple[int, float]] = {}

    def locked(self, client: str) -> bool:
        with self._lock:
            count, since = self._failures.get(client, (0, 0.0))
            if count < self.max_failures:
                return False
            if time.monotonic() - since < self.lockout_seconds:
                return True
            self._failures.pop(client, None)
            return False

    def failed(self, client: str) -> None:
        with self._lock:
            if len(self._failures) >= self.max_clients:
                self._failures.clear()
            count, _ = self._failures.get(client, (0, 0.0))
            self._failures[client] = (count + 1, time.monotonic())

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


# ---------------------------------------------------------------------- security headers

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
_DOCS_CSP = "frame-ancestors 'none'"  # FastAPI's /docs loads its UI from a CDN
_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"), (b"referrer-policy", b"same-origin")]


class SecurityHeaders:
    """Every response: a Content-Security-Policy with ``frame-ancestors 'none'``, X-Frame-Options,
    nosniff and a same-origin referrer policy."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]], send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = (_DOCS_CSP if scope.get("path", "") in ("/docs", "/redoc", "/docs/oauth2-redirect") else CSP).encode()

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in [(b"content-security-policy", csp), *_HEADERS] if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


# ---------------------------------------------------------------------- request body limit


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_JSON_DEPTH = 32
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(rb"[\[\]{}]")


class UnsafeJson(ValueError):
    pass


def _bounded_int(text: str) -> int:
    if len(text) > 20 or not INT64_MIN <= int(text) <= INT64_MAX:
        raise UnsafeJson(f"integer {text[:24]}{'...' if len(text) > 24 else ''} is outside the 64-bit range")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeJson(f"number {text[:24]} is not a finite 64-bit float")
    return value


def _no_constant(name: str) -> Any:
    raise UnsafeJson(f"{name} is not JSON (numbers must be finite)")


def check_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse (:class:`UnsafeJson`) what JSON allows but no field of ours means: nesting deeper than
    ``max_depth``, integers beyond 64 bits, NaN/Infinity and floats that overflow. Malformed JSON
    passes (the route answers it); only the depth is checked before parsing, so a hostile body
    never reaches the parser's recursion."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub(b"", body)):
        depth += 1 if bracket in (b"[", b"{") else -1
        deepest = max(deepest, depth)
        if deepest > max_depth:
            raise UnsafeJson(f"JSON nested deeper than {max_depth} levels")
    try:
        json.loads(body, parse_int=_bounded_int, parse_float=_finite_float, parse_constant=_no_constant)
    except UnsafeJson:
        raise
    except (ValueError, RecursionError):
        return  # not JSON: the route's own parsing answers it


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413 before the app reads them (chunked too),
    and JSON bodies that :func:`check_json` refuses with 422 — one place for both APIs."""

    def __init__(self, app: Any, max_bytes: int, passthrough: re.Pattern[str] | None = None):
        self.app = app
        self.max_bytes = max_bytes
        self.passthrough = passthrough  # paths whose routes bound and stream their own bodies (part uploads)

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]], send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS") or (
            self.passthrough is not None and scope["method"] == "PUT" and self.passthrough.match(scope.get("path", ""))
        ):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _send_json(send, 400, "invalid Content-Length header")
                return
            if length > self.max_bytes:
                await _send_json(send, 413, f"request body of {length} bytes exceeds the limit of {self.max_bytes}")
                return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            total += len(body)
            if total > self.max_bytes:
                await _send_json(send, 413, f"request body exceeds the limit of {self.max_bytes} bytes")
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        content_type = dict(scope.get("headers") or []).get(b"content-type", b"application/json").split(b";")[0].strip().lower()
        if total and (content_type == b"application/json" or content_type.endswith(b"+json")):
            try:
                check_json(b"".join(chunks))
            except UnsafeJson as refused:
                await _send_json(send, 422, f"request body: {refused}")
                return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _send_json(send: Any, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
