"""Resumable, verified, bandwidth-capped S3 multipart uploads.

One file goes up as an S3 multipart upload:

- **Parts** of ``part_size`` bytes (S3: >= 5 MiB except the last, at most 10,000 parts — the part
  size grows to fit), up to ``concurrency`` in flight. The file is read once, sequentially; each
  part's SHA-256 is computed from the bytes read and sent as its ``x-amz-checksum-sha256`` (S3
  validates the body against it on receipt) and checked against what the store echoes back.
- **Verification**: the SHA-256 of the whole file, computed from the same bytes, must equal the
  sidecar's (else the upload is aborted: the local file is not the recording it claims to be).
  After completion the store's checksum of the object — a composite ``sha256(part sums)-N``
  computed by the store from the parts it holds — must equal the composite of our part sums, so
  the stored bytes are exactly the bytes hashed. The object carries ``sha256`` and
  ``dataset-digest`` metadata. ``verify="reread"`` additionally downloads and hashes the object
  (for S3-compatible stores that keep checksums without validating them).
- **Resumable**: the upload id and every finished part (number, ETag, checksum) are written to a
  SQLite state file (``state_dir/uploads.db``) before the part counts as done. A killed process
  reruns the same call: it lists the parts the store holds, keeps every part whose checksum (or
  ETag) matches the local bytes, sends only the rest, and finishes a completed-but-unverified
  upload without sending anything.
- **Idempotent**: an object already stored and verified with the same SHA-256 is a no-op.
- **No strays**: multipart uploads for the same key that are not the one in the state (left by a
  process killed between CreateMultipartUpload and writing the state, or by an old layout) are
  aborted.
- **Bandwidth**: every block of every request is drawn from a :class:`~..bandwidth.RateLimiter`
  just before it goes on the wire (a botocore ``before-send`` hook wraps the body), so the cap
  holds for all uploads of the process together; progress (bytes, rate, ETA) is logged and
  exported as Prometheus metrics; measured link throughput feeds the bandwidth probe.

boto3 is imported only by the caller that builds the client; this module never imports it.

Over 400 lines on purpose: it is one resumable-upload algorithm (state, resume, strays,
verification) whose invariants are easier to check in one place; its state
(:mod:`.s3_upload_state`), wire bodies (:mod:`.s3_wire`) and progress live beside it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..bandwidth import RateLimiter, ThroughputLog, UploadQueue, shared_queue, shared_rate_limiter
from ..digest import DigestMismatch
from ..upload_progress import UploadProgress
from .s3_upload_state import PartRow, UploadRow, UploadStateStore
from .s3_wire import WireBody, WireSend, current_send, sending_as
from .staging import MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, MiB

log = logging.getLogger(__name__)

DEFAULT_PART_SIZE = 8 * MiB
DEFAULT_CONCURRENCY = 4
SHA256_METADATA = "sha256"

EventHook = Callable[[str, Mapping[str, Any]], None]


class UploadError(RuntimeError):
    """The upload could not be done; the state is kept so a rerun resumes where it stopped."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def composite_checksum(part_sums: list[bytes]) -> str:
    """S3's checksum of a multipart object: base64 SHA-256 over the concatenated raw part sums."""
    return _b64(hashlib.sha256(b"".join(part_sums)).digest())


def _strip_parts_suffix(checksum: str | None) -> tuple[str | None, int | None]:
    if not checksum:
        return None, None
    if "-" in checksum:
        value, _, n = checksum.rpartition("-")
        return value, int(n) if n.isdigit() else None
    return checksum, None


def part_layout(size: int, part_size: int) -> list[tuple[int, int, int]]:
    """``[(part_number, offset, length)]`` covering ``size`` bytes."""
    count = max(1, math.ceil(size / part_size))
    return [(n + 1, n * part_size, min(part_size, size - n * part_size)) for n in range(count)]


