"""Run the control-plane API under uvicorn: in the foreground (:func:`serve`, what
``axon-dagster api`` calls) or in a background thread (:func:`start_api_in_thread`, for the demo,
tests and benchmarks)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from types import TracebackType

from typing import Any

from axon_dagster.settings.api import ServerSettings
from axon_dagster.settings.environ import export

log = logging.getLogger(__name__)


# On shutdown, requests still running after this long are cut: long-polls (held up to a minute)
# must not hold a rolling update; their robots reconnect to another replica.
SHUTDOWN_GRACE_SECONDS = 5
# Idle keep-alive connections live this long (uvicorn's default is 5 s): a robot pushing every few
# seconds reuses its connection, and the server never closes one just as a request is sent on it.
KEEP_ALIVE_SECONDS = 75


def default_workers(environ: dict[str, str] | None = None, database_url: str | None = None) -> int:
    """``AXON_API_WORKERS``, else on PostgreSQL one uvicorn worker process per CPU, at most 4 (the
    database, not Python, is the limit past that; more replicas scale further), and on SQLite 1
    (one writer at a time anyway; another process would only add its start-up)."""
    workers = ServerSettings.load(environ).workers
    if workers is not None:
        return workers
    from axon_dagster.control_plane.persistence.engine import is_sqlite

    if database_url is not None and is_sqlite(database_url):
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    database_url: str | None = None,
    admin_token: str | None = None,
    *,
    upgrade_first: bool = False,
    log_level: str = "info",
    workers: int | None = None,
) -> None:
    """Serve until interrupted. ``database_url``/``admin_token`` default to ``AXON_DATABASE_URL`` /
    ``AXON_ADMIN_TOKEN``. With ``upgrade_first`` the schema is migrated before serving.
    ``workers`` (default :func:`default_workers`) uvicorn processes share the port; each builds
    its own app from the environment (nothing in a process is shared or needs to be)."""
    import uvicorn

    from axon_dagster.settings import load_settings
    from axon_dagster.control_plane.persistence import upgrade

    from .app import create_app
    from .metrics import share_counts_between_workers

    url = database_url or load_settings().database_url
    workers = default_workers(database_url=url) if workers is None else workers
    if upgrade_first:
        upgrade(url)
    log.info("serving the control-plane API on http://%s:%d with %d worker(s)", host, port, workers)
    if workers == 1:
        uvicorn.run(create_app(database_url=url, admin_token=admin_token), host=host, port=port, log_level=log_level,
                    timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS, timeout_keep_alive=KEEP_ALIVE_SECONDS)
        return
    from axon_dagster.control_plane.persistence import check_schema, make_engine

    engine = make_engine(url)
    try:
        check_schema(engine)  # fail here, once, not in every worker
    finally:
        engine.dispose()
    # Worker processes read their settings from the environment (what the chart sets anyway).
    export({"AXON_DATABASE_URL": url, **({"AXON_ADMIN_TOKEN": admin_token} if admin_token is not None else {})})
    with share_counts_between_workers():  # one /metrics for all workers, whichever answers the scrape
        _serve_workers(host, port, log_level, workers)


def _serve_workers(host: str, port: int, log_level: str, workers: int) -> None:
    """``workers`` uvicorn processes, each with its own SO_REUSEPORT socket on the port, so the
    kernel spreads connections evenly over them. (With one shared socket, whichever worker is
    free first accepts: robots keep their connections, and one worker ended up with most of the
    fleet while the other idled.) A worker that dies takes the others down: the pod restarts."""
    import multiprocessing
    import signal

    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_worker, args=(host, port, log_level), name=f"axon-api-{i}") for i in range(workers)]
    for proc in procs:
        proc.start()

    def stop(_signum: int, _frame: Any) -> None:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while all(proc.is_alive() for proc in procs):
            time.sleep(0.5)
    finally:
        stop(0, None)
        for proc in procs:
            proc.join(SHUTDOWN_GRACE_SECONDS + 5)


def _worker(host: str, port: int, log_level: str) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    config = uvicorn.Config("axon_dagster.api.app:create_app", factory=True, log_level=log_level,
                            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS, timeout_keep_alive=KEEP_ALIVE_SECONDS)
    uvicorn.Server(config).run(sockets=[sock])


class ApiThread:
    """uvicorn serving ``app`` from a daemon thread. ``port=0`` picks a free port (the socket is
    bound here, before the thread starts, so there is no race for it); see ``.url``."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        import uvicorn

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on", timeout_graceful_shutdown=1))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, name="control-plane-api", daemon=True)

    def start(self, timeout: float = 15.0) -> "ApiThread":
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the control-plane API did not start on {self.url}")
            time.sleep(0.01)
        log.info("control-plane API serving on %s", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> "ApiThread":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def start_api_in_thread(
    database_url: str | None = None, admin_token: str | None = None, host: str = "127.0.0.1", port: int = 0
) -> ApiThread:
    """Create the app (the database must be migrated) and serve it in a background thread."""
    from .app import create_app

    return ApiThread(create_app(database_url=database_url, admin_token=admin_token), host=host, port=port).start()
