"""Large files into Azure block blobs: blocks staged with Put Block (each with its MD5, checked by
Azure on receipt), content-addressed block ids so a rerun sends only what Azure does not hold,
one Put Block List, then the committed list and the blob's metadata verified (see the
:mod:`.azure` docstring for the whole scheme)."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from ..digest import DigestMismatch
from .base import DIGEST_METADATA, SHA256_METADATA
from .azure_staging import AzureStaging
from .errors import ObjectStoreError

log = logging.getLogger(__name__)

MiB = 1 << 20
DEFAULT_BLOCK_SIZE = 4 * MiB
MAX_BLOCK_SIZE = 4000 * MiB  # Azure's limit per block
MAX_BLOCKS = 50_000  # Azure's limit of committed blocks per blob

# Azure metadata names must be C# identifiers: "dataset-digest" is stored as "dataset_digest".
_TO_AZURE = {SHA256_METADATA: "sha256", DIGEST_METADATA: "dataset_digest"}
_FROM_AZURE = {v: k for k, v in _TO_AZURE.items()}


def block_id(index: int, block_size: int, block_sha256: str) -> str:
    """The block id of block ``index``: deterministic and content-addressed. All ids of a blob
    have the same length (50 bytes; Azure allows 64); the SDK base64-encodes them on the wire."""
    return f"{index:06d}-{block_size:010d}-{block_sha256[:32]}"


def to_azure(metadata: Mapping[str, str]) -> dict[str, str]:
    return {_TO_AZURE.get(k, k.replace("-", "_")): v for k, v in metadata.items()}


def from_azure(metadata: Mapping[str, str] | None) -> dict[str, str]:
    return {_FROM_AZURE.get(k.lower(), k): v for k, v in (metadata or {}).items()}



class AzureBlocks(AzureStaging):
    """The block upload of :class:`~.azure.AzureBlobObjectStore` (which gives the blob clients,
    the request accounting and the verified-ETag registry)."""

    block_size: int
    concurrency: int
    progress_interval: float
    account: str
    container: str
    verify: str

    def _measured(self, n_bytes: int) -> Any:
        raise NotImplementedError

    def _mark_verified(self, name: str, etag: str, sha256: str) -> None:
        raise NotImplementedError

    @staticmethod
    def _record_sent(n: int) -> None:
        raise NotImplementedError

    def _fit_block_size(self, size: int) -> int:
        block = self.block_size
        while -(-size // block) > MAX_BLOCKS:
            block *= 2
        if block > MAX_BLOCK_SIZE:
            raise ObjectStoreError(f"file of {size} bytes is too large for one Azure block blob")
        return block

    def _held_blocks(self, blob: Any) -> tuple[dict[str, int], list[tuple[str, int]]]:
        """Blocks Azure holds for the blob: ``({id: size} of all, [(id, size)] committed in order)``."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            committed, uncommitted = blob.get_block_list("all")
        except ResourceNotFoundError:
            return {}, []
        held = {b.id: b.size for b in uncommitted}
        held.update({b.id: b.size for b in committed})
        return held, [(b.id, b.size) for b in committed]

    def _put_blocks(self, path: Path, name: str, size: int, sha256: str, metadata: Mapping[str, str],
                    count: Callable[[str, int], None]) -> str:
        from azure.storage.blob import BlobBlock, ContentSettings

        from ..upload_progress import UploadProgress

        blob = self._blob(name)
        uri = f"az://{self.account}/{self.container}/{name}"
        block_size = self._fit_block_size(size)
        held, committed = self._held_blocks(blob)
        progress = UploadProgress(uri, size, self.progress_interval)
        ids: list[tuple[str, int]] = []
        whole, whole_md5 = hashlib.sha256(), hashlib.md5()
        sent = reused = 0
        failed: list[BaseException] = []
        slots = threading.Semaphore(self.concurrency + 1)  # blocks in memory at once

        def stage(bid: str, data: bytes) -> None:
            try:
                with self._measured(len(data)):
                    blob.stage_block(bid, data, length=len(data), validate_content=True)
            finally:
                slots.release()
            self._record_sent(len(data))
            progress.add(len(data))

        futures: list[Future] = []
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="azure-block") as pool, open(path, "rb") as fh:
            index = 0
            while True:
                data = fh.read(block_size)
                if not data:
                    break
                whole.update(data)
                whole_md5.update(data)
                bid = block_id(index, block_size, hashlib.sha256(data).hexdigest())
                ids.append((bid, len(data)))
                index += 1
                if held.get(bid) == len(data):
                    reused += 1
                    continue
                slots.acquire()
                if (bad := [f for f in futures if f.done() and f.exception() is not None]):
                    slots.release()
                    failed.append(bad[0].exception())  # type: ignore[arg-type]
                    break
                futures.append(pool.submit(stage, bid, data))
                sent += 1
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for f in futures:
                f.cancel()
        errors = failed + [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
        if errors:
            raise errors[0]
        if (actual := whole.hexdigest()) != sha256:
            raise DigestMismatch(f"local file {path} (not what its manifest says); nothing committed", sha256, actual)
        bytes_sent = sum(n for bid, n in ids if held.get(bid) != n)
        meta = to_azure(metadata)
        props = blob.get_blob_properties() if committed == ids else None
        if props is not None and from_azure(props.metadata).get(SHA256_METADATA) == sha256:
            etag = props.etag  # committed by a run killed before it verified: nothing to commit
            log.info("%s: blocks already committed; verifying", uri)
        else:
            resp = blob.commit_block_list(
                [BlobBlock(block_id=bid) for bid, _ in ids], metadata=meta,
                content_settings=ContentSettings(content_md5=bytearray(whole_md5.digest())),
            )
            etag = resp["etag"]
        self._verify_blocks(blob, uri, ids, sha256, etag)
        self._mark_verified(name, etag, sha256)
        count("files_sent", 1)
        count("bytes_sent", bytes_sent)
        count("blocks_sent", sent)
        count("blocks_reused", reused)
        log.info("%s; %d blocks sent, %d kept from an earlier run", progress.describe(), sent, reused)
        return sha256

    def _verify_blocks(self, blob: Any, uri: str, ids: list[tuple[str, int]], sha256: str, etag: str) -> None:
        committed, _ = blob.get_block_list("committed")
        props = blob.get_blob_properties()
        stored = from_azure(props.metadata).get(SHA256_METADATA) or "missing"
        if [(b.id, b.size) for b in committed] != ids or props.etag != etag:
            raise DigestMismatch(f"{uri} after commit (block list or ETag changed)", sha256, stored)
        if stored != sha256:
            raise DigestMismatch(f"{uri} after commit (metadata)", sha256, stored)
        if self.verify == "reread" and (actual := self._reread_sha256(blob.blob_name)) != sha256:
            raise DigestMismatch(f"{uri} after commit (re-read)", sha256, actual)
