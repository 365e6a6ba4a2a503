"""The "cloud" object store: a local directory (embedded default), S3 (any S3-compatible endpoint,
GCS through its XML API) or Azure Blob Storage (``azure_store.py``, on ``azure-storage-blob``).

A dataset is a directory, so it is stored as one object per file under ``<key>/``; its sidecar is a
separate object beside it (``domain.sidecar_key``). Every file is verified after upload against the
SHA-256 the sidecar lists, so a cloud copy is only ever reported with the digest it really has.

Keys are relative, ``/``-separated and checked before anything is written (:func:`validate_key`).
boto3 (azure-storage-blob) is imported only when an S3 (Azure) store is built: robots import this
module without them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import quote, unquote, urlsplit

from .digest import DigestMismatch, digest_of_files, file_digests, file_sha256

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 1024  # S3's limit, in UTF-8 bytes
RESERVED_PREFIX = ".axon-"  # segments the local backend uses for its own bookkeeping
SHA256_METADATA = "sha256"
DIGEST_METADATA = "dataset-digest"
_CHUNK = 1 << 20
STORED_CHECKSUM_MISMATCH = "body-does-not-match-stored-checksum"


class ObjectStoreError(Exception):
    """The store refused or failed a request."""


class ObjectNotFound(ObjectStoreError, KeyError):
    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


class ObjectStoreUnavailable(ObjectStoreError):
    """The store could not be reached (connection refused, timeout): retry later."""


@runtime_checkable
class ObjectStore(Protocol):
    def uri_for(self, key: str) -> str: ...

    def put_bytes(self, key: str, data: bytes) -> str: ...

    def put_file(self, local_path: str | os.PathLike, key: str, *, sha256: str | None = None) -> str: ...

    def get_bytes(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def list_keys(self, prefix: str = "") -> list[str]: ...

    def put_dataset(
        self, local_dir: str | os.PathLike, key: str, files: Mapping[str, str], *, priority: int = 0, created_at: float | None = None
    ) -> str: ...

    def verify_dataset(self, key: str, files: Mapping[str, str]) -> str: ...

    def fetch_dataset(
        self, key: str, dest_dir: str | os.PathLike, files: Mapping[str, str] | None = None
    ) -> Path: ...


# --------------------------------------------------------------------------- key rules


def validate_key(key: object, kind: str = "object key") -> str:
    """Return ``key`` if it is a safe relative object key, else raise ValueError.

    >>> validate_key("warehouse/aisle_1/nav+pick_20261126T093000.000000Z.lance")
    'warehouse/aisle_1/nav+pick_20261126T093000.000000Z.lance'
    """
    if not isinstance(key, str):
        raise ValueError(f"invalid {kind} {key!r}: must be a string")
    if not key:
        raise ValueError(f"invalid {kind} {key!r}: must not be empty")
    if len(key.encode()) > MAX_KEY_LENGTH:
        raise ValueError(f"invalid {kind} {key[:40]!r}...: longer than {MAX_KEY_LENGTH} bytes")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise ValueError(f"invalid {kind} {key!r}: contains control characters")
    if "\\" in key:
        raise ValueError(f"invalid {kind} {key!r}: contains a backslash")
    if key.startswith("/"):
        raise ValueError(f"invalid {kind} {key!r}: must be relative (no leading '/')")
    for segment in key.split("/"):
        if segment == "":
            raise ValueError(f"invalid {kind} {key!r}: empty path segment ('//' or trailing '/')")
        if segment in (".", ".."):
            raise ValueError(f"invalid {kind} {key!r}: '{segment}' segments are not allowed")
        if segment.startswith(RESERVED_PREFIX):
            raise ValueError(f"invalid {kind} {key!r}: segments starting with {RESERVED_PREFIX!r} are reserved")
    return key


def validate_prefix(prefix: object) -> str:
    """A listing prefix: empty, or a key optionally ending in '/'."""
    if prefix == "":
        return ""
    if isinstance(prefix, str) and prefix.endswith("/"):
        return validate_key(prefix[:-1], "key prefix") + "/"
    return validate_key(prefix, "key prefix")


def _validated_manifest(files: Mapping[str, str]) -> dict[str, str]:
    """A dataset's ``{relative_path: sha256_hex}`` (the sidecar's ``files``), checked like keys."""
    if not isinstance(files, Mapping) or not files:
        raise ValueError("files must be a non-empty mapping of relative path -> sha256 hex")
    out: dict[str, str] = {}
    for rel, sha in files.items():
        validate_key(rel, "dataset file path")
        if not _is_sha256_hex(sha):
            raise ValueError(f"invalid sha256 {sha!r} for dataset file {rel!r}: expected 64 lowercase hex digits")
        out[rel] = sha
    return out


def _is_sha256_hex(sha: object) -> bool:
    return isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)


def _describe_difference(expected: Mapping[str, str], actual: Mapping[str, str]) -> str:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(rel for rel in set(expected) & set(actual) if expected[rel] != actual[rel])
    parts = [f"{label} {names[:5]}{'...' if len(names) > 5 else ''}" for label, names in
             (("missing", missing), ("unexpected", extra), ("changed", changed)) if names]
    return "; ".join(parts)


# --------------------------------------------------------------------------- shared behaviour


@dataclass(frozen=True)
class _StoredObject:
    sha256: str | None  # verified content hash, None when the backend cannot tell without re-reading
    metadata: Mapping[str, str]
    checksum: str | None = None  # the store's raw checksum (a composite "...-N" for multipart objects)
    size: int | None = None


class _DatasetStore:
    """Dataset-level operations written once over a handful of per-object primitives."""

    def uri_for(self, key: str) -> str:
        raise NotImplementedError

    def list_keys(self, prefix: str = "") -> list[str]:
        raise NotImplementedError

    def _write_verified(self, local_path: Path, key: str, sha256: str, metadata: Mapping[str, str]) -> str:
        """Store ``local_path`` at ``key`` and return the SHA-256 of what the store now holds."""
        raise NotImplementedError

    def _stored_sha256(self, key: str) -> str | None:
        raise NotImplementedError

    def _holds(self, key: str, sha256: str, dataset_digest: str) -> bool:
        raise NotImplementedError

    def _download(self, key: str, dest: Path) -> Mapping[str, str]:
        """Write the object to ``dest``; return its metadata."""
        raise NotImplementedError

    def _recorded_manifest(self, key: str) -> dict[str, str] | None:
        """The file list the store recorded with the dataset, if it keeps one."""
        return None

    def _record_dataset(self, key: str, files: Mapping[str, str], dataset_digest: str) -> None:
        """Hook run once every file of a dataset is stored and verified."""

    # --- public

    def put_file(self, local_path: str | os.PathLike, key: str, *, sha256: str | None = None) -> str:
        """Store one file at ``key``, verified. ``sha256``: its SHA-256 when the caller has just
        hashed it (a large file is then not read twice); the stored copy is checked against it."""
        key = validate_key(key)
        local_path = Path(local_path)
        if not local_path.is_file():
            raise FileNotFoundError(f"file to upload not found: {local_path}")
        if sha256 is not None and not _is_sha256_hex(sha256):
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
        manifest = _validated_manifest(files)
        local_dir = Path(local_dir)
        if not local_dir.is_dir():
            raise FileNotFoundError(f"dataset directory not found: {local_dir}")
        present = {p.relative_to(local_dir).as_posix() for p in local_dir.rglob("*") if p.is_file()}
        if present != set(manifest):
            raise ValueError(
                f"dataset directory {local_dir} does not match its manifest: "
                f"{_describe_difference(manifest, {rel: manifest.get(rel, '') for rel in present})}"
            )
        digest = digest_of_files(manifest)
        sent = 0
        for rel, sha in sorted(manifest.items()):
            obj_key = f"{key}/{rel}"
            if self._holds(obj_key, sha, digest):
                continue
            stored = self._write_verified(local_dir / rel, obj_key, sha, {SHA256_METADATA: sha, DIGEST_METADATA: digest})
            if stored != sha:
                raise DigestMismatch(f"{self.uri_for(obj_key)} after upload", sha, stored or "missing")
            sent += 1
        self._record_dataset(key, manifest, digest)
        if sent == 0:
            log.info("dataset %s already stored with digest %s; nothing re-sent", self.uri_for(key), digest)
        else:
            log.info("stored dataset %s: %d of %d files sent, digest %s", self.uri_for(key), sent, len(manifest), digest)
        return self.uri_for(key)

    def verify_dataset(self, key: str, files: Mapping[str, str]) -> str:
        """Re-check the stored dataset against its manifest; return its digest or raise DigestMismatch
        (missing, unexpected or changed files)."""
        key = validate_key(key, "dataset key")
        manifest = _validated_manifest(files)
        stored: dict[str, str] = {}
        for obj_key in self.list_keys(f"{key}/"):
            sha = self._stored_sha256(obj_key)
            stored[obj_key[len(key) + 1:]] = sha or "unreadable"
        expected, actual = digest_of_files(manifest), digest_of_files(stored)
        if actual != expected:
            raise DigestMismatch(f"{self.uri_for(key)} ({_describe_difference(manifest, stored)})", expected, actual)
        log.info("verified %s: %d files, digest %s", self.uri_for(key), len(stored), actual)
        return actual

    def fetch_dataset(self, key: str, dest_dir: str | os.PathLike, files: Mapping[str, str] | None = None) -> Path:
        """Download the dataset under ``key/`` to ``dest_dir`` (which must not exist), verified against
        ``files`` or, when not given, against what the store recorded with it. Atomic: the directory
        appears complete or not at all."""
        key = validate_key(key, "dataset key")
        expected = _validated_manifest(files) if files is not None else None
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
                        f"fetched {self.uri_for(key)} ({_describe_difference(expected, actual)})",
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


# --------------------------------------------------------------------------- local directory


class LocalDirObjectStore(_DatasetStore):
    """Objects are files under ``root``. Writes are atomic (temp file + rename in the same directory);
    a dataset's manifest is kept under ``root/.axon-meta/`` (the local stand-in for object metadata)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._meta = self.root / f"{RESERVED_PREFIX}meta"

    def __repr__(self) -> str:
        return f"LocalDirObjectStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def uri_for(self, key: str) -> str:
        # Like Path.as_uri(), but keeps '+' (legal in a URI path) so cloud paths stay readable.
        return "file://" + quote(str(self._path(key)), safe="/+=,@:")

    def put_bytes(self, key: str, data: bytes) -> str:
        path = self._path(key)
        sha = hashlib.sha256(data).hexdigest()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{RESERVED_PREFIX}tmp-{uuid.uuid4().hex}-{path.name}")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if (stored := file_sha256(tmp)) != sha:
                raise DigestMismatch(f"{self.uri_for(key)} after write", sha, stored)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return self.uri_for(key)

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(f"no object at {self.uri_for(key)}")
        return path.read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

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

    def _write_verified(self, local_path: Path, key: str, sha256: str, metadata: Mapping[str, str]) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{RESERVED_PREFIX}tmp-{uuid.uuid4().hex}-{path.name}")
        try:
            shutil.copyfile(local_path, tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            stored = file_sha256(tmp)  # re-read what landed, before it becomes visible
            if stored != sha256:
                raise DigestMismatch(f"{self.uri_for(key)} after copy from {local_path}", sha256, stored)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return stored

    def _stored_sha256(self, key: str) -> str | None:
        path = self._path(key)
        return file_sha256(path) if path.is_file() else None

    def _holds(self, key: str, sha256: str, dataset_digest: str) -> bool:
        return self._stored_sha256(key) == sha256

    def _download(self, key: str, dest: Path) -> Mapping[str, str]:
        shutil.copyfile(self._path(key), dest)
        return {}

    def _manifest_path(self, key: str) -> Path:
        return self._meta / f"{key}.json"

    def _recorded_manifest(self, key: str) -> dict[str, str] | None:
        path = self._manifest_path(key)
        return json.loads(path.read_text())["files"] if path.is_file() else None

    def _record_dataset(self, key: str, files: Mapping[str, str], dataset_digest: str) -> None:
        path = self._manifest_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps({"dataset_digest": dataset_digest, "files": dict(files)}, sort_keys=True))
        os.replace(tmp, path)


