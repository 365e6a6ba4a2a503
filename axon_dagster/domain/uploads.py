"""What a robot reports about a finished recording, and the grants that let it upload one.

- :class:`RecordingManifest`: the files of one recording (name, size, SHA-256) as the robot hashed
  them. The cloud never opens a path a robot reported: every key it touches is derived from ids
  and these names (``layout.staging_key``), so a name is checked here to be one of the task's own
  files (``<task_id>.mcap`` / ``<task_id>.json`` for MCAP, files under ``<task_id>.lance/`` and the
  sidecar for Lance) and never climbs out of the task's directory.
- :class:`EdgeGate`: the robot's cheap check of the recording against the task's requirements.
- :class:`UploadGrant`: permission for one robot to upload one recording until ``expires_at``
  (``ACTIVE -> USED | EXPIRED``). A re-issued grant carries the previous one's ``upload_ids`` so the
  robot resumes the same multipart uploads when the store still has them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Mapping

from .errors import DomainError, IllegalTransitionError, InvalidIdError
from .ids import validate_id
from .layout import validate_relative_name

RECORDING_FORMATS = ("mcap", "lance")
MAX_MANIFEST_FILES = 10_000
MAX_FILE_BYTES = 5 * 1024**4  # 5 TiB: the largest object S3 stores (a configured maximum may be lower)
MAX_GATE_REASONS = 100
MAX_GATE_TEXT = 1000
MAX_GATE_CHECKS_BYTES = 64 * 1024
MIN_GRANT_TTL = timedelta(seconds=10)
MAX_GRANT_TTL = timedelta(days=7)  # a pre-signed URL lives at most this long (SigV4)
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ManifestError(DomainError, ValueError):
    """A manifest (or gate result) a robot sent that the control plane refuses; nothing changed."""


class UploadRefused(DomainError):
    """An upload step the grant's or the dataset's state does not allow (a 409)."""


def _sha256(value: Any, field_name: str) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise ManifestError(f"{field_name} must be 64 lowercase hex digits (a SHA-256), got {str(value)[:80]!r}")
    return value


@dataclass(frozen=True)
class ManifestFile:
    name: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class RecordingManifest:
    recording_format: str
    files: tuple[ManifestFile, ...]
    dataset_digest: str
    axon_checksum_sha256: str | None = None

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def file(self, name: str) -> ManifestFile:
        for f in self.files:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "recording_format": self.recording_format,
            "files": [f.to_dict() for f in self.files],
            "dataset_digest": self.dataset_digest,
        }
        if self.axon_checksum_sha256 is not None:
            out["axon_checksum_sha256"] = self.axon_checksum_sha256
        return out

    @classmethod
    def parse(cls, data: Any, *, task_id: str, recording_format: Any = "mcap", max_file_bytes: int = MAX_FILE_BYTES) -> RecordingManifest:
        """Validate a manifest a robot sent for ``task_id`` (the ``manifest`` object of its EXECUTED
        event; ``recording_format`` beside it). Raises :class:`ManifestError` naming the first problem."""
        task_id = validate_id(task_id, "task_id")
        if recording_format not in RECORDING_FORMATS:
            raise ManifestError(f"recording_format must be one of {', '.join(RECORDING_FORMATS)}, got {str(recording_format)[:40]!r}")
        if not isinstance(data, Mapping):
            raise ManifestError("manifest must be an object {files, dataset_digest, axon_checksum_sha256?}")
        unknown = sorted(set(map(str, data)) - {"files", "dataset_digest", "axon_checksum_sha256", "recording_format"})
        if unknown:
            raise ManifestError(f"manifest has unknown fields {unknown}")
        if data.get("recording_format", recording_format) != recording_format:
            raise ManifestError("manifest.recording_format contradicts the event's recording_format")
        raw_files = data.get("files")
        if not isinstance(raw_files, list) or not raw_files:
            raise ManifestError("manifest.files must be a non-empty list of {name, size, sha256}")
        if len(raw_files) > MAX_MANIFEST_FILES:
            raise ManifestError(f"manifest.files lists {len(raw_files)} files, at most {MAX_MANIFEST_FILES} are allowed")
        files: list[ManifestFile] = []
        seen: set[str] = set()
        for i, raw in enumerate(raw_files):
            where = f"manifest.files[{i}]"
            if not isinstance(raw, Mapping) or set(raw) != {"name", "size", "sha256"}:
                raise ManifestError(f"{where} must be an object with exactly name, size and sha256")
            try:
                name = validate_relative_name(raw["name"], f"{where}.name")
            except InvalidIdError as exc:
                raise ManifestError(str(exc)) from None
            if name in seen:
                raise ManifestError(f"{where}.name {name!r} is listed twice")
            seen.add(name)
            size = raw["size"]
            if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= max_file_bytes:
                raise ManifestError(f"{where}.size must be an integer from 0 to {max_file_bytes} bytes, got {str(size)[:40]!r}")
            files.append(ManifestFile(name, size, _sha256(raw["sha256"], f"{where}.sha256")))
        _check_names(recording_format, task_id, seen)
        digest = _sha256(data.get("dataset_digest"), "manifest.dataset_digest")
        axon = data.get("axon_checksum_sha256")
        if axon is not None:  # Axon's own spelling of the digest: hex in either case
            axon = _sha256(axon.lower() if isinstance(axon, str) else axon, "manifest.axon_checksum_sha256")
        manifest = cls(recording_format, tuple(files), digest, axon)
        if recording_format == "mcap" and manifest.file(f"{task_id}.mcap").sha256 != digest:
            raise ManifestError(f"manifest.dataset_digest must be the SHA-256 of {task_id}.mcap (the files list another)")
        return manifest

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> RecordingManifest:
        """A manifest as the store keeps it (validated when it was received)."""
        return cls(
            data["recording_format"],
            tuple(ManifestFile(f["name"], f["size"], f["sha256"]) for f in data["files"]),
            data["dataset_digest"],
            data.get("axon_checksum_sha256"),
        )


def _check_names(recording_format: str, task_id: str, names: set[str]) -> None:
    """Only the task's own files: another task's recording or any other path is refused."""
    if recording_format == "mcap":
        required, allowed = {f"{task_id}.mcap"}, {f"{task_id}.mcap", f"{task_id}.json"}
        foreign = sorted(names - allowed)
        if foreign:
            raise ManifestError(
                f"manifest names {foreign[0]!r}, which is not a file of task {task_id}: an MCAP recording is "
                f"{task_id}.mcap plus optionally Axon's sidecar {task_id}.json"
            )
        if not required <= names:
            raise ManifestError(f"manifest lacks {task_id}.mcap")
        return
    directory = f"{task_id}.lance/"
    foreign = sorted(n for n in names if not n.startswith(directory) and n != f"{task_id}.json")
    if foreign:
        raise ManifestError(
            f"manifest names {foreign[0]!r}, which is not a file of task {task_id}: a Lance recording is files under "
            f"{directory} plus its sidecar {task_id}.json"
        )
    if not any(n.startswith(directory) for n in names):
        raise ManifestError(f"manifest lists no file under {directory}")
    if f"{task_id}.json" not in names:
        raise ManifestError(f"manifest lacks the Lance recording's sidecar {task_id}.json")


@dataclass(frozen=True)
class EdgeGate:
    """The edge gate's verdict: ``passed``, ``reasons`` (why not), ``checks`` (name -> details)."""

    passed: bool
    reasons: tuple[str, ...] = ()
    checks: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": list(self.reasons), "checks": dict(self.checks)}

    @property
    def failure(self) -> str:
        """The task's failure reason when the gate refused the recording."""
        return "edge gate: " + ("; ".join(self.reasons) or "rejected (no reason given)")

    @classmethod
    def parse(cls, data: Any) -> EdgeGate:
        if not isinstance(data, Mapping) or "passed" not in data:
            raise ManifestError("gate must be an object {passed, reasons, checks}")
        unknown = sorted(set(map(str, data)) - {"passed", "reasons", "checks"})
        if unknown:
            raise ManifestError(f"gate has unknown fields {unknown}")
        passed = data["passed"]
        if not isinstance(passed, bool):
            raise ManifestError(f"gate.passed must be true or false, got {str(passed)[:40]!r}")
        reasons = data.get("reasons") or []
        if not isinstance(reasons, list) or len(reasons) > MAX_GATE_REASONS or not all(
            isinstance(r, str) and 0 < len(r) <= MAX_GATE_TEXT and not any(ord(c) < 32 and c not in "\t" for c in r) for r in reasons
        ):
            raise ManifestError(f"gate.reasons must be a list of at most {MAX_GATE_REASONS} non-empty strings of at most {MAX_GATE_TEXT} characters")
        checks = data.get("checks") or {}
        if not isinstance(checks, Mapping) or len(repr(checks)) > MAX_GATE_CHECKS_BYTES:
            raise ManifestError(f"gate.checks must be an object of at most {MAX_GATE_CHECKS_BYTES} bytes")
        if not passed and not reasons:
            raise ManifestError("a gate that did not pass must say why (gate.reasons)")
        return cls(passed, tuple(reasons), dict(checks))


