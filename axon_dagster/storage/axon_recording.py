"""Reading what the Axon recorder (v0.4) leaves on disk, per task, in its output directory.

Axon writes, in this order (Axon's source, GitHub ``archebase/axon`` tag v0.4.0:
``recording_session.cpp``, ``metadata_injector.cpp``):

1. ``<task_id>.mcap`` — the recording, with MCAP metadata records ``axon.sidecar``, ``axon.task``,
   ``axon.device``, ``axon.recording`` and ``axon.topics`` (present even without a JSON sidecar);
2. ``<task_id>.json`` — the v1.0 sidecar (unless sidecar mode is ``none``), via ``.json.tmp`` + rename;
3. ``<task_id>.mcap.done`` — ``done\\n``, last, via ``.tmp`` + rename.

Import-light on purpose: the edge agent uses this module on the robot, so only the standard library
(and ``mcap``, lazily, to read metadata records) is imported — never pyarrow, lance, daft or Dagster.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from ..domain.errors import InvalidIdError
from ..domain.ids import validate_id
from .digest import DigestMismatch, file_sha256

SIDECAR_VERSION = "1.0"
AXON_METADATA_RECORDS = ("axon.sidecar", "axon.task", "axon.device", "axon.recording", "axon.topics")
MCAP_MAGIC = b"\x89MCAP0\r\n"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_AXON_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z")


class AxonRecordingError(Exception):
    """Base class: an Axon recording that cannot be used as it is. Nothing was changed."""


class SidecarError(AxonRecordingError, ValueError):
    """An Axon sidecar (or the ``axon.*`` metadata records standing in for one) that is malformed."""

    def __init__(self, source: str, reason: str):
        self.source, self.reason = source, reason
        super().__init__(f"Axon sidecar {source}: {reason}")


class IncompleteRecording(AxonRecordingError):
    """The recorder has not finished the recording (no ``.mcap.done`` and no sidecar yet, or the
    MCAP has no closing magic)."""

    def __init__(self, mcap_path: str | os.PathLike, reason: str):
        self.mcap_path, self.reason = str(mcap_path), reason
        super().__init__(f"Axon recording {mcap_path} is not complete: {reason}")


class ChecksumMismatch(DigestMismatch, AxonRecordingError):
    """The SHA-256 of the ``.mcap`` is not the ``checksum_sha256`` Axon recorded for it."""

    def __init__(self, mcap_path: str | os.PathLike, expected: str, actual: str, source: str = "sidecar"):
        self.mcap_path, self.source = str(mcap_path), source
        DigestMismatch.__init__(self, f"{mcap_path} (checksum from {source})", expected, actual)


# --------------------------------------------------------------------------------------------
# The sidecar (v1.0) as a typed model


@dataclass(frozen=True)
class AxonTask:
    task_id: str
    scene: str = ""
    factory: str = ""
    order_id: str = ""
    subscene: str = ""
    skills: tuple[str, ...] = ()
    data_collector_id: str = ""
    operator_name: str = ""


@dataclass(frozen=True)
class AxonDevice:
    device_id: str = ""
    hostname: str = ""
    ros_distro: str = ""
    device_model: str = ""
    device_serial: str = ""


@dataclass(frozen=True)
class AxonRecordingInfo:
    recorder_version: str = ""
    recording_started_at: str = ""  # UTC "YYYY-MM-DDTHH:MM:SS.mmmZ"
    recording_finished_at: str = ""
    duration_sec: float = 0.0  # wall time, pauses included
    message_count: int = 0
    file_size_bytes: int = 0
    topics_recorded: tuple[str, ...] = ()
    checksum_sha256: str | None = None  # absent when built from the MCAP's metadata records

    @property
    def started_at_ns(self) -> int | None:
        return parse_axon_time(self.recording_started_at) if self.recording_started_at else None

    @property
    def finished_at_ns(self) -> int | None:
        return parse_axon_time(self.recording_finished_at) if self.recording_finished_at else None


@dataclass(frozen=True)
class AxonTopicSummary:
    topic: str
    message_type: str
    message_count: int
    frequency_hz: float = 0.0


@dataclass(frozen=True)
class AxonSidecar:
    version: str
    mcap_file: str
    task: AxonTask
    device: AxonDevice
    recording: AxonRecordingInfo
    topics_summary: tuple[AxonTopicSummary, ...] = ()
    source: str = "sidecar"  # "sidecar" (the JSON file) or "mcap-metadata" (the axon.* records)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def checksum_sha256(self) -> str | None:
        return self.recording.checksum_sha256

    def topic_counts(self) -> dict[str, int]:
        return {t.topic: t.message_count for t in self.topics_summary}

    def to_dict(self) -> dict[str, Any]:
        """The sidecar as Axon writes it (keys in [brackets] only when non-empty)."""
        task: dict[str, Any] = {"task_id": self.task.task_id, "scene": self.task.scene, "factory": self.task.factory}
        for key in ("order_id", "subscene", "data_collector_id", "operator_name"):
            if getattr(self.task, key):
                task[key] = getattr(self.task, key)
        if self.task.skills:
            task["skills"] = list(self.task.skills)
        device = {"device_id": self.device.device_id, "hostname": self.device.hostname, "ros_distro": self.device.ros_distro}
        for key in ("device_model", "device_serial"):
            if getattr(self.device, key):
                device[key] = getattr(self.device, key)
        rec = self.recording
        recording: dict[str, Any] = {
            "recorder_version": rec.recorder_version,
            "recording_started_at": rec.recording_started_at,
            "recording_finished_at": rec.recording_finished_at,
            "duration_sec": rec.duration_sec,
            "message_count": rec.message_count,
            "file_size_bytes": rec.file_size_bytes,
            "topics_recorded": list(rec.topics_recorded),
        }
        if rec.checksum_sha256 is not None:
            recording["checksum_sha256"] = rec.checksum_sha256
        return {
            "version": self.version,
            "mcap_file": self.mcap_file,
            "task": task,
            "device": device,
            "recording": recording,
            "topics_summary": [
                {"topic": t.topic, "message_type": t.message_type, "message_count": t.message_count, "frequency_hz": t.frequency_hz}
                for t in self.topics_summary
            ],
        }

    @classmethod
    def read(cls, path: str | os.PathLike) -> "AxonSidecar":
        """Read and validate ``<task_id>.json``; a clear :class:`SidecarError` on anything malformed."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SidecarError(str(path), "file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SidecarError(str(path), f"cannot be read: {exc}") from None
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SidecarError(str(path), f"not valid JSON: {exc}") from None
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(
        cls, raw: object, *, source: str = "sidecar", require_checksum: bool = True, origin: str = "sidecar"
    ) -> "AxonSidecar":
        """Validate a parsed sidecar. ``origin`` is "sidecar" (the JSON file, which always carries
        Axon's checksum) or "mcap-metadata" (rebuilt from the axon.* records, which never do)."""
        v = _Validator(source)
        top = v.obj(raw, "(top level)")
        version = v.string(top, "version", required=True)
        if version.split(".")[0] != SIDECAR_VERSION.split(".")[0]:
            raise SidecarError(source, f"version {version!r} is not supported (expected {SIDECAR_VERSION})")
        mcap_file = v.string(top, "mcap_file", required=True)
        if not mcap_file.endswith(".mcap") or "/" in mcap_file or "\\" in mcap_file or mcap_file in (".mcap",):
            raise SidecarError(source, f"mcap_file {mcap_file!r} must be a plain '<task_id>.mcap' file name")

        t = v.obj(top.get("task"), "task")
        task_id = v.string(t, "task_id", required=True, where="task")
        try:
            validate_id(task_id, "task_id")
        except InvalidIdError as exc:
            raise SidecarError(source, f"task.task_id: {exc}") from None
        task = AxonTask(
            task_id=task_id,
            scene=v.string(t, "scene", where="task"),
            factory=v.string(t, "factory", where="task"),
            order_id=v.string(t, "order_id", where="task"),
            subscene=v.string(t, "subscene", where="task"),
            skills=v.strings(t, "skills", where="task"),
            data_collector_id=v.string(t, "data_collector_id", where="task"),
            operator_name=v.string(t, "operator_name", where="task"),
        )
        d = v.obj(top.get("device", {}), "device")
        device = AxonDevice(**{k: v.string(d, k, where="device") for k in ("device_id", "hostname", "ros_distro", "device_model", "device_serial")})

        r = v.obj(top.get("recording"), "recording")
        checksum = r.get("checksum_sha256")
        if checksum is None:
            if require_checksum:
                raise SidecarError(source, "recording.checksum_sha256 is missing")
        elif not isinstance(checksum, str) or not _SHA256_HEX.fullmatch(checksum.lower()):
            raise SidecarError(source, f"recording.checksum_sha256 {checksum!r} is not a hex SHA-256")
        started = v.string(r, "recording_started_at", where="recording")
        finished = v.string(r, "recording_finished_at", where="recording")
        for key, value in (("recording_started_at", started), ("recording_finished_at", finished)):
            if value and not _AXON_TIME.fullmatch(value):
                raise SidecarError(source, f"recording.{key} {value!r} is not a UTC time like 2026-01-02T03:04:05.678Z")
        recording = AxonRecordingInfo(
            recorder_version=v.string(r, "recorder_version", where="recording"),
            recording_started_at=started,
            recording_finished_at=finished,
            duration_sec=v.number(r, "duration_sec", where="recording"),
            message_count=v.count(r, "message_count", where="recording"),
            file_size_bytes=v.count(r, "file_size_bytes", where="recording"),
            topics_recorded=v.strings(r, "topics_recorded", where="recording"),
            checksum_sha256=checksum.lower() if isinstance(checksum, str) else None,
        )
        if started and finished and parse_axon_time(finished) < parse_axon_time(started):
            raise SidecarError(source, f"recording finished ({finished}) before it started ({started})")

        summaries = top.get("topics_summary", [])
        if not isinstance(summaries, list):
            raise SidecarError(source, "topics_summary must be a list")
        topics = []
        for i, s in enumerate(summaries):
            where = f"topics_summary[{i}]"
            s = v.obj(s, where)
            topics.append(
                AxonTopicSummary(
                    topic=v.string(s, "topic", required=True, where=where),
                    message_type=v.string(s, "message_type", where=where),
                    message_count=v.count(s, "message_count", where=where),
                    frequency_hz=v.number(s, "frequency_hz", where=where),
                )
            )
        names = [t.topic for t in topics]
        if len(set(names)) != len(names):
            raise SidecarError(source, "topics_summary lists a topic twice")
        return cls(
            version=version,
            mcap_file=mcap_file,
            task=task,
            device=device,
            recording=recording,
            topics_summary=tuple(topics),
            source=origin,
            raw=top,
        )

    @classmethod
    def from_metadata(cls, records: Mapping[str, Mapping[str, str]], *, source: str = "mcap metadata") -> "AxonSidecar":
        """The sidecar Axon would have written, rebuilt from the MCAP's ``axon.*`` metadata records
        (as :func:`read_axon_metadata` returns them). No checksum: Axon only computes it for the JSON."""
        missing = [name for name in AXON_METADATA_RECORDS if name not in records]
        if missing:
            raise SidecarError(source, f"MCAP has no {', '.join(missing)} metadata record(s) (not an Axon recording?)")
        sc, task, device, rec, topics = (dict(records[name]) for name in AXON_METADATA_RECORDS)

        def js(value: str | None, what: str, default: Any) -> Any:
            if value is None:
                return default
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                raise SidecarError(source, f"{what} is not valid JSON: {value[:80]!r}") from None

        def num(value: str | None, what: str, kind: type) -> Any:
            if value is None:
                return kind(0)
            try:
                return kind(value)
            except ValueError:
                raise SidecarError(source, f"{what} {value!r} is not a number") from None

        if "skills" in task:
            task["skills"] = js(task["skills"], "axon.task skills", [])
        raw = {
            "version": sc.get("version"),
            "mcap_file": sc.get("mcap_file"),
            "task": task,
            "device": device,
            "recording": {
                **{k: rec[k] for k in ("recorder_version", "recording_started_at", "recording_finished_at") if k in rec},
                "duration_sec": num(rec.get("duration_sec"), "axon.recording duration_sec", float),
                "message_count": num(rec.get("message_count"), "axon.recording message_count", int),
                "file_size_bytes": num(rec.get("file_size_bytes"), "axon.recording file_size_bytes", int),
                "topics_recorded": js(rec.get("topics_recorded"), "axon.recording topics_recorded", []),
            },
            "topics_summary": js(topics.get("topics_summary"), "axon.topics topics_summary", []),
        }
        return cls.from_dict(raw, source=source, require_checksum=False, origin="mcap-metadata")


