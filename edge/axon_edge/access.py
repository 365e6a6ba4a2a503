"""Who may use the agent's HTTP surface.

The agent serves loopback by default. Exposed beyond it (a tablet beside the robot), it needs a
robot-local collector credential — a PIN or token set on the robot (``AXON_COLLECTOR_PIN`` or
``AXON_COLLECTOR_PIN_FILE``) — and every request from another machine must carry it: a teleop
device as ``Authorization: Bearer <pin>``, the collector page through the HttpOnly cookie it gets
from ``POST /collector/login {pin}`` (five wrong PINs from one address lock it out for a minute).
Loopback callers (the recorder's callbacks, a kiosk browser on the robot) need nothing; a
state-changing request must not come from another site (``Origin``/``Sec-Fetch-Site``) and must
be JSON. ``/healthz``, ``/metrics`` and ``/openapi.json`` stay open (probes and Prometheus).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping
from urllib.parse import urlsplit

from axon_dagster.api.asgi import FailureLockout

COOKIE = "axon_collector"
MIN_CREDENTIAL_LENGTH = 6
DEFAULT_MAX_BODY_BYTES = 64 * 1024
OPEN_PATHS = frozenset({"/healthz", "/metrics", "/openapi.json", "/collector/login"})
# The page and its assets carry no robot data: served to anyone so the PIN form can show.
PAGE_PATHS = frozenset({"/", "/collector", "/collector/collector.js", "/collector/collector.css", "/static/axon.css"})
CALLBACK_PATH = "/callbacks/recording"  # the recorder's callbacks carry their own bearer token
MAX_FAILURES, LOCKOUT_SECONDS, MAX_SESSIONS = 5, 60.0, 256


@dataclass(frozen=True)
class HttpAccess:
    collector_credential: str | None = None
    debug_routes: bool = False  # /debug/modules (tests and operators checking what a robot loaded)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    def __post_init__(self) -> None:
        if self.collector_credential is not None and len(self.collector_credential) < MIN_CREDENTIAL_LENGTH:
            raise ValueError(f"the collector PIN must be at least {MIN_CREDENTIAL_LENGTH} characters")
        if self.max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be positive")

    def __repr__(self) -> str:
        pin = "set" if self.collector_credential else "unset"
        return f"HttpAccess(collector_credential=<{pin}>, debug_routes={self.debug_routes}, max_body_bytes={self.max_body_bytes})"


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_access(env: Mapping[str, str], *, pin_file: str | None = None, debug_routes: bool = False) -> HttpAccess:
    """From ``AXON_COLLECTOR_PIN`` / ``AXON_COLLECTOR_PIN_FILE`` (or ``pin_file``) and
    ``AXON_EDGE_MAX_BODY_BYTES``."""
    pin = env.get("AXON_COLLECTOR_PIN", "").strip() or None
    path = pin_file or env.get("AXON_COLLECTOR_PIN_FILE", "").strip() or None
    if path:
        pin = Path(path).read_text().strip() or None
    raw = env.get("AXON_EDGE_MAX_BODY_BYTES", "").strip()
    try:
        limit = int(raw) if raw else DEFAULT_MAX_BODY_BYTES
    except ValueError:
        raise ValueError(f"AXON_EDGE_MAX_BODY_BYTES must be an integer number of bytes, got {raw!r}") from None
    return HttpAccess(collector_credential=pin, debug_routes=debug_routes, max_body_bytes=limit)


class _Sessions:
    """Collector sessions in memory (a restart signs the tablet out)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: OrderedDict[str, None] = OrderedDict()

    def issue(self) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = None
            while len(self._tokens) > MAX_SESSIONS:
                self._tokens.popitem(last=False)
        return token

    def valid(self, token: str) -> bool:
        with self._lock:
            return any(hmac.compare_digest(token.encode(), t.encode()) for t in self._tokens)


def _headers(scope: Mapping[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}


def _cookie(headers: Mapping[str, str], name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


async def _reply(send: Any, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class CollectorGuard:
    """ASGI middleware enforcing the rules of this module's docstring."""

    def __init__(self, app: Any, access: HttpAccess):
        self.app = app
        self.access = access
        self.sessions = _Sessions()
        self.lockout = FailureLockout(MAX_FAILURES, LOCKOUT_SECONDS)

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]], send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope.get("path", ""), scope.get("method", "GET")
        headers = _headers(scope)
        client = (scope.get("client") or ("", 0))[0] or ""
        if method not in ("GET", "HEAD", "OPTIONS") and path != CALLBACK_PATH:
            refused = self._cross_site(headers)
            if refused:
                await _reply(send, 403, refused)
                return
        if path == "/collector/login" and method == "POST":
            await self._login(scope, receive, send, client)
            return
        if path in OPEN_PATHS or path in PAGE_PATHS or path == CALLBACK_PATH or is_loopback(client):
            await self.app(scope, receive, send)
            return
        pin = self.access.collector_credential
        if pin is None:
            await _reply(send, 403, "this edge agent serves loopback only (set a collector PIN on the robot to expose it)")
            return
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), pin.encode()):
            await self.app(scope, receive, send)
            return
        session = _cookie(headers, COOKIE)
        if session and self.sessions.valid(session):
            await self.app(scope, receive, send)
            return
        await _reply(send, 401, "enter the robot's collector PIN (POST /collector/login) or send it as a bearer token",
                     [(b"www-authenticate", b"Bearer")])

    @staticmethod
    def _cross_site(headers: Mapping[str, str]) -> str | None:
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return f"cross-site request refused (Sec-Fetch-Site: {site})"
        origin = headers.get("origin")
        if origin is not None and (origin == "null" or urlsplit(origin).netloc != headers.get("host", "")):
            return f"cross-origin request refused (Origin: {origin[:100]})"
        content_type = headers.get("content-type")
        if content_type is not None and content_type.split(";")[0].strip().lower() != "application/json":
            return f"state-changing requests take application/json, not {content_type[:60]!r}"
        return None

    async def _login(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]], send: Any, client: str) -> None:
        pin = self.access.collector_credential
        if pin is None:
            await _reply(send, 404, "no collector PIN is set on this robot (the agent serves loopback only)")
            return
        if self.lockout.locked(client):
            await _reply(send, 429, f"too many wrong PINs; try again in {LOCKOUT_SECONDS:.0f} s", [(b"retry-after", b"60")])
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if len(raw) > 4096:
                await _reply(send, 413, "request body too large")
                return
            if not message.get("more_body"):
                break
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        given = body.get("pin") if isinstance(body, dict) and set(body) == {"pin"} else None
        if not isinstance(given, str):
            await _reply(send, 422, "request body must be a JSON object {\"pin\": \"...\"}")
            return
        if not hmac.compare_digest(given.encode(), pin.encode()):
            self.lockout.failed(client)
            await _reply(send, 401, "wrong collector PIN")
            return
        self.lockout.succeeded(client)
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        cookie = f"{COOKIE}={self.sessions.issue()}; Path=/; HttpOnly; SameSite=Strict{secure}".encode()
        body_bytes = b'{"signed_in": true}'
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body_bytes)).encode()), (b"set-cookie", cookie)]})
        await send({"type": "http.response.body", "body": body_bytes})
