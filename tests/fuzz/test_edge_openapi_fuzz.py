"""schemathesis over the edge agent's published OpenAPI document (``GET /openapi.json``), with
positive and negative examples: an agent over a real control plane and recorder simulator, its
HTTP surface called as an ASGI app with the robot's collector PIN. No server errors, every status
code and content type documented, every answer matching its schema."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from fuzz_support import CHECKS, EDGE_PIN, OUTCOMES, SETTINGS
from edge_support import edge_environment, migrated_template_db
from schemathesis import GenerationMode

from axon_edge.access import HttpAccess
from axon_edge.http import create_app

pytestmark = pytest.mark.timeout(900)

_ROOT = Path(tempfile.mkdtemp(prefix="axon-fuzz-edge-"))
(_ROOT / "edge").mkdir()
(_ROOT / "template").mkdir()
_ENV_CM = edge_environment(_ROOT / "edge", migrated_template_db(_ROOT / "template"), "fuzz robot")
_ENV = _ENV_CM.__enter__()
_ENV.dispatch_order(skills=("pick",), task_count=2)
_AGENT = _ENV.build_agent()
_AGENT.sync_once()  # the robot's READY tasks: some ids exist
edge_schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_AGENT, HttpAccess(collector_credential=EDGE_PIN)))
edge_schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@edge_schema.parametrize()
@SETTINGS
def test_edge_agent_answers_as_documented(case):
    case.headers = {**(case.headers or {}), "authorization": f"Bearer {EDGE_PIN}"}
    response = case.call()
    OUTCOMES[f"edge.{response.status_code // 100}xx"] += 1
    case.validate_response(response, checks=CHECKS)


def teardown_module() -> None:
    for client in (_AGENT.control_plane, _AGENT.recorder):
        getattr(client, "close", lambda: None)()
    _ENV_CM.__exit__(None, None, None)
