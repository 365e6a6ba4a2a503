"""Admin batch review and dataset search, served by the control-plane API.

Pages (no build step; plain files of ``axon_dagster.web``): ``GET /admin`` (batch review of an
order + dataset search), ``GET /static/axon.css`` (the shared look, also used by ``/review``).

JSON under ``/api/v1`` (roles and sign-in: ``auth.py``; the actor recorded is the signed-in
principal — ``actor`` in a body is only read from a service token or the open embedded default):

- ``GET  /orders/{order_id}/review-policy`` · ``PUT`` it ``{actor, auto_approve_batches?, recording_template?}`` (before planning)
- ``GET  /orders/{order_id}/review-batches`` → batches with ``review_status``, ``released``, ``editable``, ``task_counts``
- ``PATCH /batches/{batch_id} {actor, skills?, task_count?, duration_seconds?, topics?}`` → edited batch (tasks re-planned)
- ``POST /batches/{batch_id}/approve|reject {actor, comment?}``
- ``POST /orders/{order_id}/batches {actor, skills, task_count, duration_seconds, topics?}`` → 201 the new batch
- ``GET  /audit?order_id=&entity_id=&limit=&offset=`` → who changed what, when
- ``GET  /dataset-search?scene=&sub_scene=&skill=..&status=&outcome=&order_id=&batch_id=&robot_id=&collector_id=&since=&until=&limit=&offset=``
  → ``{datasets: [... lineage ...], total, limit, offset}``
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from axon_dagster.control_plane import batch_review as br
from axon_dagster.control_plane import dataset_search as ds
from axon_dagster.domain.identity import recorded_actor
from axon_dagster.control_plane.errors import InvalidRequestError
from axon_dagster.web import STATIC_DIR

from .schemas import ActorBody, BatchDecisionBody, BatchEditBody, Limit, NewBatchBody, Offset, ReviewPolicyBody
from .auth import authorize, current_principal, page_principal, sign_in_redirect

API_PREFIX = "/api/v1"
WEB_DIR = STATIC_DIR.parent
_STATIC = {"axon.css": "text/css; charset=utf-8"}
_PAGE_ASSETS = {name: "text/javascript; charset=utf-8" for name in ("admin.js", "login.js", "review.js", "session.js")}
_NO_CACHE = {"cache-control": "no-cache"}
SEARCH_PARAMS = {*ds.FILTERS, "limit", "offset"}


def _actor(request: Request, body: ActorBody) -> str:
    """Who makes the change: the signed-in principal (``auth.authorize`` admitted it), never the body."""
    return recorded_actor(current_principal(request), body.actor)


def _uow(request: Request) -> Any:
    return request.app.state.uow_factory()


def _int(value: str | None, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidRequestError(f"{name} must be an integer, got {value!r}") from None


pages = APIRouter(include_in_schema=False)
router = APIRouter(prefix=API_PREFIX, tags=["admin"], dependencies=[Depends(authorize)])


@pages.get("/admin")
def admin_page(request: Request) -> Response:
    if page_principal(request) is None:
        return sign_in_redirect(request)
    return FileResponse(WEB_DIR / "admin.html", media_type="text/html; charset=utf-8", headers=_NO_CACHE)


@pages.get("/admin/{name}")
def admin_asset(name: str) -> Response:
    if name not in _PAGE_ASSETS:
        return JSONResponse({"detail": f"no asset {name!r}"}, status_code=404)
    return FileResponse(WEB_DIR / name, media_type=_PAGE_ASSETS[name], headers=_NO_CACHE)


@pages.get("/static/{name}")
def static_file(name: str) -> Response:
    if name not in _STATIC:  # a fixed list: the URL never names a path on disk
        return JSONResponse({"detail": f"no static file {name!r}"}, status_code=404)
    return FileResponse(STATIC_DIR / name, media_type=_STATIC[name], headers=_NO_CACHE)


@router.get("/orders/{order_id}/review-policy")
def get_review_policy(order_id: str, request: Request) -> Any:
    return br.review_policy(_uow(request), order_id)


@router.put("/orders/{order_id}/review-policy")
def put_review_policy(order_id: str, body: ReviewPolicyBody, request: Request) -> Any:
    return br.set_review_policy(
        _uow(request), order_id, _actor(request, body),
        auto_approve_batches=body.auto_approve_batches, recording_template=body.recording_template,
    )


@router.get("/orders/{order_id}/review-batches")
def review_batches(order_id: str, request: Request) -> Any:
    return br.list_review_batches(_uow(request), order_id)


@router.patch("/batches/{batch_id}")
def edit_batch(batch_id: str, body: BatchEditBody, request: Request) -> Any:
    changes = body.model_dump(exclude_unset=True, exclude={"actor"})
    return br.edit_batch(_uow(request), batch_id, _actor(request, body), changes)


@router.post("/batches/{batch_id}/approve")
def approve_batch(batch_id: str, request: Request, body: BatchDecisionBody | None = None) -> Any:
    body = body or BatchDecisionBody()
    return br.approve_batch(_uow(request), batch_id, _actor(request, body), body.comment or "")


@router.post("/batches/{batch_id}/reject")
def reject_batch(batch_id: str, request: Request, body: BatchDecisionBody | None = None) -> Any:
    body = body or BatchDecisionBody()
    return br.reject_batch(_uow(request), batch_id, _actor(request, body), body.comment or "")


@router.post("/orders/{order_id}/batches", status_code=201)
def add_batch(order_id: str, body: NewBatchBody, request: Request) -> Any:
    return JSONResponse(
        br.add_batch(_uow(request), order_id, _actor(request, body), skills=body.skills, task_count=body.task_count,
                     duration_seconds=body.duration_seconds, topics=body.topics or []),
        status_code=201,
    )


@router.get("/audit")
def audit(request: Request, order_id: str | None = None, entity_id: str | None = None, limit: Limit = 100, offset: Offset = 0) -> Any:
    return br.audit_log(_uow(request), order_id=order_id, entity_id=entity_id, limit=limit, offset=offset)


@router.get("/dataset-search")
def dataset_search(request: Request) -> Any:
    params = request.query_params
    unknown = sorted(set(params.keys()) - SEARCH_PARAMS)
    if unknown:
        raise InvalidRequestError(f"unknown query parameter(s): {', '.join(unknown)}; allowed: {', '.join(sorted(SEARCH_PARAMS))}")
    single = {k: params.get(k) for k in ds.FILTERS if k != "skill"}
    query = ds.build_query(skills=params.getlist("skill"), **single)
    return ds.search_datasets(_uow(request), query, limit=_int(params.get("limit"), "limit", 100), offset=_int(params.get("offset"), "offset", 0))
