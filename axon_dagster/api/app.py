"""The control-plane HTTP API (``/api/v1``): admins create and follow orders, robots pull their
tasks and push status events, the data flow records dataset steps. Entry point only: each route
parses its input, calls one service function and maps errors to HTTP status codes."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import logging
from contextlib import asynccontextmanager, suppress
from typing import Any, AsyncIterator

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
import anyio.to_thread
from starlette.concurrency import run_in_threadpool

from axon_dagster.domain import (
    ManualBatch,
    TaskTemplate,
)
from axon_dagster.domain.identity import Principal, PrincipalKind, Role, recorded_actor
from axon_dagster import control_plane as cp
from axon_dagster.control_plane.views import (
    BatchView,
    DatasetView,
    EdgeCacheUsageView,
    EventPage,
    OrderView,
    PlanView,
    RegisteredRobot,
    RobotView,
    TaskView,
)
from axon_dagster.settings import load_settings
from axon_dagster.settings.uploads import UploadApiSettings, load_upload_api_settings
from axon_dagster.storage.object_stores import StagingUploads
from axon_dagster.control_plane.persistence import SqlAlchemyUnitOfWork, UnitOfWorkFactory, check_schema, make_engine, ping
from axon_dagster.control_plane.persistence.engine import POOL_SIZE

from . import schemas
from .asgi import BodySizeLimit, SecurityHeaders
from .auth import Authenticator, accounts_api, authorize, bearer, current_principal, needs, session_api
from .auth import pages as auth_pages
from .review import router as review_router
from .admin import pages as admin_pages, router as admin_router
from . import edge_routes
from .fleet_sync import RevisionWatch, RobotTokens, WakeWatchOnWrites, flush_last_seen_forever, refresh_tokens_forever
from .responses import error_response, install_error_handlers, json_response
from . import uploads as uploads_api
from .metrics import ControlPlaneMetrics
from .uploads import StagingArea, sweep_grants_forever
from .openapi import install_openapi

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


class AssignmentsResponse(BaseModel):
    assignments: dict[str, str]


def create_app(database_url: str | None = None, admin_token: str | None = None, *, staging_store: StagingUploads | None = None,
               upload_settings: UploadApiSettings | None = None) -> FastAPI:
    """The API over the store at ``database_url`` (default ``AXON_DATABASE_URL``).

    ``admin_token`` (default ``AXON_ADMIN_TOKEN``; ``""`` forces none) guards the admin routes;
    without one they are open, which is for the embedded single-machine default only. Robots
    always authenticate with their own tokens. The database must be migrated
    (``axon_dagster.control_plane.persistence.upgrade``), else :class:`SchemaOutOfDateError` is raised here."""
    env = load_settings()
    settings = dataclasses.replace(
        env,
        database_url=database_url or env.database_url,
        admin_token=env.admin_token if admin_token is None else (admin_token or None),
    )
    engine = make_engine(settings.database_url)
    try:
        check_schema(engine)
    except Exception:
        engine.dispose()
        raise
    uow_factory = UnitOfWorkFactory(engine)
    api_metrics = ControlPlaneMetrics(uow_factory)  # axon_dagster.api.metrics
    registry = api_metrics.registry

    tokens = RobotTokens(uow_factory)  # api.fleet_sync: what keeps idle robots cheap
    last_seen = cp.LastSeen()
    watch = RevisionWatch(uow_factory)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        mode = "admin API OPEN (embedded mode)" if app.state.auth.open_mode() else "sign-in or service token required"
        log.info("control-plane API on %s, %s", engine.url.render_as_string(hide_password=True), mode)
        # Request threads = pooled connections: a request never opens a connection of its own.
        anyio.to_thread.current_default_thread_limiter().total_tokens = POOL_SIZE
        background = [asyncio.create_task(watch.run()), asyncio.create_task(flush_last_seen_forever(last_seen, uow_factory)),
                      asyncio.create_task(refresh_tokens_forever(tokens)),
                      asyncio.create_task(sweep_grants_forever(uow_factory, upload_config.grant_sweep_seconds))]
        try:
            yield
        finally:
            for task in background:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            with suppress(Exception):
                last_seen.flush(uow_factory())
            engine.dispose()

    app = FastAPI(title="axon-dagster control plane", version="1", lifespan=lifespan, redirect_slashes=False)
    app.state.settings = settings
    app.state.uow_factory = uow_factory
    app.state.revision_watch = watch
    app.state.metrics_registry = registry
    app.state.auth = Authenticator(settings, uow_factory)
    upload_config = upload_settings or load_upload_api_settings()
    app.state.staging = StagingArea(upload_config, settings.database_url, staging_store)
    # Part uploads stream through their own bounded route (api.uploads), not the JSON body limit.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, passthrough=re.compile(uploads_api.PARTS_PATH))  # type: ignore[arg-type]
    app.add_middleware(WakeWatchOnWrites, watch=watch, skip=re.compile(uploads_api.PARTS_PATH))  # type: ignore[arg-type]
    app.add_middleware(SecurityHeaders)  # type: ignore[arg-type]
    install_error_handlers(app)
    install_openapi(app)  # errors as {detail}, 401/403/404/409/413/422 documented

    def uow() -> SqlAlchemyUnitOfWork:
        return uow_factory()

    async def current_robot(request: Request) -> str:
        token = bearer(request)
        robot = tokens.cached(token)
        if robot is None:
            robot = await run_in_threadpool(tokens.resolve, token)
        last_seen.saw(robot)  # written in a batch every few seconds, never on the request path
        return robot

    admin = APIRouter(dependencies=[Depends(authorize)])  # the role each route needs: auth.needed_role
    edge = APIRouter(prefix="/edge")

    # ------------------------------------------------------------------ robots
    @admin.post("/robots", status_code=201, response_model=RegisteredRobot)
    def register_robot(body: schemas.RegisterRobot, u: SqlAlchemyUnitOfWork = Depends(uow)) -> Any:
        return cp.register_robot(u, body.robot_id, body.name)

    @admin.post("/robots/{robot_id}/token", response_model=RegisteredRobot)
    def rotate_robot_token(robot_id: str, body: schemas.RotateToken | None = None, u: SqlAlchemyUnitOfWork = Depends(uow)) -> Any:
        rotated = cp.rotate_robot_token(u, robot_id, (body or schemas.RotateToken()).overlap_seconds)
        tokens.forget(robot_id)  # this process at once; other processes within their token TTL
        return rotated

    @admin.post("/robots/{robot_id}/revoke", response_model=RobotView)
    def revoke_robot_tokens(robot_id: str, u: SqlAlchemyUnitOfWork = Depends(uow)) -> Any:
        revoked = cp.revoke_robot_tokens(u, robot_id)
        tokens.forget(robot_id)
        return revoked

    @admin.get("/robots", response_model=list[RobotView])
    def list_robots(u: SqlAlchemyUnitOfWork = Depends(uow)) -> Any:
        return cp.list_robots(u)

    # ------------------------------------------------------------------ orders and batches
    @admin.post("/orders", status_code=201, response_model=OrderView)
    def create_order(body: schemas.CreateOrder, u: SqlAlchemyUnitOfWork = Depends(uow), who: Principal = Depends(current_principal)) -> Any:
        return cp.create_order(
            u,
            body.order_id,
            body.scene,
            body.skills,
            sub_scene=body.sub_scene,
            requirements=body.requirements,
            priority=body.priority,
            created_by=body.created_by if who.kind is PrincipalKind.OPEN else recorded_actor(who, body.created_by or None, "created_by"),
        )

    @admin.get("/orders", response_model=list[OrderView])
    def list_orders(limit: schemas.Limit = 100, offset: schemas.Offset = 0, u: SqlAlchemyUnitOfWork = Depends(uow)) -> Any:
        return cp.list_orders(u, limit=limit, offset=offset)

    @admin.get("/orders/{order_id}", response_model=OrderView)
    def get_order(order_id: str, u: SqlAlchemyUnitOfWork = Depends(uow)) -> Any:
        return cp.get_order(u, order_id)

    @admin.post("/orders/{order_id}/plan", status_code=201, response_model=PlanView)
    def plan_order(order_id: str, body: schemas.PlanOrder, u: SqlAlchemyUnitOfWork = Depends(uow)) -> Any:
        manual = [
            ManualBatch(
                skills=tuple(m.skills),
                task_count=m.task_count,
                duration_seconds=m.duration_seconds,
                topics=tuple(m.topics) if m.topics is not None else None,
            )
            for m in body.manual_batches or []
        ]
        template = TaskTemplate(task_count=body.task_count, duration_seconds=body.duration_seconds, topics=tuple(body.topics))
        return json_response(PlanView, cp.plan_order(u, order_id, body.strategy, template, manual), status_code=201)

    @admin.post("/orders/{order_id}/dispatch", response_model=AssignmentsResponse)
    def dispatch_order(order_id: str, body: schemas.DispatchOrder | None = None, u: SqlAlchemyUnitOfWork = Depends(uow)) -> Any:
        return {"assignments": cp.dispatch_order(u, order_id, body.robot_ids if body else None)}

    @admin.get("/batches", response_model=list[BatchView])
    def list_batches(order_id: str | None = None, u: SqlAlchemyUnitOfWork = Depends(uow)) -> Any:
        return cp.list_batches(u, order_id)

    @admin.get("/batches/{batch_id}", response_model=BatchView)
    def get_batch(batch_id: str, u: SqlAlchemyUnitOfWork = Depends(uow)) -> Any:
        return cp.get_batch(u, batch_id)

    # ------------------------------------------------------------------ tasks and events
    @admin.get("/tasks", response_model=list[TaskView])
    def list_tasks(
        order_id: str | None = None,
        batch_id: str | None = None,
        robot_id: str | None = None,
        status: str | None = None,
        limit: schemas.Limit = 100,
        offset: schemas.Offset = 0,
        u: SqlAlchemyUnitOfWork = Depends(uow),
    ) -> Any:
        tasks = cp.list_tasks(u, order_id=order_id, batch_id=batch_id, robot_id=robot_id, status=status, limit=limit, offset=offset)
        return json_response(list[TaskView], tasks)

    @admin.get("/tasks/{task_id}", response_model=TaskView)
    def get_task(task_id: str, u: SqlAlchemyUnitOfWork = Depends(uow)) -> Any:
        return cp.get_task(u, task_id)

    @admin.post("/tasks/{task_id}/transition", response_model=TaskView)
    def transition_task(task_id: str, body: schemas.TransitionTask, u: SqlAlchemyUnitOfWork = Depends(uow)) -> Any:
        return cp.transition_task(u, task_id, body.status, reason=body.reason, data=body.data)

    @admin.get("/events", response_model=EventPage)
    def events_after(after: schemas.Cursor = 0, limit: schemas.Limit = 100, u: SqlAlchemyUnitOfWork = Depends(uow)) -> Any:
        return json_response(EventPage, cp.events_after(u, after, limit))

    # ------------------------------------------------------------------ datasets
    @admin.get("/datasets", response_model=list[DatasetView])
    def list_datasets(
        status: str | None = None, outcome: str | None = None, limit: schemas.Limit = 100, offset: schemas.Offset = 0, u: SqlAlchemyUnitOfWork = Depends(uow)
    ) -> Any:
        return cp.list_datasets(u, status=status, outcome=outcome, limit=limit, offset=offset)

    @admin.get("/datasets/{dataset_id}", response_model=DatasetView)
    def get_dataset(dataset_id: str, u: SqlAlchemyUnitOfWork = Depends(uow)) -> Any:
        return cp.get_dataset(u, dataset_id)

    @admin.post("/datasets/{dataset_id}/cached", response_model=DatasetView)
    def dataset_cached(dataset_id: str, body: schemas.DatasetCached, u: SqlAlchemyUnitOfWork = Depends(uow)) -> Any:
        return cp.dataset_cached(u, dataset_id, body.task_id, body.cache_path, body.dataset_digest, body.size_bytes)

    @admin.post("/datasets/{dataset_id}/inspection", response_model=DatasetView)
    def dataset_inspected(dataset_id: str, body: schemas.DatasetInspected, u: SqlAlchemyUnitOfWork = Depends(uow)) -> Any:
        return cp.dataset_inspected(u, dataset_id, body.score, body.outcome, body.report)

    @admin.post("/datasets/{dataset_id}/review", response_model=DatasetView)
    @needs(Role.REVIEWER)
    def review_dataset(
        dataset_id: str, body: schemas.DatasetReview, u: SqlAlchemyUnitOfWork = Depends(uow), who: Principal = Depends(current_principal)
    ) -> Any:
        # The signed-in person is the reviewer; a body naming someone else is refused (403).
        return cp.review_dataset(u, dataset_id, recorded_actor(who, body.reviewer, "reviewer"), body.approve, body.comment)

    @admin.post("/datasets/{dataset_id}/upload-started", response_model=DatasetView)
    def dataset_upload_started(dataset_id: str, u: SqlAlchemyUnitOfWork = Depends(uow)) -> Any:
        return cp.dataset_upload_started(u, dataset_id)

    @admin.post("/datasets/{dataset_id}/upload-failed", response_model=DatasetView)
    def dataset_upload_failed(dataset_id: str, body: schemas.DatasetUploadFailed, u: SqlAlchemyUnitOfWork = Depends(uow)) -> Any:
        return cp.dataset_upload_failed(u, dataset_id, body.reason)

    @admin.post("/datasets/{dataset_id}/uploaded", response_model=DatasetView)
    def dataset_uploaded(dataset_id: str, body: schemas.DatasetUploaded, u: SqlAlchemyUnitOfWork = Depends(uow)) -> Any:
        return cp.dataset_uploaded(u, dataset_id, body.cloud_uri, body.dataset_digest)

    # ------------------------------------------------------------------ robots' edge caches (each robot reports its own: edge_routes)
    @admin.get("/edge-caches", response_model=list[EdgeCacheUsageView])
    def list_cache_usage(u: SqlAlchemyUnitOfWork = Depends(uow)) -> Any:
        return cp.list_cache_usage(u)

    # ------------------------------------------------------------------ robot side (the hot path: edge_routes)
    edge_routes.install(edge, current_robot, watch, uow_factory, api_metrics, upload_config.max_file_bytes)

    uploads_api.install(app, admin, edge, current_robot, api_metrics)  # grants, uplinks, upload plans, part ingest

    # ------------------------------------------------------------------ health and metrics (no auth)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    def readyz() -> Response:
        """Ready when the database answers (the readiness probe: a replica that cannot reach it
        leaves the Service instead of failing requests)."""
        try:
            ping(engine)
        except Exception as exc:
            log.warning("not ready: database unreachable: %s", exc)
            return error_response(503, f"database unreachable: {exc.__class__.__name__}")
        return JSONResponse({"status": "ready", "worker": os.getpid()})  # which uvicorn worker answered

    def metrics() -> Response:
        with suppress(Exception):  # this process's robots' last-seen times, fresh for the scrape
            last_seen.flush(uow_factory())
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    # First: the routes every robot calls all the time are matched before the ~100 others.
    app.include_router(edge, prefix=API_PREFIX)
    # Served at the root (where probes and Prometheus look) and under the API prefix.
    for prefix in ("", API_PREFIX):
        app.add_api_route(f"{prefix}/healthz", healthz, methods=["GET"], include_in_schema=not prefix)
        app.add_api_route(f"{prefix}/readyz", readyz, methods=["GET"], include_in_schema=not prefix, responses=_READY_RESPONSES)
        app.add_api_route(f"{prefix}/metrics", metrics, methods=["GET"], include_in_schema=not prefix, response_class=PlainTextResponse)

    app.include_router(auth_pages)  # /login
    app.include_router(session_api)  # /api/v1/auth/login|logout|me
    app.include_router(accounts_api)  # /api/v1/accounts (admin)
    app.include_router(admin, prefix=API_PREFIX)
    app.include_router(review_router)  # /review pages + /api/v1 review routes (own admin guard)
    app.include_router(admin_pages)  # /admin page, /static/axon.css
    app.include_router(admin_router)  # batch review, audit, dataset search (own admin guard)
    return app


_READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {"description": "the database does not answer", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
}