# --------------------------------------------------------------------------- S3


class _RemoteDatasetStore(_DatasetStore):
    """A store across a link: a dataset upload waits for its turn in the process's priority queue
    (order priority, then age) and leaves what it did in :meth:`last_upload_stats`. Subclasses give
    the queue and a ``_dataset_context(key)`` that resets ``self._ctx.stats`` for one dataset."""

    _ctx: threading.local
    prefix: str

    def _full(self, key: str) -> str:
        key = validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _record_key(self, key: str) -> str:
        """Where the dataset record of ``key`` lives (a reserved segment: never a dataset key)."""
        base = f"{self.prefix}/" if self.prefix else ""
        return f"{base}{RESERVED_PREFIX}meta/{validate_key(key, 'dataset key')}.json"

    def _upload_queue(self) -> Any:
        raise NotImplementedError

    def _dataset_context(self, key: str) -> Any:
        raise NotImplementedError

    def put_dataset(
        self, local_dir: str | os.PathLike, key: str, files: Mapping[str, str], *, priority: int = 0, created_at: float | None = None
    ) -> str:
        key = validate_key(key, "dataset key")
        queued = time.monotonic()
        with self._upload_queue().slot(priority, created_at, self.uri_for(key)), self._dataset_context(key):
            started = time.monotonic()
            uri = super().put_dataset(local_dir, key, files)
            stats = dict(self._ctx.stats)
        seconds = time.monotonic() - started
        stats.update(
            upload_seconds=round(seconds, 3),
            queued_seconds=round(started - queued, 3),
            upload_bytes_per_second=round(stats["bytes_sent"] / seconds, 1) if seconds > 0 else 0.0,
        )
        self._ctx.last_upload = stats
        return uri

    def last_upload_stats(self) -> dict[str, Any]:
        """What the last :meth:`put_dataset` of this thread did (files and bytes sent, parts or
        blocks kept from an interrupted run, seconds queued and uploading, rate): run metadata for
        Dagster."""
        return dict(getattr(self._ctx, "last_upload", None) or {})

    def verify_dataset(self, key: str, files: Mapping[str, str]) -> str:
        key = validate_key(key, "dataset key")
        with self._dataset_context(key):
            return super().verify_dataset(key, files)


