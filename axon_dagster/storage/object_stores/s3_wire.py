"""Request bodies of the S3 multipart uploader as they go on the wire: every block draws from the
process's rate limiter first, then counts as sent (progress, metrics). A botocore ``before-send``
hook wraps the body of the requests a thread makes while :func:`sending` is active."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .. import metrics
from ..upload_progress import UploadProgress


@dataclass
class WireSend:
    """What the current thread is sending: set around one request, read by the before-send hook."""

    owner: Any  # the MultipartUploader (its rate_limiter and on_event)
    progress: UploadProgress
    part_number: int | None = None
    sent: int = 0
    waited: float = 0.0


_tls = threading.local()


def current_send() -> WireSend | None:
    """What this thread is sending (set by :func:`sending_as`), else None."""
    return getattr(_tls, "send", None)


@contextmanager
def sending_as(send: WireSend) -> Iterator[WireSend]:
    """Route the requests this thread makes meanwhile through ``send`` (cap, progress, metrics)."""
    _tls.send = send
    try:
        yield send
    finally:
        _tls.send = None


class WireBody(io.RawIOBase):
    """The request body as it goes on the wire: every block draws tokens from the rate limiter first,
    then counts as sent (progress, metrics).

    Hot path: http.client asks for 8-16 KiB at a time; this hands out up to ``BLOCK`` bytes per
    call (http.client sends whatever a read returns) and, while the link is uncapped, settles
    progress and metrics every ``FLUSH`` bytes instead of per block."""

    BLOCK = 64 * 1024
    FLUSH = 1024 * 1024

    def __init__(self, inner: Any, send: WireSend):
        super().__init__()
        self._inner = inner
        self._send = send
        self._pending = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._flush()
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def _flush(self) -> None:
        n, self._pending = self._pending, 0
        if n:
            self._send.progress.add(n)
            metrics.record_sent(n)

    def read(self, size: int = -1) -> bytes:
        chunk = self._inner.read(max(size, self.BLOCK) if size is not None and size >= 0 else -1)
        n = len(chunk)
        send = self._send
        if not n:
            self._flush()
            return chunk
        owner = send.owner
        if owner.rate_limiter.capped():
            send.waited += owner.rate_limiter.acquire(n)
            self._pending += n
            self._flush()
        else:
            self._pending += n
            if self._pending >= self.FLUSH:
                self._flush()
        send.sent += n
        if owner.on_event is not None and send.part_number is not None:
            self._flush()
            owner.on_event("part_bytes", {"part": send.part_number, "sent": send.sent})
        return chunk

    def readinto(self, b: Any) -> int:
        chunk = self._inner.read(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)
