"""A real Azure Blob endpoint over HTTP for tests: Azurite (Microsoft's emulator, from npm).

Installed by ``make system-deps`` (``scripts/azurite-deps.sh``) into ``.axon/tools/azurite``; found
there, via ``AXON_AZURITE_BIN``, or as ``azurite-blob`` on PATH. If it (or node) is missing the
fixture FAILS with a message saying how to install it: the Azure backend is not skipped silently.

Fixtures:
- ``azurite`` (session): ``AzuriteEndpoint`` of one in-memory Azurite for the whole run.
- ``azure_service``: a ``BlobServiceClient`` for it (the well-known dev account).
- ``azure_container``: a fresh, uniquely named container (tests never see each other's blobs).
- ``azure_env``: ``AZURE_STORAGE_BLOB_ENDPOINT`` and ``AZURE_STORAGE_KEY`` set for code that builds
  its own client (``object_store_from_url("az://devstoreaccount1/<container>/...")``).

``AzureRequestLog`` is a ``raw_request_hook`` recording every request sent (method, URL),
retries included, e.g. to prove that a re-upload stages no block and puts no blob.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

ACCOUNT = "devstoreaccount1"
# Azurite's documented development account key (public; the same in every Azurite install).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
REPO = Path(__file__).resolve().parents[1]
INSTALLED = REPO / ".axon" / "tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"


@dataclass(frozen=True)
class AzuriteEndpoint:
    url: str  # the account's blob endpoint: http://127.0.0.1:<port>/devstoreaccount1
    port: int

    @property
    def connection_string(self) -> str:
        return f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};BlobEndpoint={self.url};"


def azurite_binary() -> str:
    for candidate in (os.environ.get("AXON_AZURITE_BIN"), str(INSTALLED), shutil.which("azurite-blob")):
        if candidate and os.access(candidate, os.X_OK):
            if shutil.which("node") is None:
                pytest.fail(f"azurite found at {candidate} but `node` is not on PATH: run `make system-deps` "
                            "(scripts/azurite-deps.sh installs nodejs and azurite)", pytrace=False)
            return candidate
    pytest.fail(f"Azurite is not installed (looked at $AXON_AZURITE_BIN, {INSTALLED}, PATH): run `make system-deps` "
                "or `bash scripts/azurite-deps.sh`", pytrace=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteEndpoint]:
    binary = azurite_binary()
    workdir = Path(tempfile.mkdtemp(prefix="azurite-"))
    log_path = workdir / "azurite.log"
    port = _free_port()
    # --inMemoryPersistence cannot be combined with --location: the process runs in workdir instead.
    argv = [binary, "--silent", "--inMemoryPersistence", "--extentMemoryLimit", "512", "--blobHost", "127.0.0.1",
            "--blobPort", str(port), "--skipApiVersionCheck", "--loose", "--disableTelemetry"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"azurite exited with {proc.returncode}: {log_path.read_text()[-2000:]}", pytrace=False)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"azurite did not listen on port {port} within 30s: {log_path.read_text()[-2000:]}", pytrace=False)
                time.sleep(0.05)
        yield AzuriteEndpoint(f"http://127.0.0.1:{port}/{ACCOUNT}", port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def azure_service(azurite: AzuriteEndpoint) -> Any:
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(azurite.connection_string)


@pytest.fixture
def azure_container(azure_service: Any) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:20]}"
    azure_service.create_container(name)
    yield name
    try:
        azure_service.delete_container(name)
    except Exception:  # the server may already be gone at the end of the session
        pass


@pytest.fixture
def azure_env(azurite: AzuriteEndpoint, monkeypatch: pytest.MonkeyPatch) -> AzuriteEndpoint:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_KEY", ACCOUNT_KEY)
    monkeypatch.setenv("AZURE_STORAGE_BLOB_ENDPOINT", azurite.url)
    return azurite


@dataclass
class AzureRequestLog:
    """Pass as ``client_kwargs={"raw_request_hook": log}``: records ``(method, comp, blob path)``
    of every request attempt. ``fail_after`` raises ``InjectedCrash`` on every Put Block after the
    first ``fail_after`` ones (a process dying mid-upload)."""

    fail_after: int | None = None
    requests: list[tuple[str, str, str]] = field(default_factory=list)

    def __call__(self, pipeline_request: Any) -> None:
        req = pipeline_request.http_request
        parts = urlsplit(req.url)
        comp = parse_qs(parts.query).get("comp", [""])[0]
        if self.fail_after is not None and req.method == "PUT" and comp == "block" and self.count("PUT", "block") >= self.fail_after:
            raise InjectedCrash(f"crash injected after {self.fail_after} blocks")
        self.requests.append((req.method, comp, unquote(parts.path)))

    def count(self, method: str, comp: str | None = None) -> int:
        return sum(1 for m, c, _ in self.requests if m == method and (comp is None or c == comp))

    def clear(self) -> None:
        self.requests.clear()


class InjectedCrash(RuntimeError):
    pass
