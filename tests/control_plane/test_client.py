"""The Python clients: error mapping, event serialization, and that they stay light for robots."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import pytest

from axon_dagster.api import create_app
from axon_dagster.client import ControlPlaneClient, ControlPlaneError, ControlPlaneUnavailable, EdgeSyncClient
from axon_dagster.domain import TaskEvent, TaskStatus


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the block ends: nothing listens there


@pytest.fixture
def status_server() -> Iterator[Callable[[int], str]]:
    """A stdlib HTTP server answering every request with a fixed status (a proxy in front of a
    control plane that is restarting answers 502/503)."""
    servers: list[ThreadingHTTPServer] = []

    def start(status: int) -> str:
        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = json.dumps({"detail": f"status {status}"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_unreachable_control_plane_is_unavailable_not_an_error() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ControlPlaneUnavailable):
        ControlPlaneClient(url, timeout=2).events_after(0, 10)
    with pytest.raises(ControlPlaneUnavailable):
        EdgeSyncClient(url, "token", timeout=2).push_events([])


@pytest.mark.parametrize("status, unavailable", [(503, True), (502, True), (500, False), (404, False)])
def test_status_codes_map_to_the_two_error_kinds(status_server: Callable[[int], str], status: int, unavailable: bool) -> None:
    client = EdgeSyncClient(status_server(status), "token")
    if unavailable:
        with pytest.raises(ControlPlaneUnavailable):
            client.pull_tasks(0, 10)
    else:
        with pytest.raises(ControlPlaneError) as err:
            client.pull_tasks(0, 10)
        assert err.value.status_code == status and err.value.detail == f"status {status}"


def test_edge_client_sends_domain_events_and_reads_results(sqlite_url: str, serve_app: Callable[[Any], Any]) -> None:
    server = serve_app(create_app(database_url=sqlite_url, admin_token="adm"))
    with ControlPlaneClient(server.url + "/api/v1/", token="adm") as admin:  # either base form works
        token = admin.register_robot("r1")["token"]
        admin.create_order("o1", "warehouse", ["nav"])
        task_id = admin.plan_order("o1", task_count=1)["tasks"][0]["task_id"]
        admin.dispatch_order("o1", ["r1"])
        with EdgeSyncClient(server.url, token) as edge:
            occurred = datetime(2026, 11, 26, 9, 30, tzinfo=timezone.utc)
            results = edge.push_events(
                [
                    TaskEvent("e1", task_id, TaskStatus.READY, occurred_at=occurred),
                    {"event_id": "e2", "task_id": task_id, "status": TaskStatus.ASSIGNED, "data": {"data_collector_id": "c1"}},
                ]
            )
            assert [r["result"] for r in results] == ["applied", "applied"]
            page = edge.pull_tasks(0, 10)
        assert page["tasks"][0]["data_collector_id"] == "c1" and page["tasks"][0]["status"] == "ASSIGNED"
        events = admin.events_after(0, 10)["events"]
        assert datetime.fromisoformat(events[0]["occurred_at"]) == occurred
        with pytest.raises(ControlPlaneError) as err:
            admin.get_task("a/b")  # escaped into one path segment, never a different route
        assert err.value.status_code == 404


def test_edge_client_needs_a_token() -> None:
    with pytest.raises(ValueError):
        EdgeSyncClient("http://127.0.0.1:1", "")


def test_client_module_is_light_enough_for_a_robot() -> None:
    code = (
        "import sys, axon_dagster.client\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'fastapi', 'starlette', 'pydantic', 'sqlalchemy', 'alembic', 'dagster', 'ray', 'daft', 'psycopg', 'uvicorn'})\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"axon_dagster.client pulled in: {out}"
