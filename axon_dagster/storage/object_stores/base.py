"""The object store interface and what every backend shares: errors, key rules, and the
dataset-level operations written once over per-object primitives.

A dataset is a directory, so it is stored as one object per file under ``<key>/``; its sidecar is a
separate object beside it (``domain.sidecar_key``). Every file is verified after upload against the
SHA-256 the sidecar lists, so a cloud copy is only ever reported with the digest it really has.

Keys are relative, ``/``-separated and checked before anything is written (:func:`validate_key`).
Backends: :mod:`.local` (a directory, the embedded default), :mod:`.s3` (S3 and S3-compatible
stores, GCS through its XML API), :mod:`.azure` (Azure Blob Storage); :func:`.object_store_from_url`
picks one. No backend SDK is imported here: robots import this package without boto3 or Azure's.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..digest import DigestMismatch, digest_of_files, file_digests, file_sha256
from ..files import relative_files
from .errors import ObjectNotFound, ObjectStoreError, ObjectStoreUnavailable  # noqa: F401  (re-exported)
from .keys import MAX_KEY_LENGTH, RESERVED_PREFIX, validate_key, validate_prefix  # noqa: F401  (re-exported)
from .staging import StagingUploads

log = logging.getLogger(__name__)

SHA256_METADATA = "sha256"
DIGEST_METADATA = "dataset-digest"
_CHUNK = 1 << 20
STORED_CHECKSUM_MISMATCH = "body-does-not-match-stored-checksum"


# --------------------------------------------------------------------------- manifests


def validated_manifest(files: Mapping[str, str]) -> dict[str, str]:
    """A dataset's ``{relative_path: sha256_hex}`` (the sidecar's ``files``), checked like keys."""
    if not isinstance(files, Mapping) or not files:
        raise ValueError("files must be a non-empty mapping of relative path -> sha256 hex")
    out: dict[str, str] = {}
    for rel, sha in files.items():
        validate_key(rel, "dataset file path")
        if not is_sha256_hex(sha):
            raise ValueError(f"invalid sha256 {sha!r} for dataset file {rel!r}: expected 64 lowercase hex digits")
        out[rel] = sha
    return out


def is_sha256_hex(sha: object) -> bool:
    return isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)


def describe_difference(expected: Mapping[str, str], actual: Mapping[str, str]) -> str:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(rel for rel in set(expected) & set(actual) if expected[rel] != actual[rel])
    parts = [f"{label} {names[:5]}{'...' if len(names) > 5 else ''}" for label, names in
             (("missing", missing), ("unexpected", extra), ("changed", changed)) if names]
    return "; ".join(parts)


# --------------------------------------------------------------------------- shared behaviour


@dataclass
class DatasetSession:
    """One dataset operation (a put, a verify), handed explicitly to a backend's primitives (no
    per-thread state): the dataset's key, the store's record of the dataset once read, what was
    learnt about its files on the way (S3: multipart checksums bound to their SHA-256), and
    counters of what was sent."""

    key: str
    stats: dict[str, int] = field(default_factory=dict)
    record: dict[str, Any] | None = None
    composites: dict[str, str] = field(default_factory=dict)

    def count(self, name: str, n: int) -> None:
        self.stats[name] = self.stats.get(name, 0) + n

    def relative(self, obj_key: str) -> str | None:
        """``obj_key``'s path inside the dataset, or None if it is not one of its files."""
        return obj_key[len(self.key) + 1:] if obj_key.startswith(f"{self.key}/") else None


@dataclass(frozen=True)
class StoredObject:
    sha256: str | None  # verified content hash, None when the backend cannot tell without re-reading
    metadata: Mapping[str, str]
    checksum: str | None = None  # the store's raw checksum (a composite "...-N" for multipart objects)
    size: int | None = None