class S3ObjectStore(_RemoteDatasetStore):
    """Objects in ``bucket`` under ``prefix``. Every upload carries a SHA-256 checksum of the bytes
    it sends (real S3 validates it on receipt and keeps it), so verification is a HEAD comparing the
    store's checksum with the sidecar's — no download. Files of ``multipart_threshold`` bytes or more
    go up through the resumable :class:`~.uploader.MultipartUploader` (state in ``state_dir``);
    their store checksum is a composite of part checksums, which the uploader binds to the file's
    SHA-256 when it verifies the upload (kept in its state and in a dataset record under
    ``.axon-meta/`` in the bucket, so any machine can verify without downloading).
    ``verify="reread"`` downloads and hashes instead, for S3-compatible stores that keep a checksum
    without validating it; ``checksums=False`` sends no checksum headers at all (stores that reject
    them, e.g. GCS's XML API) and implies ``reread``. Every request that carries file bytes goes
    through the process's bandwidth cap. Objects of a dataset carry metadata ``sha256`` and
    ``dataset-digest``."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        client: Any = None,
        *,
        verify: Literal["checksum", "reread"] = "checksum",
        checksums: bool = True,
        multipart_threshold: int = 16 * _CHUNK,
        part_size: int | None = None,
        concurrency: int | None = None,
        state_dir: str | os.PathLike | None = None,
        bandwidth: Any = None,
        upload_queue: Any = None,
        on_event: Any = None,
        client_config: Mapping[str, Any] | None = None,
        scheme: str = "s3",
    ):
        _validate_bucket(bucket)
        self.scheme = scheme
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = validate_key(prefix, "store prefix") if prefix else ""
        if verify not in ("checksum", "reread"):
            raise ValueError(f"verify must be 'checksum' or 'reread', got {verify!r}")
        if isinstance(multipart_threshold, bool) or not isinstance(multipart_threshold, int) or multipart_threshold < 5 * _CHUNK:
            raise ValueError(f"multipart_threshold must be an integer of at least 5 MiB, got {multipart_threshold!r}")
        self.checksums = bool(checksums)
        self.verify = verify if self.checksums else "reread"
        self.endpoint_url = endpoint_url
        self.multipart_threshold = multipart_threshold
        self._uploader_args = {
            "part_size": part_size, "concurrency": concurrency, "bucket": bandwidth, "queue": upload_queue, "on_event": on_event,
        }
        self.state_dir = Path(state_dir or os.environ.get("AXON_UPLOAD_STATE_DIR") or ".axon/upload-state").resolve()
        if client is None:
            import boto3  # lazily: robots import this module without boto3
            from botocore.config import Config

            options = {**self.client_options(self.checksums), **(client_config or {})}
            client = boto3.client("s3", endpoint_url=endpoint_url, config=Config(**options))
        self.client = client
        self._uploader: Any = None
        self._uploader_lock = threading.Lock()
        self._ctx = threading.local()

    def __repr__(self) -> str:
        return f"S3ObjectStore(bucket={self.bucket!r}, prefix={self.prefix!r}, endpoint_url={self.endpoint_url!r})"

    @staticmethod
    def client_options(checksums: bool = True) -> dict[str, Any]:
        """botocore ``Config`` options of the client a store builds for itself.

        With checksums on, the body is not SHA-256-signed a second time (``payload_signing_enabled``
        off, as the AWS SDKs do over TLS): every body carries its own SHA-256 in the signed
        ``x-amz-checksum-sha256`` header, which S3 validates, so the payload signature would only
        hash the same bytes again. Without checksums (GCS's XML API) botocore must not add its
        default CRC32 headers either, and the payload stays signed."""
        options: dict[str, Any] = {"retries": {"max_attempts": 5, "mode": "standard"}, "connect_timeout": 5, "read_timeout": 60}
        if checksums:
            options["s3"] = {"payload_signing_enabled": False}
        else:
            options.update(request_checksum_calculation="when_required", response_checksum_validation="when_required")
        return options

    @property
    def uploader(self) -> Any:
        """The multipart uploader (built on first use; its state lives in ``state_dir``)."""
        with self._uploader_lock:
            if self._uploader is None:
                from .uploader import DEFAULT_CONCURRENCY, DEFAULT_PART_SIZE, MultipartUploader

                args = self._uploader_args
                self._uploader = MultipartUploader(
                    self.client,
                    state_dir=self.state_dir,
                    part_size=args["part_size"] or DEFAULT_PART_SIZE,
                    concurrency=args["concurrency"] or DEFAULT_CONCURRENCY,
                    bucket=args["bucket"],
                    queue=args["queue"],
                    verify=self.verify,
                    checksums=self.checksums,
                    on_event=args["on_event"],
                )
            return self._uploader

    def uri_for(self, key: str) -> str:
        return f"{self.scheme}://{self.bucket}/{self._full(key)}"

    def put_bytes(self, key: str, data: bytes) -> str:
        full = self._full(key)
        sha = hashlib.sha256(data).hexdigest()
        with self._errors(key):
            self.client.put_object(Bucket=self.bucket, Key=full, Body=data, Metadata={SHA256_METADATA: sha}, **self._checksum_args())
        stored = self._stored_sha256(key)
        if stored != sha:
            raise DigestMismatch(f"{self.uri_for(key)} after upload", sha, stored or "missing")
        return self.uri_for(key)

    def get_bytes(self, key: str) -> bytes:
        full = self._full(key)
        with self._errors(key):
            return self.client.get_object(Bucket=self.bucket, Key=full, **self._checksum_mode())["Body"].read()

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def list_keys(self, prefix: str = "") -> list[str]:
        prefix = validate_prefix(prefix)
        base = f"{self.prefix}/" if self.prefix else ""
        out: list[str] = []
        with self._errors(prefix or "(store root)"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base + prefix):
                for obj in page.get("Contents", ()):
                    rel = obj["Key"][len(base):]
                    if not any(seg.startswith(RESERVED_PREFIX) for seg in rel.split("/")):
                        out.append(rel)
        return sorted(out)

    def _upload_queue(self) -> Any:
        return self.uploader.queue

    # --- the dataset record: binds composite checksums of multipart files to their SHA-256

    @contextmanager
    def _dataset_context(self, key: str) -> Iterator[None]:
        self._ctx.key, self._ctx.record, self._ctx.composites = key, None, {}
        self._ctx.stats = {"files_sent": 0, "files_already_stored": 0, "bytes_sent": 0, "parts_sent": 0, "parts_reused": 0}
        try:
            yield
        finally:
            self._ctx.key = self._ctx.record = self._ctx.composites = None

    def _dataset_record(self) -> dict[str, Any]:
        key = getattr(self._ctx, "key", None)
        if key is None:
            return {}
        if self._ctx.record is None:
            try:
                with self._errors(key):
                    body = self.client.get_object(Bucket=self.bucket, Key=self._record_key(key))["Body"].read()
                self._ctx.record = json.loads(body)
            except ObjectNotFound:
                self._ctx.record = {}
            except ValueError:
                log.warning("dataset record %s is unreadable; verifying by re-reading", self._record_key(key))
                self._ctx.record = {}
        return self._ctx.record

    def _record_dataset(self, key: str, files: Mapping[str, str], dataset_digest: str) -> None:
        composites = dict(getattr(self._ctx, "composites", None) or {})
        if not composites:
            return
        record = {"dataset_digest": dataset_digest, "files": dict(files), "checksums": composites}
        if self._dataset_record() == record:
            return
        with self._errors(key):
            self.client.put_object(
                Bucket=self.bucket, Key=self._record_key(key), Body=json.dumps(record, sort_keys=True).encode(),
                ContentType="application/json", **self._checksum_args(),
            )
        self._ctx.record = record

    def _composite_sha256(self, key: str, head: _StoredObject) -> str | None:
        """For an object whose store checksum is a composite: its SHA-256 if an uploader recorded,
        on verifying it, that this composite belongs to that SHA-256; else None."""
        sha = head.metadata.get(SHA256_METADATA)
        if not head.checksum or not sha:
            return None
        value = head.checksum.rsplit("-", 1)[0] if "-" in head.checksum else head.checksum
        candidates = [self.uploader.verified_checksum(self.bucket, self._full(key), sha, head.size or 0)]
        ctx_key = getattr(self._ctx, "key", None)
        if ctx_key and key.startswith(f"{ctx_key}/"):
            rel = key[len(ctx_key) + 1:]
            record = self._dataset_record()
            if record.get("files", {}).get(rel) == sha:
                candidates.append(record.get("checksums", {}).get(rel))
        for recorded in candidates:
            if recorded and (recorded.rsplit("-", 1)[0] if "-" in recorded else recorded) == value:
                self._note_composite(key, head.checksum)
                return sha
        return None

    def _note_composite(self, key: str, checksum: str) -> None:
        ctx_key = getattr(self._ctx, "key", None)
        if ctx_key and key.startswith(f"{ctx_key}/") and self._ctx.composites is not None:
            self._ctx.composites[key[len(ctx_key) + 1:]] = checksum

    # --- per-object primitives

    def _checksum_args(self) -> dict[str, str]:
        return {"ChecksumAlgorithm": "SHA256"} if self.checksums else {}

    def _checksum_mode(self) -> dict[str, str]:
        return {"ChecksumMode": "ENABLED"} if self.checksums else {}

    def _head(self, key: str) -> _StoredObject | None:
        full = self._full(key)
        try:
            with self._errors(key):
                head = self.client.head_object(Bucket=self.bucket, Key=full, **self._checksum_mode())
        except ObjectNotFound:
            return None
        checksum = head.get("ChecksumSHA256")
        # A multipart object's checksum is a checksum of part checksums ("...-N"): not the file's hash.
        full_object = checksum and "-" not in checksum and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT"
        return _StoredObject(_b64_to_hex(checksum) if full_object else None, head.get("Metadata", {}), checksum, head.get("ContentLength"))

    def _reread_sha256(self, key: str) -> str:
        h = hashlib.sha256()
        try:
            with self._errors(key):
                body = self.client.get_object(Bucket=self.bucket, Key=self._full(key))["Body"]
                for chunk in iter(lambda: body.read(_CHUNK), b""):
                    h.update(chunk)
        except DigestMismatch:
            return STORED_CHECKSUM_MISMATCH  # boto3 found the body differs from the object's own checksum
        return h.hexdigest()

    def _sha256_of(self, key: str, head: _StoredObject) -> str:
        if self.verify == "checksum":
            if head.sha256 is not None and head.sha256 == head.metadata.get(SHA256_METADATA):
                return head.sha256
            # Some S3-compatible stores (moto among them) report a multipart object's composite
            # checksum without the "-N" suffix, so a checksum that is not the file's hash may be one.
            composite = self._composite_sha256(key, head)
            if composite is not None:
                return composite
            if head.sha256 is not None:
                return head.sha256
            log.debug("%s has no checksum that names its SHA-256; re-reading it to verify", self.uri_for(key))
        return self._reread_sha256(key)

    def _stored_sha256(self, key: str) -> str | None:
        head = self._head(key)
        return None if head is None else self._sha256_of(key, head)

    def _holds(self, key: str, sha256: str, dataset_digest: str) -> bool:
        head = self._head(key)
        if head is None or head.metadata.get(DIGEST_METADATA) != dataset_digest:
            return False
        held = self._sha256_of(key, head) == sha256
        if held:
            self._count("files_already_stored", 1)
        return held

    def _count(self, name: str, n: int) -> None:
        stats = getattr(self._ctx, "stats", None)
        if stats is not None and getattr(self._ctx, "key", None) is not None:
            stats[name] += n

    def _write_verified(self, local_path: Path, key: str, sha256: str, metadata: Mapping[str, str]) -> str:
        full = self._full(key)
        size = local_path.stat().st_size
        if size >= self.multipart_threshold:
            from .uploader import UploadError

            try:
                with self._errors(key):
                    result = self.uploader.upload_file(local_path, self.bucket, full, sha256=sha256, metadata=metadata)
            except UploadError as exc:
                raise ObjectStoreError(str(exc)) from exc
            if result.checksum:
                self._note_composite(key, result.checksum)
            self._count("files_sent" if not result.skipped else "files_already_stored", 1)
            self._count("bytes_sent", result.bytes_sent)
            self._count("parts_sent", result.parts_sent)
            self._count("parts_reused", result.parts_reused)
            return sha256  # the uploader verified the stored object against sha256, or raised
        with self._errors(key), open(local_path, "rb") as body:
            self.uploader.put_object_capped(
                self.uri_for(key), size,
                Bucket=self.bucket, Key=full, Body=body, Metadata=dict(metadata), **self._checksum_args(),
            )
        self._count("files_sent", 1)
        self._count("bytes_sent", size)
        return self._stored_sha256(key) or "missing"

    def _download(self, key: str, dest: Path) -> Mapping[str, str]:
        with self._errors(key):
            obj = self.client.get_object(Bucket=self.bucket, Key=self._full(key), **self._checksum_mode())
            with open(dest, "wb") as fh:
                for chunk in iter(lambda: obj["Body"].read(_CHUNK), b""):
                    fh.write(chunk)
        return obj.get("Metadata", {})

    def _recorded_manifest(self, key: str) -> dict[str, str] | None:
        with self._dataset_context(key):
            return self._dataset_record().get("files") or None

    @contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        """Translate botocore errors into the store's own, so callers need not import botocore."""
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            FlexibleChecksumError,
            ReadTimeoutError,
        )

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code == "NoSuchBucket":
                raise ObjectStoreError(f"bucket {self.bucket!r} does not exist (endpoint {self.endpoint_url or 'AWS'})") from exc
            if code in ("404", "NoSuchKey", "NotFound"):
                raise ObjectNotFound(f"no object at s3://{self.bucket}/{self.prefix + '/' if self.prefix else ''}{key}") from exc
            raise ObjectStoreError(f"S3 request for {key!r} in bucket {self.bucket!r} failed: {code} {error.get('Message', '')}") from exc
        except FlexibleChecksumError as exc:
            raise DigestMismatch(f"s3://{self.bucket}/{self._full(key)} (body read back)", "its stored checksum", str(exc)) from exc
        except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError) as exc:
            raise ObjectStoreUnavailable(f"S3 endpoint {self.endpoint_url or 'AWS'} unreachable: {exc}") from exc


