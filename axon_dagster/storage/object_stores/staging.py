"""Robots' uploads into the staging area: the part of the object store interface issue 13 adds.

A robot never holds store credentials. For each file of a recording the control plane starts a
multipart upload (:meth:`StagingUploads.start_multipart`), hands the robot one
:class:`PartTarget` per part (a pre-signed, expiring URL: S3 UploadPart, an Azure SAS Put Block, or
the control plane's own ingest endpoint for the local store), reads back what the store holds
(:meth:`~StagingUploads.list_parts`, for a resume), completes the upload from the part numbers and
ETags the robot reports, then checks the staged object's SHA-256 (:meth:`~StagingUploads.sha256_of`)
against the robot's manifest. Publishing copies staged objects to lake keys server-side
(:meth:`~StagingUploads.copy_object`) and drops the staging prefix (:meth:`~StagingUploads.delete_prefix`).

ETags are given and taken in the form S3 uses: the part's MD5 in hex between double quotes
(``'"9e107d9d372bb6826bd81d3542a419d6"'``); Azure's is the block id (Put Block returns no ETag:
the target says which one to report in :attr:`PartTarget.etag`); the local store's names the
part's write (``"<number>-<16 hex>"``, never an MD5: it checks each part by its size and the whole
file by the SHA-256 it computes as parts arrive, see :mod:`.local_parts`). Every backend checks a
part's ``Content-MD5`` header on receipt when the robot sends one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ObjectNotFound, ObjectStoreError
from .keys import validate_prefix

MiB = 1 << 20
MAX_PARTS = 10_000  # S3's limit per multipart upload
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
MAX_PART_SIZE = 5 * 1024 * MiB  # S3's maximum part
DEFAULT_PART_SIZE = 8 * MiB
MAX_URL_EXPIRY_SECONDS = 7 * 24 * 3600  # SigV4's limit for pre-signed URLs
_MD5_HEX = re.compile(r"[0-9a-f]{32}")


class StagingError(ObjectStoreError):
    """A staging request the store refuses; nothing was changed."""


class UnknownUpload(StagingError, ObjectNotFound):
    """No multipart upload with that id for that key (never started, completed or aborted)."""


class PartTooLarge(StagingError):
    """A part body longer than the size it was planned (and signed) with."""


class PartIncomplete(StagingError):
    """A part body shorter than its planned size (the connection broke off)."""


class PartDigestMismatch(StagingError):
    """A part body whose MD5 differs from the ``Content-MD5`` the robot sent with it."""


class PartsRefused(StagingError):
    """A completion naming parts the store does not hold (or holds with another ETag)."""


@dataclass(frozen=True)
class PartSpec:
    """Part ``number`` (1-based) covers ``size`` bytes of the file from ``offset``."""

    number: int
    offset: int
    size: int


@dataclass(frozen=True)
class PartTarget:
    """Where and how the robot sends one part. ``etag``: what to report for this part when the
    response carries no ``ETag`` header (Azure's block id), else None (use the response's)."""

    number: int
    url: str
    method: str = "PUT"
    headers: Mapping[str, str] = field(default_factory=dict)
    etag: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"number": self.number, "url": self.url, "method": self.method, "headers": dict(self.headers)}
        if self.etag is not None:
            out["etag"] = self.etag
        return out


class StagingUploads:
    """The staging half of the object store interface; every backend implements it."""

    # The part size of upload plans unless configured (AXON_UPLOAD_PART_BYTES): S3's usual.
    default_part_size = DEFAULT_PART_SIZE

    def start_multipart(self, key: str) -> str:
        """Begin a multipart upload of ``key``; returns its upload id."""
        raise NotImplementedError

    def part_targets(self, key: str, upload_id: str, parts: Iterable[PartSpec | tuple[int, int, int]], expires_s: int) -> list[PartTarget]:
        """Pre-signed targets for ``parts`` ((number, offset, size)), valid for ``expires_s`` seconds."""
        raise NotImplementedError

    def list_parts(self, key: str, upload_id: str) -> dict[int, str]:
        """``{part number: etag}`` the store holds for the upload; ``{}`` when the upload is gone."""
        raise NotImplementedError

    def complete_multipart(self, key: str, upload_id: str, parts: Mapping[int, str]) -> str | None:
        """Make ``parts`` ({number: etag}, in number order) the object at ``key``. Returns the
        object's SHA-256 when the backend computed it from the bytes it stored (the local store
        hashes parts as they arrive), else None (the caller reads it with :meth:`sha256_of`)."""
        raise NotImplementedError

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop the upload and its parts; no error when it is already gone."""
        raise NotImplementedError

    def sha256_of(self, key: str) -> str:
        """The SHA-256 of the stored object, streamed through this process (no local copy)."""
        raise NotImplementedError

    def copy_object(self, src_key: str, dst_key: str) -> None:
        """Copy ``src_key`` to ``dst_key``, server-side where the backend can."""
        raise NotImplementedError

    def abort_stale_uploads(self, prefix: str, older_than_s: float, *, now: float | None = None) -> int:
        """Abort every open upload under ``prefix`` started more than ``older_than_s`` seconds
        before ``now`` (epoch seconds, default the clock): robots that never came back leave no
        parts behind. Returns how many were aborted."""
        prefix, cutoff = deletable_prefix(prefix), stale_before(older_than_s, now)
        stale = [(key, upload_id) for key, upload_id, started in self._open_uploads(prefix) if started < cutoff]
        for key, upload_id in stale:
            self.abort_multipart(key, upload_id)
        return len(stale)

    def _open_uploads(self, prefix: str) -> list[tuple[str, str, float]]:
        """``(key, upload_id, started)`` (epoch seconds) of the open uploads whose key starts with ``prefix``."""
        raise NotImplementedError

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix`` (and open uploads there); returns how many objects."""
        raise NotImplementedError


# --------------------------------------------------------------------------- shared checks


def plan_parts(size: int, part_size: int = DEFAULT_PART_SIZE) -> list[PartSpec]:
    """Cut a file of ``size`` bytes into parts of ``part_size`` (grown so that there are at most
    :data:`MAX_PARTS`); an empty file is one empty part.

    >>> [(p.number, p.offset, p.size) for p in plan_parts(20, 8)]
    [(1, 0, 8), (2, 8, 8), (3, 16, 4)]
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"size must be a non-negative integer, got {size!r}")
    if isinstance(part_size, bool) or not isinstance(part_size, int) or part_size <= 0:
        raise ValueError(f"part_size must be a positive integer, got {part_size!r}")
    while -(-size // part_size) > MAX_PARTS:
        part_size *= 2
    if part_size > MAX_PART_SIZE:
        raise ValueError(f"a file of {size} bytes needs parts over {MAX_PART_SIZE} bytes")
    if size == 0:
        return [PartSpec(1, 0, 0)]
    return [PartSpec(i + 1, off, min(part_size, size - off)) for i, off in enumerate(range(0, size, part_size))]


def validate_part_number(number: object) -> int:
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= MAX_PARTS:
        raise StagingError(f"invalid part number {number!r}: expected an integer from 1 to {MAX_PARTS}")
    return number


def validate_part_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_PART_SIZE:
        raise StagingError(f"invalid part size {size!r}: expected an integer from 0 to {MAX_PART_SIZE} bytes")
    return size


def validate_expiry(expires_s: object) -> int:
    if isinstance(expires_s, bool) or not isinstance(expires_s, int) or not 1 <= expires_s <= MAX_URL_EXPIRY_SECONDS:
        raise StagingError(f"invalid URL lifetime {expires_s!r}: expected 1 to {MAX_URL_EXPIRY_SECONDS} seconds")
    return expires_s


def part_specs(parts: Iterable[PartSpec | tuple[int, int, int]]) -> list[PartSpec]:
    """Validated :class:`PartSpec` s: numbers unique and each size within limits."""
    out: list[PartSpec] = []
    seen: set[int] = set()
    for part in parts:
        spec = part if isinstance(part, PartSpec) else PartSpec(*part)
        validate_part_number(spec.number)
        validate_part_size(spec.size)
        if isinstance(spec.offset, bool) or not isinstance(spec.offset, int) or spec.offset < 0:
            raise StagingError(f"invalid offset {spec.offset!r} of part {spec.number}")
        if spec.number in seen:
            raise StagingError(f"part {spec.number} is named twice")
        seen.add(spec.number)
        out.append(spec)
    return out


def deletable_prefix(prefix: object) -> str:
    """A prefix :meth:`StagingUploads.delete_prefix` may delete under: a valid, non-empty one."""
    if prefix == "":
        raise StagingError("refusing to delete every object of the store (empty prefix)")
    return validate_prefix(prefix)


def stale_before(older_than_s: object, now: float | None) -> float:
    """The epoch second before which an upload counts as stale."""
    if isinstance(older_than_s, bool) or not isinstance(older_than_s, (int, float)) or not older_than_s >= 0:
        raise StagingError(f"invalid age {older_than_s!r}: expected a non-negative number of seconds")
    return (time.time() if now is None else now) - older_than_s


def completion_parts(parts: Mapping[int, str]) -> list[tuple[int, str]]:
    """``parts`` ({number: etag}) as a sorted list, validated; at least one part."""
    if not isinstance(parts, Mapping) or not parts:
        raise PartsRefused("a completion needs at least one part")
    out = []
    for number, etag in parts.items():
        validate_part_number(number)
        if not isinstance(etag, str) or not etag or len(etag) > 256:
            raise PartsRefused(f"invalid etag {etag!r} for part {number}")
        out.append((number, etag))
    return sorted(out)


def quoted_etag(md5_hex: str) -> str:
    """The ETag of a part whose MD5 is ``md5_hex``, as S3 sends it: ``"<md5 hex>"``."""
    return f'"{md5_hex}"'


def etag_md5(etag: str) -> str | None:
    """The MD5 hex an ETag names (quoted or not), or None if it names none."""
    bare = etag.strip().strip('"').lower() if isinstance(etag, str) else ""
    return bare if _MD5_HEX.fullmatch(bare) else None
