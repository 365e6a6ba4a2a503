"""Shared helpers of the chart tests (a uniquely named module: `conftest` is ambiguous when
several test folders have one)."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHARTS_DIR = REPO / "charts"
CHARTS = ["axon-cloud", "axon-edge"]
NAMESPACE = "axon"

sys.path.insert(0, str(REPO / "tools"))
import fetch_helm  # noqa: E402,F401 - re-exported for conftest


def ci_values(chart: str) -> list[Path]:
    return sorted((CHARTS_DIR / chart / "ci").glob("*.yaml"))


# (chart, values file) pairs, collected at import time so each gets its own test id.
CASES = [(c, f) for c in CHARTS for f in ci_values(c)]
CASE_IDS = [f"{c}:{f.stem}" for c, f in CASES]


class HelmError(RuntimeError):
    pass


@functools.lru_cache(maxsize=None)
def run_template(helm: str, chart: str, release: str, values: tuple[str, ...], sets: tuple[str, ...]) -> tuple[dict, ...]:
    cmd = [helm, "template", release, str(CHARTS_DIR / chart), "--namespace", NAMESPACE]
    for v in values:
        cmd += ["-f", v]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise HelmError(proc.stderr.strip() or proc.stdout.strip())
    return tuple(d for d in yaml.safe_load_all(proc.stdout) if d)


def helm_run(helm: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120)
