"""The "cloud" object store: a local directory (embedded default) or S3 (any S3-compatible endpoint).

A dataset is a directory, so it is stored as one object per file under ``<key>/``; its sidecar is a
separate object beside it (``domain.sidecar_key``). Every file is verified after upload against the
SHA-256 the sidecar lists, so a cloud copy is only ever reported with the digest it really has.

Keys are relative, ``/``-separated and checked before anything is written (:func:`validate_key`).
boto3 is imported only when an S3 store is built: robots import this module without it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import shutil
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

    def put_file(self, local_path: str | os.PathLike, key: str) -> str: ...

    def get_bytes(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def list_keys(self, prefix: str = "") -> list[str]: ...

    def put_dataset(self, local_dir: str | os.PathLike, key: str, files: Mapping[str, str]) -> str: ...

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
        if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise ValueError(f"invalid sha256 {sha!r} for dataset file {rel!r}: expected 64 lowercase hex digits")
        out[rel] = sha
    return out


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

    def put_file(self, local_path: str | os.PathLike, key: str) -> str:
        key = validate_key(key)
        local_path = Path(local_path)
        if not local_path.is_file():
            raise FileNotFoundError(f"file to upload not found: {local_path}")
        sha = file_sha256(local_path)
        stored = self._write_verified(local_path, key, sha, {SHA256_METADATA: sha})
        if stored != sha:
            raise DigestMismatch(f"{self.uri_for(key)} after upload", sha, stored or "missing")
        log.info("stored %s (%s)", self.uri_for(key), sha)
        return self.uri_for(key)

    def put_dataset(self, local_dir: str | os.PathLike, key: str, files: Mapping[str, str]) -> str:
        """Upload every file of the dataset directory ``local_dir`` under ``key/``; ``files`` is its
        manifest (the sidecar's ``files``). Each file is verified after upload; files already stored
        with the same SHA-256 (and dataset digest) are not sent again."""
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


class S3ObjectStore(_DatasetStore):
    """Objects in ``bucket`` under ``prefix``. Every upload asks boto3 for a SHA-256 checksum of the
    bytes it sends (``ChecksumAlgorithm="SHA256"``; real S3 validates it on receipt and keeps it), so
    verification is a HEAD comparing that stored checksum with the sidecar's — no download.
    ``verify="reread"`` downloads and hashes instead, for S3-compatible stores that keep a checksum
    without validating it. Objects of a dataset carry metadata ``sha256`` and ``dataset-digest``."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        client: Any = None,
        *,
        verify: Literal["checksum", "reread"] = "checksum",
    ):
        _validate_bucket(bucket)
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = validate_key(prefix, "store prefix") if prefix else ""
        if verify not in ("checksum", "reread"):
            raise ValueError(f"verify must be 'checksum' or 'reread', got {verify!r}")
        self.verify = verify
        self.endpoint_url = endpoint_url
        if client is None:
            import boto3  # lazily: robots import this module without boto3
            from botocore.config import Config

            client = boto3.client(
                "s3",
                endpoint_url=endpoint_url,
                config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60),
            )
        self.client = client

    def __repr__(self) -> str:
        return f"S3ObjectStore(bucket={self.bucket!r}, prefix={self.prefix!r}, endpoint_url={self.endpoint_url!r})"

    def _full(self, key: str) -> str:
        key = validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full(key)}"

    def put_bytes(self, key: str, data: bytes) -> str:
        full = self._full(key)
        sha = hashlib.sha256(data).hexdigest()
        with self._errors(key):
            self.client.put_object(
                Bucket=self.bucket, Key=full, Body=data, ChecksumAlgorithm="SHA256", Metadata={SHA256_METADATA: sha}
            )
        stored = self._stored_sha256(key)
        if stored != sha:
            raise DigestMismatch(f"{self.uri_for(key)} after upload", sha, stored or "missing")
        return self.uri_for(key)

    def get_bytes(self, key: str) -> bytes:
        full = self._full(key)
        with self._errors(key):
            return self.client.get_object(Bucket=self.bucket, Key=full, ChecksumMode="ENABLED")["Body"].read()

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def list_keys(self, prefix: str = "") -> list[str]:
        prefix = validate_prefix(prefix)
        base = f"{self.prefix}/" if self.prefix else ""
        out: list[str] = []
        with self._errors(prefix or "(store root)"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base + prefix):
                out.extend(obj["Key"][len(base):] for obj in page.get("Contents", ()))
        return sorted(out)

    def _head(self, key: str) -> _StoredObject | None:
        full = self._full(key)
        try:
            with self._errors(key):
                head = self.client.head_object(Bucket=self.bucket, Key=full, ChecksumMode="ENABLED")
        except ObjectNotFound:
            return None
        checksum = head.get("ChecksumSHA256")
        # A multipart object's checksum is a checksum of part checksums ("...-N"): not the file's hash.
        full_object = checksum and "-" not in checksum and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT"
        return _StoredObject(_b64_to_hex(checksum) if full_object else None, head.get("Metadata", {}))

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

    def _stored_sha256(self, key: str) -> str | None:
        head = self._head(key)
        if head is None:
            return None
        if self.verify == "reread" or head.sha256 is None:
            if head.sha256 is None:
                log.debug("%s has no full-object SHA-256 checksum; re-reading it to verify", self.uri_for(key))
            return self._reread_sha256(key)
        return head.sha256

    def _holds(self, key: str, sha256: str, dataset_digest: str) -> bool:
        head = self._head(key)
        if head is None or head.metadata.get(DIGEST_METADATA) != dataset_digest:
            return False
        stored = head.sha256 if self.verify == "checksum" and head.sha256 else self._reread_sha256(key)
        return stored == sha256

    def _write_verified(self, local_path: Path, key: str, sha256: str, metadata: Mapping[str, str]) -> str:
        with self._errors(key), open(local_path, "rb") as body:
            self.client.put_object(
                Bucket=self.bucket, Key=self._full(key), Body=body, ChecksumAlgorithm="SHA256", Metadata=dict(metadata)
            )
        return self._stored_sha256(key) or "missing"

    def _download(self, key: str, dest: Path) -> Mapping[str, str]:
        with self._errors(key):
            obj = self.client.get_object(Bucket=self.bucket, Key=self._full(key), ChecksumMode="ENABLED")
            with open(dest, "wb") as fh:
                for chunk in iter(lambda: obj["Body"].read(_CHUNK), b""):
                    fh.write(chunk)
        return obj.get("Metadata", {})

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


def object_store_from_url(url: str, endpoint_url: str | None = None) -> LocalDirObjectStore | S3ObjectStore:
    """``file:///abs/path`` -> LocalDirObjectStore; ``s3://bucket/prefix`` -> S3ObjectStore, with the
    endpoint from ``endpoint_url`` or ``AWS_ENDPOINT_URL`` (S3-compatible stores such as MinIO)."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"invalid object store URL {url!r}: file URLs name no host (use file:///abs/path)")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ValueError(f"invalid object store URL {url!r}: the path must be absolute")
        return LocalDirObjectStore(path)
    if parts.scheme == "s3":
        if parts.query or parts.fragment:
            raise ValueError(f"invalid object store URL {url!r}: no query or fragment allowed")
        return S3ObjectStore(parts.netloc, prefix=unquote(parts.path), endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None)
    raise ValueError(f"unsupported object store URL {url!r}: expected file:///abs/path or s3://bucket/prefix")
