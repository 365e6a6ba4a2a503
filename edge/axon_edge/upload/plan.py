"""The control plane's upload plan, parsed and checked against what the robot holds.

``POST /api/v1/edge/uploads/{task_id}/plan`` answers (docs: CONTRACT-13)::

    {"grant_id", "expires_at", "part_size",
     "files": [{"name", "size", "sha256", ["upload_id"],
                "parts": [{"number", "offset", "size", "url", "method", "headers"}],
                "done_parts": [{"number", "etag"}]}]}

A plan is only believed where it agrees with the robot's own manifest: every file it names must be
a manifest file of the same size and SHA-256, and its parts must tile the file exactly (no gap, no
overlap, no byte outside it). Anything else is a :class:`PlanError` and nothing is sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_PARTS = 10_000  # S3's limit; the plan must fit in it too


class PlanError(ValueError):
    """The plan is malformed or contradicts the robot's manifest; nothing was sent."""


@dataclass(frozen=True)
class PlanPart:
    number: int
    offset: int
    size: int
    url: str
    method: str = "PUT"
    headers: tuple[tuple[str, str], ...] = ()
    etag: str = ""  # what to report when the store answers without an ETag (Azure's block id)


@dataclass(frozen=True)
class PlanFile:
    name: str
    size: int
    sha256: str
    upload_id: str  # the backend's multipart id ("" when the plan does not say and the URLs do not either)
    parts: tuple[PlanPart, ...]
    done_parts: dict[int, str]  # number -> etag the backend already holds


@dataclass(frozen=True)
class UploadPlan:
    grant_id: str
    expires_at: str
    part_size: int
    files: tuple[PlanFile, ...]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def parse_plan(raw: Any, manifest_files: Mapping[str, tuple[int, str]], grant_id: str) -> UploadPlan:
    """``manifest_files``: ``{name: (size, sha256)}`` of the recording as the robot reported it."""
    if not isinstance(raw, Mapping):
        raise PlanError(f"upload plan is not a JSON object: {raw!r:.200}")
    if raw.get("grant_id") != grant_id:
        raise PlanError(f"upload plan is for grant {raw.get('grant_id')!r}, not {grant_id!r}")
    part_size = _int(raw.get("part_size"), "part_size", minimum=1)
    files_raw = raw.get("files")
    if not isinstance(files_raw, list) or not files_raw:
        raise PlanError("upload plan has no files")
    files: list[PlanFile] = []
    seen: set[str] = set()
    for item in files_raw:
        plan_file = _parse_file(item, manifest_files)
        if plan_file.name in seen:
            raise PlanError(f"upload plan names {plan_file.name!r} twice")
        seen.add(plan_file.name)
        files.append(plan_file)
    return UploadPlan(grant_id=grant_id, expires_at=str(raw.get("expires_at") or ""), part_size=part_size, files=tuple(files))


def _parse_file(item: Any, manifest_files: Mapping[str, tuple[int, str]]) -> PlanFile:
    if not isinstance(item, Mapping):
        raise PlanError(f"upload plan file is not an object: {item!r:.200}")
    name = item.get("name")
    if not isinstance(name, str) or name not in manifest_files:
        raise PlanError(f"upload plan names {name!r}, which is not a file of this recording's manifest")
    size, sha256 = manifest_files[name]
    if item.get("size") != size or str(item.get("sha256", "")).lower() != sha256:
        raise PlanError(
            f"upload plan describes {name} as {item.get('size')} bytes, sha256 {item.get('sha256')}; "
            f"the robot holds {size} bytes, sha256 {sha256}"
        )
    parts_raw = item.get("parts")
    if not isinstance(parts_raw, list) or len(parts_raw) > MAX_PARTS:
        raise PlanError(f"upload plan for {name}: parts must be a list of at most {MAX_PARTS}")
    parts = sorted((_parse_part(p, name) for p in parts_raw), key=lambda p: p.number)
    done_raw = item.get("done_parts") or []
    if not isinstance(done_raw, list):
        raise PlanError(f"upload plan for {name}: done_parts must be a list")
    done: dict[int, str] = {}
    for d in done_raw:
        if not isinstance(d, Mapping) or not isinstance(d.get("etag"), str):
            raise PlanError(f"upload plan for {name}: malformed done part {d!r:.200}")
        done[_int(d.get("number"), f"{name} done part number", minimum=1)] = d["etag"]
    # The parts must tile the file: numbers 1..n, each starting where the previous ended.
    offset = 0
    for expected_number, part in enumerate(parts, start=1):
        if part.number != expected_number or part.offset != offset:
            raise PlanError(f"upload plan for {name}: parts do not tile the file (part {part.number} at offset {part.offset})")
        offset += part.size
    if offset != size or (size > 0 and not parts):
        raise PlanError(f"upload plan for {name}: parts cover {offset} bytes of {size}")
    unknown = sorted(set(done) - {p.number for p in parts})
    if unknown:
        raise PlanError(f"upload plan for {name}: done parts {unknown} are not parts of the file")
    upload_id = item.get("upload_id")
    if not isinstance(upload_id, str) or not upload_id:
        upload_id = _upload_id_from_url(parts[0].url) if parts else ""
    return PlanFile(name=name, size=size, sha256=sha256, upload_id=upload_id, parts=tuple(parts), done_parts=done)


def _parse_part(raw: Any, name: str) -> PlanPart:
    if not isinstance(raw, Mapping):
        raise PlanError(f"upload plan for {name}: part is not an object: {raw!r:.200}")
    url = raw.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        raise PlanError(f"upload plan for {name}: part {raw.get('number')!r} has no http(s) url")
    method = raw.get("method") or "PUT"
    if method not in ("PUT", "POST"):
        raise PlanError(f"upload plan for {name}: part method {method!r} is neither PUT nor POST")
    headers = raw.get("headers") or {}
    if not isinstance(headers, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise PlanError(f"upload plan for {name}: part headers must map strings to strings")
    return PlanPart(
        number=_int(raw.get("number"), f"{name} part number", minimum=1),
        offset=_int(raw.get("offset"), f"{name} part offset", minimum=0),
        size=_int(raw.get("size"), f"{name} part size", minimum=0),
        url=url,
        method=method,
        headers=tuple(sorted(headers.items())),
        etag=raw["etag"] if isinstance(raw.get("etag"), str) else "",
    )


def _upload_id_from_url(url: str) -> str:
    """S3 presigned UploadPart URLs carry ``uploadId``; the control plane's ingest endpoint ``upload_id``."""
    query = parse_qs(urlsplit(url).query)
    for key in ("uploadId", "upload_id"):
        if query.get(key):
            return query[key][0]
    return ""


def _int(value: Any, what: str, *, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise PlanError(f"upload plan: {what} must be an integer >= {minimum}, got {value!r}")
    return value
