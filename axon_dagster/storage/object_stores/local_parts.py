"""The local store's staging area: robots' multipart uploads through the control plane's ingest
endpoint (:mod:`.signing`), mixed into :class:`~.local.LocalDirObjectStore`.

An open upload is a directory ``.axon-uploads/<upload_id>/``:

- ``key``: the staging key it will become;
- ``data``: the file itself, each part written at its planned (signed) offset — completion renames
  it into place, no byte is copied;
- ``journal``: one line per event, appended (``O_APPEND``): ``P <number> <offset> <size> <etag>``
  when a part is whole, ``R <number>`` before a part is (re)written. The part's current line says
  whether the store holds it (a part being rewritten is not held: its bytes are changing);
- ``seal``: writers hold a shared ``flock`` on it while they write; completion an exclusive one, so
  that no write lands in the file once it is being completed; ``part-<n>.lock``: writers of one
  part take turns.

**Integrity without an extra hash pass.** A part is checked by its size (exactly its planned bytes,
no more, no fewer) and, when the robot sends ``Content-MD5``, its MD5. The file as a whole is checked
at completion by its SHA-256, which the store computes *while parts arrive*: one running hasher per
upload (this process's memory) consumes the file in order from the page cache as parts become whole,
parts that came early waiting for the ones before. Each hashed range is tied to the journal line
(the part's ETag) it was read under; completion uses the running digest only when the parts it
completes are exactly those ranges, still current (a rewritten part gets a new ETag, and its ``R``
line comes before its first byte), else it reads the file once more (parts that went to another
process, a restart in between). The control plane compares the digest with the manifest exactly
as before.

**Durability.** A part is acknowledged once written to the file (the kernel's page cache), not
fsynced: it survives any crash of the control-plane process; a crash of the host before completion
may lose it, which completion detects (its digest, re-read from the file since the running one is
gone with the process, differs from the manifest: the upload is refused and re-sent from the
robot's cached copy, which is never released before publication). Completion fsyncs the file and
the directory it lands in before the control plane records STAGED, as one streamed PUT of the file
would: one flush, where a flush per part cost as much again on a busy disk; the hashing thread
starts the write-back of each part it hashed (``sync_file_range``), so that little is left to
flush then.

**Read while it arrives.** :class:`UploadFollower` lets the data flow ingest a recording while the
robot still uploads it: it reads the file in order, only bytes of parts the journal holds, and
counts them only if the same part writes are still held after the read. Completion leaves a
record (``.axon-uploads/<upload_id>.completed``: the key, its SHA-256 and the part writes it
hashed; written only when that SHA-256 came from the running digest of exactly those writes): a
follower that read only those writes knows that the bytes it read are the ones completion
verified, without hashing them again. The records go with their staging prefix
(``delete_prefix``).
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...domain.layout import parse_staging_key
from ..files import fsync_path, start_write_back
from .errors import ObjectStoreUnavailable
from .keys import RESERVED_PREFIX, validate_key
from .signing import sign_part_url
from .staging import (
    PartDigestMismatch,
    PartIncomplete,
    PartSpec,
    PartsRefused,
    PartTarget,
    PartTooLarge,
    StagingError,
    UnknownUpload,
    completion_parts,
    part_specs,
    validate_expiry,
    validate_part_number,
    validate_part_size,
)

log = logging.getLogger(__name__)

_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_ETAG = re.compile(r'"?(\d{1,5}-[0-9a-f]{16})"?')  # never 32 hex digits: not mistaken for an MD5
_READ = 8 << 20
# How long a completion waits for part writes still in flight (an earlier attempt's request the
# robot gave up on ends as soon as the server reads from its closed connection).
SEAL_WAIT_SECONDS = 30.0
_REGISTRY_LOCK = threading.Lock()
_COMPLETED = ".completed"  # .axon-uploads/<upload_id>.completed: what completion verified, for followers


@dataclass(frozen=True)
class HeldPart:
    number: int
    offset: int
    size: int
    etag: str


def read_journal(upload_dir: Path) -> dict[int, HeldPart]:
    """The parts the upload holds now (a part's last ``P`` line, unless an ``R`` line came after)."""
    held: dict[int, HeldPart] = {}
    try:
        text = (upload_dir / "journal").read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return held
    for line in text.split("\n"):  # a torn last line (a crash mid-append) matches nothing
        fields = line.split(" ")
        try:
            if fields[0] == "P" and len(fields) == 5 and _ETAG.fullmatch(fields[4]):
                number, offset, size = int(fields[1]), int(fields[2]), int(fields[3])
                held[number] = HeldPart(number, offset, size, f'"{_ETAG.fullmatch(fields[4]).group(1)}"')  # type: ignore[union-attr]
            elif fields[0] == "R" and len(fields) == 2:
                held.pop(int(fields[1]), None)
        except ValueError:
            continue
    return held


def _append(upload_dir: Path, line: str) -> None:
    try:
        fd = os.open(upload_dir / "journal", os.O_WRONLY | os.O_APPEND)
    except FileNotFoundError:
        raise UnknownUpload(f"upload {upload_dir.name} was completed or aborted meanwhile") from None
    try:
        os.write(fd, line.encode("ascii"))
    finally:
        os.close(fd)


def normalized_etag(etag: str) -> str | None:
    m = _ETAG.fullmatch(etag.strip()) if isinstance(etag, str) else None
    return f'"{m.group(1)}"' if m else None


# --------------------------------------------------------------------------- the running digest


@dataclass
class RunningDigest:
    """The SHA-256 of an upload's file so far: ``hashed_to`` bytes, from these parts."""

    sha: Any = field(default_factory=hashlib.sha256)
    hashed_to: int = 0
    parts: list[HeldPart] = field(default_factory=list)
    broken: str | None = None  # why it no longer describes the file (completion re-reads it)
    lock: threading.Lock = field(default_factory=threading.Lock)  # held while hashing
    pending: bool = False
    _draining: bool = False
    _state: threading.Lock = field(default_factory=threading.Lock)

    def advance(self, upload_dir: Path) -> None:
        """A part became whole: hash what now follows what is hashed, in a thread of its own (the
        part's answer never waits for it; one thread per upload at a time, which takes every
        part that became whole meanwhile)."""
        with self._state:
            self.pending = True
            if self._draining:
                return
            self._draining = True
        threading.Thread(target=self._drain, args=(upload_dir,), name="upload-digest", daemon=True).start()

    def _drain(self, upload_dir: Path) -> None:
        while True:
            with self._state:
                if not self.pending:
                    self._draining = False
                    return
                self.pending = False
            try:
                with self.lock:
                    self._advance(upload_dir)
            except Exception:  # the digest is then not trusted: completion reads the file again
                log.exception("upload %s: hashing its parts failed", upload_dir.name)
                self.broken = self.broken or "hashing failed"

    def _advance(self, upload_dir: Path) -> None:
        while self.broken is None:
            held = read_journal(upload_dir)
            done = {p.number for p in self.parts}
            nxt = [p for p in held.values() if p.offset == self.hashed_to and p.number not in done]
            if not nxt:
                return
            if len(nxt) > 1:
                self.broken = f"parts {[p.number for p in nxt]} all start at byte {self.hashed_to}"
                return
            part = nxt[0]
            if not self._hash_range(upload_dir / "data", part.offset, part.size):
                return
            if not self.broken and part.size:
                start_write_back(upload_dir / "data", part.offset, part.size)
            if read_journal(upload_dir).get(part.number) != part:
                self.broken = f"part {part.number} was rewritten while it was hashed"
                return
            self.parts.append(part)
            self.hashed_to += part.size

    def _hash_range(self, path: Path, offset: int, size: int) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            self.broken = "the upload's file is gone"
            return False
        try:
            buf = bytearray(min(_READ, max(size, 1)))
            view = memoryview(buf)
            done = 0
            while done < size:
                n = os.preadv(fd, [view[: min(len(buf), size - done)]], offset + done)
                if n <= 0:
                    self.broken = f"the file ended at byte {offset + done}"
                    return False
                self.sha.update(view[:n])
                done += n
            return True
        finally:
            os.close(fd)

    def digest_of(self, parts: Sequence[HeldPart], upload_dir: Path) -> str | None:
        """The file's SHA-256 if exactly ``parts`` (in order) were hashed, else None (catching up
        with what is whole first)."""
        with self.lock:
            self._advance(upload_dir)
            if self.broken is None and list(parts) == self.parts:
                return self.sha.hexdigest()
            return None


class RunningDigests:
    """One :class:`RunningDigest` per open upload of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._digests: dict[str, RunningDigest] = {}

    def get(self, upload_id: str) -> RunningDigest:
        with self._lock:
            return self._digests.setdefault(upload_id, RunningDigest())

    def drop(self, upload_id: str) -> None:
        with self._lock:
            self._digests.pop(upload_id, None)


# --------------------------------------------------------------------------- one part coming in


class PartWriter:
    """One part on its way in (:meth:`LocalStaging.open_part`): ``write(chunk or [chunks])`` as the
    body arrives, then ``commit()`` -> its ETag. A context manager: leaving it without a commit (or
    on an error) leaves the part not held. Writers of one part take turns (a lock file per part);
    a refused part that wrote nothing changes nothing, one that did is no longer held."""

    def __init__(self, upload_dir: Path, number: int, offset: int, size: int, content_md5: str | None,
                 running: RunningDigest | None = None):
        self.upload_dir, self.number, self.offset, self.size = upload_dir, number, offset, size
        self._expected_md5 = _decode_content_md5(content_md5)
        self._md5 = hashlib.md5(usedforsecurity=False) if self._expected_md5 is not None else None
        self._running = running
        self._written = 0
        self._touched = False
        self._fd: int | None = None
        self._locks: list[int] = []
        try:
            seal = _open_seal(upload_dir)
            self._locks.append(seal)
            fcntl.flock(seal, fcntl.LOCK_SH)  # waits only while a completion holds it
            turn = os.open(upload_dir / f"part-{number}.lock", os.O_RDONLY | os.O_CREAT, 0o600)
            self._locks.append(turn)
            _lock_exclusive(turn, f"{upload_dir.name} part {number}")  # another writer of this part finishes first
            if not (upload_dir / "key").exists():
                raise UnknownUpload(f"upload {upload_dir.name} was completed or aborted meanwhile")
            self._fd = os.open(upload_dir / "data", os.O_WRONLY)
        except FileNotFoundError:
            self._close()
            raise UnknownUpload(f"upload {upload_dir.name} was completed or aborted meanwhile") from None
        except BaseException:
            self._close()
            raise

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.abort()

    def write(self, chunk: bytes | Sequence[bytes]) -> None:
        single = isinstance(chunk, (bytes, bytearray, memoryview))
        chunks = [chunk] if single else list(chunk)  # type: ignore[list-item]
        if self._fd is None:
            raise StagingError(f"part {self.number} is already committed or aborted")
        n = sum(len(c) for c in chunks)
        if self._written + n > self.size:
            self.abort()
            raise PartTooLarge(f"part {self.number} is larger than its planned {self.size} bytes; nothing kept")
        if not n:
            return
        if not self._touched:
            self._touch()
        if self._md5 is not None:
            for c in chunks:
                self._md5.update(c)
        at = self.offset + self._written
        while chunks:
            done = os.pwritev(self._fd, chunks, at)
            at += done
            while chunks and done >= len(chunks[0]):
                done -= len(chunks[0])
                chunks.pop(0)
            if chunks and done:
                chunks[0] = memoryview(chunks[0])[done:]
        self._written += n

    def _touch(self) -> None:
        """Before the first byte: the part is not held from here until committed again, and a
        running digest that already read its range no longer describes the file."""
        _append(self.upload_dir, f"R {self.number}\n")
        self._touched = True
        running = self._running
        if running is not None and running.hashed_to > self.offset and running.broken is None:
            running.broken = f"part {self.number} was written again after it was hashed"

    def commit(self) -> str:
        """The part is whole: held from now on. Returns its ETag. Refuses a short body or an MD5
        mismatch (the part is then not held)."""
        if self._fd is None:
            raise StagingError(f"part {self.number} is already committed or aborted")
        if self._written != self.size:
            self.abort()
            raise PartIncomplete(f"part {self.number} ended after {self._written} of its {self.size} bytes; nothing kept")
        if self._md5 is not None and self._md5.digest() != self._expected_md5:
            got = self._md5.hexdigest()
            self.abort()
            raise PartDigestMismatch(f"part {self.number}: body MD5 {got} differs from its Content-MD5 "
                                     f"{self._expected_md5.hex()}; nothing kept")  # type: ignore[union-attr]
        if not self._touched:  # an empty part
            self._touch()
        etag = f'"{self.number}-{secrets.token_hex(8)}"'
        try:
            _append(self.upload_dir, f"P {self.number} {self.offset} {self.size} {etag.strip(chr(34))}\n")
        finally:
            self._close()
        if self._running is not None:
            self._running.advance(self.upload_dir)
        return etag

    def abort(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        while self._locks:
            os.close(self._locks.pop())  # releases this part's turn, then the shared seal


def _open_seal(upload_dir: Path) -> int:
    try:
        return os.open(upload_dir / "seal", os.O_RDONLY)
    except FileNotFoundError:
        raise UnknownUpload(f"upload {upload_dir.name} was completed or aborted meanwhile") from None


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


# --------------------------------------------------------------------------- the store's staging half


class LocalStaging:
    """The staging methods of :class:`~.local.LocalDirObjectStore` (it provides ``root``,
    ``uri_for`` and ``_path``)."""

    root: Path
    _ingest: tuple[str, bytes] | None = None
    _digests: RunningDigests | None = None
    # Every part is one request to the control plane (auth, signature, journal, a thread hop):
    # measured on 1 GB, 64 MiB parts went at the speed of one plain PUT, 8 MiB parts at half of it.
    # The robot streams each part from its file, so the size costs it no memory.
    default_part_size = 64 << 20
    follows_uploads = True

    def uri_for(self, key: str) -> str:  # pragma: no cover - the store's
        raise NotImplementedError

    def _path(self, key: str) -> Path:  # pragma: no cover - the store's
        raise NotImplementedError

    def with_ingest(self, public_api_url: str, signing_key: bytes) -> Any:
        """Let :meth:`part_targets` sign URLs of the control plane's ingest endpoint at
        ``public_api_url`` with ``signing_key`` (:func:`.signing.load_signing_key`). Returns self."""
        sign_part_url(signing_key, base_url=public_api_url, robot_id="r", task_id="t", name="n", upload_id="u", number=1, offset=0, size=0, expires=0)
        self._ingest = (public_api_url, signing_key)
        return self

    def _running(self, upload_id: str) -> RunningDigest:
        with _REGISTRY_LOCK:
            if self._digests is None:
                self._digests = RunningDigests()
        return self._digests.get(upload_id)

    def _uploads_dir(self) -> Path:
        return self.root / f"{RESERVED_PREFIX}uploads"

    def _upload_dir(self, key: str, upload_id: str) -> Path:
        """The directory of an open upload of ``key``; UnknownUpload if there is none."""
        validate_key(key)
        if not isinstance(upload_id, str) or not _UPLOAD_ID.fullmatch(upload_id):
            raise UnknownUpload(f"no upload {str(upload_id)[:80]!r} for {self.uri_for(key)} (not an upload id of this store)")
        path = self._uploads_dir() / upload_id
        try:
            held = (path / "key").read_text()
        except (FileNotFoundError, NotADirectoryError):
            raise UnknownUpload(f"no upload {upload_id} for {self.uri_for(key)} (completed, aborted or never started)") from None
        if held != key:
            raise UnknownUpload(f"upload {upload_id} is not an upload of {self.uri_for(key)}")
        return path

    def start_multipart(self, key: str) -> str:
        validate_key(key)
        upload_id = uuid.uuid4().hex
        uploads = self._uploads_dir()
        uploads.mkdir(parents=True, exist_ok=True)
        scratch = uploads / f"{upload_id}.tmp"
        scratch.mkdir()
        for name in ("data", "journal", "seal"):
            (scratch / name).touch()
        (scratch / "key").write_text(key)
        os.rename(scratch, uploads / upload_id)  # the upload appears complete or not at all
        log.info("started upload %s of %s", upload_id, self.uri_for(key))
        return upload_id

    def part_targets(self, key: str, upload_id: str, parts: Iterable[PartSpec | tuple[int, int, int]], expires_s: int) -> list[PartTarget]:
        if self._ingest is None:
            raise StagingError("the local store signs part URLs of the control plane's ingest endpoint: call with_ingest(public_api_url, signing_key) first")
        robot_id, task_id, name = parse_staging_key(key)
        upload_dir = self._upload_dir(key, upload_id)
        expires = int(time.time()) + validate_expiry(expires_s)
        specs = part_specs(parts)
        layout = {p.number: (p.offset, p.size) for p in specs}
        # ``parts`` is the file's whole layout: held parts of another one (the part size changed
        # between two plans) are dropped, or the robot would be told they are done.
        for held in read_journal(upload_dir).values():
            if layout.get(held.number) != (held.offset, held.size):
                _append(upload_dir, f"R {held.number}\n")
        base_url, signing_key = self._ingest
        return [
            PartTarget(p.number, sign_part_url(signing_key, base_url=base_url, robot_id=robot_id, task_id=task_id, name=name, upload_id=upload_id,
                                               number=p.number, offset=p.offset, size=p.size, expires=expires))
            for p in specs
        ]

    def open_part(self, key: str, upload_id: str, number: int, size: int, *, offset: int = 0,
                  content_md5: str | None = None) -> PartWriter:
        """A writer for part ``number``: exactly ``size`` bytes at byte ``offset`` of the file (both
        from the signed URL): ``write(chunk)`` as the body arrives (more than ``size`` bytes ->
        :class:`PartTooLarge`), then ``commit()`` -> the part's ETag. ``content_md5``: the
        request's ``Content-MD5`` header (base64), checked when given."""
        upload_dir = self._upload_dir(key, upload_id)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise StagingError(f"invalid offset {offset!r} of part {number}")
        return PartWriter(upload_dir, validate_part_number(number), offset, validate_part_size(size), content_md5,
                          self._running(upload_id))

    def write_part(self, key: str, upload_id: str, number: int, stream: Any, size: int, *, offset: int = 0,
                   content_md5: str | None = None) -> str:
        """Store part ``number`` from ``stream`` (a binary file object or an iterable of bytes),
        exactly ``size`` bytes at ``offset``; returns its ETag. A refused part is not held."""
        with self.open_part(key, upload_id, number, size, offset=offset, content_md5=content_md5) as writer:
            chunks = iter(lambda: stream.read(1 << 20), b"") if hasattr(stream, "read") else stream
            for chunk in chunks:
                writer.write(chunk)
            return writer.commit()

    def list_parts(self, key: str, upload_id: str) -> dict[int, str]:
        try:
            upload_dir = self._upload_dir(key, upload_id)
        except UnknownUpload:
            return {}
        return {n: p.etag for n, p in sorted(read_journal(upload_dir).items())}

    def complete_multipart(self, key: str, upload_id: str, parts: Mapping[int, str]) -> str:
        """Make ``parts`` (they must tile the file from byte 0, in number order) the object at
        ``key``; returns its SHA-256 (the running digest, or the file read once more)."""
        wanted = completion_parts(parts)
        upload_dir = self._upload_dir(key, upload_id)
        seal = _open_seal(upload_dir)
        try:
            _lock_exclusive(seal, upload_dir.name)  # no part write lands in the file from here
            if not (upload_dir / "key").exists():
                raise UnknownUpload(f"upload {upload_id} was completed or aborted meanwhile")
            held = read_journal(upload_dir)
            chosen: list[HeldPart] = []
            offset = 0
            for number, etag in wanted:
                part = held.get(number)
                if part is None or part.etag != normalized_etag(etag):
                    raise PartsRefused(f"cannot complete {self.uri_for(key)}: part {number} with ETag {etag} is not held "
                                       f"(held: {', '.join(f'{n}={p.etag}' for n, p in sorted(held.items())) or 'none'})")
                if part.offset != offset:
                    raise PartsRefused(f"cannot complete {self.uri_for(key)}: part {number} starts at byte {part.offset}, "
                                       f"not {offset} where the parts before it end")
                chosen.append(part)
                offset += part.size
            data = upload_dir / "data"
            with open(data, "r+b") as fh:
                if os.fstat(fh.fileno()).st_size != offset:
                    fh.truncate(offset)  # bytes a part of another layout left past the end
                running = self._running(upload_id)
                sha = running.digest_of(chosen, upload_dir)
                from_running = sha is not None
                if sha is None:
                    log.info("upload %s: the running digest does not cover the parts (%s); reading the file again",
                             upload_id, running.broken or f"{running.hashed_to} of {offset} bytes hashed here")
                    sha = _sha256_of_fd(fh.fileno(), offset)
                os.fdatasync(fh.fileno())
            target = self._path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(data, target)
            fsync_path(target.parent)
            if from_running:
                _write_completion(self._uploads_dir(), upload_id, key, sha, chosen)
            shutil.rmtree(upload_dir, ignore_errors=True)
        finally:
            os.close(seal)
        if self._digests is not None:
            self._digests.drop(upload_id)
        log.info("completed upload %s of %s from %d parts (sha256 %s)", upload_id, self.uri_for(key), len(chosen), sha)
        return sha

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            upload_dir = self._upload_dir(key, upload_id)
        except UnknownUpload:
            return
        shutil.rmtree(upload_dir, ignore_errors=True)  # a writer still in flight finds its upload gone
        if self._digests is not None:
            self._digests.drop(upload_id)
        log.info("aborted upload %s of %s", upload_id, self.uri_for(key))

    def follow_upload(self, key: str, size: int, *, stall_seconds: float = 30.0) -> "UploadFollower":
        """Read the robot's upload of ``key`` (``size`` bytes, from its manifest) while its parts
        arrive: :class:`UploadFollower`. Raises :class:`UploadStalled` from ``readinto`` when no
        new part is whole for ``stall_seconds``, :class:`UploadAbandoned` when the upload is
        aborted or replaced."""
        return UploadFollower(self, key, size, stall_seconds=stall_seconds)

    def completion_of(self, upload_id: str) -> dict[str, Any] | None:
        """What completion recorded of ``upload_id`` for the uploads' followers
        (:meth:`UploadFollower.verified_sha256`): ``{key, sha256, parts: [[number, offset, size,
        etag], ...]}``, present only when the SHA-256 it checked came from the running digest of
        exactly those parts; None otherwise."""
        if not isinstance(upload_id, str) or not _UPLOAD_ID.fullmatch(upload_id):
            return None
        try:
            return json.loads((self._uploads_dir() / f"{upload_id}{_COMPLETED}").read_text())
        except (OSError, ValueError):
            return None

    def drop_completions(self, prefix: str) -> None:
        """Forget the completion records of uploads of keys under ``prefix`` (their objects go)."""
        uploads = self._uploads_dir()
        for record in uploads.glob(f"*{_COMPLETED}") if uploads.is_dir() else ():
            try:
                if json.loads(record.read_text()).get("key", "").startswith(prefix):
                    record.unlink(missing_ok=True)
            except (OSError, ValueError):
                record.unlink(missing_ok=True)

    def _open_uploads(self, prefix: str) -> list[tuple[str, str, float]]:
        """``(key, upload_id, started)`` of the open uploads whose key starts with ``prefix``."""
        uploads = self._uploads_dir()
        out = []
        for upload_dir in sorted(uploads.iterdir()) if uploads.is_dir() else ():
            try:
                held = (upload_dir / "key").read_text()
                started = (upload_dir / "key").stat().st_mtime
            except OSError:
                continue  # a scratch dir being created, or an upload completed meanwhile
            if held.startswith(prefix):
                out.append((held, upload_dir.name, started))
        return out


def _write_completion(uploads: Path, upload_id: str, key: str, sha256: str, parts: Sequence[HeldPart]) -> None:
    """The record :meth:`LocalStaging.completion_of` reads (written whole by a rename; not synced:
    a record lost in a crash only costs a follower its shortcut)."""
    tmp = uploads / f"{upload_id}{_COMPLETED}.tmp"
    tmp.write_text(json.dumps({"key": key, "sha256": sha256, "parts": [[p.number, p.offset, p.size, p.etag] for p in parts]}))
    os.replace(tmp, uploads / f"{upload_id}{_COMPLETED}")


def _lock_exclusive(fd: int, what: str, wait_s: float = SEAL_WAIT_SECONDS) -> None:
    """``flock`` ``fd`` exclusively, waiting at most ``wait_s`` for the writers holding it."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise ObjectStoreUnavailable(f"upload {what}: still being written after {wait_s:g}s; try again later") from None
            time.sleep(0.01)


def _sha256_of_fd(fd: int, size: int) -> str:
    sha = hashlib.sha256()
    buf = bytearray(_READ)
    view = memoryview(buf)
    done = 0
    while done < size:
        n = os.preadv(fd, [view[: min(len(buf), size - done)]], done)
        if n <= 0:
            break
        sha.update(view[:n])
        done += n
    return sha.hexdigest()


# --------------------------------------------------------------------------- reading an upload as it arrives


class UploadAbandoned(StagingError):
    """The upload being followed was aborted or replaced (the robot started another one) before
    it was completed: what was read of it is worth nothing."""


class UploadStalled(StagingError):
    """The upload being followed brought no new whole part for longer than its follower waits."""


class UploadFollower:
    """The file of a robot's open upload, read in file order while its parts arrive
    (:meth:`LocalStaging.follow_upload`): ``readinto(buffer)`` with ``RawIOBase`` semantics — it
    blocks until the next bytes are whole, returns what it could, and 0 only after ``size`` bytes.

    Only bytes of parts the journal holds are returned, and only once the same parts (same ETags)
    are still held after the bytes were read: a part's ``R`` line comes before its first rewritten
    byte, so such bytes are the part's committed ones; a part being rewritten is waited for. When
    the upload is completed, the staged object is this very file (completion renames it, same
    inode): the rest is read from it, no longer waiting for parts. Nothing here vouches for the
    bytes' content: the reader hashes what it read and compares it with the robot's manifest, as
    completion does with the whole file."""

    def __init__(self, staging: "LocalStaging", key: str, size: int, *, stall_seconds: float = 30.0,
                 poll_seconds: float = 0.02):
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise StagingError(f"invalid size {size!r} of {staging.uri_for(key)}")
        self.staging, self.key, self.size = staging, validate_key(key), size
        self.stall_seconds, self.poll_seconds = float(stall_seconds), float(poll_seconds)
        self.position = 0
        self.upload_id: str | None = None
        self._upload_dir: Path | None = None
        self._fd: int | None = None
        self._completed = False
        self._held: dict[int, HeldPart] = {}
        self._end_fingerprint: tuple[int, int, int, int] | None = None
        self._read_from: dict[int, HeldPart] = {}  # the parts whose bytes were read while they were held
        self._mixed = False  # bytes of one part read under two writes of it
        self._last_progress = time.monotonic()
        self.waited_seconds = 0.0  # time spent waiting for bytes to arrive (progress reports)

    # -- the RawIOBase side

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not len(view) or self.position >= self.size:
            return 0
        view = view[: self.size - self.position]
        while True:
            if self._fd is None:
                self.open()
                continue
            if self._completed:
                n = os.preadv(self._fd, [view], self.position)
                if n <= 0:
                    raise UploadAbandoned(f"{self.staging.uri_for(self.key)} ends at byte {self.position}, its manifest says {self.size}")
                return self._advanced(n)
            end = self._whole_end()
            if end > self.position:
                wanted = view[: end - self.position]
                n = os.preadv(self._fd, [wanted], self.position)
                if n > 0 and self._still_held(self.position, n):
                    for part in self._held.values():
                        if part.offset < self.position + n and part.offset + part.size > self.position:
                            self._mixed |= self._read_from.setdefault(part.number, part) != part
                    return self._advanced(n)
                continue  # a part is being rewritten: wait for it to be whole again
            if not (self._upload_dir / "key").exists():  # type: ignore[operator]
                self._adopt_completed()
                continue
            self._wait()

    def read_all(self) -> bytes:
        """The whole file (a small one: an Axon sidecar), as it arrives."""
        out = bytearray(self.size)
        view = memoryview(out)
        while self.position < self.size:
            self.readinto(view[self.position:])
        return bytes(out)

    def fingerprint(self) -> tuple[int, int, int, int] | None:
        """After the last byte was read and the upload completed: the staged object's
        :func:`~axon_dagster.storage.files.file_fingerprint` if it is the very file that was read,
        unmodified since the last byte was read; else None (nothing proven)."""
        if self._end_fingerprint is None or self._fd is None:
            return None
        try:
            st = os.stat(self.staging._path(self.key))
        except FileNotFoundError:
            return None
        now = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        return now if now == self._end_fingerprint else None

    def verified_sha256(self) -> str | None:
        """After the last byte was read and the upload completed: the SHA-256 completion verified,
        when it vouches for the very bytes read — completion hashed exactly its parts as they were
        written (the running digest) and every part read here is one of them, read under the same
        write (ETag; a part is rewritten only after its ``R`` line, which makes it not held), and
        bytes read after completion are the staged object's. None otherwise (hash them yourself)."""
        if self.position < self.size or self._mixed:
            return None
        if self.upload_id is None:  # followed after completion: every byte came from the staged object
            return None
        record = self.staging.completion_of(self.upload_id)
        if not record or record.get("key") != self.key:
            return None
        completed = {n: (offset, size, etag) for n, offset, size, etag in record.get("parts", [])}
        if any(completed.get(p.number) != (p.offset, p.size, p.etag) for p in self._read_from.values()):
            return None
        if sum(size for _o, size, _e in completed.values()) != self.size:
            return None
        return str(record.get("sha256") or "") or None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "UploadFollower":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- inside

    def _advanced(self, n: int) -> int:
        self.position += n
        self._last_progress = time.monotonic()
        if self.position >= self.size:
            st = os.fstat(self._fd)  # type: ignore[arg-type]
            self._end_fingerprint = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        return n

    def _wait(self) -> None:
        if time.monotonic() - self._last_progress > self.stall_seconds:
            where = f"upload {self.upload_id}" if self.upload_id else "no upload started"
            raise UploadStalled(f"{self.staging.uri_for(self.key)}: nothing new for {self.stall_seconds:g}s "
                                f"({where}, {self.position} of {self.size} bytes read)")
        started = time.monotonic()
        time.sleep(self.poll_seconds)
        self.waited_seconds += time.monotonic() - started

    def open(self) -> None:
        """Find what to read (``readinto`` does it first): the newest open upload of the key
        (waiting for one to start: UploadStalled after ``stall_seconds``), or the staged object
        itself when the upload was completed before it was followed (``upload_id`` stays None)."""
        while self._fd is None:
            self._open()

    def _open(self) -> None:
        uploads = sorted((started, upload_id) for key, upload_id, started in self.staging._open_uploads(self.key) if key == self.key)
        for _started, upload_id in reversed(uploads):
            upload_dir = self.staging._uploads_dir() / upload_id
            try:
                self._fd = os.open(upload_dir / "data", os.O_RDONLY)
            except FileNotFoundError:
                continue  # completed or aborted meanwhile
            self.upload_id, self._upload_dir = upload_id, upload_dir
            log.info("following upload %s of %s (%d bytes)", upload_id, self.staging.uri_for(self.key), self.size)
            return
        try:
            self._fd = os.open(self.staging._path(self.key), os.O_RDONLY)
            self._completed = True
            return
        except FileNotFoundError:
            self._wait()

    def _whole_end(self) -> int:
        """Where the parts held from byte 0 on, without a gap, end."""
        self._held = read_journal(self._upload_dir)  # type: ignore[arg-type]
        end = 0
        for part in sorted(self._held.values(), key=lambda p: p.offset):
            if part.offset > end:
                break
            end = max(end, part.offset + part.size)
        return end

    def _still_held(self, start: int, n: int) -> bool:
        before = [p for p in self._held.values() if p.offset < start + n and p.offset + p.size > start]
        now = read_journal(self._upload_dir)  # type: ignore[arg-type]
        return all(now.get(p.number) == p for p in before)

    def _adopt_completed(self) -> None:
        """The upload directory is gone: completed (the staged object is this file) or aborted."""
        st = os.fstat(self._fd)  # type: ignore[arg-type]
        try:
            target = os.stat(self.staging._path(self.key))
        except FileNotFoundError:
            target = None
        if target is None or (target.st_dev, target.st_ino) != (st.st_dev, st.st_ino):
            raise UploadAbandoned(f"upload {self.upload_id} of {self.staging.uri_for(self.key)} was aborted or replaced "
                                  f"after {self.position} of {self.size} bytes")
        self._completed = True
        log.info("upload %s of %s completed while followed (%d of %d bytes read)", self.upload_id,
                 self.staging.uri_for(self.key), self.position, self.size)
