"""The S3 backend (AWS S3 and S3-compatible stores such as MinIO; GCS through its XML API).
boto3 is imported when a store is built, never at import: robots import this package without it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from ..digest import DigestMismatch
from .base import (
    DIGEST_METADATA,
    RESERVED_PREFIX,
    SHA256_METADATA,
    STORED_CHECKSUM_MISMATCH,
    ObjectNotFound,
    ObjectStoreError,
    ObjectStoreUnavailable,
    DatasetSession,
    StoredObject,
    validate_key,
    validate_prefix,
)
from .remote import upload_state_dir
from .s3_staging import S3Staging
from .staging import PartsRefused, UnknownUpload

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class S3ObjectStore(S3Staging):
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
        rate_limiter: Any = None,
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
            "part_size": part_size, "concurrency": concurrency, "rate_limiter": rate_limiter, "queue": upload_queue, "on_event": on_event,
        }
        self.state_dir = Path(state_dir).resolve() if state_dir else upload_state_dir()
        if client is None:
            import boto3  # lazily: robots import this module without boto3
            from botocore.config import Config

            options = {**self.client_options(self.checksums), **(client_config or {})}
            client = boto3.client("s3", endpoint_url=endpoint_url, config=Config(**options))
        self.client = client
        self._uploader: Any = None
        self._uploader_lock = threading.Lock()
        self._reports = threading.local()

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
        # SigV4 also for pre-signed URLs (botocore would pre-sign with SigV2 in us-east-1).
        options: dict[str, Any] = {"retries": {"max_attempts": 5, "mode": "standard"}, "connect_timeout": 5, "read_timeout": 60,
                                   "signature_version": "s3v4"}
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
                from .s3_multipart import DEFAULT_CONCURRENCY, DEFAULT_PART_SIZE, MultipartUploader

                args = self._uploader_args
                self._uploader = MultipartUploader(
                    self.client,
                    state_dir=self.state_dir,
                    part_size=args["part_size"] or DEFAULT_PART_SIZE,
                    concurrency=args["concurrency"] or DEFAULT_CONCURRENCY,
                    rate_limiter=args["rate_limiter"],
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
        self._keep_if_verified(key, sha, self._stored_sha256(key))
        return self.uri_for(key)

    def get_bytes(self, key: str) -> bytes:
        full = self._full(key)
        with self._errors(key):
            return self.client.get_object(Bucket=self.bucket, Key=full, **self._checksum_mode())["Body"].read()

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def delete(self, key: str) -> bool:
        held = self.exists(key)
        with self._errors(key):
            self.client.delete_object(Bucket=self.bucket, Key=self._full(key))
        return held

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

    STAT_NAMES = ("files_sent", "files_already_stored", "bytes_sent", "parts_sent", "parts_reused")

    def _dataset_record(self, session: DatasetSession) -> dict[str, Any]:
        """The dataset record of ``session.key`` (read once per session)."""
        if session.record is None:
            key = session.key
            try:
                with self._errors(key):
                    body = self.client.get_object(Bucket=self.bucket, Key=self._record_key(key))["Body"].read()
                session.record = json.loads(body)
            except ObjectNotFound:
                session.record = {}
            except ValueError:
                log.warning("dataset record %s is unreadable; verifying by re-reading", self._record_key(key))
                session.record = {}
        return session.record  # type: ignore[return-value]

    def _record_dataset(self, key: str, files: Mapping[str, str], dataset_digest: str, session: DatasetSession) -> None:
        composites = dict(session.composites)
        if not composites:
            return
        record = {"dataset_digest": dataset_digest, "files": dict(files), "checksums": composites}
        if self._dataset_record(session) == record:
            return
        with self._errors(key):
            self.client.put_object(
                Bucket=self.bucket, Key=self._record_key(key), Body=json.dumps(record, sort_keys=True).encode(),
                ContentType="application/json", **self._checksum_args(),
            )
        session.record = record

    def _composite_sha256(self, key: str, head: StoredObject, session: DatasetSession | None) -> str | None:
        """For an object whose store checksum is a composite: its SHA-256 if an uploader recorded,
        on verifying it, that this composite belongs to that SHA-256; else None."""
        sha = head.metadata.get(SHA256_METADATA)
        if not head.checksum or not sha:
            return None
        value = head.checksum.rsplit("-", 1)[0] if "-" in head.checksum else head.checksum
        candidates = [self.uploader.verified_checksum(self.bucket, self._full(key), sha, head.size or 0)]
        rel = session.relative(key) if session is not None else None
        if session is not None and rel is not None:
            record = self._dataset_record(session)
            if record.get("files", {}).get(rel) == sha:
                candidates.append(record.get("checksums", {}).get(rel))
        for recorded in candidates:
            if recorded and (recorded.rsplit("-", 1)[0] if "-" in recorded else recorded) == value:
                self._note_composite(key, head.checksum, session)
                return sha
        return None

    @staticmethod
    def _note_composite(key: str, checksum: str, session: DatasetSession | None) -> None:
        rel = session.relative(key) if session is not None else None
        if session is not None and rel is not None:
            session.composites[rel] = checksum

    # --- per-object primitives

    def _checksum_args(self) -> dict[str, str]:
        return {"ChecksumAlgorithm": "SHA256"} if self.checksums else {}

    def _checksum_mode(self) -> dict[str, str]:
        return {"ChecksumMode": "ENABLED"} if self.checksums else {}

    def _head(self, key: str) -> StoredObject | None:
        full = self._full(key)
        try:
            with self._errors(key):
                head = self.client.head_object(Bucket=self.bucket, Key=full, **self._checksum_mode())
        except ObjectNotFound:
            return None
        checksum = head.get("ChecksumSHA256")
        # A multipart object's checksum is a checksum of part checksums ("...-N"): not the file's hash.
        full_object = checksum and "-" not in checksum and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT"
        return StoredObject(_b64_to_hex(checksum) if full_object else None, head.get("Metadata", {}), checksum, head.get("ContentLength"))

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

    def _sha256_of(self, key: str, head: StoredObject, session: DatasetSession | None = None) -> str:
        if self.verify == "checksum":
            if head.sha256 is not None and head.sha256 == head.metadata.get(SHA256_METADATA):
                return head.sha256
            # Some S3-compatible stores (moto among them) report a multipart object's composite
            # checksum without the "-N" suffix, so a checksum that is not the file's hash may be one.
            composite = self._composite_sha256(key, head, session)
            if composite is not None:
                return composite
            if head.sha256 is not None:
                return head.sha256
            log.debug("%s has no checksum that names its SHA-256; re-reading it to verify", self.uri_for(key))
        return self._reread_sha256(key)

    def _stored_sha256(self, key: str, session: DatasetSession | None = None) -> str | None:
        head = self._head(key)
        return None if head is None else self._sha256_of(key, head, session)

    def _holds(self, key: str, sha256: str, dataset_digest: str, session: DatasetSession) -> bool:
        head = self._head(key)
        if head is None or head.metadata.get(DIGEST_METADATA) != dataset_digest:
            return False
        held = self._sha256_of(key, head, session) == sha256
        if held:
            session.count("files_already_stored", 1)
        return held

    def _write_verified(self, local_path: Path, key: str, sha256: str, metadata: Mapping[str, str],
                        session: DatasetSession | None = None) -> str:
        count = session.count if session is not None else (lambda name, n: None)
        full = self._full(key)
        size = local_path.stat().st_size
        if size >= self.multipart_threshold:
            from .s3_multipart import UploadError

            try:
                with self._errors(key):
                    result = self.uploader.upload_file(local_path, self.bucket, full, sha256=sha256, metadata=metadata)
            except UploadError as exc:
                raise ObjectStoreError(str(exc)) from exc
            if result.checksum:
                self._note_composite(key, result.checksum, session)
            count("files_sent" if not result.skipped else "files_already_stored", 1)
            count("bytes_sent", result.bytes_sent)
            count("parts_sent", result.parts_sent)
            count("parts_reused", result.parts_reused)
            return sha256  # the uploader verified the stored object against sha256, or raised
        with self._errors(key), open(local_path, "rb") as body:
            self.uploader.put_object_capped(
                self.uri_for(key), size,
                Bucket=self.bucket, Key=full, Body=body, Metadata=dict(metadata), **self._checksum_args(),
            )
        count("files_sent", 1)
        count("bytes_sent", size)
        return self._keep_if_verified(key, sha256, self._stored_sha256(key, session))

    def _keep_if_verified(self, key: str, sha256: str, stored: str | None) -> str:
        """After a single PUT of ``key``: the object now there is ours; if it is not what we sent
        (``stored`` is its SHA-256), delete it — nothing unverified stays at a key — and raise."""
        if stored == sha256:
            return stored
        try:
            with self._errors(key):
                self.client.delete_object(Bucket=self.bucket, Key=self._full(key))
            outcome = "the stored object was deleted"
        except ObjectStoreError as exc:
            outcome = f"deleting the stored object failed too: {exc}"
        log.error("%s failed verification after upload (%s)", self.uri_for(key), outcome)
        raise DigestMismatch(f"{self.uri_for(key)} after upload ({outcome})", sha256, stored or "missing")

    def _download(self, key: str, dest: Path) -> Mapping[str, str]:
        with self._errors(key):
            obj = self.client.get_object(Bucket=self.bucket, Key=self._full(key), **self._checksum_mode())
            with open(dest, "wb") as fh:
                for chunk in iter(lambda: obj["Body"].read(_CHUNK), b""):
                    fh.write(chunk)
        return obj.get("Metadata", {})

    def _recorded_manifest(self, key: str) -> dict[str, str] | None:
        return self._dataset_record(DatasetSession(key)).get("files") or None

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
            if code == "NoSuchUpload":
                raise UnknownUpload(f"no upload for s3://{self.bucket}/{self._name(key)} with that id (completed, aborted or never started)") from exc
            if code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall"):
                raise PartsRefused(f"cannot complete s3://{self.bucket}/{self._name(key)}: {code} {error.get('Message', '')}".rstrip()) from exc
            if code in ("404", "NoSuchKey", "NotFound"):
                raise ObjectNotFound(f"no object at s3://{self.bucket}/{self._name(key)}") from exc
            raise ObjectStoreError(f"S3 request for {key!r} in bucket {self.bucket!r} failed: {code} {error.get('Message', '')}") from exc
        except FlexibleChecksumError as exc:
            raise DigestMismatch(f"s3://{self.bucket}/{self._full(key)} (body read back)", "its stored checksum", str(exc)) from exc
        except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError) as exc:
            raise ObjectStoreUnavailable(f"S3 endpoint {self.endpoint_url or 'AWS'} unreachable: {exc}") from exc

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key


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
