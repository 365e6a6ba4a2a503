"""The local-directory backend (``file:///abs/path``): the embedded default.

Objects are files under the root; the store's own bookkeeping lives in reserved ``.axon-*``
directories: dataset manifests in ``.axon-meta/``, open staging uploads in
``.axon-uploads/<upload_id>/`` (see :mod:`.local_parts`). Robots reach this store only through the
control plane's ingest endpoint (:mod:`.signing`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

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
from .local_parts import LocalStaging
from .staging import deletable_prefix

log = logging.getLogger(__name__)



class LocalDirObjectStore(LocalStaging, ObjectStore):
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
        reading it; otherwise (no proof, a copy across devices, a file changed since) it is read
        and hashed. A copy that does not hold ``sha256`` is deleted (DigestMismatch)."""
        actual = self._copy_unsynced(src_key, dst_key, sha256, proof)
        _make_durable([self._path(dst_key)], self.root)
        return actual

    def copy_all_verified(self, copies: list[tuple[str, str, str, Sequence[int] | None]]) -> None:
        """Every copy linked and verified first, then made durable together: each file's data
        (fdatasync: nothing to write for a file already on disk, no journal commit for a link)
        and each directory once (one journal commit for all the new names)."""
        for src, dst, sha, proof in copies:
            self._copy_unsynced(src, dst, sha, proof)
        _make_durable([self._path(dst) for _, dst, _, _ in copies], self.root)

    def _copy_unsynced(self, src_key: str, dst_key: str, sha256: str, proof: Sequence[int] | None) -> str:
        if not is_sha256_hex(sha256):
            raise ValueError(f"invalid sha256 {sha256!r} for {src_key}: expected 64 lowercase hex digits")
        dst = self._link(src_key, dst_key)
        if proof is not None and file_fingerprint(dst) == tuple(proof):
            return sha256
        return self._keep_copy_if(src_key, dst_key, sha256, self.sha256_of(dst_key))

    def _link(self, src_key: str, dst_key: str) -> Path:
        """``dst_key`` becomes a hard link of ``src_key`` where the file system allows (every write
        here replaces a file, none writes into one, so the copies never change each other), else a
        copy; atomic either way, not yet durable."""
        src, dst = self._path(src_key), self._path(dst_key)
        if not src.is_file():
            raise ObjectNotFound(f"no object at {self.uri_for(src_key)}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f"{RESERVED_PREFIX}tmp-{uuid.uuid4().hex}-{dst.name}")
        try:
            try:
                os.link(src, tmp)
            except OSError:
                shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return dst

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

    # --- staging: robots' uploads through the control plane's ingest endpoint: LocalStaging (.local_parts)

    def sha256_of(self, key: str) -> str:
        path = self._path(key)
        try:
            return file_sha256(path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"no object at {self.uri_for(key)}") from None

    def copy_object(self, src_key: str, dst_key: str) -> None:
        """A hard link where the file system allows (every write here replaces a file, none writes
        into one, so the copies never change each other), else a copy; atomic and durable."""
        _make_durable([self._link(src_key, dst_key)], self.root)

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
        self.drop_completions(prefix)
        if keys:
            log.info("deleted %d objects under %s", len(keys), self.uri_for(prefix.rstrip("/")))
        return len(keys)


def _make_durable(paths: list[Path], root: Path) -> None:
    """Make the files at ``paths`` and their names durable: each file's data (fdatasync; a file
    already written back costs nothing), then each directory on the way from the files up to
    ``root`` once (new names and new directories; the first fsync commits them all)."""
    dirs: set[Path] = set()
    for path in paths:
        _fdatasync(path)
        parent = path.parent
        while parent not in dirs and (parent == root or root in parent.parents):
            dirs.add(parent)
            parent = parent.parent
    for directory in sorted(dirs, key=lambda d: len(d.parts), reverse=True):
        fsync_path(directory)


def _fdatasync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _write_back(paths: list[Path]) -> None:
    """Start writing ``paths``' data to disk without waiting (fdatasync each in a daemon thread):
    whoever needs them durable later syncs them again, by then at little cost."""
    def run() -> None:
        for path in paths:
            try:
                _fdatasync(path)
            except OSError:  # moved or deleted meanwhile: its later sync (or none) decides
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

