"""Python clients of the control-plane API, over httpx only.

The edge agent imports this module on robots, so it must never import FastAPI, SQLAlchemy,
Dagster, Ray or Daft (a test checks it). Responses are the API's JSON, decoded.

What every client shares: the HTTP session, error mapping, URL segments. The clients are
:class:`~.admin.ControlPlaneClient` (admin and data-flow calls) and :class:`~.edge.EdgeSyncClient`
(a robot's pull, push and uploads).

Errors: :class:`ControlPlaneError` carries the API's status code and ``detail``;
:class:`ControlPlaneUnavailable` means the API could not be reached or is temporarily down
(connection refused, timeout, 502/503/504): callers retry those.
"""

from __future__ import annotations

import logging
import math
import ssl
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


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its text (``"inf"``, ``"-inf"``, ``"nan"``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
