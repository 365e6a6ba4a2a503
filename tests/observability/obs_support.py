"""Shared helpers of the observability suite: the metric names the code really defines, where
the monitoring files live, and the promtool fixture (re-exported by conftest.py)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
CHART_FILES = ROOT / "charts" / "axon-cloud" / "files"
RULES = MONITORING / "rules" / "axon-alerts.yml"
RULE_TESTS = sorted((MONITORING / "rules" / "tests").glob("*.yml"))
DASHBOARDS = sorted((MONITORING / "dashboards").glob("*.json"))

_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
             "summary": ("_sum", "_count", "_created"), "gauge": ("",), "unknown": ("",), "info": ("_info",)}


def sample_names(families) -> set[str]:
    """The series names Prometheus will see for metric families (counter ``x`` -> ``x_total``)."""
    out: set[str] = set()
    for family in families:
        out |= {family.name + s for s in _SUFFIXES.get(family.type, ("",))}
    return out


def defined_metric_names() -> set[str]:
    """Every axon_* series the code can export, collected from the registries themselves
    (edge agent, control-plane API, Dagster side, uploader)."""
    from prometheus_client import REGISTRY

    import axon_dagster.storage.metrics  # noqa: F401  (the uploader's families, in the default registry)
    from axon_dagster.api.metrics import ControlPlaneMetrics
    from axon_dagster.observability import metrics as dagster_metrics
    from axon_edge.metrics import EdgeAgentCollector, EdgeMetrics

    families = []
    edge = EdgeMetrics("robot-x")
    families += [f for c in list(edge.registry._collector_to_names) for f in c.describe()]
    families += list(EdgeAgentCollector(agent=None).describe())  # type: ignore[arg-type]  # describe needs no agent
    api = ControlPlaneMetrics(uow_factory=None)  # type: ignore[arg-type]  # describe never touches the store
    families += [f for c in list(api.registry._collector_to_names) for f in c.describe()]
    families += [f for c in dagster_metrics._COLLECTORS for f in c.describe()]
    families += [f for f in REGISTRY.collect() if f.name.startswith("axon_upload_")]
    return {n for n in sample_names(families) if n.startswith("axon_")}


METRIC_TOKEN = re.compile(r"\baxon_[a-zA-Z0-9_]+")


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: run scripts/prometheus-deps.sh (Debian package prometheus)")
    return path
