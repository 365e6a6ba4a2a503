"""A real S3 endpoint over HTTP for tests: moto's server in a thread on a free port.

Load it from a suite's conftest with ``pytest_plugins = ["tests.s3_fixture"]`` (root conftest) or
by importing the fixtures (``from tests.s3_fixture import s3_server, s3_client, s3_bucket, s3_env``).

Fixtures:
- ``s3_server`` (session): ``S3Endpoint(url, host, port)`` of one moto server for the whole run.
- ``s3_client``: a boto3 S3 client for that endpoint with dummy credentials.
- ``s3_bucket``: a fresh, uniquely named bucket (tests never see each other's objects).
- ``s3_env``: sets ``AWS_ENDPOINT_URL`` and dummy credentials in the environment, for code that
  builds its own client (``object_store_from_url``).

``S3RequestLog(client)`` records every request a client actually sends (operation and key), e.g.
to prove that a re-upload sends no PutObject.

``s3_server.wait_idle()`` waits until the server has finished every request it started (a killed
client's last request may still be processed after the kill: tests that inspect the store right
after killing an uploader wait for that first).
"""

from __future__ import annotations

import threading
import time
import uuid
from urllib.parse import unquote, urlsplit
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

DUMMY_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "region_name": "us-east-1",
}


class _InFlight:
    """WSGI middleware counting the requests the server is working on."""

    def __init__(self, app: Any):
        self.app = app
        self.count = 0
        self.last_change = time.monotonic()
        self.lock = threading.Lock()

    def _add(self, n: int) -> None:
        with self.lock:
            self.count += n
            self.last_change = time.monotonic()

    def __call__(self, environ: Any, start_response: Any) -> Any:
        self._add(1)
        try:
            return list(self.app(environ, start_response))
        finally:
            self._add(-1)

    def wait_idle(self, quiet: float = 0.05, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                idle = self.count == 0 and time.monotonic() - self.last_change >= quiet
            if idle:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"S3 server still busy with {self.count} request(s) after {timeout}s")
            time.sleep(0.01)


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    host: str
    port: int
    inflight: _InFlight | None = field(default=None, compare=False, repr=False)

    def wait_idle(self, quiet: float = 0.05, timeout: float = 10.0) -> None:
        """Return once no request has been in progress for ``quiet`` seconds."""
        if self.inflight is not None:
            self.inflight.wait_idle(quiet, timeout)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Endpoint]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per request is noise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    inflight = _InFlight(server._server.app)  # type: ignore[union-attr]
    server._server.app = inflight  # type: ignore[union-attr]
    try:
        yield S3Endpoint(f"http://{host}:{port}", host, port, inflight)
    finally:
        server.stop()


_boto_session: Any = None


def make_s3_client(endpoint: S3Endpoint) -> Any:
    """A fresh client (own event hooks) from one shared boto3 session: the session caches the
    parsed service model, which is most of what creating a client costs."""
    global _boto_session
    import boto3

    if _boto_session is None:
        _boto_session = boto3.session.Session()
    return _boto_session.client("s3", endpoint_url=endpoint.url, **DUMMY_CREDENTIALS)


@pytest.fixture
def s3_client(s3_server: S3Endpoint) -> Iterator[Any]:
    client = make_s3_client(s3_server)
    yield client
    client.close()


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    name = f"test-{uuid.uuid4().hex[:20]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_env(s3_server: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> S3Endpoint:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY_CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY_CREDENTIALS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", DUMMY_CREDENTIALS["region_name"])
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    return s3_server


@dataclass
class S3RequestLog:
    """Every request ``client`` sends, as ``(operation, url path)``; registered on botocore's
    ``before-send`` event, so it counts what went over the wire (retries included)."""

    client: Any
    requests: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client.meta.events.register("before-send.s3", self._on_send)

    def _on_send(self, request: Any, event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]  # "before-send.s3.PutObject" -> "PutObject"
        self.requests.append((operation, unquote(urlsplit(request.url).path)))

    def count(self, operation: str) -> int:
        return sum(1 for op, _ in self.requests if op == operation)

    def clear(self) -> None:
        self.requests.clear()
