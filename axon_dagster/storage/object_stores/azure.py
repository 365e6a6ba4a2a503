"""Azure Blob Storage backend of the object store, on Microsoft's maintained ``azure-storage-blob`` SDK.

URI form: ``az://<account>/<container>/<prefix>/<key>`` (:meth:`AzureBlobObjectStore.uri_for`;
``object_store_from_url`` accepts the same form without the key).

How a file goes up (the standards of ``uploader.py``, in Azure's terms):

- **Small files** (up to ``single_put_size``) go up in one Put Blob carrying the body's MD5
  (``validate_content``): Azure rejects a body that does not match it (``Md5Mismatch``) and echoes
  the MD5 of what it stored, which must equal ours.
- **Large files** go up as a block blob: blocks of ``block_size`` bytes staged with Put Block, each
  carrying its MD5 (validated by Azure on receipt), up to ``concurrency`` in flight, then one Put
  Block List (``commit_block_list``) that makes them the blob, with metadata ``sha256`` and
  ``dataset_digest``. A block id names the block's index, the block size and the first 128 bits of
  the block's own SHA-256, so ids are deterministic and content-addressed.
- **Resumable**: a rerun lists the blocks Azure holds for the blob (uncommitted blocks of a killed
  run survive until a commit or seven days) and sends only the blocks whose id is not held with the
  right size. Nothing is kept locally: the state lives in the store. A commit discards every
  uncommitted block, so nothing stray is left behind.
- **Idempotent**: a blob whose metadata ``sha256`` (and ``dataset_digest``) match and whose content
  is proven (below) is not sent again.
- **Verification** (``verify="blocks"``, the default; no download): after Put Blob, the MD5 Azure
  computed of the stored body equals ours; after a commit, the committed block list is exactly our
  ids and sizes in order (each block MD5-validated on receipt, each id naming that block's SHA-256),
  and the blob's metadata says ``sha256`` with the ETag the commit returned. The whole-file SHA-256
  is computed from the same bytes that were sent, and checked before the commit. The blob's ETag is
  then recorded as verified (in memory, and in a dataset record under ``.axon-meta/`` in the
  container): Azure changes the ETag on every write, so later checks (``verify_dataset``, a
  re-upload) compare ETags instead of downloading; a blob with an unknown ETag is downloaded and
  hashed. ``verify="reread"`` always downloads and hashes.
- **Bandwidth**: every request body (each block, each Put Blob, retries included) is drawn from the
  process's :func:`~.bandwidth.shared_rate_limiter` (or an injected :class:`~.bandwidth.RateLimiter`)
  just before it goes on the wire (an azure-core ``raw_request_hook``); the cap is kept at block
  granularity. Dataset uploads wait for a slot of the priority :class:`~.bandwidth.UploadQueue`.
  Progress (bytes, rate, ETA) is logged and counted in the ``axon_upload_*`` metrics.

Errors: 404 -> :class:`ObjectNotFound` (a missing container -> :class:`ObjectStoreError`),
connection refused / timeouts -> :class:`ObjectStoreUnavailable`, ``Md5Mismatch`` ->
:class:`DigestMismatch`, anything else from Azure -> :class:`ObjectStoreError`.

Block uploads are in :mod:`.azure_blocks`, robots' staging uploads in :mod:`.azure_staging`; this module
(about 450 lines: objects, datasets and their verification records) is the store itself.

Tested here against Azurite (Microsoft's emulator, ``scripts/azurite-deps.sh``) over HTTP, not
against Azure itself. ``azure-storage-blob`` is imported when a store is built, never at import.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from ..digest import DigestMismatch
from .base import (
    DIGEST_METADATA,
    RESERVED_PREFIX,
    SHA256_METADATA,
    DatasetSession,
    ObjectNotFound,
    ObjectStoreError,
    ObjectStoreUnavailable,
    validate_key,
    validate_prefix,
)
from .azure_blocks import DEFAULT_BLOCK_SIZE, MAX_BLOCK_SIZE, AzureBlocks, from_azure, to_azure
from .remote import upload_state_dir

log = logging.getLogger(__name__)

MiB = 1 << 20
MAX_SINGLE_PUT = 64 * MiB  # above this the SDK would split a Put Blob itself
DEFAULT_CONCURRENCY = 4

_CONTAINER = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


def validate_container(name: object) -> str:
    if not isinstance(name, str) or not _CONTAINER.match(name):
        raise ValueError(
            f"invalid Azure container name {name!r}: 3-63 characters of a-z, 0-9 and '-', "
            "starting and ending with a letter or digit, no '--'"
        )
    return name


def _retry_policy(base: type, retries: int, backoff: float) -> Any:
    """The SDK's exponential retry (timeouts, 5xx, connection errors), waiting ``backoff * 2**n``
    seconds (+-25 %) before retry ``n + 1``: the SDK's own formula starts at 15 s + 3 s."""

    class _Retry(base):  # type: ignore[misc, valid-type]
        def get_backoff_time(self, settings: dict[str, Any]) -> float:
            wait = backoff * 2 ** max(settings["count"] - 1, 0)
            return random.uniform(0.75 * wait, 1.25 * wait)

    return _Retry(initial_backoff=0, increment_base=2, retry_total=retries)


