"""The upload routes of the control-plane API (issue 13; use cases in ``control_plane.uploads``).

Admin (the bandwidth sensor):
- ``POST /api/v1/datasets/{dataset_id}/upload-grant {ttl_seconds?}`` -> 201 the grant (the same grant
  again when the dataset already holds an unexpired one)
- ``GET  /api/v1/upload-queue?limit=`` -> RECORDED gate-passed datasets (order priority, then age),
  active grants, robots with their reported uplink
- ``POST /api/v1/upload-grants/expire`` -> ``{"expired": n}`` (the API also does this every few seconds)
- ``POST /api/v1/datasets/{dataset_id}/publish-attempt`` -> the dataset, ``publish_attempts`` + 1

Robot (its bearer token):
- ``PUT  /api/v1/edge/uplink {mbps, windows: [{start, end}], timezone}``
- ``PUT  /api/v1/edge/recorder {reachable, state, disk_usage_gb, last_error, topic_counts, ...}``: its
  recorder as its edge agent last saw it (``recorder`` in ``GET /api/v1/robots``, with ``reported_at``)
- ``POST /api/v1/edge/uploads/{task_id}/plan {grant_id}`` -> part targets per file
- ``PUT  /api/v1/edge/uploads/{task_id}/parts/{number}?file=&upload_id=&offset=&size=&expires=&sig=`` (the
  file store's ingest endpoint: bearer token AND a valid signature; body streamed, at most ``size``)
- ``POST /api/v1/edge/uploads/{task_id}/complete {grant_id, files: {name: [{number, etag}]}}``
"""

from __future__ import annotations

import asyncio
import logging
import threading
from contextlib import suppress
from pathlib import Path
from typing import Any, Awaitable, Callable

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from axon_dagster.control_plane import robots, uploads
from axon_dagster.control_plane.datasets import dataset_publish_attempt
from axon_dagster.control_plane.errors import NotFoundError
from axon_dagster.control_plane.persistence import sqlite_directory
from axon_dagster.control_plane.views import DatasetView, UploadGrantView, UploadQueueView
from axon_dagster.domain import UploadRefused
from axon_dagster.settings.uploads import UploadApiSettings
from axon_dagster.storage.object_stores import (
    LocalDirObjectStore,
    ObjectStoreUnavailable,
    PartDigestMismatch,
    PartIncomplete,
    PartSignatureError,
    PartsRefused,
    PartTooLarge,
    StagingError,
    StagingUploads,
    UnknownUpload,
    load_signing_key,
    object_store_from_url,
    verify_part_signature,
)
from axon_dagster.storage.object_stores.signing import KEY_FILE_NAME

from . import schemas
from .asgi import INT64_MAX
from .metrics import ControlPlaneMetrics
from .responses import handler

log = logging.getLogger(__name__)

PARTS_PATH = r"^/api/v1/edge/uploads/[^/]+/parts/[^/]+$"  # streamed by the route itself (BodySizeLimit passes it)
_FLUSH_BYTES = 1 << 20  # one pwritev per MB of a part's body


class UploadsUnavailable(Exception):
    """The staging store or the signing key is not configured or cannot be reached (503)."""


class StagingArea:
    """The staging store of this API process, built on first use (an API that never sees an
    upload never touches the store), and the signing key of the file store's ingest URLs."""

    def __init__(self, settings: UploadApiSettings, database_url: str, store: StagingUploads | None = None):
        self.settings = settings
        self._database_url = database_url
        self._store = store
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def store(self) -> StagingUploads:
        with self._lock:
            if self._store is None:
                try:
                    self._store = object_store_from_url(self.settings.object_store_url, self.settings.endpoint_url)
                except (ValueError, ImportError) as exc:
                    raise UploadsUnavailable(f"the staging store cannot be built: {exc}") from None
            return self._store

    def signing_key(self) -> bytes:
        with self._lock:
            if self._key is None:
                try:
                    self._key = load_signing_key(self.settings.signing_key, self._key_file())
                except ValueError as exc:
                    raise UploadsUnavailable(str(exc)) from None
            return self._key

    def _key_file(self) -> Path | None:
        directory = sqlite_directory(self._database_url)
        return directory / KEY_FILE_NAME if directory is not None else None

    def for_plan(self, request: Request) -> StagingUploads:
        """The store, with the file store's ingest URLs pointing at this API."""
        store = self.store()
        if isinstance(store, LocalDirObjectStore):
            public = self.settings.public_api_url or str(request.base_url).rstrip("/")
            store.with_ingest(public, self.signing_key())
        return store


