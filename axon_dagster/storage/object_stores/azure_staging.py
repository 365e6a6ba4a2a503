"""Staging uploads on Azure Blob Storage (:class:`~.staging.StagingUploads` for
:class:`~.azure.AzureBlobObjectStore`).

Azure has no multipart upload object; a block blob is built from staged blocks and one Put Block
List. So an "upload" here is an id we make up, recorded in a marker blob
``<prefix>/.axon-uploads/<upload_id>`` holding the key (that binds the id to the key, and makes an
unknown or finished upload refusable). Part ``n`` is the block ``<upload_id>-<n:05d>``; the robot
PUTs it to a SAS URL (``comp=block``, write permission on that one blob, expiring) with its
``Content-MD5``, which Azure checks on receipt. Put Block returns no ETag: the target's ``etag``
is the block id, which the robot reports back. Completion commits exactly the reported blocks, in
order, after checking each is held uncommitted with the right id; the marker is then removed.

Part URLs are signed with the account key (a connection string or ``AZURE_STORAGE_KEY``); a store
built from a SAS or a token credential cannot hand them out (user delegation SAS is not built).
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from .base import RESERVED_PREFIX
from .errors import ObjectNotFound, ObjectStoreError
from .remote import RemoteObjectStore
from .staging import (
    PartSpec,
    PartsRefused,
    PartTarget,
    StagingError,
    UnknownUpload,
    completion_parts,
    deletable_prefix,
    part_specs,
    validate_expiry,
)

log = logging.getLogger(__name__)

UPLOADS = f"{RESERVED_PREFIX}uploads"
COPY_POLL_SECONDS = 0.2
COPY_TIMEOUT_SECONDS = 3600.0


def staging_block_id(upload_id: str, number: int) -> str:
    """The block id of part ``number`` of an upload (every id of one upload has the same length)."""
    return f"{upload_id}-{number:05d}"


class AzureStaging(RemoteObjectStore):
    """The staging half of :class:`~.azure.AzureBlobObjectStore` (which gives ``service``,
    ``client``, ``account``, ``container``, ``_blob``, ``_errors`` and ``_reread_sha256``)."""

    service: Any
    client: Any
    account: str
    container: str

    def _blob(self, name: str) -> Any:
        raise NotImplementedError

    def _errors(self, key: str) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _reread_sha256(self, name: str) -> str:
        raise NotImplementedError

    # --- the upload marker

    def _marker(self, upload_id: str) -> str:
        base = f"{self.prefix}/" if self.prefix else ""
        return f"{base}{UPLOADS}/{upload_id}"

    def _check_upload(self, key: str, upload_id: str) -> str:
        """The blob name of ``key`` if ``upload_id`` is an open upload of it; else UnknownUpload."""
        name = self._full(key)
        if not isinstance(upload_id, str) or len(upload_id) != 32 or not all(c in "0123456789abcdef" for c in upload_id):
            raise UnknownUpload(f"no upload {str(upload_id)[:40]!r} for {self.uri_for(key)} (not an upload id of this store)")
        try:
            with self._errors(key):
                held = self._blob(self._marker(upload_id)).download_blob().readall().decode()
        except ObjectNotFound:
            raise UnknownUpload(f"no upload {upload_id} for {self.uri_for(key)} (completed, aborted or never started)") from None
        if held != name:
            raise UnknownUpload(f"upload {upload_id} is not an upload of {self.uri_for(key)}")
        return name

    def _uncommitted(self, name: str, upload_id: str) -> dict[str, int]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            _, uncommitted = self._blob(name).get_block_list("uncommitted")
        except ResourceNotFoundError:
            return {}
        return {b.id: b.size for b in uncommitted if b.id.startswith(f"{upload_id}-")}

    # --- the interface

    def start_multipart(self, key: str) -> str:
        name = self._full(key)
        upload_id = uuid.uuid4().hex
        with self._errors(key):
            self._blob(self._marker(upload_id)).upload_blob(name.encode(), overwrite=False)
        log.info("started upload %s of %s", upload_id, self.uri_for(key))
        return upload_id

    def part_targets(self, key: str, upload_id: str, parts: Iterable[PartSpec | tuple[int, int, int]], expires_s: int) -> list[PartTarget]:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        expires_s = validate_expiry(expires_s)
        specs = part_specs(parts)
        name = self._check_upload(key, upload_id)
        account_key = getattr(getattr(self.service, "credential", None), "account_key", None)
        if not account_key:
            raise StagingError(f"Azure part URLs are signed with the account key: build the store for {self.account!r} "
                               "from a connection string with AccountKey or from AZURE_STORAGE_KEY")
        sas = generate_blob_sas(
            self.account, self.container, name, account_key=account_key, permission=BlobSasPermissions(write=True),
            expiry=datetime.now(timezone.utc) + timedelta(seconds=expires_s),
        )
        url = self._blob(name).url.split("?", 1)[0]
        targets = []
        for p in specs:
            bid = staging_block_id(upload_id, p.number)
            wire_id = quote(base64.b64encode(bid.encode()).decode(), safe="")
            targets.append(PartTarget(p.number, f"{url}?comp=block&blockid={wire_id}&{sas}", etag=bid))
        return targets

    def list_parts(self, key: str, upload_id: str) -> dict[int, str]:
        try:
            name = self._check_upload(key, upload_id)
        except UnknownUpload:
            return {}
        return {int(bid.rsplit("-", 1)[1]): bid for bid in sorted(self._uncommitted(name, upload_id))}

    def complete_multipart(self, key: str, upload_id: str, parts: Mapping[int, str]) -> None:
        from azure.storage.blob import BlobBlock

        wanted = completion_parts(parts)
        name = self._check_upload(key, upload_id)
        held = self._uncommitted(name, upload_id)
        for number, etag in wanted:
            if etag != staging_block_id(upload_id, number) or etag not in held:
                raise PartsRefused(f"cannot complete {self.uri_for(key)}: part {number} with ETag {etag!r} is not held "
                                   f"(held: {', '.join(sorted(held)) or 'none'})")
        with self._errors(key):
            self._blob(name).commit_block_list([BlobBlock(block_id=etag) for _, etag in wanted])
            self._blob(self._marker(upload_id)).delete_blob()
        log.info("completed upload %s of %s from %d blocks", upload_id, self.uri_for(key), len(wanted))

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            name = self._check_upload(key, upload_id)
        except UnknownUpload:
            return
        with self._errors(key):
            self._blob(self._marker(upload_id)).delete_blob()
        # Uncommitted blocks go only with a commit (or after seven days): when the blob has no
        # committed content, commit an empty list and delete it; else leave them to expire.
        if self._uncommitted(name, upload_id) and not self.exists(key):
            try:
                with self._errors(key):
                    self._blob(name).commit_block_list([])
                    self._blob(name).delete_blob()
            except ObjectStoreError as exc:
                log.warning("aborted upload %s of %s; its blocks stay until Azure expires them: %s", upload_id, self.uri_for(key), exc)
        log.info("aborted upload %s of %s", upload_id, self.uri_for(key))

    def sha256_of(self, key: str) -> str:
        return self._reread_sha256(self._full(key))

    def copy_object(self, src_key: str, dst_key: str) -> None:
        src, dst = self._blob(self._full(src_key)), self._blob(self._full(dst_key))
        with self._errors(src_key):
            src.get_blob_properties()
        with self._errors(dst_key):
            dst.start_copy_from_url(src.url)
            deadline = time.monotonic() + COPY_TIMEOUT_SECONDS
            while (copy := dst.get_blob_properties().copy).status == "pending":
                if time.monotonic() > deadline:
                    dst.abort_copy(copy.id)
                    raise ObjectStoreError(f"copy of {self.uri_for(src_key)} to {self.uri_for(dst_key)} did not finish in {COPY_TIMEOUT_SECONDS:.0f}s")
                time.sleep(COPY_POLL_SECONDS)
        if copy.status != "success":
            raise ObjectStoreError(f"copy of {self.uri_for(src_key)} to {self.uri_for(dst_key)} ended {copy.status}: {copy.status_description}")

    def _open_uploads(self, prefix: str) -> list[tuple[str, str, float]]:
        """``(key, upload_id, started)`` of the open uploads whose key starts with ``prefix``."""
        base = f"{self.prefix}/" if self.prefix else ""
        with self._errors(prefix):
            markers = list(self.client.list_blobs(name_starts_with=f"{base}{UPLOADS}/"))
        out = []
        for marker in markers:
            try:
                with self._errors(prefix):
                    held = self._blob(marker.name).download_blob().readall().decode()
            except ObjectNotFound:
                continue
            if held.startswith(base + prefix):
                out.append((held[len(base):], marker.name.rsplit("/", 1)[1], marker.last_modified.timestamp()))
        return out

    def delete_prefix(self, prefix: str) -> int:
        prefix = deletable_prefix(prefix)
        keys = self.list_keys(prefix)
        for key in keys:
            try:
                with self._errors(key):
                    self._blob(self._full(key)).delete_blob()
            except ObjectNotFound:
                pass
        base = f"{self.prefix}/" if self.prefix else ""
        for key, upload_id, _ in self._open_uploads(prefix):
            self.abort_multipart(key, upload_id)
        if keys:
            log.info("deleted %d objects under az://%s/%s/%s", len(keys), self.account, self.container, base + prefix)
        return len(keys)

