"""The recorder package runs on robots: it must stay free of the cloud's heavy dependencies."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import axon_dagster.recorder

HEAVY = ("dagster", "ray", "daft", "lance", "pyarrow", "numpy", "starlette", "uvicorn", "fastapi", "sqlalchemy")
RECORDER_DIR = Path(axon_dagster.recorder.__file__).parent


def test_importing_the_recorder_package_loads_no_heavy_module():
    code = (
        "import sys, json, axon_dagster.recorder, axon_dagster.recorder.factory;"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout))
    assert loaded & set(HEAVY) == set()
    assert loaded & {"rclpy", "rospy", "axon_recorder_msgs"} == set(), "ROS is imported only by the transport that uses it"
    assert "httpx" in loaded and "yaml" in loaded, "sanity: the probe really imported the package"


def test_no_module_outside_sim_imports_cloud_frameworks():
    offenders = []
    for path in RECORDER_DIR.rglob("*.py"):
        if "sim" in path.relative_to(RECORDER_DIR).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in HEAVY or ".sim" in n]
    assert offenders == []
    assert len(list(RECORDER_DIR.glob("*.py"))) >= 5, "sanity: the walk saw the package's modules"
