"""Sending one part to its pre-signed URL: read it, hash it (MD5), send it under the rate cap,
check what the store says it received.

A part counts as verified when the store's answer proves it got the robot's bytes: an ETag that is
the MD5 of the part (S3), or a 2xx to a request that carried ``Content-MD5`` (Azure's Put Block,
which answers no MD5: the store checks the one sent). The control plane's own ingest endpoint (the
embedded store) takes exactly the part's planned size and checks the whole file's SHA-256, computed
as the parts arrive, at completion: its parts stream from the file unhashed (no MD5 pass on either
side). The robot's bearer token goes only to the control plane's own origin, never to a bucket.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from .plan import PlanPart

log = logging.getLogger(__name__)

_MD5_ETAG = re.compile(r'^"?([0-9a-fA-F]{32})"?$')
CHUNK = 256 * 1024  # what one token draw covers while the link is capped


class PartRejected(Exception):
    """The store refused the part for good (4xx other than an expired or vanished URL)."""


class PartUrlExpired(Exception):
    """The URL expired or its multipart upload is gone: ask the control plane for a new plan."""


class PartTransient(Exception):
    """The store could not be reached or failed (5xx, timeout): try again."""


class PartCorrupted(Exception):
    """The store reports other bytes than the robot sent (ETag is not the part's MD5)."""


@dataclass(frozen=True)
class SentPart:
    number: int
    size: int
    md5: str
    etag: str
    seconds: float


def read_part(fd: int, offset: int, size: int) -> bytes:
    chunks, done = [], 0
    while done < size:
        chunk = os.pread(fd, size - done, offset + done)
        if not chunk:
            raise OSError(f"file ended after {offset + done} bytes, the plan's part needs {offset + size}")
        chunks.append(chunk)
        done += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class FileRange:
    """``size`` bytes of an open file from ``offset``, streamed in chunks (never held whole)."""

    def __init__(self, fd: int, offset: int, size: int):
        self.fd, self.offset, self.size = fd, offset, size

    def __len__(self) -> int:
        return self.size

    def chunks(self, chunk: int = 1 << 20) -> Iterator[bytes]:
        done = 0
        while done < self.size:
            data = os.pread(self.fd, min(chunk, self.size - done), self.offset + done)
            if not data:
                raise OSError(f"file ended after {self.offset + done} bytes, the plan's part needs {self.offset + self.size}")
            done += len(data)
            yield data


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def etag_md5(etag: str) -> str | None:
    """The MD5 an ETag states, or None (an Azure block id, a composite ETag...)."""
    m = _MD5_ETAG.match(etag.strip())
    return m.group(1).lower() if m else None


class PartSender:
    """Sends parts over one pooled HTTP client (thread-safe)."""

    def __init__(
        self,
        *,
        acquire: Callable[[int], float] | None = None,
        capped: Callable[[], bool] | None = None,
        control_plane_origin: str = "",
        control_plane_auth: dict[str, str] | None = None,
        timeout: float = 60.0,
        concurrency: int = 4,
        on_bytes: Callable[[int], None] | None = None,
    ):
        self._acquire = acquire
        self._capped = capped or (lambda: False)
        self._origin = _origin(control_plane_origin) if control_plane_origin else ""
        self._auth = dict(control_plane_auth or {})
        self._on_bytes = on_bytes
        limits = httpx.Limits(max_connections=max(concurrency, 1) * 2, max_keepalive_connections=max(concurrency, 1) * 2)
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0), limits=limits, follow_redirects=False)

    def close(self) -> None:
        self._http.close()

    def checks_by_size(self, part: PlanPart) -> bool:
        """The part goes to the control plane's own ingest endpoint (checked by size, the file by
        its SHA-256 at completion): no MD5 needed."""
        return bool(self._origin) and _origin(part.url) == self._origin

    def send(self, part: PlanPart, data: bytes | FileRange, md5: str) -> SentPart:
        """Send one part; ``md5`` ("" for a part :meth:`checks_by_size`) is checked against the answer."""
        headers = dict(part.headers)
        headers["Content-Length"] = str(len(data))
        if md5 and _store_checks_md5_only(part.url):
            # Azure's Put Block answers no MD5 ETag: the store checks the MD5 we send instead. S3 and
            # the ingest endpoint answer the MD5 of what they got as the ETag, checked below (sending
            # Content-MD5 as well would make the store hash every part twice).
            headers["Content-MD5"] = base64.b64encode(bytes.fromhex(md5)).decode()
        if self._origin and _origin(part.url) == self._origin:
            headers.update(self._auth)
        capped = self._acquire is not None and self._capped()
        content: Any = self._paced(data) if capped else (data.chunks() if isinstance(data, FileRange) else data)
        started = time.perf_counter()
        try:
            response = self._http.request(part.method, part.url, content=content, headers=headers)
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            raise PartTransient(f"part {part.number}: {type(exc).__name__}: {exc}") from exc
        seconds = time.perf_counter() - started
        if not capped and self._on_bytes is not None:
            self._on_bytes(len(data))
        status = response.status_code
        if status >= 500 or status in (408, 429):
            raise PartTransient(f"part {part.number}: HTTP {status}: {_text(response)}")
        if status in (403, 404) or (status == 400 and "expired" in _text(response).lower()):
            raise PartUrlExpired(f"part {part.number}: HTTP {status}: {_text(response)}")
        if status >= 400:
            raise PartRejected(f"part {part.number}: HTTP {status}: {_text(response)}")
        etag = response.headers.get("ETag") or part.etag or _block_id(part.url)
        if not etag:
            raise PartRejected(f"part {part.number}: the store answered {status} without an ETag")
        stated = etag_md5(etag)
        if md5 and stated is not None and stated != md5:
            raise PartCorrupted(f"part {part.number}: the store holds MD5 {stated}, the robot sent {md5}")
        return SentPart(number=part.number, size=len(data), md5=md5, etag=etag, seconds=seconds)

    def _paced(self, data: bytes | FileRange) -> Iterator[bytes]:
        if isinstance(data, FileRange):
            chunks: Any = data.chunks(CHUNK)
        else:
            view = memoryview(data)
            chunks = (bytes(view[start : start + CHUNK]) for start in range(0, len(data), CHUNK))
        for chunk in chunks:
            self._acquire(len(chunk))  # type: ignore[misc]
            yield chunk
            if self._on_bytes is not None:
                self._on_bytes(len(chunk))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _store_checks_md5_only(url: str) -> bool:
    """Azure Put Block (``comp=block``): the only verification is the ``Content-MD5`` the store checks."""
    return parse_qs(urlsplit(url).query).get("comp") == ["block"]


def _block_id(url: str) -> str:
    """Azure Put Block answers no ETag: the block id (in the URL) is what Put Block List takes."""
    ids = parse_qs(urlsplit(url).query).get("blockid")
    return ids[0] if ids else ""


def _text(response: httpx.Response) -> str:
    return response.text[:300]