class _Validator:
    """Field readers that name the offending key in a :class:`SidecarError`."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, reason: str):
        raise SidecarError(self.source, reason)

    def obj(self, value: object, where: str) -> dict:
        if not isinstance(value, dict):
            self.fail(f"{where} must be an object, got {type(value).__name__}")
        return value

    def string(self, d: dict, key: str, *, required: bool = False, where: str = "") -> str:
        name = f"{where}.{key}" if where else key
        if key not in d or d[key] is None:
            if required:
                self.fail(f"{name} is missing")
            return ""
        value = d[key]
        if not isinstance(value, str):
            self.fail(f"{name} must be a string, got {type(value).__name__}")
        if required and not value:
            self.fail(f"{name} must not be empty")
        return value

    def strings(self, d: dict, key: str, *, where: str = "") -> tuple[str, ...]:
        value = d.get(key, [])
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            self.fail(f"{where}.{key} must be a list of strings")
        return tuple(value)

    def count(self, d: dict, key: str, *, where: str = "") -> int:
        value = d.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.fail(f"{where}.{key} must be a non-negative integer, got {value!r}")
        return value

    def number(self, d: dict, key: str, *, where: str = "") -> float:
        value = d.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            self.fail(f"{where}.{key} must be a non-negative number, got {value!r}")
        return float(value)


def parse_axon_time(text: str) -> int:
    """``2026-01-02T03:04:05.678Z`` (Axon's UTC format) -> nanoseconds since the epoch."""
    if not _AXON_TIME.fullmatch(text or ""):
        raise ValueError(f"not an Axon UTC time: {text!r}")
    whole, _, frac = text[:-1].partition(".")
    seconds = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    return int(seconds) * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])


