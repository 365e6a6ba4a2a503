"""Signed part URLs of the control plane's own ingest endpoint (the local store's "pre-signed" URLs).

A URL names one part of one staged file and is valid until ``expires`` (epoch seconds):

    PUT {public_api_url}/api/v1/edge/uploads/{task_id}/parts/{number}?file=<name>&upload_id=<id>&offset=<byte>&size=<bytes>&expires=<epoch>&sig=<hex>

``sig`` is HMAC-SHA256, under the control plane's upload signing key, of the fields
(robot_id, task_id, name, upload_id, number, offset, size, expires) joined by newlines after a
version tag (no field may hold a newline, so the encoding is unambiguous); the robot id is not in the
URL: the route checks the signature with the id of the robot whose token came with the request. The route checks the robot's bearer token
**and** :func:`verify_part_signature` (constant-time compare), then streams the body into the
upload's file at ``offset`` (:meth:`~.local_parts.LocalStaging.open_part`), refusing more than
``size`` bytes. The signature is the grant's proof: the control plane signs a plan only for the
robot's own granted task, every URL expires with the grant, and the upload id binds the staging
key (robot, task, file), so a part needs no database read.

The key comes from the setting ``AXON_UPLOAD_SIGNING_KEY`` (at least 32 characters); the embedded
default generates one once and keeps it beside its database in a ``0600`` file
(:func:`load_signing_key`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from pathlib import Path
from urllib.parse import quote, urlencode

from ...domain.ids import validate_id
from ...domain.layout import validate_relative_name
from .staging import StagingError, validate_part_number, validate_part_size

PART_URL_PATH = "/api/v1/edge/uploads/{task_id}/parts/{number}"
SIGNATURE_VERSION = "axon-part-v2"  # v2: the robot and the part's offset are signed too
MIN_KEY_BYTES = 32
KEY_FILE_NAME = "upload-signing.key"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAX_UPLOAD_ID = 1024


class PartSignatureError(StagingError):
    """A part URL whose signature is wrong, or which has expired (``expired`` says which)."""

    def __init__(self, message: str, *, expired: bool = False):
        super().__init__(message)
        self.expired = expired


def _fields(robot_id: str, task_id: str, name: str, upload_id: str, number: int, offset: int, size: int, expires: int) -> bytes:
    validate_id(robot_id, "robot id")
    validate_id(task_id, "task id")
    validate_relative_name(name, "file name")
    if not isinstance(upload_id, str) or not upload_id or len(upload_id) > _MAX_UPLOAD_ID or any(ord(c) < 33 or ord(c) == 127 for c in upload_id):
        raise StagingError(f"invalid upload id {str(upload_id)[:60]!r}")
    validate_part_number(number)
    validate_part_size(size)
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise StagingError(f"invalid offset {offset!r}: expected a byte offset")
    if isinstance(expires, bool) or not isinstance(expires, int) or expires < 0:
        raise StagingError(f"invalid expiry {expires!r}: expected epoch seconds")
    return "\n".join((SIGNATURE_VERSION, robot_id, task_id, name, upload_id, str(number), str(offset), str(size), str(expires))).encode()


def _check_key(signing_key: bytes) -> bytes:
    if not isinstance(signing_key, bytes) or len(signing_key) < MIN_KEY_BYTES:
        raise ValueError(f"the upload signing key must be at least {MIN_KEY_BYTES} bytes")
    return signing_key


def part_signature(signing_key: bytes, *, robot_id: str, task_id: str, name: str, upload_id: str, number: int, offset: int, size: int,
                   expires: int) -> str:
    """The hex HMAC-SHA256 of one part URL's fields."""
    message = _fields(robot_id, task_id, name, upload_id, number, offset, size, expires)
    return hmac.new(_check_key(signing_key), message, hashlib.sha256).hexdigest()


def sign_part_url(
    signing_key: bytes, *, base_url: str, robot_id: str, task_id: str, name: str, upload_id: str, number: int, offset: int,
    size: int, expires: int,
) -> str:
    """The full ingest URL of one part (``base_url``: the control plane's public URL)."""
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError(f"invalid public API URL {base_url!r}: expected http(s)://host[:port][/path]")
    sig = part_signature(signing_key, robot_id=robot_id, task_id=task_id, name=name, upload_id=upload_id, number=number, offset=offset, size=size,
                         expires=expires)
    query = urlencode({"file": name, "upload_id": upload_id, "offset": offset, "size": size, "expires": expires, "sig": sig},
                      quote_via=quote)
    return base_url.rstrip("/") + PART_URL_PATH.format(task_id=task_id, number=number) + "?" + query


def _as_int(value: object, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)
    raise PartSignatureError(f"part URL refused: invalid {what} {str(value)[:40]!r}")


def verify_part_signature(
    signing_key: bytes, *, robot_id: str, task_id: str, name: str, upload_id: str, number: int | str, offset: int | str,
    size: int | str, expires: int | str, sig: str, now: float | None = None,
) -> None:
    """Raise :class:`PartSignatureError` unless ``sig`` signs these fields and ``expires`` is not
    past (``now``: epoch seconds, default the clock). Numbers may come as query strings."""
    number, offset = _as_int(number, "part number"), _as_int(offset, "offset")
    size, expires = _as_int(size, "size"), _as_int(expires, "expiry")
    try:
        expected = part_signature(signing_key, robot_id=robot_id, task_id=task_id, name=name, upload_id=upload_id, number=number, offset=offset,
                                  size=size, expires=expires)
    except StagingError as exc:
        raise PartSignatureError(f"part URL refused: {exc}") from None
    except ValueError as exc:  # an invalid task id or file name (InvalidIdError)
        raise PartSignatureError(f"part URL refused: {exc}") from None
    given = sig if isinstance(sig, str) and _HEX64.fullmatch(sig) else "0" * 64
    if not hmac.compare_digest(expected.encode(), given.encode()) or given != sig:
        raise PartSignatureError("part URL refused: bad signature")
    if expires < (time.time() if now is None else now):
        raise PartSignatureError(f"part URL refused: expired at {expires} (epoch seconds); ask for a new upload plan", expired=True)


# --------------------------------------------------------------------------- the key


def load_signing_key(configured: str | None, key_file: str | os.PathLike | None = None) -> bytes:
    """The upload signing key: ``configured`` (the setting ``AXON_UPLOAD_SIGNING_KEY``) when set,
    else the key in ``key_file``, generated there (``0600``) on first use. ValueError if neither,
    if the configured key is too short, or if the file is readable by others."""
    if configured:
        if len(configured.encode()) < MIN_KEY_BYTES:
            raise ValueError(f"AXON_UPLOAD_SIGNING_KEY must be at least {MIN_KEY_BYTES} characters (e.g. `openssl rand -hex 32`)")
        return configured.encode()
    if key_file is None:
        raise ValueError("no upload signing key: set AXON_UPLOAD_SIGNING_KEY")
    return _key_from_file(Path(key_file))


def _key_from_file(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(MIN_KEY_BYTES) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)  # atomic create-if-absent: two processes starting at once agree
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    st = path.stat()
    if st.st_mode & 0o077:
        raise ValueError(f"upload signing key file {path} is readable by others (mode {st.st_mode & 0o777:o}): chmod 600 it")
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        raise ValueError(f"upload signing key file {path} belongs to uid {st.st_uid}, not to this process's user")
    key = path.read_text().strip()
    if len(key.encode()) < MIN_KEY_BYTES:
        raise ValueError(f"upload signing key file {path} holds fewer than {MIN_KEY_BYTES} characters")
    return key.encode()
