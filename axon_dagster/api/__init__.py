"""The control plane's HTTP API (FastAPI) over the use cases of ``axon_dagster.control_plane``.
Its Python clients are ``axon_dagster.client``.

The edge agent imports ``axon_dagster.api.asgi`` (shared middlewares), so this package imports
FastAPI only when ``create_app`` or ``serve`` is first asked for.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ApiThread", "create_app", "serve", "start_api_in_thread"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name in ("serve", "ApiThread", "start_api_in_thread"):
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
