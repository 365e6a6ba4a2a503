"""The local-directory backend (``file:///abs/path``): the embedded default.

Objects are files under the root; the store's own bookkeeping lives in reserved ``.axon-*``
directories: dataset manifests in ``.axon-meta/``, open staging uploads in
``.axon-uploads/<upload_id>/`` (a ``key`` file and one ``<number>-<md5>.part`` file per part).
Robots reach this store only through the control plane's ingest endpoint (:mod:`.signing`).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ...domain.layout import parse_staging_key
from ..digest import DigestMismatch, digest_of_files, file_sha256
from ..files import file_fingerprint, fsync_path, relative_files
from .base import (
    RESERVED_PREFIX,
    DatasetSession,
    ObjectNotFound,
    ObjectStore,
    describe_difference,
    is_sha256_hex,
    validate_key,
    validated_manifest,
    validate_prefix,
)
from .local_parts import PartWriter
from .signing import sign_part_url
from .staging import (
    PartSpec,
    PartsRefused,
    PartTarget,
    StagingError,
    UnknownUpload,
    completion_parts,
    deletable_prefix,
    etag_md5,
    part_specs,
    quoted_etag,
    validate_expiry,
    validate_part_number,
    validate_part_size,
)

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_PART_FILE = re.compile(r"(\d{5})-([0-9a-f]{32})\.part")


class LocalDirObjectStore(ObjectStore):
    """Objects are files under ``root``. Writes are atomic (temp file + rename in the same directory);
    a dataset's manifest is kept under ``root/.axon-meta/`` (the local stand-in for object metadata)."""

    def __init__(self, root: str | os.PathLike, *, public_api_url: str | None = None, signing_key: bytes | None = None):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._meta = self.root / f"{RESERVED_PREFIX}meta"
        self._ingest: tuple[str, bytes] | None = None
        if public_api_url is not None or signing_key is not None:
            self.with_ingest(public_api_url or "", signing_key or b"")

    def __repr__(self) -> str:
        return f"LocalDirObjectStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def uri_for(self, key: str) -> str:
        # Like Path.as_uri(), but keeps '+' (legal in a URI path) so cloud paths stay readable.
        return "file://" + quote(str(self._path(key)), safe="/+=,@:")

    def put_bytes(self, key: str, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        with _replacing(self._path(key)) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if (stored := file_sha256(tmp)) != sha:
                raise DigestMismatch(f"{self.uri_for(key)} after write", sha, stored)
        return self.uri_for(key)

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def scratch_dir(self, name: str) -> Path:
        path = self.root / f"{RESERVED_PREFIX}work" / validate_key(name, "scratch name")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def adopt_dataset(self, local_dir: str | os.PathLike, key: str, files: Mapping[str, str]) -> str:
        """A rename of ``local_dir`` to the dataset's directory when both lie on the store's file
        system (whatever was at ``key`` is replaced whole); across devices an upload like any
        other (:meth:`put_dataset`). The directory must hold exactly the files of ``files``.
        The renamed files are written to disk in the background (fsync in a daemon thread, so that
        the work that follows overlaps it); every copy of them (:meth:`copy_object`) is fsynced
        before it counts, so a published copy is durable either way."""
        key = validate_key(key, "dataset key")
        manifest = validated_manifest(files)
        local_dir, dst = Path(local_dir), self._path(key)
        if not local_dir.is_dir():
            raise FileNotFoundError(f"dataset directory not found: {local_dir}")
        present = relative_files(local_dir)
        if present != set(manifest):
            raise ValueError(f"dataset directory {local_dir} does not match its manifest: "
                             f"{describe_difference(manifest, {rel: manifest.get(rel, '') for rel in present})}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        old = dst.with_name(f"{RESERVED_PREFIX}old-{uuid.uuid4().hex}-{dst.name}")
        try:
            if dst.exists():
                os.rename(dst, old)
            try:
                os.rename(local_dir, dst)
            except OSError as exc:
                if old.exists():
                    os.rename(old, dst)
                if exc.errno != errno.EXDEV:
                    raise
                return self.put_dataset(local_dir, key, manifest)  # another file system: copied, verified
            fsync_path(dst.parent)
        finally:
            shutil.rmtree(old, ignore_errors=True)
        digest = digest_of_files(manifest)
        self._record_dataset(key, manifest, digest, self._open_session(key))
        _write_back([dst / rel for rel in manifest])
        log.info("took dataset %s into %s (renamed; %d files, digest %s)", local_dir, self.uri_for(key), len(manifest), digest)
        return self.uri_for(key)

    def copy_verified(self, src_key: str, dst_key: str, sha256: str, *, proof: Sequence[int] | None = None) -> str:
        """A hard link (:meth:`copy_object`). With ``proof``: when the link's fingerprint is the
        proof (the same inode on the same device, same size and modification time as when
        ``sha256`` was computed from it) the copy IS the hashed file, unmodified: accepted without
        reading it; otherwise (a copy across devices, a file changed since) it is re-read."""
        if proof is None:
            return super().copy_verified(src_key, dst_key, sha256)
        if not is_sha256_hex(sha256):
            raise ValueError(f"invalid sha256 {sha256!r} for {src_key}: expected 64 lowercase hex digits")
        self.copy_object(src_key, dst_key)
        if file_fingerprint(self._path(dst_key)) == tuple(proof):
            return sha256
        return self._keep_copy_if(src_key, dst_key, sha256, self.sha256_of(dst_key))

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(f"no object at {self.uri_for(key)}")
        return path.read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError):
            return False
        fsync_path(path.parent)
        return True

    def list_keys(self, prefix: str = "") -> list[str]:
        prefix = validate_prefix(prefix)
        # Walk only the deepest directory the prefix names, then filter by the string prefix.
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not base.is_dir():
            return []
        out = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(RESERVED_PREFIX)]
            for name in filenames:
                if name.startswith(RESERVED_PREFIX):
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    out.append(key)
        return sorted(out)

    def _write_verified(self, local_path: Path, key: str, sha256: str, metadata: Mapping[str, str],
                        session: DatasetSession | None = None) -> str:
        with _replacing(self._path(key)) as tmp:
            shutil.copyfile(local_path, tmp)
            fsync_path(tmp)
            stored = file_sha256(tmp)  # re-read what landed, before it becomes visible
            if stored != sha256:
                raise DigestMismatch(f"{self.uri_for(key)} after copy from {local_path}", sha256, stored)
        return stored

    def _stored_sha256(self, key: str, session: DatasetSession | None = None) -> str | None:
        path = self._path(key)
        return file_sha256(path) if path.is_file() else None

    def _holds(self, key: str, sha256: str, dataset_digest: str, session: DatasetSession) -> bool:
        return self._stored_sha256(key) == sha256

    def _download(self, key: str, dest: Path) -> Mapping[str, str]:
        shutil.copyfile(self._path(key), dest)
        return {}

    def _manifest_path(self, key: str) -> Path:
        return self._meta / f"{key}.json"

    def _recorded_manifest(self, key: str) -> dict[str, str] | None:
        path = self._manifest_path(key)
        return json.loads(path.read_text())["files"] if path.is_file() else None

    def _record_dataset(self, key: str, files: Mapping[str, str], dataset_digest: str, session: DatasetSession) -> None:
        path = self._manifest_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps({"dataset_digest": dataset_digest, "files": dict(files)}, sort_keys=True))
        os.replace(tmp, path)

    # --- staging: robots' uploads through the control plane's ingest endpoint (see .signing)

    def with_ingest(self, public_api_url: str, signing_key: bytes) -> LocalDirObjectStore:
        """Let :meth:`part_targets` sign URLs of the control plane's ingest endpoint at
        ``public_api_url`` with ``signing_key`` (:func:`.signing.load_signing_key`). Returns self."""
        sign_part_url(signing_key, base_url=public_api_url, task_id="t", name="n", upload_id="u", number=1, size=0, expires=0)
        self._ingest = (public_api_url, signing_key)
        return self

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

    @contextmanager
    def _locked(self, upload_dir: Path) -> Iterator[None]:
        try:
            fd = os.open(upload_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            raise UnknownUpload(f"upload {upload_dir.name} was completed or aborted meanwhile") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not upload_dir.is_dir():  # completed or aborted while we waited for the lock
                raise UnknownUpload(f"upload {upload_dir.name} was completed or aborted meanwhile")
            yield
        finally:
            os.close(fd)

    def start_multipart(self, key: str) -> str:
        validate_key(key)
        upload_id = uuid.uuid4().hex
        uploads = self._uploads_dir()
        uploads.mkdir(parents=True, exist_ok=True)
        scratch = uploads / f"{upload_id}.tmp"
        scratch.mkdir()
        (scratch / "key").write_text(key)
        os.rename(scratch, uploads / upload_id)  # the upload appears complete or not at all
        log.info("started upload %s of %s", upload_id, self.uri_for(key))
        return upload_id

    def part_targets(self, key: str, upload_id: str, parts: Iterable[PartSpec | tuple[int, int, int]], expires_s: int) -> list[PartTarget]:
        if self._ingest is None:
            raise StagingError("the local store signs part URLs of the control plane's ingest endpoint: call with_ingest(public_api_url, signing_key) first")
        _robot_id, task_id, name = parse_staging_key(key)
        self._upload_dir(key, upload_id)
        expires = int(time.time()) + validate_expiry(expires_s)
        base_url, signing_key = self._ingest
        return [
            PartTarget(p.number, sign_part_url(signing_key, base_url=base_url, task_id=task_id, name=name, upload_id=upload_id,
                                               number=p.number, size=p.size, expires=expires))
            for p in part_specs(parts)
        ]

    def open_part(self, key: str, upload_id: str, number: int, size: int, *, content_md5: str | None = None) -> PartWriter:
        """A writer for part ``number`` of exactly ``size`` bytes: ``write(chunk)`` as the body
        arrives (more than ``size`` bytes -> :class:`PartTooLarge`), then ``commit()`` -> the
        part's ETag. ``content_md5``: the request's ``Content-MD5`` header (base64), checked."""
        return PartWriter(self._upload_dir(key, upload_id), validate_part_number(number), validate_part_size(size), content_md5, self._locked)

    def write_part(self, key: str, upload_id: str, number: int, stream: Any, size: int, *, content_md5: str | None = None) -> str:
        """Store part ``number`` from ``stream`` (a binary file object or an iterable of bytes),
        exactly ``size`` bytes; returns its ETag (``"<md5 hex>"``). Written to a temp file, fsynced,
        then renamed: a part is there complete or not at all; a refused part leaves nothing."""
        with self.open_part(key, upload_id, number, size, content_md5=content_md5) as writer:
            chunks = iter(lambda: stream.read(_CHUNK), b"") if hasattr(stream, "read") else stream
            for chunk in chunks:
                writer.write(chunk)
            return writer.commit()

    def _held_parts(self, upload_dir: Path) -> dict[int, tuple[str, Path]]:
        held: dict[int, tuple[int, str, Path]] = {}
        for path in upload_dir.iterdir():
            if (m := _PART_FILE.fullmatch(path.name)) is None:
                continue
            number, md5 = int(m.group(1)), m.group(2)
            try:
                mtime = path.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            if number not in held or mtime >= held[number][0]:
                held[number] = (mtime, md5, path)
        return {n: (quoted_etag(md5), path) for n, (_, md5, path) in sorted(held.items())}

    def list_parts(self, key: str, upload_id: str) -> dict[int, str]:
        try:
            upload_dir = self._upload_dir(key, upload_id)
        except UnknownUpload:
            return {}
        return {n: etag for n, (etag, _) in self._held_parts(upload_dir).items()}

    def complete_multipart(self, key: str, upload_id: str, parts: Mapping[int, str]) -> None:
        wanted = completion_parts(parts)
        upload_dir = self._upload_dir(key, upload_id)
        with self._locked(upload_dir):
            held = {n: path for n, (etag, path) in self._held_parts(upload_dir).items()}
            sources = []
            for number, etag in wanted:
                md5 = etag_md5(etag)
                path = upload_dir / f"{number:05d}-{md5}.part" if md5 else None
                if path is None or not path.is_file():
                    raise PartsRefused(f"cannot complete {self.uri_for(key)}: part {number} with ETag {etag} is not held "
                                       f"(held: {', '.join(f'{n}={quoted_etag(p.name[6:38])}' for n, p in held.items()) or 'none'})")
                sources.append(path)
            with _replacing(self._path(key)) as tmp, open(tmp, "wb") as out:
                for src in sources:
                    with open(src, "rb") as fh:
                        _append(fh, out)
                out.flush()
                os.fsync(out.fileno())
            shutil.rmtree(upload_dir, ignore_errors=True)
        log.info("completed upload %s of %s from %d parts", upload_id, self.uri_for(key), len(sources))

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            upload_dir = self._upload_dir(key, upload_id)
            with self._locked(upload_dir):
                shutil.rmtree(upload_dir, ignore_errors=True)
        except UnknownUpload:
            return
        log.info("aborted upload %s of %s", upload_id, self.uri_for(key))

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

    def sha256_of(self, key: str) -> str:
        path = self._path(key)
        try:
            return file_sha256(path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"no object at {self.uri_for(key)}") from None

    def copy_object(self, src_key: str, dst_key: str) -> None:
        """A hard link where the file system allows (every write here replaces a file, none writes
        into one, so the copies never change each other), else a copy; atomic either way."""
        src, dst = self._path(src_key), self._path(dst_key)
        if not src.is_file():
            raise ObjectNotFound(f"no object at {self.uri_for(src_key)}")
        with _replacing(dst) as tmp:
            try:
                os.link(src, tmp)
            except OSError:
                shutil.copyfile(src, tmp)
            fsync_path(tmp)  # a copy is durable like every write here (a linked file adopted just now may not be yet)

    def delete_prefix(self, prefix: str) -> int:
        prefix = deletable_prefix(prefix)
        keys = self.list_keys(prefix)
        for key in keys:
            self._path(key).unlink(missing_ok=True)
        for key in keys:  # drop directories left empty, up to the root
            parent = self._path(key).parent
            while parent != self.root:
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent
        for held, upload_id, _ in self._open_uploads(prefix):
            self.abort_multipart(held, upload_id)
        if keys:
            log.info("deleted %d objects under %s", len(keys), self.uri_for(prefix.rstrip("/")))
        return len(keys)


def _write_back(paths: list[Path]) -> None:
    """Start writing ``paths`` to disk without waiting (fsync each in a daemon thread): whoever
    needs them durable later fsyncs them again, by then at little cost."""
    def run() -> None:
        for path in paths:
            try:
                fsync_path(path)
            except OSError:  # moved or deleted meanwhile: its later fsync (or none) decides
                pass

    threading.Thread(target=run, name="write-back", daemon=True).start()


@contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """Yield a temp path beside ``path`` to write; on success it replaces ``path`` (atomic, the
    directory fsynced), on an error it is removed and ``path`` is untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{RESERVED_PREFIX}tmp-{uuid.uuid4().hex}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def _append(src: Any, dst: Any) -> None:
    """Append the file ``src`` to ``dst``: in the kernel (copy_file_range) where it can, else
    through a buffer."""
    size = os.fstat(src.fileno()).st_size
    if hasattr(os, "copy_file_range"):
        dst.flush()
        done = 0
        try:
            while done < size:
                n = os.copy_file_range(src.fileno(), dst.fileno(), size - done)
                if n == 0:
                    break
                done += n
        except OSError:  # not supported between these file systems: fall back below
            pass
        if done == size:
            dst.seek(0, os.SEEK_END)
            return
        src.seek(done)
        dst.seek(0, os.SEEK_END)
    shutil.copyfileobj(src, dst, _CHUNK)