class GrantStatus(str, Enum):
    ACTIVE = "ACTIVE"
    USED = "USED"
    EXPIRED = "EXPIRED"


GRANT_TRANSITIONS: Mapping[GrantStatus, frozenset[GrantStatus]] = {
    GrantStatus.ACTIVE: frozenset({GrantStatus.USED, GrantStatus.EXPIRED}),
    GrantStatus.USED: frozenset(),
    GrantStatus.EXPIRED: frozenset(),
}


@dataclass(frozen=True)
class UploadGrant:
    grant_id: str
    dataset_id: str
    robot_id: str
    granted_at: datetime
    expires_at: datetime
    status: GrantStatus = GrantStatus.ACTIVE
    upload_ids: Mapping[str, str] = field(default_factory=dict)  # manifest file name -> the store's multipart upload id
    finished_at: datetime | None = None

    @classmethod
    def issue(cls, grant_id: str, dataset_id: str, robot_id: str, now: datetime, ttl: timedelta,
              previous: UploadGrant | None = None) -> UploadGrant:
        if not MIN_GRANT_TTL <= ttl <= MAX_GRANT_TTL:
            raise ManifestError(f"a grant lives {MIN_GRANT_TTL.total_seconds():.0f} to {MAX_GRANT_TTL.total_seconds():.0f} seconds, "
                                f"got {ttl.total_seconds():g}")
        if previous is not None and previous.status is GrantStatus.ACTIVE:
            raise UploadRefused(f"dataset {dataset_id} already has the active grant {previous.grant_id}")
        return cls(validate_id(grant_id, "grant_id"), validate_id(dataset_id, "dataset_id"), validate_id(robot_id, "robot_id"),
                   now, now + ttl, GrantStatus.ACTIVE, dict(previous.upload_ids) if previous else {})

    def due(self, now: datetime) -> bool:
        """Active, but past its expiry (the sweeper turns it EXPIRED)."""
        return self.status is GrantStatus.ACTIVE and now >= self.expires_at

    def usable(self, now: datetime) -> None:
        """Raise :class:`UploadRefused` unless the robot may use this grant now."""
        if self.status is GrantStatus.USED:
            raise UploadRefused(f"grant {self.grant_id} was already used: dataset {self.dataset_id} is staged")
        if self.status is GrantStatus.EXPIRED or self.due(now):
            raise UploadRefused(f"grant {self.grant_id} expired at {self.expires_at.isoformat()}; wait for a new grant")

    def _to(self, target: GrantStatus, now: datetime) -> UploadGrant:
        if target not in GRANT_TRANSITIONS[self.status]:
            raise IllegalTransitionError("grant", self.grant_id, self.status.value, target.value)
        return replace(self, status=target, finished_at=now)

    def used(self, now: datetime) -> UploadGrant:
        return self._to(GrantStatus.USED, now)

    def expired(self, now: datetime) -> UploadGrant:
        return self._to(GrantStatus.EXPIRED, now)

    def with_upload_ids(self, upload_ids: Mapping[str, str]) -> UploadGrant:
        return replace(self, upload_ids=dict(upload_ids))

    def seconds_left(self, now: datetime) -> int:
        return max(1, math.floor((self.expires_at - now).total_seconds()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "grant_id": self.grant_id, "dataset_id": self.dataset_id, "robot_id": self.robot_id,
            "granted_at": self.granted_at.isoformat(), "expires_at": self.expires_at.isoformat(),
            "status": self.status.value, "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }
