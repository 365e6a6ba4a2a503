"""Human review, served by the control-plane API.

- ``GET /review?scene=&sub_scene=&skill=..&robot_id=&since=``: the reviewer's queue — every needs_review dataset with its QC report, a per-topic
  rate-over-time plot drawn from the rate series stored with the report, its metadata and lineage (order, batch, task, robot,
  collector), and approve / reject with a comment and the reviewer's identity. The page posts to
  the existing ``POST /api/v1/datasets/{id}/review``; a decision is final (a second one: 409).
  A GET filter form narrows the queue with the dataset-search filters (so a filtered queue is a
  shareable URL); they are validated by ``dataset_search.build_query`` (a bad one: 422, named).
- ``GET /review/{dataset_id}``: one dataset, decided or not.
- ``GET /api/v1/review/queue`` (same filters), ``GET /api/v1/review/decisions?after=`` (the review-decision
  sensor's feed), ``POST /api/v1/datasets/{id}/disposal`` (record archive/delete of a rejected
  dataset), ``GET /api/v1/datasets/{id}/rate-plot.svg``.

Plain HTML and a few lines of vanilla JS (``web/review.js``); no build step. Pages need a signed-in
viewer (else they send you to ``/login``); deciding needs the reviewer role, and the decision records
the signed-in person (``auth.py``), never a name in the request.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Annotated, Any, Mapping

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict

from axon_dagster.control_plane import dataset_search as ds
from axon_dagster.control_plane import review as rv
from axon_dagster.domain.identity import Principal, PrincipalKind, Role, allows
from axon_dagster.control_plane.errors import InvalidRequestError
from axon_dagster.control_plane.views import DatasetView
from axon_dagster.control_plane.persistence.review_repositories import DatasetQuery

from .schemas import Limit, Offset
from .auth import authorize, page_principal, sign_in_redirect
from .rate_plot import rate_plot_svg

API_PREFIX = "/api/v1"
SHARED_CSS = Path(__file__).resolve().parent.parent / "web" / "static" / "axon.css"
SHARED_CSS_URL = "/static/axon.css"
# The dataset-search filters that make sense on the needs_review queue (status/outcome are fixed there).
QUEUE_FILTERS = ("scene", "sub_scene", "skill", "robot_id", "since")
QUEUE_PARAMS = frozenset(QUEUE_FILTERS) | {"limit", "offset"}


class DisposalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: str


def _uow(request: Request) -> Any:
    return request.app.state.uow_factory()


def _queue_query(request: Request) -> DatasetQuery:
    """The queue filters of the request, validated by the dataset search's own rules."""
    params = request.query_params
    unknown = sorted(set(params.keys()) - QUEUE_PARAMS)
    if unknown:
        raise InvalidRequestError(f"unknown query parameter(s): {', '.join(unknown)}; allowed: {', '.join(sorted(QUEUE_PARAMS))}")
    single = {k: params.get(k) for k in QUEUE_FILTERS if k != "skill"}
    return ds.build_query(skills=params.getlist("skill"), **single)


router = APIRouter(tags=["review"])


@router.get("/review", response_class=HTMLResponse, include_in_schema=False)
def review_page(request: Request, limit: int = 50, offset: int = 0) -> Response:
    who = page_principal(request)
    if who is None:
        return sign_in_redirect(request)
    form = _filter_form(request)
    try:
        query = _queue_query(request)
    except InvalidRequestError as refused:
        body = (
            f'<h1>Review queue</h1>{form}<p class="error filter-error" role="alert">Bad filter: {_e(refused)}</p>'
            '<div id="queue"></div>'
        )
        return HTMLResponse(_page("Review queue", body, request), status_code=422)
    items = rv.review_queue(_uow(request), limit=limit, offset=offset, query=query)
    filtered = query != DatasetQuery()
    empty = "No datasets matching these filters are waiting for review." if filtered else "No datasets are waiting for review."
    may_decide = allows(who.role, Role.REVIEWER)
    cards = "".join(_card(i, may_decide) for i in items) or f'<p class="empty">{empty}</p>'
    count = f"{len(items)} waiting{', filtered' if filtered else ''}"
    body = f'<h1>Review queue <small>({count})</small></h1>{form}{_identity(who)}<div id="queue">{cards}</div>'
    return HTMLResponse(_page("Review queue", body, request))


@router.get("/review/{dataset_id}", response_class=HTMLResponse, include_in_schema=False)
def review_one(dataset_id: str, request: Request) -> Response:
    who = page_principal(request)
    if who is None:
        return sign_in_redirect(request)
    item = rv.review_item(_uow(request), dataset_id)
    card = _card(item, allows(who.role, Role.REVIEWER))
    body = f'<p><a href="/review">&larr; review queue</a></p><h1>Dataset {html.escape(item.dataset.dataset_id)}</h1>{_identity(who)}{card}'
    return HTMLResponse(_page(f"Review {item.dataset.dataset_id}", body, request))


