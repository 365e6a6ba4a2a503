"""schemathesis over the control plane's published OpenAPI document (the edge agent's: the sibling
module), with positive and negative examples (bounded per operation): no answer is a server error,
every status code and content type is documented, and every answer matches its documented schema."""

from __future__ import annotations

import shutil
import tempfile

import httpx
import pytest
import schemathesis
from fuzz_support import ADMIN_TOKEN, CHECKS, OUTCOMES, SETTINGS
from schemathesis import GenerationMode

from axon_dagster.api.app import create_app
from axon_dagster.api.server import ApiThread
from axon_dagster.control_plane.persistence import upgrade

pytestmark = pytest.mark.timeout(900)


# The control plane served over HTTP (uvicorn) on a real SQLite store with a robot and an order in it.
_ROOT = tempfile.mkdtemp(prefix="axon-fuzz-cp-")
_URL = f"sqlite:///{_ROOT}/cp.db"
upgrade(_URL)
_SERVER = ApiThread(create_app(_URL, admin_token=ADMIN_TOKEN)).start()
with httpx.Client(base_url=_SERVER.url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as _admin:
    _admin.post("/api/v1/robots", json={"robot_id": "robot-1"}).raise_for_status()
    _admin.post("/api/v1/orders", json={"order_id": "order-1", "scene": "warehouse", "skills": ["pick"]}).raise_for_status()
    _admin.post("/api/v1/orders/order-1/plan", json={"task_count": 2, "duration_seconds": 5}).raise_for_status()
cp_schema = schemathesis.openapi.from_url(_SERVER.url + "/openapi.json")
cp_schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@cp_schema.parametrize()
@SETTINGS
def test_control_plane_answers_as_documented(case):
    case.headers = {**(case.headers or {}), "authorization": f"Bearer {ADMIN_TOKEN}"}
    response = case.call()
    OUTCOMES[f"control_plane.{response.status_code // 100}xx"] += 1
    case.validate_response(response, checks=CHECKS)


def teardown_module() -> None:
    _SERVER.stop()
    shutil.rmtree(_ROOT, ignore_errors=True)