class ObjectStore(StagingUploads):
    """The one interface of every backend (local dir, S3, Azure).

    Objects: :meth:`uri_for`, :meth:`put_bytes`, :meth:`put_file`, :meth:`get_bytes`,
    :meth:`exists`, :meth:`list_keys`. Datasets (a directory stored as one object per file):
    :meth:`put_dataset`, :meth:`verify_dataset`, :meth:`fetch_dataset`, written once here over a
    handful of per-object primitives each backend gives. Staging of robot uploads: the
    :class:`~.staging.StagingUploads` methods (``start_multipart`` ... ``delete_prefix``)."""

    def uri_for(self, key: str) -> str:
        raise NotImplementedError

    def put_bytes(self, key: str, data: bytes) -> str:
        raise NotImplementedError

    def get_bytes(self, key: str) -> bytes:
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def delete(self, key: str) -> bool:
        """Delete the object at ``key``; False if there was none."""
        raise NotImplementedError

    def copy_verified(self, src_key: str, dst_key: str, sha256: str, *, proof: Sequence[int] | None = None) -> str:
        """:meth:`copy_object`, then the copy's SHA-256 must be ``sha256``: returned, else the copy
        is deleted and :class:`DigestMismatch` says so. Backends that learn the copy's digest
        from the copy itself (S3) skip reading it back. ``proof``: the source file's
        :func:`~axon_dagster.storage.files.file_fingerprint` taken when ``sha256`` was computed
        from its bytes; the local store, whose copy is a hard link, then proves the copy is that
        very file, unmodified, without reading it (other backends ignore it)."""
        if not is_sha256_hex(sha256):
            raise ValueError(f"invalid sha256 {sha256!r} for {src_key}: expected 64 lowercase hex digits")
        self.copy_object(src_key, dst_key)
        return self._keep_copy_if(src_key, dst_key, sha256, self.sha256_of(dst_key))

    def _keep_copy_if(self, src_key: str, dst_key: str, sha256: str, actual: str) -> str:
        if actual == sha256:
            return actual
        try:
            self.delete(dst_key)
            outcome = "the copy was deleted"
        except ObjectStoreError as exc:
            outcome = f"deleting the copy failed too: {exc}"
        raise DigestMismatch(f"{self.uri_for(dst_key)} copied from {self.uri_for(src_key)} ({outcome})", sha256, actual)

    def list_keys(self, prefix: str = "") -> list[str]:
        raise NotImplementedError

    STAT_NAMES: tuple[str, ...] = ("files_sent", "files_already_stored", "bytes_sent")

    def _open_session(self, key: str) -> DatasetSession:
        """A new :class:`DatasetSession` for the dataset at ``key``."""
        return DatasetSession(key, dict.fromkeys(self.STAT_NAMES, 0))

    def _write_verified(self, local_path: Path, key: str, sha256: str, metadata: Mapping[str, str],
                        session: DatasetSession | None = None) -> str:
        """Store ``local_path`` at ``key`` and return the SHA-256 of what the store now holds."""
        raise NotImplementedError

    def _stored_sha256(self, key: str, session: DatasetSession | None = None) -> str | None:
        raise NotImplementedError

    def _holds(self, key: str, sha256: str, dataset_digest: str, session: DatasetSession) -> bool:
        raise NotImplementedError

    def _download(self, key: str, dest: Path) -> Mapping[str, str]:
        """Write the object to ``dest``; return its metadata."""
        raise NotImplementedError

    def _recorded_manifest(self, key: str) -> dict[str, str] | None:
        """The file list the store recorded with the dataset, if it keeps one."""
        return None

    def _record_dataset(self, key: str, files: Mapping[str, str], dataset_digest: str, session: DatasetSession) -> None:
        """Hook run once every file of a dataset is stored and verified."""

    # --- objects and datasets where the store keeps them (the data flow's staging -> lake)

    def local_path(self, key: str) -> Path | None:
        """Where the object (or dataset directory) at ``key`` lies on this machine's file system, to
        be read in place, when the store is a local directory; None for a store across a link."""
        return None

    follows_uploads = False  # whether follow_upload can read an upload before it completes

    def follow_upload(self, key: str, size: int, *, stall_seconds: float = 30.0) -> Any:
        """A reader of the robot's upload of ``key`` *while it arrives* (``readinto``, in file
        order, blocking until the next bytes are whole): see
        :class:`~.local_parts.UploadFollower`. None for a store whose multipart uploads cannot be
        read before completion (S3, Azure): the data flow then waits for the staged object."""
        return None

    def scratch_dir(self, name: str) -> Path | None:
        """A private directory on the store's own file system for work in progress (``name``, a
        key-like path, names it; never listed, never an object), created when missing, so that
        what is written there enters the store by a rename (:meth:`adopt_dataset`). None for a
        store across a link: work there happens on the caller's disk."""
        return None

    def download(self, key: str, dest: str | os.PathLike) -> Path:
        """Stream the object at ``key`` to ``dest`` (through a temporary name: ``dest`` appears
        complete or not at all). Unverified: the caller checks what it needs."""
        key = validate_key(key)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f"{RESERVED_PREFIX}download-{uuid.uuid4().hex}-{dest.name}")
        try:
            self._download(key, tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def adopt_dataset(self, local_dir: str | os.PathLike, key: str, files: Mapping[str, str]) -> str:
        """Take the dataset directory ``local_dir``, whose files the caller has just hashed into
        ``files`` (an ingest hashes each file as it writes it), into the store at ``key``. A store
        across a link uploads it (:meth:`put_dataset`: each file verified after upload) and
        ``local_dir`` stays; the local store renames it into place when it lies on the store's file
        system (:meth:`scratch_dir`): the very files that were hashed, nothing copied or re-read,
        ``local_dir`` gone. Returns the dataset's URI."""
        return self.put_dataset(local_dir, key, files)

    def copy_dataset(self, src_key: str, dst_key: str, files: Mapping[str, str], *,
                     proofs: Mapping[str, Sequence[int]] | None = None) -> str:
        """Copy the dataset stored at ``src_key`` to ``dst_key`` file by file, server-side
        (:meth:`copy_verified`: S3 checks each copy by the SHA-256 it computes while copying, the
        local store hard-links and proves each link by ``proofs`` — ``{source key: fingerprint}``
        — or re-reads it), each against ``files`` (the sidecar's); then ``dst_key`` must hold
        exactly those files. Returns the dataset digest; DigestMismatch (the offending copy
        deleted) or ObjectNotFound (a source missing) otherwise."""
        src_key, dst_key = validate_key(src_key, "dataset key"), validate_key(dst_key, "dataset key")
        manifest = validated_manifest(files)
        proofs = proofs or {}
        stored = {k[len(src_key) + 1:] for k in self.list_keys(f"{src_key}/")}
        if missing := sorted(set(manifest) - stored):
            raise ObjectNotFound(f"no {missing[0]} in the dataset at {self.uri_for(src_key)} ({len(missing)} missing); nothing copied")
        self.copy_all_verified([(f"{src_key}/{rel}", f"{dst_key}/{rel}", sha, proofs.get(f"{src_key}/{rel}"))
                                   for rel, sha in sorted(manifest.items())])
        held = {k[len(dst_key) + 1:] for k in self.list_keys(f"{dst_key}/")}
        digest = digest_of_files(manifest)
        if held != set(manifest):
            raise DigestMismatch(f"{self.uri_for(dst_key)} after copy ({describe_difference(manifest, {rel: manifest.get(rel, '') for rel in held})})",
                                 digest, "its files differ")
        self._record_dataset(dst_key, manifest, digest, self._open_session(dst_key))
        log.info("copied dataset %s to %s: %d files, digest %s", self.uri_for(src_key), self.uri_for(dst_key), len(manifest), digest)
        return digest

    def copy_all_verified(self, copies: list[tuple[str, str, str, Sequence[int] | None]]) -> None:
        """Each ``(src_key, dst_key, sha256, proof)`` by :meth:`copy_verified` (the local store
        links and verifies them all, then makes them durable together)."""
        for src, dst, sha, proof in copies:
            self.copy_verified(src, dst, sha, proof=proof)

    # --- public

    def put_file(self, local_path: str | os.PathLike, key: str, *, sha256: str | None = None) -> str:
        """Store one file at ``key``, verified. ``sha256``: its SHA-256 when the caller has just
        hashed it (a large file is then not read twice); the stored copy is checked against it."""
        key = validate_key(key)
        local_path = Path(local_path)
        if not local_path.is_file():
            raise FileNotFoundError(f"file to upload not found: {local_path}")
        if sha256 is not None and not is_sha256_hex(sha256):
            raise ValueError(f"invalid sha256 {sha256!r} for {local_path}: expected 64 lowercase hex digits")
        sha = sha256 or file_sha256(local_path)
        stored = self._write_verified(local_path, key, sha, {SHA256_METADATA: sha})
        if stored != sha:
            raise DigestMismatch(f"{self.uri_for(key)} after upload", sha, stored or "missing")
        log.info("stored %s (%s)", self.uri_for(key), sha)
        return self.uri_for(key)

    def put_dataset(
        self, local_dir: str | os.PathLike, key: str, files: Mapping[str, str], *, priority: int = 0, created_at: float | None = None
    ) -> str:
        """Upload every file of the dataset directory ``local_dir`` under ``key/``; ``files`` is its
        manifest (the sidecar's ``files``). Each file is verified after upload; files already stored
        with the same SHA-256 (and dataset digest) are not sent again. ``priority`` (the order's) and
        ``created_at`` (epoch seconds) order uploads when the link is scarce (S3 backend)."""
        key = validate_key(key, "dataset key")
        return self._put_dataset(local_dir, key, files, self._open_session(key))

    def _put_dataset(self, local_dir: str | os.PathLike, key: str, files: Mapping[str, str], session: DatasetSession) -> str:
        manifest = validated_manifest(files)
        local_dir = Path(local_dir)
        if not local_dir.is_dir():
            raise FileNotFoundError(f"dataset directory not found: {local_dir}")
        present = relative_files(local_dir)
        if present != set(manifest):
            raise ValueError(
                f"dataset directory {local_dir} does not match its manifest: "
                f"{describe_difference(manifest, {rel: manifest.get(rel, '') for rel in present})}"
            )
        digest = digest_of_files(manifest)
        sent = 0
        for rel, sha in sorted(manifest.items()):
            obj_key = f"{key}/{rel}"
            if self._holds(obj_key, sha, digest, session):
                continue
            stored = self._write_verified(local_dir / rel, obj_key, sha, {SHA256_METADATA: sha, DIGEST_METADATA: digest}, session)
            if stored != sha:
                raise DigestMismatch(f"{self.uri_for(obj_key)} after upload", sha, stored or "missing")
            sent += 1
        self._record_dataset(key, manifest, digest, session)
        if sent == 0:
            log.info("dataset %s already stored with digest %s; nothing re-sent", self.uri_for(key), digest)
        else:
            log.info("stored dataset %s: %d of %d files sent, digest %s", self.uri_for(key), sent, len(manifest), digest)
        return self.uri_for(key)

    def verify_dataset(self, key: str, files: Mapping[str, str]) -> str:
        """Re-check the stored dataset against its manifest; return its digest or raise DigestMismatch
        (missing, unexpected or changed files)."""
        key = validate_key(key, "dataset key")
        manifest = validated_manifest(files)
        session = self._open_session(key)
        stored: dict[str, str] = {}
        for obj_key in self.list_keys(f"{key}/"):
            sha = self._stored_sha256(obj_key, session)
            stored[obj_key[len(key) + 1:]] = sha or "unreadable"
        expected, actual = digest_of_files(manifest), digest_of_files(stored)
        if actual != expected:
            raise DigestMismatch(f"{self.uri_for(key)} ({describe_difference(manifest, stored)})", expected, actual)
        log.info("verified %s: %d files, digest %s", self.uri_for(key), len(stored), actual)
        return actual

    def fetch_dataset(self, key: str, dest_dir: str | os.PathLike, files: Mapping[str, str] | None = None) -> Path:
        """Download the dataset under ``key/`` to ``dest_dir`` (which must not exist), verified against
        ``files`` or, when not given, against what the store recorded with it. Atomic: the directory
        appears complete or not at all."""
        key = validate_key(key, "dataset key")
        expected = validated_manifest(files) if files is not None else None
        dest = Path(dest_dir)
        if dest.exists():
            raise FileExistsError(f"fetch destination already exists: {dest}")
        keys = self.list_keys(f"{key}/")
        if not keys:
            raise ObjectNotFound(f"no dataset stored at {self.uri_for(key)}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        scratch = dest.parent / f"{RESERVED_PREFIX}fetch-{uuid.uuid4().hex}-{dest.name}"
        try:
            digests_claimed: set[str] = set()
            for obj_key in keys:
                rel = validate_key(obj_key[len(key) + 1:], "dataset file path")
                target = scratch / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                metadata = self._download(obj_key, target)
                if DIGEST_METADATA in metadata:
                    digests_claimed.add(metadata[DIGEST_METADATA])
            actual = file_digests(scratch)
            if expected is None:
                expected = self._recorded_manifest(key)
            if expected is not None:
                if actual != expected:
                    raise DigestMismatch(
                        f"fetched {self.uri_for(key)} ({describe_difference(expected, actual)})",
                        digest_of_files(expected), digest_of_files(actual),
                    )
            elif len(digests_claimed) != 1 or digest_of_files(actual) not in digests_claimed:
                raise DigestMismatch(f"fetched {self.uri_for(key)}", ",".join(sorted(digests_claimed)) or "unrecorded", digest_of_files(actual))
            os.rename(scratch, dest)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        log.info("fetched %s to %s (%d files)", self.uri_for(key), dest, len(keys))
        return dest