class AzureBlobObjectStore(AzureBlocks):
    """Objects in Azure container ``container`` under ``prefix``; see the module docstring.

    Give one of ``service_client`` (a ``BlobServiceClient``), ``connection_string``, or
    ``account_url`` with ``credential`` (an account key dict/``AzureNamedKeyCredential``, a SAS
    string, or a token credential). ``client_kwargs`` go to the ``BlobServiceClient`` (e.g. a
    ``transport``); a ``raw_request_hook`` there runs after the bandwidth hook."""

    def __init__(
        self,
        container: str,
        prefix: str = "",
        *,
        account_url: str | None = None,
        credential: Any = None,
        connection_string: str | None = None,
        service_client: Any = None,
        verify: Literal["blocks", "reread"] = "blocks",
        block_size: int = DEFAULT_BLOCK_SIZE,
        single_put_size: int | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        rate_limiter: Any = None,
        upload_queue: Any = None,
        throughput_log: Any = None,
        connection_timeout: float = 5,
        read_timeout: float = 60,
        retries: int = 3,
        retry_backoff: float = 1.0,
        progress_interval: float = 10.0,
        client_kwargs: Mapping[str, Any] | None = None,
    ):
        self.container = validate_container(container)
        prefix = prefix.strip("/")
        self.prefix = validate_key(prefix, "store prefix") if prefix else ""
        if verify not in ("blocks", "reread"):
            raise ValueError(f"verify must be 'blocks' or 'reread', got {verify!r}")
        if isinstance(block_size, bool) or not isinstance(block_size, int) or not 64 * 1024 <= block_size <= MAX_BLOCK_SIZE:
            raise ValueError(f"block_size must be an integer from 64 KiB to {MAX_BLOCK_SIZE // MiB} MiB, got {block_size!r}")
        single_put_size = block_size if single_put_size is None else single_put_size
        if isinstance(single_put_size, bool) or not isinstance(single_put_size, int) or not 0 <= single_put_size <= MAX_SINGLE_PUT:
            raise ValueError(f"single_put_size must be an integer from 0 to {MAX_SINGLE_PUT // MiB} MiB, got {single_put_size!r}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
        self.verify = verify
        self.block_size = block_size
        self.single_put_size = single_put_size
        self.concurrency = concurrency
        self.progress_interval = progress_interval
        self._rate_limiter = rate_limiter
        self._queue = upload_queue
        self._throughput = throughput_log if throughput_log is None or hasattr(throughput_log, "record") else None
        if throughput_log is not None and self._throughput is None:
            from ..bandwidth import ThroughputLog

            self._throughput = ThroughputLog(throughput_log)
        self._reports = threading.local()
        self._wire = threading.local()  # per request: time spent waiting for the rate limiter
        self._verified: dict[str, tuple[str, str]] = {}  # blob name -> (etag, sha256) proven to match
        self._verified_lock = threading.Lock()

        if service_client is None:
            # Lazily: robots import the storage package without the Azure SDK.
            from azure.storage.blob import BlobServiceClient, ExponentialRetry

            extra = dict(client_kwargs or {})
            user_hook = extra.pop("raw_request_hook", None)
            options: dict[str, Any] = {
                "connection_timeout": connection_timeout,
                "read_timeout": read_timeout,
                "retry_policy": _retry_policy(ExponentialRetry, retries, retry_backoff),
                "raw_request_hook": self._hook(user_hook),
                **extra,
            }
            if connection_string:
                service_client = BlobServiceClient.from_connection_string(connection_string, **options)
            elif account_url:
                service_client = BlobServiceClient(account_url, credential=credential, **options)
            else:
                raise ValueError("AzureBlobObjectStore needs service_client, connection_string or account_url")
        self.service = service_client
        self.account = service_client.account_name
        self.endpoint = service_client.url
        self.client = service_client.get_container_client(self.container)

    def __repr__(self) -> str:
        return f"AzureBlobObjectStore(account={self.account!r}, container={self.container!r}, prefix={self.prefix!r}, endpoint={self.endpoint!r})"

    # --- bandwidth and queue (resolved on first use: loading them registers the upload metrics)

    @property
    def rate_limiter(self) -> Any:
        if self._rate_limiter is None:
            from ..bandwidth import shared_rate_limiter

            self._rate_limiter = shared_rate_limiter()
        return self._rate_limiter

    @property
    def queue(self) -> Any:
        if self._queue is None:
            from ..bandwidth import shared_queue

            self._queue = shared_queue()
        return self._queue

    def _hook(self, user_hook: Callable[[Any], None] | None) -> Callable[[Any], None]:
        def on_request(pipeline_request: Any) -> None:
            request = pipeline_request.http_request
            if request.method == "PUT":
                n = int(request.headers.get("Content-Length") or 0)
                if n > 0:
                    started = time.monotonic()
                    self.rate_limiter.acquire(n)  # per attempt, so retries are capped too
                    self._wire.cap_wait = getattr(self._wire, "cap_wait", 0.0) + time.monotonic() - started
            if user_hook is not None:
                user_hook(pipeline_request)

        return on_request

    # --- names

    def uri_for(self, key: str) -> str:
        return f"az://{self.account}/{self.container}/{self._full(key)}"

    def _blob(self, name: str) -> Any:
        return self.client.get_blob_client(name)

    # --- simple objects

    def put_bytes(self, key: str, data: bytes) -> str:
        full = self._full(key)
        sha = hashlib.sha256(data).hexdigest()
        with self._errors(key):
            self._put_blob(full, data, {SHA256_METADATA: sha}, sha)
        return self.uri_for(key)

    def get_bytes(self, key: str) -> bytes:
        full = self._full(key)
        with self._errors(key):
            return self._blob(full).download_blob().readall()

    def exists(self, key: str) -> bool:
        return self._props(key) is not None

    def delete(self, key: str) -> bool:
        try:
            with self._errors(key):
                self._blob(self._full(key)).delete_blob()
        except ObjectNotFound:
            return False
        return True

    def list_keys(self, prefix: str = "") -> list[str]:
        prefix = validate_prefix(prefix)
        base = f"{self.prefix}/" if self.prefix else ""
        out: list[str] = []
        with self._errors(prefix or "(store root)"):
            for blob in self.client.list_blobs(name_starts_with=base + prefix):
                rel = blob.name[len(base):]
                if not any(seg.startswith(RESERVED_PREFIX) for seg in rel.split("/")):
                    out.append(rel)
        return sorted(out)

    # --- datasets

    def _upload_queue(self) -> Any:
        return self.queue

    STAT_NAMES = ("files_sent", "files_already_stored", "bytes_sent", "blocks_sent", "blocks_reused")

    def _open_session(self, key: str) -> DatasetSession:
        session = super()._open_session(key)
        session.record = self._load_record(key)
        return session

    def _load_record(self, key: str) -> dict[str, Any]:
        """The dataset record (files and verified ETags); seeds the verified-ETag registry."""
        try:
            with self._errors(key):
                record = json.loads(self._blob(self._record_key(key)).download_blob().readall())
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except ObjectNotFound:
            record = {}
        except ValueError:
            log.warning("dataset record %s is unreadable; verifying by re-reading", self._record_key(key))
            record = {}
        files, etags = record.get("files") or {}, record.get("etags") or {}
        with self._verified_lock:
            for rel, etag in etags.items():
                try:
                    name = self._full(f"{key}/{rel}")
                except ValueError:  # a record we did not write: ignore the entry, re-read instead
                    continue
                if rel in files and isinstance(etag, str):
                    self._verified.setdefault(name, (etag, files[rel]))
        return record

    def _record_dataset(self, key: str, files: Mapping[str, str], dataset_digest: str, session: DatasetSession) -> None:
        etags = {}
        with self._verified_lock:
            for rel, sha in files.items():
                held = self._verified.get(self._full(f"{key}/{rel}"))
                if held and held[1] == sha:
                    etags[rel] = held[0]
        record = {"dataset_digest": dataset_digest, "files": dict(files), "etags": etags}
        if session.record == record:
            return
        body = json.dumps(record, sort_keys=True).encode()
        with self._errors(key):
            self._put_blob(self._record_key(key), body, {}, hashlib.sha256(body).hexdigest(), content_type="application/json")
        session.record = record

    def _recorded_manifest(self, key: str) -> dict[str, str] | None:
        return dict(self._load_record(key).get("files") or {}) or None

    # --- per-object primitives

    def _props(self, key: str) -> Any:
        try:
            with self._errors(key):
                return self._blob(self._full(key)).get_blob_properties()
        except ObjectNotFound:
            return None

    def _mark_verified(self, name: str, etag: str, sha256: str) -> None:
        with self._verified_lock:
            self._verified[name] = (etag, sha256)

    def _reread_sha256(self, name: str) -> str:
        h = hashlib.sha256()
        with self._errors(name):
            for chunk in self._blob(name).download_blob().chunks():
                h.update(chunk)
        return h.hexdigest()

    def _proven_sha256(self, key: str, props: Any) -> str:
        """The SHA-256 of what the blob holds: its metadata's, when this ETag was verified to hold
        it; else downloaded and hashed (and the ETag recorded when it matches the metadata)."""
        name = self._full(key)
        claimed = from_azure(props.metadata).get(SHA256_METADATA)
        with self._verified_lock:
            held = self._verified.get(name)
        if self.verify == "blocks" and claimed and held == (props.etag, claimed):
            return claimed
        actual = self._reread_sha256(name)
        if actual == claimed:
            self._mark_verified(name, props.etag, actual)
        return actual

    def _stored_sha256(self, key: str, session: DatasetSession | None = None) -> str | None:
        props = self._props(key)
        return None if props is None else self._proven_sha256(key, props)

    def _holds(self, key: str, sha256: str, dataset_digest: str, session: DatasetSession) -> bool:
        props = self._props(key)
        if props is None:
            return False
        meta = from_azure(props.metadata)
        if meta.get(DIGEST_METADATA) != dataset_digest or meta.get(SHA256_METADATA) != sha256:
            return False
        held = self._proven_sha256(key, props) == sha256
        if held:
            session.count("files_already_stored", 1)
        return held

    def _download(self, key: str, dest: Path) -> Mapping[str, str]:
        with self._errors(key):
            downloader = self._blob(self._full(key)).download_blob()
            with open(dest, "wb") as fh:
                for chunk in downloader.chunks():
                    fh.write(chunk)
        return from_azure(downloader.properties.metadata)

    def _write_verified(self, local_path: Path, key: str, sha256: str, metadata: Mapping[str, str],
                        session: DatasetSession | None = None) -> str:
        name = self._full(key)
        count = session.count if session is not None else (lambda name, n: None)
        size = local_path.stat().st_size
        with self._errors(key):
            if size <= self.single_put_size:
                data = local_path.read_bytes()
                if (actual := hashlib.sha256(data).hexdigest()) != sha256:
                    raise DigestMismatch(f"local file {local_path} (not what its manifest says)", sha256, actual)
                self._put_blob(name, data, metadata, sha256)
                count("files_sent", 1)
                count("bytes_sent", size)
                count("blocks_sent", 1)
                return sha256
            return self._put_blocks(local_path, name, size, sha256, metadata, count)

    def _put_blob(self, name: str, data: bytes, metadata: Mapping[str, str], sha256: str, content_type: str | None = None) -> None:
        """One Put Blob with the body's MD5, verified by the MD5 Azure computed of what it stored."""
        from azure.storage.blob import ContentSettings

        md5 = hashlib.md5(data).digest()
        blob = self._blob(name)
        with self._measured(len(data)):
            resp = blob.upload_blob(
                data, length=len(data), overwrite=True, metadata=to_azure(metadata), validate_content=True,
                content_settings=ContentSettings(content_md5=bytearray(md5), content_type=content_type),
            )
        self._record_sent(len(data))
        stored_md5 = resp.get("content_md5")
        if self.verify == "reread" or not stored_md5:
            actual = self._reread_sha256(name)
            if actual != sha256:
                raise DigestMismatch(f"az://{self.account}/{self.container}/{name} after upload", sha256, actual)
        elif bytes(stored_md5) != md5:
            raise DigestMismatch(f"az://{self.account}/{self.container}/{name} after upload (MD5)", md5.hex(), bytes(stored_md5).hex())
        self._mark_verified(name, resp["etag"], sha256)

    @staticmethod
    def _record_sent(n: int) -> None:
        from .. import metrics

        metrics.record_sent(n)

    @property
    def throughput(self) -> Any:
        """Where measured link throughput goes: the log the bandwidth sensor's probe reads (the
        same file the S3 uploader writes, under ``AXON_UPLOAD_STATE_DIR``)."""
        if self._throughput is None:
            from ..bandwidth import ThroughputLog

            self._throughput = ThroughputLog(upload_state_dir() / "throughput.json")
        return self._throughput

    @contextmanager
    def _measured(self, n_bytes: int) -> Iterator[None]:
        """Time one request carrying ``n_bytes``; time spent waiting for the bandwidth cap is not
        link time. Requests under 1 MiB measure latency, not the link: not recorded."""
        self._wire.cap_wait = 0.0
        started = time.monotonic()
        yield
        link_seconds = time.monotonic() - started - self._wire.cap_wait
        if n_bytes >= MiB and link_seconds > 0:
            try:
                self.throughput.record(n_bytes, link_seconds)
            except OSError as exc:  # the probe's data is best effort; never fail an upload for it
                log.debug("could not record throughput: %s", exc)

    # --- errors

    @contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        """Translate azure-core errors into the store's own, so callers need not import the SDK."""
        from azure.core.exceptions import (
            AzureError,
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
            ServiceResponseError,
        )

        try:
            yield
        except ResourceNotFoundError as exc:
            if _code(exc) == "ContainerNotFound":
                raise ObjectStoreError(f"Azure container {self.container!r} does not exist (endpoint {self.endpoint})") from exc
            raise ObjectNotFound(f"no object at az://{self.account}/{self.container}/{self._name(key)}") from exc
        except ClientAuthenticationError as exc:
            raise ObjectStoreError(f"Azure refused the credentials for account {self.account!r}: {_code(exc) or exc.message}") from exc
        except HttpResponseError as exc:
            if _code(exc) in ("Md5Mismatch", "Crc64Mismatch"):
                raise DigestMismatch(f"az://{self.account}/{self.container}/{self._name(key)} (rejected on receipt)", "the body sent", _code(exc)) from exc
            raise ObjectStoreError(f"Azure request for {key!r} in container {self.container!r} failed: {_code(exc) or exc.status_code} {exc.reason or ''}".rstrip()) from exc
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise ObjectStoreUnavailable(f"Azure Blob endpoint {self.endpoint} unreachable: {exc.message}") from exc
        except AzureError as exc:
            raise ObjectStoreError(f"Azure request for {key!r} failed: {exc}") from exc

    def _name(self, key: str) -> str:
        base = f"{self.prefix}/" if self.prefix else ""
        return key if key.startswith(base) and base else base + key


def _code(exc: Any) -> str:
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")
