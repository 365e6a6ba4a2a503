"""Routes of the collector page (mounted by :func:`axon_edge.http.create_app`).

``GET /`` and ``GET /collector`` serve the page; ``GET /collector/live`` the live recording
status it polls; ``/collector/collector.js|.css`` its assets and ``/static/axon.css`` the shared
look (a file of the core package ``axon_dagster.web``). The page's actions use the agent's
existing JSON routes (``/tasks``, ``/tasks/{id}/pickup``, ``/teleop``), the same ones a teleop
device uses, so the page can do nothing the device cannot.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from axon_dagster.web import SHARED_CSS

from . import WEB_DIR
from .live import live_status

_ASSETS = {
    "collector.js": "text/javascript; charset=utf-8",
    "collector.css": "text/css; charset=utf-8",
}
_NO_CACHE = {"cache-control": "no-cache"}


def routes(agent: Any) -> list[Route]:
    def root(request: Request) -> Response:
        return RedirectResponse("/collector", status_code=307)

    def page(request: Request) -> Response:
        return FileResponse(WEB_DIR / "collector.html", media_type="text/html; charset=utf-8", headers=_NO_CACHE)

    def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _ASSETS:  # a fixed list: no path ever reaches the filesystem from the URL
            return JSONResponse({"detail": f"no asset {name!r}"}, status_code=404)
        return FileResponse(WEB_DIR / name, media_type=_ASSETS[name], headers=_NO_CACHE)

    def shared_css(request: Request) -> Response:
        return FileResponse(SHARED_CSS, media_type="text/css; charset=utf-8", headers=_NO_CACHE)

    def live(request: Request) -> JSONResponse:
        return JSONResponse(live_status(agent), headers=_NO_CACHE)

    return [
        Route("/", root),
        Route("/collector", page),
        Route("/collector/live", live),
        Route("/collector/{name}", asset),
        Route("/static/axon.css", shared_css),
    ]