def _b64_to_hex(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        return None


def _validate_bucket(bucket: object) -> None:
    ok = (
        isinstance(bucket, str)
        and 3 <= len(bucket) <= 63
        and all(c.islower() or c.isdigit() or c in ".-" for c in bucket)
        and bucket[0].isalnum()
        and bucket[-1].isalnum()
        and ".." not in bucket
    )
    if not ok:
        raise ValueError(f"invalid S3 bucket name {bucket!r}: 3-63 characters of a-z, 0-9, '.', '-'")


# --------------------------------------------------------------------------- from a URL


GCS_XML_ENDPOINT = "https://storage.googleapis.com"


def object_store_from_url(url: str, endpoint_url: str | None = None) -> _DatasetStore:
    """``file:///abs/path`` -> LocalDirObjectStore; ``s3://bucket/prefix`` -> S3ObjectStore, with the
    endpoint from ``endpoint_url`` or ``AWS_ENDPOINT_URL`` (S3-compatible stores such as MinIO);
    ``gs://bucket/prefix`` -> S3ObjectStore on Google Cloud Storage's S3-compatible XML API
    (HMAC keys in ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``; no x-amz-checksum headers, so
    uploads are verified by re-reading); ``az://account/container/prefix`` ->
    :class:`~.azure_store.AzureBlobObjectStore` (credentials from ``AZURE_STORAGE_CONNECTION_STRING``
    or ``AZURE_STORAGE_KEY``; endpoint from ``endpoint_url`` or ``AZURE_STORAGE_BLOB_ENDPOINT``)."""
    parts = urlsplit(url)
    if parts.scheme == "az":
        from .azure_store import azure_store_from_url

        return azure_store_from_url(url, endpoint_url=endpoint_url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"invalid object store URL {url!r}: file URLs name no host (use file:///abs/path)")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ValueError(f"invalid object store URL {url!r}: the path must be absolute")
        return LocalDirObjectStore(path)
    if parts.scheme in ("s3", "gs"):
        if parts.query or parts.fragment:
            raise ValueError(f"invalid object store URL {url!r}: no query or fragment allowed")
        if parts.scheme == "gs":
            return S3ObjectStore(
                parts.netloc, prefix=unquote(parts.path), endpoint_url=endpoint_url or GCS_XML_ENDPOINT, checksums=False,
                client_config={"region_name": os.environ.get("AWS_DEFAULT_REGION") or "auto"}, scheme="gs",
            )
        return S3ObjectStore(parts.netloc, prefix=unquote(parts.path), endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None)
    raise ValueError(f"unsupported object store URL {url!r}: expected file:///abs/path, s3://bucket/prefix, gs://bucket/prefix or az://account/container/prefix")