def fit_part_size(size: int, part_size: int) -> int:
    """``part_size``, grown (in MiB steps) so the file fits in S3's 10,000 parts."""
    if size > MAX_PARTS * MAX_PART_SIZE:
        raise ValueError(f"file of {size} bytes exceeds S3's largest object ({MAX_PARTS} parts of 5 GiB)")
    if math.ceil(size / part_size) <= MAX_PARTS:
        return part_size
    return math.ceil(size / MAX_PARTS / MiB) * MiB


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class UploadResult:
    bucket: str
    key: str
    size: int
    sha256: str
    checksum: str | None  # what the store reports (composite for multipart)
    parts_total: int
    parts_sent: int
    parts_reused: int  # held by the store from an interrupted run and kept
    bytes_sent: int
    seconds: float
    skipped: bool = False  # already stored and verified: nothing sent
    resumed: bool = False

    @property
    def bytes_per_second(self) -> float:
        return self.bytes_sent / self.seconds if self.seconds > 0 else 0.0

    def to_metadata(self) -> dict[str, Any]:
        """Numbers for a Dagster materialization / run metadata."""
        return {
            "size_bytes": self.size,
            "bytes_sent": self.bytes_sent,
            "upload_seconds": round(self.seconds, 3),
            "upload_bytes_per_second": round(self.bytes_per_second, 1),
            "parts_total": self.parts_total,
            "parts_sent": self.parts_sent,
            "parts_reused": self.parts_reused,
            "skipped": self.skipped,
            "resumed": self.resumed,
        }


@dataclass
class _Job:
    bucket: str
    key: str
    upload_id: str
    server_parts: dict[int, dict[str, Any]]
    recorded: dict[int, PartRow]
    progress: UploadProgress
    sums: dict[int, bytes] = field(default_factory=dict)
    etags: dict[int, str] = field(default_factory=dict)
    sent_parts: list[int] = field(default_factory=list)
    reused_parts: list[int] = field(default_factory=list)
    bytes_sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    failed: threading.Event = field(default_factory=threading.Event)


# --------------------------------------------------------------------------- the uploader


