"""Staging uploads on S3 (:class:`~.staging.StagingUploads` for :class:`~.s3.S3ObjectStore`).

The robot PUTs each part to a pre-signed UploadPart URL (SigV4, expiring; no credentials leave the
control plane) and gets the part's MD5 back as its ``ETag``; it may send ``Content-MD5``, which S3
checks on receipt. The control plane lists the parts (ListParts), completes the upload
(CompleteMultipartUpload checks every ETag), reads the object back through a SHA-256
(:meth:`S3Staging.sha256_of`), copies it into the lake server-side (CopyObject; UploadPartCopy
above 5 GiB, S3's limit of one copy) and deletes the staging prefix (with any upload left open there).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from .base import is_sha256_hex
from .errors import ObjectNotFound
from .remote import RemoteObjectStore
from .staging import (
    MAX_PARTS,
    PartSpec,
    PartTarget,
    StagingError,
    UnknownUpload,
    completion_parts,
    deletable_prefix,
    part_specs,
    validate_expiry,
)

log = logging.getLogger(__name__)

GiB = 1 << 30


class S3Staging(RemoteObjectStore):
    """The staging half of :class:`~.s3.S3ObjectStore` (which gives ``client``, ``bucket``,
    ``_errors`` and ``_reread_sha256``)."""

    client: Any
    bucket: str
    checksums: bool
    copy_threshold: int = 5 * GiB  # S3's largest CopyObject; above it UploadPartCopy
    copy_part_size: int = 1 * GiB

    def start_multipart(self, key: str) -> str:
        with self._errors(key):
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=self._full(key))["UploadId"]
        log.info("started upload %s of %s", upload_id[:16], self.uri_for(key))
        return upload_id

    def part_targets(self, key: str, upload_id: str, parts: Iterable[PartSpec | tuple[int, int, int]], expires_s: int) -> list[PartTarget]:
        full = self._full(key)
        expires_s = validate_expiry(expires_s)
        specs = part_specs(parts)
        if not self._upload_exists(key, upload_id):
            raise UnknownUpload(f"no upload {str(upload_id)[:40]!r} for {self.uri_for(key)} (completed, aborted or never started)")
        return [
            PartTarget(p.number, self.client.generate_presigned_url(
                "upload_part", Params={"Bucket": self.bucket, "Key": full, "UploadId": upload_id, "PartNumber": p.number},
                ExpiresIn=expires_s, HttpMethod="PUT",
            ))
            for p in specs
        ]

    def _upload_exists(self, key: str, upload_id: str) -> bool:
        """Whether ``upload_id`` is an open upload *of this key* (ListMultipartUploads: some
        S3-compatible stores would list another key's upload's parts under any key)."""
        if not isinstance(upload_id, str) or not upload_id:
            return False
        full = self._full(key)
        with self._errors(key):
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=full):
                if any(u["Key"] == full and u["UploadId"] == upload_id for u in page.get("Uploads", ())):
                    return True
        return False

    def list_parts(self, key: str, upload_id: str) -> dict[int, str]:
        if not self._upload_exists(key, upload_id):
            return {}
        out: dict[int, str] = {}
        try:
            with self._errors(key):
                pages = self.client.get_paginator("list_parts").paginate(Bucket=self.bucket, Key=self._full(key), UploadId=upload_id)
                for page in pages:
                    for part in page.get("Parts", ()):
                        out[int(part["PartNumber"])] = part["ETag"]
        except UnknownUpload:
            return {}
        return out

    def complete_multipart(self, key: str, upload_id: str, parts: Mapping[int, str]) -> None:
        wanted = completion_parts(parts)
        if not self._upload_exists(key, upload_id):  # a clear refusal on every S3-compatible store
            raise UnknownUpload(f"no upload {str(upload_id)[:40]!r} for {self.uri_for(key)} (completed, aborted or never started)")
        with self._errors(key):
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=self._full(key), UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in wanted]},
            )
        log.info("completed upload %s of %s from %d parts", upload_id[:16], self.uri_for(key), len(wanted))

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            with self._errors(key):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._full(key), UploadId=upload_id)
        except (UnknownUpload, ObjectNotFound):
            return

    def sha256_of(self, key: str) -> str:
        return self._reread_sha256(key)

    def _errors(self, key: str) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _reread_sha256(self, key: str) -> str:
        raise NotImplementedError

    def copy_object(self, src_key: str, dst_key: str) -> None:
        self._copy(src_key, dst_key)

    def copy_verified(self, src_key: str, dst_key: str, sha256: str, *, proof: Sequence[int] | None = None) -> str:
        """One CopyObject asking S3 for the copy's SHA-256 (a full-object checksum S3 computes
        while copying): no read-back. Above 5 GiB, or without checksums (GCS), read back.
        (``proof``, a local file's fingerprint, means nothing to S3: ignored.)"""
        if not is_sha256_hex(sha256):
            raise ValueError(f"invalid sha256 {sha256!r} for {src_key}: expected 64 lowercase hex digits")
        actual = self._copy(src_key, dst_key) or self._reread_sha256(dst_key)
        return self._keep_copy_if(src_key, dst_key, sha256, actual)

    def _copy(self, src_key: str, dst_key: str) -> str | None:
        """Copy; returns the copy's SHA-256 hex when S3 computed it, else None."""
        src, dst = self._full(src_key), self._full(dst_key)
        with self._errors(src_key):
            size = self.client.head_object(Bucket=self.bucket, Key=src)["ContentLength"]
        source = {"Bucket": self.bucket, "Key": src}
        if size <= self.copy_threshold:
            checksum = {"ChecksumAlgorithm": "SHA256"} if self.checksums else {}
            with self._errors(dst_key):
                resp = self.client.copy_object(Bucket=self.bucket, Key=dst, CopySource=source, MetadataDirective="COPY", **checksum)
            value = resp.get("CopyObjectResult", {}).get("ChecksumSHA256") if checksum else None
            if not value or "-" in value:  # a composite "...-N" is not the object's SHA-256
                return None
            try:
                return base64.b64decode(value, validate=True).hex()
            except (binascii.Error, ValueError):
                return None
        part = max(self.copy_part_size, -(-size // MAX_PARTS))
        with self._errors(dst_key):
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=dst)["UploadId"]
        try:
            etags = {}
            for number, offset in enumerate(range(0, size, part), start=1):
                with self._errors(dst_key):
                    resp = self.client.upload_part_copy(
                        Bucket=self.bucket, Key=dst, UploadId=upload_id, PartNumber=number, CopySource=source,
                        CopySourceRange=f"bytes={offset}-{min(offset + part, size) - 1}",
                    )
                etags[number] = resp["CopyPartResult"]["ETag"]
            self.complete_multipart(dst_key, upload_id, etags)
        except BaseException:
            self.abort_multipart(dst_key, upload_id)
            raise
        log.info("copied %s to %s in %d parts", self.uri_for(src_key), self.uri_for(dst_key), len(etags))
        return None

    def _open_uploads(self, prefix: str) -> list[tuple[str, str, float]]:
        """From ListMultipartUploads; ``started`` is the initiation time S3 reports."""
        base = self._full(prefix.rstrip("/")) + ("/" if prefix.endswith("/") else "")
        skip = len(self.prefix) + 1 if self.prefix else 0
        with self._errors(prefix):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=base)
            return [(u["Key"][skip:], u["UploadId"], u["Initiated"].timestamp()) for page in pages for u in page.get("Uploads", ())]

    def delete_prefix(self, prefix: str) -> int:
        prefix = deletable_prefix(prefix)
        keys = self.list_keys(prefix)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._full(k)} for k in keys[start:start + 1000]]
            with self._errors(prefix):
                resp = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            if resp.get("Errors"):
                first = resp["Errors"][0]
                raise StagingError(f"deleting under {prefix!r}: {len(resp['Errors'])} objects refused, e.g. {first.get('Key')}: {first.get('Code')}")
        base = self._full(prefix.rstrip("/")) + ("/" if prefix.endswith("/") else "")
        for key, upload_id, _ in self._open_uploads(prefix):
            self.abort_multipart(key, upload_id)
        if keys:
            log.info("deleted %d objects under s3://%s/%s", len(keys), self.bucket, base)
        return len(keys)