def format_axon_time(ns: int) -> str:
    """Nanoseconds since the epoch -> Axon's ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (milliseconds, truncated)."""
    seconds, rem = divmod(int(ns), 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{rem // 1_000_000:03d}Z"


# --------------------------------------------------------------------------------------------
# The files of one recording


@dataclass(frozen=True)
class AxonRecordingFiles:
    mcap_path: Path
    sidecar_path: Path
    done_path: Path

    @property
    def task_id(self) -> str:
        return self.mcap_path.name[: -len(".mcap")]

    @classmethod
    def for_mcap(cls, mcap_path: str | os.PathLike) -> "AxonRecordingFiles":
        """The files Axon writes beside ``/dir/<task_id>.mcap``: ``<task_id>.json`` and
        ``<task_id>.mcap.done`` (the sidecar replaces the extension; it is *not* ``x.mcap.json``)."""
        p = Path(mcap_path)
        if p.suffix != ".mcap":
            raise ValueError(f"not an MCAP recording path (expected '<task_id>.mcap'): {p}")
        return cls(mcap_path=p, sidecar_path=p.with_suffix(".json"), done_path=p.with_name(p.name + ".done"))

    def existing(self) -> list[Path]:
        return [p for p in (self.mcap_path, self.sidecar_path, self.done_path) if p.exists()]


def recording_files(output_dir: str | os.PathLike, task_id: str) -> AxonRecordingFiles:
    """The paths Axon uses for ``task_id`` in ``output_dir`` (whether or not they exist yet).
    The task id is validated: no separators, no ``..``, nothing that escapes ``output_dir``."""
    validate_id(task_id, "task_id")
    base = Path(output_dir)
    files = AxonRecordingFiles.for_mcap(base / f"{task_id}.mcap")
    if files.mcap_path.parent != base:  # belt and braces: validate_id already refuses separators
        raise InvalidIdError("task_id", task_id, "escapes the output directory")
    return files


def find_recording(output_dir: str | os.PathLike, task_id: str) -> AxonRecordingFiles | None:
    """The recording of ``task_id`` in Axon's output directory, by Axon's naming, or ``None`` when
    its ``.mcap`` does not exist (yet). Raises :class:`InvalidIdError` for an unsafe task id."""
    files = recording_files(output_dir, task_id)
    return files if files.mcap_path.is_file() else None


def _has_closing_magic(mcap_path: Path) -> bool:
    try:
        with open(mcap_path, "rb") as fh:
            if fh.read(len(MCAP_MAGIC)) != MCAP_MAGIC:
                return False
            fh.seek(0, os.SEEK_END)
            if fh.tell() < 2 * len(MCAP_MAGIC):
                return False
            fh.seek(-len(MCAP_MAGIC), os.SEEK_END)
            return fh.read(len(MCAP_MAGIC)) == MCAP_MAGIC
    except OSError:
        return False


def completeness_problem(files: AxonRecordingFiles) -> str | None:
    """Why the recording is not complete yet, or ``None`` when it is.

    Complete, per AXON_V04 (and Axon's own uploader): the ``.mcap`` exists, a marker exists that is
    not older than it — the sidecar (written after the file is closed and hashed) or ``.mcap.done``
    (written last) — and the ``.mcap`` ends with the MCAP magic (it was closed). A marker older than
    the ``.mcap`` belongs to an earlier recording of the same task id, which Axon overwrites."""
    try:
        mcap_mtime = files.mcap_path.stat().st_mtime_ns
    except FileNotFoundError:
        return "the .mcap does not exist"
    markers = []
    for marker in (files.done_path, files.sidecar_path):
        try:
            markers.append((marker, marker.stat().st_mtime_ns))
        except FileNotFoundError:
            continue
    if not markers:
        return f"neither {files.done_path.name} nor {files.sidecar_path.name} exists yet"
    if not any(mtime >= mcap_mtime for _, mtime in markers):
        return f"{' and '.join(m.name for m, _ in markers)} older than the .mcap (left from an earlier recording)"
    if not _has_closing_magic(files.mcap_path):
        return "the .mcap is not closed (no MCAP magic at its end)"
    return None


def is_complete(files: AxonRecordingFiles) -> bool:
    return completeness_problem(files) is None


def require_complete(files: AxonRecordingFiles) -> AxonRecordingFiles:
    """``files`` when the recording is complete; :class:`IncompleteRecording` with the reason if not."""
    problem = completeness_problem(files)
    if problem is not None:
        raise IncompleteRecording(files.mcap_path, problem)
    return files


def wait_complete(files: AxonRecordingFiles, timeout_s: float, poll_s: float = 0.5) -> AxonRecordingFiles:
    """Wait until :func:`is_complete`; :class:`IncompleteRecording` (with the reason) after ``timeout_s``.
    Axon's finish closes and hashes the file on one thread, which takes minutes for a large one."""
    deadline = time.monotonic() + max(0.0, timeout_s)
    while True:
        problem = completeness_problem(files)
        if problem is None:
            return files
        if time.monotonic() >= deadline:
            raise IncompleteRecording(files.mcap_path, f"{problem} (waited {timeout_s:g}s)")
        time.sleep(max(0.01, min(poll_s, deadline - time.monotonic())))


# --------------------------------------------------------------------------------------------
# Checksums and metadata


def read_own_sidecar(files: AxonRecordingFiles) -> AxonSidecar | None:
    """Axon's sidecar beside the ``.mcap``, or ``None`` when Axon wrote none; :class:`SidecarError`
    when it is malformed or describes another file."""
    if not files.sidecar_path.exists():
        return None
    sidecar = AxonSidecar.read(files.sidecar_path)
    if sidecar.mcap_file != files.mcap_path.name:
        raise SidecarError(str(files.sidecar_path), f"describes {sidecar.mcap_file!r}, not {files.mcap_path.name!r}")
    return sidecar


def verify_checksum(files: AxonRecordingFiles, expected: str | None = None) -> str:
    """SHA-256 of the ``.mcap``, checked against the sidecar's ``recording.checksum_sha256`` and, when
    given, ``expected`` (e.g. ``stats.metadata.checksum_sha256`` or the EXECUTED event's). Returns the
    hex digest; raises :class:`ChecksumMismatch` on a mismatch, :class:`SidecarError` on a malformed
    sidecar or one that names another file, :class:`IncompleteRecording` when the recording is not
    finished. Without a sidecar and without ``expected`` there is nothing to compare: the digest is
    returned as computed (the caller records it as unverified)."""
    return verify_recording(files, expected)[0]


def verify_recording(files: AxonRecordingFiles, expected: str | None = None) -> tuple[str, AxonSidecar | None]:
    """:func:`verify_checksum`, returning Axon's sidecar it checked against too (``None`` when Axon
    wrote none), so that a caller needing both reads the sidecar once."""
    require_complete(files)
    sources: list[tuple[str, str]] = []
    sidecar = read_own_sidecar(files)
    if sidecar is not None:
        sources.append(("sidecar", sidecar.checksum_sha256 or ""))
    if expected is not None:
        if not isinstance(expected, str) or not _SHA256_HEX.fullmatch(expected.lower()):
            raise ValueError(f"expected checksum {expected!r} is not a hex SHA-256")
        sources.append(("recorder", expected.lower()))
    actual = file_sha256(files.mcap_path)
    for source, want in sources:
        if want != actual:
            raise ChecksumMismatch(files.mcap_path, want, actual, source)
    return actual, sidecar


def read_axon_metadata(mcap_path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """The ``axon.*`` MCAP metadata records of ``mcap_path``: ``{record name: {key: value}}`` (values are
    strings, as Axon writes them; JSON inside for skills, topics_recorded and topics_summary).
    Raises :class:`AxonRecordingError` when the file is not a readable MCAP."""
    from mcap.exceptions import McapError
    from mcap.reader import make_reader

    out: dict[str, dict[str, str]] = {}
    try:
        with open(mcap_path, "rb") as fh:
            for record in make_reader(fh).iter_metadata():
                if record.name.startswith("axon."):
                    out[record.name] = dict(record.metadata)
    except FileNotFoundError:
        raise AxonRecordingError(f"MCAP file not found: {mcap_path}") from None
    except (McapError, EOFError, ValueError, OSError) as exc:  # truncated / not an MCAP
        raise AxonRecordingError(f"{mcap_path} is not a readable MCAP file: {exc}") from None
    return out


def load_sidecar(files: AxonRecordingFiles) -> AxonSidecar:
    """Axon's sidecar when it wrote one, else the same facts from the MCAP's ``axon.*`` records."""
    if files.sidecar_path.exists():
        return AxonSidecar.read(files.sidecar_path)
    return AxonSidecar.from_metadata(read_axon_metadata(files.mcap_path), source=f"{files.mcap_path} metadata")


__all__ = [
    "AXON_METADATA_RECORDS",
    "AxonDevice",
    "AxonRecordingError",
    "AxonRecordingFiles",
    "AxonRecordingInfo",
    "AxonSidecar",
    "AxonTask",
    "AxonTopicSummary",
    "ChecksumMismatch",
    "IncompleteRecording",
    "SidecarError",
    "completeness_problem",
    "find_recording",
    "format_axon_time",
    "is_complete",
    "load_sidecar",
    "parse_axon_time",
    "read_axon_metadata",
    "read_own_sidecar",
    "recording_files",
    "require_complete",
    "verify_checksum",
    "verify_recording",
    "wait_complete",
]
