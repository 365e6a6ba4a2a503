"""Fixtures for the inspection room: real synthetic Lance recordings written into tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from axon_dagster.domain import Requirements
from axon_dagster.recorder.sim.synthetic import DEFAULT_TOPICS, Faults, write_recording

# Every recording of these tests starts here and lasts this long unless a test says otherwise.
START_NS = 1_700_000_000_000_000_000
DURATION_S = 5.0


@pytest.fixture
def start_ns() -> int:
    return START_NS


@pytest.fixture
def duration_s() -> float:
    return DURATION_S


@pytest.fixture
def make_recording(tmp_path: Path) -> Callable[..., Path]:
    """``make_recording("name", faults=Faults(...), **write_recording kwargs) -> dataset path``."""

    def make(name: str = "clean", faults: Faults = Faults(), **kwargs) -> Path:
        path = tmp_path / f"{name}.lance"
        kwargs.setdefault("duration_s", DURATION_S)
        kwargs.setdefault("start_ns", START_NS)
        write_recording(path, task_id=name, robot_id="robot-1", faults=faults, **kwargs)
        return path

    return make


@pytest.fixture
def strict_requirements() -> Requirements:
    """Every check has something to check: all default topics at their rates, 5 % tolerance."""
    return Requirements.from_dict(
        {
            "required_topics": list(DEFAULT_TOPICS),
            "expected_rates_hz": {topic: spec.rate_hz for topic, spec in DEFAULT_TOPICS.items()},
            "rate_tolerance": 0.05,
            "max_gap_seconds": 1.0,
            "min_duration_seconds": 4.0,
            "max_duration_seconds": 6.0,
        }
    )