api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(authorize)], tags=["review"])


@api.get("/review/queue", response_model=list[rv.ReviewItem])
def review_queue(request: Request, limit: Limit = 50, offset: Offset = 0) -> Any:
    return rv.review_queue(_uow(request), limit=limit, offset=offset, query=_queue_query(request))


@api.get("/review/decisions", response_model=rv.DecisionPage)
def review_decisions(request: Request, after: Annotated[str, Query(max_length=256)] = "", limit: Limit = 100) -> Any:
    return rv.decisions_after(_uow(request), after=after, limit=limit)


@api.post("/datasets/{dataset_id}/disposal", response_model=DatasetView)
def dispose_rejected(dataset_id: str, body: DisposalBody, request: Request) -> Any:
    return rv.dispose_rejected(_uow(request), dataset_id, body.policy)


@api.get("/datasets/{dataset_id}/rate-plot.svg")
def rate_plot(dataset_id: str, request: Request) -> Response:
    item = rv.review_item(_uow(request), dataset_id)
    return Response(_plot(item), media_type="image/svg+xml")


router.include_router(api)


# ---------------------------------------------------------------------------------- rendering


def _filter_form(request: Request) -> str:
    """A GET form: submitting it puts the filters in the URL (a shareable filtered queue)."""
    params = request.query_params
    labels = {"scene": "Scene", "sub_scene": "Sub-scene", "robot_id": "Robot", "since": "Since"}
    fields = []
    for name in QUEUE_FILTERS:
        if name == "skill":
            skills = params.getlist("skill") or [""]
            fields += [
                f'<label>Skill <input id="filter-skill" name="skill" value="{_e(v)}" placeholder="e.g. pick"></label>' if i == 0
                else f'<label>Skill <input name="skill" value="{_e(v)}"></label>'
                for i, v in enumerate(skills)
            ]
            continue
        hint = ' placeholder="2026-11-01 or ISO time"' if name == "since" else ""
        fields.append(f'<label>{labels[name]} <input id="filter-{name}" name="{name}" value="{_e(params.get(name, ""))}"{hint}></label>')
    return (
        f'<form id="filters" method="get" action="/review">{"".join(fields)}'
        '<button type="submit" id="filter-button">Filter</button> <a href="/review">clear filters</a></form>'
    )


def _plot(item: rv.ReviewItem) -> str:
    # From the series the data flow stored with the report: the API reads no recording (it runs
    # on another machine than the data flow's runs, and a published dataset's staging copy is gone).
    return rate_plot_svg((item.dataset.inspection_report or {}).get("rate_series"))


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)[:200]
    return "" if value is None else str(value)