class MultipartUploader:
    def __init__(
        self,
        client: Any,
        *,
        state_dir: str | os.PathLike,
        part_size: int = DEFAULT_PART_SIZE,
        concurrency: int = DEFAULT_CONCURRENCY,
        rate_limiter: RateLimiter | None = None,
        queue: UploadQueue | None = None,
        throughput_log: ThroughputLog | str | os.PathLike | None = None,
        verify: Literal["checksum", "reread"] = "checksum",
        checksums: bool = True,
        progress_interval: float = 5.0,
        on_event: EventHook | None = None,
    ):
        """``checksums=False`` sends no ``x-amz-checksum-*`` headers (stores that reject them, e.g.
        GCS's XML API) and implies ``verify="reread"``."""
        if isinstance(part_size, bool) or not isinstance(part_size, int) or not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be an integer between {MIN_PART_SIZE} (5 MiB) and {MAX_PART_SIZE} (5 GiB), got {part_size!r}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 64:
            raise ValueError(f"concurrency must be an integer from 1 to 64, got {concurrency!r}")
        if verify not in ("checksum", "reread"):
            raise ValueError(f"verify must be 'checksum' or 'reread', got {verify!r}")
        self.client = client
        self.state = UploadStateStore(state_dir)
        self.part_size = part_size
        self.concurrency = concurrency
        self.rate_limiter = rate_limiter if rate_limiter is not None else shared_rate_limiter()
        self.queue = queue if queue is not None else shared_queue()
        if throughput_log is None:
            throughput_log = self.state.dir / "throughput.json"
        self.throughput = throughput_log if isinstance(throughput_log, ThroughputLog) else ThroughputLog(throughput_log)
        self.checksums = checksums
        self.verify = "reread" if not checksums else verify
        self.progress_interval = progress_interval
        self.on_event = on_event
        events = client.meta.events
        for op in ("UploadPart", "PutObject"):
            events.register(f"before-send.s3.{op}", self._before_send, unique_id=f"axon-uploader-{id(self)}-{op}")

    def close(self) -> None:
        self.state.close()

    # ----------------------------------------------------------------- hooks

    def _event(self, name: str, **info: Any) -> None:
        if self.on_event is not None:
            self.on_event(name, info)

    def _before_send(self, request: Any, **_: Any) -> None:
        send = current_send()
        if send is None or send.owner is not self or request.body is None:
            return None
        if not isinstance(request.body, WireBody):
            body = request.body
            if isinstance(body, (bytes, bytearray)):
                body = io.BytesIO(body)
            request.body = WireBody(body, send)
        return None  # None: botocore sends the request itself

    @contextmanager
    def sending(self, progress: UploadProgress, part_number: int | None = None) -> Iterator[WireSend]:
        """Route the requests this thread makes meanwhile through the cap, progress and metrics."""
        with sending_as(WireSend(self, progress, part_number)) as send:
            yield send

    def put_object_capped(self, label: str, size: int, **put_kwargs: Any) -> dict[str, Any]:
        """A single PutObject, sent through the cap like every part."""
        progress = UploadProgress(label, size, self.progress_interval)
        started = time.monotonic()
        with self.sending(progress) as send:
            response = self.client.put_object(**put_kwargs)
        self._record_throughput(send, time.monotonic() - started)
        return response

    def _record_throughput(self, send: WireSend, seconds: float) -> None:
        """One probe sample per request of at least 1 MiB (a small request measures latency, not
        the link)."""
        link_seconds = seconds - send.waited
        if send.sent >= MiB and link_seconds > 0:
            try:
                self.throughput.record(send.sent, link_seconds)
            except OSError as exc:  # the probe's data is best effort; never fail an upload for it
                log.debug("could not record throughput: %s", exc)

    # ----------------------------------------------------------------- public

    def verified_checksum(self, bucket: str, key: str, sha256: str, size: int) -> str | None:
        """The store checksum recorded when ``bucket/key`` was last uploaded and verified with
        ``sha256`` by this state dir, else None."""
        return self.state.completed_checksum(bucket, key, sha256, size)

    def upload_file(
        self,
        local_path: str | os.PathLike,
        bucket: str,
        key: str,
        *,
        sha256: str,
        metadata: Mapping[str, str] | None = None,
        known_checksum: str | None = None,
        priority: int = 0,
        created_at: float | None = None,
    ) -> UploadResult:
        """Upload ``local_path`` to ``bucket/key`` by multipart, verified against ``sha256`` (the
        sidecar's). Raises DigestMismatch (nothing left behind) if the local bytes or the stored
        object do not match; other failures keep the state for a resuming rerun."""
        path = Path(local_path)
        if not isinstance(key, str) or not key or key.startswith("/"):
            raise ValueError(f"invalid object key {key!r}")
        if not isinstance(sha256, str) or len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"invalid sha256 {sha256!r}: expected 64 lowercase hex digits")
        if not path.is_file():
            raise FileNotFoundError(f"file to upload not found: {path}")
        metadata = {**(metadata or {}), SHA256_METADATA: sha256}
        label = f"s3://{bucket}/{key}"
        with self.queue.slot(priority, created_at, label), self.state.key_lock(bucket, key):
            return self._upload(path, bucket, key, sha256, metadata, known_checksum, label)

    # ----------------------------------------------------------------- internals

    def _head(self, bucket: str, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=bucket, Key=key, **({"ChecksumMode": "ENABLED"} if self.checksums else {}))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def _already_stored(self, head: dict[str, Any] | None, bucket: str, key: str, sha256: str, size: int,
                        metadata: Mapping[str, str], known_checksum: str | None) -> bool:
        if head is None or head.get("ContentLength") != size:
            return False
        stored_meta = head.get("Metadata", {})
        if any(stored_meta.get(k) != v for k, v in metadata.items()):
            return False
        value, _ = _strip_parts_suffix(head.get("ChecksumSHA256"))
        if value is not None and value == _b64(bytes.fromhex(sha256)):
            return True  # a full-object SHA-256 the store computed
        for recorded in (known_checksum, self.state.completed_checksum(bucket, key, sha256, size)):
            if value is not None and recorded and _strip_parts_suffix(recorded)[0] == value:
                return True
        return False

    def _abort_strays(self, bucket: str, key: str, keep: str | None) -> int:
        aborted = 0
        for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=key):
            for upload in page.get("Uploads", ()):
                if upload["Key"] == key and upload["UploadId"] != keep:
                    self._abort(bucket, key, upload["UploadId"])
                    aborted += 1
        if aborted:
            log.info("aborted %d stray multipart upload(s) of s3://%s/%s", aborted, bucket, key)
        return aborted

    def _abort(self, bucket: str, key: str, upload_id: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise

    def _list_parts(self, bucket: str, key: str, upload_id: str) -> dict[int, dict[str, Any]] | None:
        """Parts the store holds for ``upload_id``; None if the upload no longer exists."""
        from botocore.exceptions import ClientError

        parts: dict[int, dict[str, Any]] = {}
        try:
            for page in self.client.get_paginator("list_parts").paginate(Bucket=bucket, Key=key, UploadId=upload_id):
                for p in page.get("Parts", ()):
                    parts[p["PartNumber"]] = p
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchUpload", "404"):
                return None
            raise
        return parts

    def _upload(self, path: Path, bucket: str, key: str, sha256: str, metadata: dict[str, str],
                known_checksum: str | None, label: str) -> UploadResult:
        started = time.monotonic()
        size = path.stat().st_size
        head = self._head(bucket, key)
        if self._already_stored(head, bucket, key, sha256, size, metadata, known_checksum):
            row = self.state.upload(bucket, key)
            self._abort_strays(bucket, key, keep=None)
            self.state.drop(bucket, key, row.upload_id if row else None)
            log.info("%s already stored and verified (sha256 %s); nothing sent", label, sha256[:12])
            return UploadResult(bucket, key, size, sha256, head.get("ChecksumSHA256"), 0, 0, 0, 0,
                                time.monotonic() - started, skipped=True)

        row = self.state.upload(bucket, key)
        server_parts: dict[int, dict[str, Any]] = {}
        resumed = False
        if row is not None and (row.sha256, row.size) != (sha256, size):
            log.info("%s: the state holds an upload of other content; aborting it", label)
            self._abort(bucket, key, row.upload_id)
            self.state.drop(bucket, key, row.upload_id)
            row = None
        if row is not None:
            listed = self._list_parts(bucket, key, row.upload_id)
            if listed is None:
                # Completed (killed before verification) or aborted behind our back.
                done = self._finish_completed(path, bucket, key, sha256, size, row, head, label, started)
                if done is not None:
                    return done
                self.state.drop(bucket, key, row.upload_id)
                row = None
            else:
                server_parts, resumed = listed, True
        self._abort_strays(bucket, key, keep=row.upload_id if row else None)

        if row is None:
            part_size = fit_part_size(size, self.part_size)
            kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "Metadata": metadata}
            if self.checksums:
                kwargs["ChecksumAlgorithm"] = "SHA256"
            upload_id = self.client.create_multipart_upload(**kwargs)["UploadId"]
            row = UploadRow(upload_id, sha256, size, part_size)
            self.state.start(bucket, key, row)
            self._event("created", upload_id=upload_id)
        recorded = self.state.parts(row.upload_id)
        layout = part_layout(size, row.part_size)
        if resumed:
            log.info("%s: resuming upload %s (%d of %d parts held by the store)", label, row.upload_id[:16], len(server_parts), len(layout))

        to_send = sum(length for n, _, length in layout if n not in server_parts)
        job = _Job(bucket, key, row.upload_id, server_parts, recorded, UploadProgress(label, to_send, self.progress_interval))
        full = self._send_parts(path, layout, job)
        if full != sha256:
            self._abort(bucket, key, row.upload_id)
            self.state.drop(bucket, key, row.upload_id)
            raise DigestMismatch(f"{path} read for upload to {label} (the file differs from its sidecar; upload aborted)", sha256, full)

        parts = [{"PartNumber": n, "ETag": job.etags[n], **({"ChecksumSHA256": _b64(job.sums[n])} if self.checksums else {})} for n, _, _ in layout]
        self.client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=row.upload_id, MultipartUpload={"Parts": parts})
        self._event("completed", upload_id=row.upload_id)
        expected = composite_checksum([job.sums[n] for n, _, _ in layout])
        checksum = self._verify_stored(bucket, key, sha256, size, expected, len(layout), label)
        self.state.complete(bucket, key, sha256, size, checksum, row.upload_id)
        self._event("verified", checksum=checksum)
        elapsed = time.monotonic() - started
        result = UploadResult(bucket, key, size, sha256, checksum, len(layout), len(job.sent_parts), len(job.reused_parts),
                              job.bytes_sent, elapsed, resumed=resumed)
        log.info(
            "uploaded %s: %d parts (%d sent, %d kept from an earlier run), %.1f MB sent in %.2fs (%.2f MB/s), verified %s",
            label, result.parts_total, result.parts_sent, result.parts_reused, result.bytes_sent / 1e6, elapsed,
            result.bytes_per_second / 1e6, checksum,
        )
        return result

    def _send_parts(self, path: Path, layout: list[tuple[int, int, int]], job: _Job) -> str:
        """Read the file once, in order; hash it whole; send (or keep) each part. Returns the
        file's SHA-256 hex."""
        full = hashlib.sha256()
        window = threading.BoundedSemaphore(self.concurrency + 1)  # parts held in memory
        failed = job.failed
        fd = os.open(path, os.O_RDONLY)
        try:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="axon-upload") as pool:
                futures = []
                for n, offset, length in layout:
                    window.acquire()
                    if failed.is_set():
                        window.release()
                        break
                    data = os.pread(fd, length, offset)
                    if len(data) != length:
                        window.release()
                        raise UploadError(f"{path} shrank while being uploaded (part {n}: read {len(data)} of {length} bytes)")
                    full.update(data)
                    future = pool.submit(self._part, job, n, data)

                    def done(f, _w=window, _failed=failed):
                        _w.release()
                        if f.exception() is not None:
                            _failed.set()

                    future.add_done_callback(done)
                    futures.append(future)
                for future in futures:
                    future.result()  # the first failure propagates; the state keeps finished parts
        finally:
            os.close(fd)
        return full.hexdigest()

    def _part(self, job: _Job, n: int, data: bytes) -> None:
        if job.failed.is_set():
            return  # another part failed: stop sending; the rerun resumes from the state
        try:
            self._part_inner(job, n, data)
        except BaseException:
            job.failed.set()
            raise

    def _part_inner(self, job: _Job, n: int, data: bytes) -> None:
        raw = hashlib.sha256(data).digest()
        b64 = _b64(raw)
        job.sums[n] = raw
        held = job.server_parts.get(n)
        if held is not None and self._reusable(held, job.recorded.get(n), data, b64):
            etag = held["ETag"]
            if n not in job.recorded:
                self.state.record_part(job.upload_id, n, PartRow(etag, b64, len(data)))
            with job.lock:
                job.etags[n] = etag
                job.reused_parts.append(n)
            return
        kwargs: dict[str, Any] = {
            "Bucket": job.bucket, "Key": job.key, "UploadId": job.upload_id, "PartNumber": n,
            "Body": data, "ContentLength": len(data),
        }
        if self.checksums:
            kwargs["ChecksumSHA256"] = b64
        started = time.monotonic()
        with self.sending(job.progress, n) as send:
            self._event("part_start", part=n)
            response = self.client.upload_part(**kwargs)
        self._record_throughput(send, time.monotonic() - started)
        if self.checksums and response.get("ChecksumSHA256") not in (None, b64):
            raise DigestMismatch(f"part {n} of s3://{job.bucket}/{job.key} (checksum the store computed)", b64, response["ChecksumSHA256"])
        etag = response["ETag"]
        self.state.record_part(job.upload_id, n, PartRow(etag, b64, len(data)))
        with job.lock:
            job.etags[n] = etag
            job.sent_parts.append(n)
            job.bytes_sent += len(data)
            done = len(job.etags)
        self._event("part_done", part=n, parts_done=done)

    @staticmethod
    def _reusable(held: Mapping[str, Any], recorded: PartRow | None, data: bytes, b64: str) -> bool:
        """Is the part the store holds exactly these bytes?"""
        if held.get("Size") != len(data):
            return False
        if held.get("ChecksumSHA256"):
            return held["ChecksumSHA256"] == b64
        if recorded is not None and recorded.etag == held["ETag"]:
            return recorded.checksum == b64
        return held["ETag"].strip('"') == hashlib.md5(data).hexdigest()

    def _finish_completed(self, path: Path, bucket: str, key: str, sha256: str, size: int, row: UploadRow,
                          head: dict[str, Any] | None, label: str, started: float) -> UploadResult | None:
        """The upload in the state no longer exists. If the object is there, it was completed by a
        run killed before verifying it: verify it now against the local file (read, not sent)."""
        if head is None or head.get("ContentLength") != size or head.get("Metadata", {}).get(SHA256_METADATA) != sha256:
            log.info("%s: upload %s is gone and no matching object exists; starting over", label, row.upload_id[:16])
            return None
        layout = part_layout(size, row.part_size)
        full = hashlib.sha256()
        sums = []
        with open(path, "rb") as fh:
            for _, _, length in layout:
                data = fh.read(length)
                full.update(data)
                sums.append(hashlib.sha256(data).digest())
        if full.hexdigest() != sha256:
            raise DigestMismatch(f"{path} (the file differs from its sidecar)", sha256, full.hexdigest())
        try:
            checksum = self._verify_stored(bucket, key, sha256, size, composite_checksum(sums), len(layout), label)
        except DigestMismatch:
            log.warning("%s: completed object does not verify; uploading again", label)
            return None
        self.state.complete(bucket, key, sha256, size, checksum, row.upload_id)
        self._abort_strays(bucket, key, keep=None)
        self._event("verified", checksum=checksum)
        log.info("%s: upload %s was completed by an interrupted run; verified now, nothing sent", label, row.upload_id[:16])
        return UploadResult(bucket, key, size, sha256, checksum, len(layout), 0, len(layout), 0, time.monotonic() - started, resumed=True)

    def _verify_stored(self, bucket: str, key: str, sha256: str, size: int, expected_composite: str, n_parts: int, label: str) -> str:
        """Compare the store's checksum with ours; on mismatch delete the object we just wrote
        (it is not the recording) and raise DigestMismatch."""
        head = self._head(bucket, key)
        problem = None
        checksum = None
        if head is None:
            problem = "object missing after completion"
        elif head.get("ContentLength") != size:
            problem = f"size {head.get('ContentLength')} != {size}"
        elif head.get("Metadata", {}).get(SHA256_METADATA) != sha256:
            problem = "sha256 metadata differs"
        elif self.verify == "reread":
            h = hashlib.sha256()
            body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
            for chunk in iter(lambda: body.read(MiB), b""):
                h.update(chunk)
            checksum = h.hexdigest()
            if checksum != sha256:
                problem = f"re-read sha256 {checksum}"
        else:
            checksum = head.get("ChecksumSHA256")
            value, parts = _strip_parts_suffix(checksum)
            if value != expected_composite or parts not in (None, n_parts):
                problem = f"store checksum {checksum} != composite of our part checksums {expected_composite}-{n_parts}"
        if problem:
            self._delete(bucket, key)
            raise DigestMismatch(f"{label} after upload ({problem}; the object was deleted)", sha256, checksum or "missing")
        return checksum or sha256

    def _delete(self, bucket: str, key: str) -> None:
        try:
            self.client.delete_object(Bucket=bucket, Key=key)
        except Exception as exc:  # noqa: BLE001 - reported, the mismatch is what the caller must see
            log.error("could not delete unverified object s3://%s/%s: %s", bucket, key, exc)