def install(app: Any, admin: APIRouter, edge: APIRouter, current_robot: Callable[[Request], Awaitable[str]],
            api_metrics: ControlPlaneMetrics) -> None:
    """Mount the upload routes on the admin and edge routers; register their errors."""
    area: StagingArea = app.state.staging
    uow_factory = app.state.uow_factory

    @admin.post("/datasets/{dataset_id}/upload-grant", status_code=201, response_model=UploadGrantView)
    def grant_upload(dataset_id: str, body: uploads.GrantRequest | None = None) -> Any:
        return uploads.grant_upload(uow_factory(), dataset_id, (body or uploads.GrantRequest()).ttl_seconds)

    @admin.get("/upload-queue", response_model=UploadQueueView)
    def upload_queue(limit: schemas.Limit = 1000) -> Any:
        return uploads.upload_queue(uow_factory(), limit)

    @admin.post("/upload-grants/expire")
    def expire_grants() -> dict[str, int]:
        return {"expired": uploads.expire_grants(uow_factory())}

    @admin.post("/datasets/{dataset_id}/publish-attempt", response_model=DatasetView)
    def publish_attempt(dataset_id: str) -> Any:
        return dataset_publish_attempt(uow_factory(), dataset_id)

    @edge.put("/uplink")
    async def report_uplink(body: uploads.UplinkReport, request: Request) -> Any:
        robot = await current_robot(request)
        return await run_in_threadpool(uploads.report_uplink, uow_factory(), robot, body)

    @edge.put("/recorder")
    async def report_recorder(body: robots.RecorderReport, request: Request) -> Any:
        robot = await current_robot(request)
        return await run_in_threadpool(robots.report_recorder, uow_factory(), robot, body)

    @edge.post("/uploads/{task_id}/plan")
    async def plan_upload(task_id: str, body: uploads.PlanRequest, request: Request) -> Any:
        robot = await current_robot(request)
        store = await run_in_threadpool(area.for_plan, request)
        return await run_in_threadpool(
            lambda: uploads.plan_upload(uow_factory(), store, robot, task_id, body.grant_id,
                                        part_size=area.settings.part_size or store.default_part_size)
        )

    @edge.post("/uploads/{task_id}/complete", response_model=DatasetView)
    async def complete_upload(task_id: str, body: uploads.CompleteRequest, request: Request) -> Any:
        robot = await current_robot(request)
        store = await run_in_threadpool(area.store)
        try:
            staged = await run_in_threadpool(uploads.complete_upload, uow_factory(), store, robot, task_id, body.grant_id, body.files)
        except UploadRefused:
            api_metrics.staging_results.labels(robot_id=robot, result="refused").inc()
            raise
        api_metrics.staging_results.labels(robot_id=robot, result="staged").inc()
        return staged

    @edge.put("/uploads/{task_id}/parts/{number}", responses={200: {"description": "the part is stored; ETag: what to complete it with"}})
    async def put_part(
        task_id: str,
        number: int,
        request: Request,
        file: str = Query(max_length=512),
        upload_id: str = Query(max_length=1024),
        offset: int = Query(ge=0, le=INT64_MAX),
        size: int = Query(ge=0, le=INT64_MAX),
        expires: int = Query(ge=0, le=INT64_MAX),
        sig: str = Query(max_length=128),
    ) -> Response:
        """The file store's ingest endpoint: one part of one staged file, exactly ``size`` bytes at
        ``offset``, streamed to disk (never buffered whole). Needs the robot's token and the plan's
        signature, made for this robot (it stands for the grant: no database read per part)."""
        robot = await current_robot(request)
        store = area.store()
        if not isinstance(store, LocalDirObjectStore):
            raise NotFoundError("ingest endpoint", "parts go to the object store's own URLs")
        verify_part_signature(area.signing_key(), robot_id=robot, task_id=task_id, name=file, upload_id=upload_id, number=number, offset=offset,
                              size=size, expires=expires, sig=sig)
        key = uploads.part_key(robot, task_id, file)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > size:
            raise PartTooLarge(f"part {number} of {file} is {declared} bytes, over its planned {size}")
        writer = await run_in_threadpool(store.open_part, key, upload_id, number, size, offset=offset,
                                         content_md5=request.headers.get("content-md5"))
        try:
            await _stream_into(request, writer)
            etag = await run_in_threadpool(writer.commit)
            api_metrics.part_bytes.labels(robot_id=robot).inc(size)
        finally:
            with suppress(Exception):
                writer.abort()
        return JSONResponse({"number": number, "etag": etag}, headers={"ETag": etag})

    app.add_exception_handler(PartSignatureError, handler(403))
    app.add_exception_handler(PartTooLarge, handler(413))
    app.add_exception_handler(PartIncomplete, handler(400))
    app.add_exception_handler(PartDigestMismatch, handler(400))
    app.add_exception_handler(PartsRefused, handler(409))
    app.add_exception_handler(UnknownUpload, handler(409))
    app.add_exception_handler(StagingError, handler(409))
    app.add_exception_handler(ObjectStoreUnavailable, handler(503))
    app.add_exception_handler(UploadsUnavailable, handler(503))


async def _stream_into(request: Request, writer: Any) -> None:
    """The request body into ``writer`` as it arrives, about 1 MB per write, written from the event
    loop itself as one plain HTTP PUT receiver does (``pwritev`` into the page cache: a fraction of
    a millisecond per MB; the file is flushed once, at completion). Handing each write to a worker
    thread cost more than the writing: the thread and the loop then take turns on the interpreter
    lock (up to its 5 ms switch interval per turn) and 1 GB took twice as long as the plain PUT.
    Only the embedded ``file://`` store takes parts here; S3 and Azure take them directly."""
    pending: list[bytes] = []
    held = 0
    async for chunk in request.stream():
        if not chunk:
            continue
        pending.append(chunk)
        held += len(chunk)
        if held >= _FLUSH_BYTES:
            writer.write(pending)
            pending, held = [], 0
    if pending:
        writer.write(pending)


async def sweep_grants_forever(uow_factory: Callable[[], Any], every_seconds: float) -> None:
    """Expire due grants every ``every_seconds`` (each API process; the writes are idempotent)."""
    while True:
        await asyncio.sleep(every_seconds)
        try:
            await run_in_threadpool(uploads.expire_grants, uow_factory())
        except Exception:  # a database hiccup: try again next round
            log.exception("expiring upload grants failed")
