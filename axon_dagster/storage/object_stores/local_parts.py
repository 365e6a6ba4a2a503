"""One part of a robot's upload arriving at the local store (through the control plane's ingest
endpoint): bounded to its planned size, its MD5 checked against ``Content-MD5``, written to a temp
file, fsynced, then renamed to ``<number>-<md5>.part`` in the upload's directory."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

from ..files import fsync_path
from .staging import PartDigestMismatch, PartIncomplete, PartTooLarge, StagingError, UnknownUpload, quoted_etag


class PartWriter:
    """One part on its way in (see :meth:`LocalDirObjectStore.open_part`). A context manager:
    leaving it without :meth:`commit` (or on an error) removes the temp file."""

    def __init__(self, upload_dir: Path, number: int, size: int, content_md5: str | None, locked: Any):
        self.upload_dir, self.number, self.size = upload_dir, number, size
        self._expected_md5 = _decode_content_md5(content_md5)
        self._locked = locked
        self._md5 = hashlib.md5()
        self._written = 0
        self._tmp = upload_dir / f"{number:05d}.{uuid.uuid4().hex}.tmp"
        try:
            self._fh: Any = open(self._tmp, "xb")
        except FileNotFoundError:
            raise UnknownUpload(f"upload {upload_dir.name} was completed or aborted meanwhile") from None

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.abort()

    def write(self, chunk: bytes) -> None:
        if self._fh is None:
            raise StagingError(f"part {self.number} is already committed or aborted")
        if self._written + len(chunk) > self.size:
            self.abort()
            raise PartTooLarge(f"part {self.number} is larger than its planned {self.size} bytes; nothing kept")
        self._fh.write(chunk)
        self._md5.update(chunk)
        self._written += len(chunk)

    def commit(self) -> str:
        """Make the part visible; returns its ETag. Refuses a short body or an MD5 mismatch."""
        if self._fh is None:
            raise StagingError(f"part {self.number} is already committed or aborted")
        if self._written != self.size:
            self.abort()
            raise PartIncomplete(f"part {self.number} ended after {self._written} of its {self.size} bytes; nothing kept")
        md5 = self._md5.digest()
        if self._expected_md5 is not None and md5 != self._expected_md5:
            self.abort()
            raise PartDigestMismatch(f"part {self.number}: body MD5 {md5.hex()} differs from its Content-MD5 {self._expected_md5.hex()}; nothing kept")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        final = self.upload_dir / f"{self.number:05d}-{md5.hex()}.part"
        try:
            with self._locked(self.upload_dir):
                os.replace(self._tmp, final)
                for other in self.upload_dir.glob(f"{self.number:05d}-*.part"):
                    if other != final:
                        other.unlink(missing_ok=True)
                fsync_path(self.upload_dir)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        return quoted_etag(md5.hex())

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self._tmp.unlink(missing_ok=True)


def _decode_content_md5(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise PartDigestMismatch(f"invalid Content-MD5 {value[:40]!r}: expected the base64 of a 16-byte MD5")
    return raw