def _rows(pairs: list[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pairs)


def _report_html(report: Mapping[str, Any] | None) -> str:
    if not report:
        return '<p class="muted">No inspection report was recorded.</p>'
    checks = report.get("checks") or []
    rows = "".join(
        f'<tr class="{"pass" if c.get("passed") else "fail"}"><td>{_e(c.get("name"))}</td>'
        f'<td>{"pass" if c.get("passed") else "FAIL"}</td><td>{_e(_fmt(c.get("value")))}</td>'
        f'<td>{_e(_fmt(c.get("threshold")))}</td><td>{_e(c.get("detail", ""))}</td></tr>'
        for c in checks
    )
    topics = report.get("per_topic") or {}
    topic_rows = "".join(
        f"<tr><td>{_e(t)}</td><td>{_e(s.get('count'))}</td><td>{_e(_fmt(s.get('rate_hz')))}</td>"
        f"<td>{_e(_fmt(s.get('max_gap_s')))}</td><td>{_e(s.get('lost_messages', ''))}</td></tr>"
        for t, s in sorted(topics.items())
        if isinstance(s, Mapping)
    )
    return (
        f'<table class="checks"><thead><tr><th>check</th><th>result</th><th>value</th><th>threshold</th><th>detail</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
        f'<table class="topics"><thead><tr><th>topic</th><th>messages</th><th>rate Hz</th><th>max gap s</th><th>lost</th></tr></thead>'
        f"<tbody>{topic_rows}</tbody></table>"
    )


def _card(item: rv.ReviewItem, may_decide: bool) -> str:
    d, lin = item.dataset, item.lineage
    report = d.inspection_report or {}
    decided = d.reviewed_by is not None
    meta = _rows(
        [
            ("status", d.status),
            ("QC score", f"{d.qc_score:.3f}" if d.qc_score is not None else "—"),
            ("QC outcome", d.qc_outcome),
            ("duration s", _fmt(report.get("duration_s"))),
            ("messages", report.get("row_count")),
            ("size bytes", d.size_bytes),
            ("digest", (d.dataset_digest or "")[:16]),
            ("cache path", d.cache_path),
            ("inspected", report.get("inspected_at")),
        ]
    )
    lineage = (
        _rows(
            [
                ("order", lin.order_id),
                ("batch", lin.batch_id),
                ("task", f"{lin.task_id} ({lin.task_status})"),
                ("robot", lin.robot_id),
                ("collector", lin.data_collector_id),
                ("scene", f"{lin.scene}/{lin.sub_scene}" if lin.sub_scene else lin.scene),
                ("skills", ", ".join(lin.skills)),
            ]
        )
        if lin
        else "<tr><td>task record missing</td></tr>"
    )
    if decided:
        decision = (
            f'<p class="decision {_e(d.qc_outcome)}">Decided: <b>{_e(d.qc_outcome)}</b> by <b>{_e(d.reviewed_by)}</b>'
            f'{" — " + _e(d.review_comment) if d.review_comment else ""}. A review decision is final.</p>'
        )
        form = ""
    elif not may_decide:
        decision = '<p class="decision muted">Waiting for a reviewer (your role can only view).</p>'
        form = ""
    else:
        decision = '<p class="decision"></p>'
        form = (
            '<form class="review-form">'
            '<textarea name="comment" rows="2" placeholder="comment (why)" maxlength="4000"></textarea>'
            '<button type="button" class="approve" data-approve="true">Approve</button>'
            '<button type="button" class="reject" data-approve="false">Reject</button>'
            "</form>"
        )
    return (
        f'<section class="card" data-dataset="{_e(d.dataset_id)}">'
        f'<h2><a href="/review/{_e(d.dataset_id)}">{_e(d.dataset_id)}</a></h2>'
        f'<div class="cols"><table class="meta"><caption>metadata</caption>{meta}</table>'
        f'<table class="lineage"><caption>lineage</caption>{lineage}</table></div>'
        f'<div class="plot">{_plot(item)}</div>'
        f"<details open><summary>QC report</summary>{_report_html(report)}</details>"
        f'{decision}<p class="error" role="alert"></p>{form}</section>'
    )


def _page(title: str, body: str, request: Request) -> str:
    """The page; scripts are files (the CSP allows no inline script), the session's CSRF token in a meta tag."""
    css = f'<link rel="stylesheet" href="{SHARED_CSS_URL}">' if SHARED_CSS.exists() else ""
    found = getattr(request.state, "authenticated", None)
    csrf = f'<meta name="csrf-token" content="{_e(found.csrf_token)}">' if found is not None and found.csrf_token else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)} — axon-dagster</title>'
        f'{csrf}{css}<style>{_CSS}</style></head><body>{body}<script src="/admin/session.js"></script>'
        '<script src="/admin/review.js"></script></body></html>'
    )


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem;max-width:1100px;color:#222}
.card{border:1px solid #ccc;border-radius:6px;padding:1rem;margin:1rem 0}
.cols{display:flex;gap:2rem;flex-wrap:wrap} table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{text-align:left;padding:2px 8px;border-bottom:1px solid #eee} caption{text-align:left;font-weight:600}
tr.fail td{color:#b00;font-weight:600} .error{color:#b00} .decision.approved{color:#060} .decision.rejected{color:#b00}
textarea{width:100%;box-sizing:border-box} button{margin:.4rem .4rem 0 0;padding:.4rem 1rem}
#filters label{margin-right:.6rem;font-size:.85rem} #filters input{width:9rem}
button.approve{background:#e6f4e6} button.reject{background:#fbe9e9} .muted,.empty{color:#777}
"""

def _identity(who: Principal) -> str:
    """Open embedded default: the reviewer names themselves. Signed in: the session is the reviewer."""
    if who.kind is PrincipalKind.OPEN:
        return (
            '<p class="identity"><label>Reviewer id <input id="reviewer" name="reviewer" autocomplete="username" '
            'placeholder="e.g. alice" pattern="[A-Za-z0-9][A-Za-z0-9._@+-]*"></label></p>'
        )
    sign_out = '<button type="button" id="signout-button">Sign out</button>' if who.kind is PrincipalKind.USER else ""
    return (
        f'<p class="identity">Signed in as <b id="signed-in" data-role="{_e(who.role.value)}">{_e(who.name)}</b> '
        f'({_e(who.role.value)}) {sign_out}</p>'
    )
