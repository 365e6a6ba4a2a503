"""Robots are small: the agent must never load the cloud's heavy frameworks."""

from __future__ import annotations

import json
import subprocess
import sys

from edge_support import REPO_ROOT

FORBIDDEN = ("dagster", "ray", "daft", "fastapi", "sqlalchemy", "boto3", "lance", "pyarrow")

CONSTRUCT_AGENT = """
import json, sys, tempfile
from axon_edge import agent, cli, db, errors, http, metrics, runner
from axon_edge.runner import build_agent
edge = build_agent("robot-1", "http://127.0.0.1:9", "token", tempfile.mkdtemp(), "http://127.0.0.1:9")
http.create_app(edge)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_constructing_the_agent_imports_no_heavy_framework():
    out = subprocess.run(
        [sys.executable, "-c", CONSTRUCT_AGENT], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    modules = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert {"axon_edge", "axon_dagster", "httpx", "starlette", "uvicorn"} <= modules
    assert sorted(modules & set(FORBIDDEN)) == []


def test_missing_required_setting_is_a_clear_error(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "AXON_ROBOT_ID": "robot-1", "AXON_EDGE_DATA_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "axon_edge.cli", "run"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert "missing required setting(s): --control-plane-url (or AXON_CONTROL_PLANE_URL), --token (or AXON_ROBOT_TOKEN)" in out.stderr
    assert "--recorder-url (or AXON_RECORDER_URL)" in out.stderr
    assert not (tmp_path / "edge.db").exists()
