"""inspect_recording over real synthetic Lance recordings, on Daft's native runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import lance
import pyarrow as pa
import pytest

from axon_dagster.domain import PlanningError, QcOutcome, Requirements
from axon_dagster.inspection import InspectionInfrastructureError, InspectionReport, inspect_recording
from axon_dagster.inspection.checks import (
    DURATION,
    MAX_GAP,
    MONOTONIC_TIMESTAMPS,
    REQUIRED_TOPICS,
    ROWS_PRESENT,
    TOPIC_RATES,
)
from axon_dagster.recorder.sim.synthetic import DEFAULT_TOPICS, Faults, TopicSpec
from axon_dagster.storage.digest import dataset_digest
from axon_dagster.storage.recording import report_path

ALL_CHECKS = [ROWS_PRESENT, REQUIRED_TOPICS, TOPIC_RATES, MAX_GAP, MONOTONIC_TIMESTAMPS, DURATION]


def failed(report: InspectionReport) -> set[str]:
    return {c.name for c in report.failed_checks}


def test_clean_recording_is_approved_with_every_check_passed(make_recording, strict_requirements, duration_s):
    report = inspect_recording(make_recording("clean"), strict_requirements)

    assert [c.name for c in report.checks] == ALL_CHECKS
    assert failed(report) == set()
    assert all(c.weight > 0 for c in report.checks)  # every check really checked something
    assert report.score == 1.0
    assert report.outcome is QcOutcome.APPROVED and report.approved
    assert report.row_count == sum(int(s.rate_hz * duration_s) for s in DEFAULT_TOPICS.values())
    assert report.duration_s == pytest.approx(duration_s, abs=0.02)
    for topic, spec in DEFAULT_TOPICS.items():
        stats = report.per_topic[topic]
        assert stats.count == int(spec.rate_hz * duration_s)
        assert stats.rate_hz == pytest.approx(spec.rate_hz, rel=0.01)
        assert stats.max_gap_s < 2.0 / spec.rate_hz
        assert stats.backward_steps == 0 and stats.lost_messages == 0
        assert stats.first_ns < stats.last_ns
    assert report.runner == "native"


def test_two_second_gap_fails_the_gap_check_and_is_not_approved(make_recording, strict_requirements):
    report = inspect_recording(make_recording("gap", faults=Faults(gap_seconds=2.0)), strict_requirements)

    gap = report.check(MAX_GAP)
    assert not gap.passed
    assert 2.0 <= gap.value < 2.2 and gap.threshold == 1.0
    assert all(s.max_gap_s >= 2.0 for s in report.per_topic.values())
    assert report.outcome is not QcOutcome.APPROVED
    assert report.check(MONOTONIC_TIMESTAMPS).passed and report.check(REQUIRED_TOPICS).passed


def test_gap_alone_with_default_requirements_needs_review(make_recording):
    report = inspect_recording(make_recording("gap", faults=Faults(gap_seconds=2.0)), Requirements())
    assert failed(report) == {MAX_GAP}
    assert report.outcome is QcOutcome.NEEDS_REVIEW


def test_missing_topic_is_rejected_even_when_the_score_would_pass(make_recording, strict_requirements):
    lenient = Requirements.from_dict({**strict_requirements.to_dict(), "auto_approve": 0.5, "review_floor": 0.1})
    report = inspect_recording(make_recording("no-imu", faults=Faults(missing_topics=("/imu",))), lenient)

    required = report.check(REQUIRED_TOPICS)
    assert not required.passed and required.value == ["/imu"]
    assert report.score >= lenient.auto_approve  # the score alone would approve ...
    assert report.outcome is QcOutcome.REJECTED  # ... but a critical check failed
    assert "/imu" not in report.per_topic


def test_ten_percent_drops_fail_the_rate_check(make_recording, strict_requirements):
    report = inspect_recording(make_recording("drops", faults=Faults(drop_rate=0.1)), strict_requirements)

    rates = report.check(TOPIC_RATES)
    assert not rates.passed
    assert 0.05 < rates.value < 0.2 and rates.threshold == 0.05
    assert report.check(MAX_GAP).passed  # single drops are not stalls
    assert all(s.lost_messages > 0 for s in report.per_topic.values())
    assert report.outcome is not QcOutcome.APPROVED


def test_clock_going_backwards_fails_the_monotonic_check(make_recording, strict_requirements):
    path = make_recording("backwards", faults=Faults(clock_backwards_at_fraction=0.5, clock_backwards_seconds=0.2))
    report = inspect_recording(path, strict_requirements)

    monotonic = report.check(MONOTONIC_TIMESTAMPS)
    assert not monotonic.passed
    assert monotonic.value == len(DEFAULT_TOPICS)  # one backward step per topic
    assert all(s.backward_steps == 1 for s in report.per_topic.values())
    assert report.outcome is not QcOutcome.APPROVED


@pytest.mark.parametrize("bounds, passes", [({"min_duration_seconds": 10.0}, False), ({"max_duration_seconds": 3.0}, False), ({"min_duration_seconds": 4.9, "max_duration_seconds": 5.1}, True)])
def test_duration_bounds(make_recording, bounds, passes):
    report = inspect_recording(make_recording("d"), Requirements.from_dict(bounds))
    assert report.check(DURATION).passed is passes


def test_recording_without_rows_is_rejected(make_recording):
    path = make_recording("empty", faults=Faults(missing_topics=tuple(DEFAULT_TOPICS)))
    report = inspect_recording(path, Requirements())

    assert report.row_count == 0 and report.per_topic == {}
    assert not report.check(ROWS_PRESENT).passed
    assert failed(report) == {ROWS_PRESENT, TOPIC_RATES, MAX_GAP, MONOTONIC_TIMESTAMPS, DURATION}
    assert report.outcome is QcOutcome.REJECTED


def test_a_single_message_topic_has_no_gap_and_does_not_break_the_checks(make_recording):
    topics = {"/slow": TopicSpec(0.5, "std_msgs/String", 8), "/fast": TopicSpec(50.0, "std_msgs/String", 8)}
    report = inspect_recording(make_recording("slow", topics=topics, duration_s=1.0), Requirements())
    assert report.per_topic["/slow"].count == 1
    assert report.per_topic["/slow"].max_gap_s == 0.0
    assert report.outcome is QcOutcome.APPROVED


def test_truncated_dataset_is_an_infrastructure_error_not_a_verdict(make_recording, strict_requirements):
    path = make_recording("truncated", faults=Faults(truncate=True))
    with pytest.raises(InspectionInfrastructureError, match="truncated.lance"):
        inspect_recording(path, strict_requirements)
    assert not report_path(path).exists()


def test_missing_or_foreign_datasets_are_infrastructure_errors(tmp_path):
    with pytest.raises(InspectionInfrastructureError, match="not found"):
        inspect_recording(tmp_path / "nowhere.lance", Requirements())
    (tmp_path / "plain_dir.lance").mkdir()
    with pytest.raises(InspectionInfrastructureError, match="not a readable Lance dataset"):
        inspect_recording(tmp_path / "plain_dir.lance", Requirements())
    lance.write_dataset(pa.table({"x": [1, 2, 3]}), str(tmp_path / "other.lance"))
    with pytest.raises(InspectionInfrastructureError, match="missing column"):
        inspect_recording(tmp_path / "other.lance", Requirements())


def test_report_round_trips_through_json_and_is_written_atomically(make_recording, strict_requirements):
    path = make_recording("rt", faults=Faults(gap_seconds=1.5, drop_rate=0.05))
    report = inspect_recording(path, strict_requirements)

    assert InspectionReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report
    target = report_path(path)
    assert report.write(target) == target
    assert InspectionReport.read(target) == report
    raw = json.loads(target.read_text())
    assert raw["outcome"] == report.outcome.value and raw["dataset_path"] == str(path)
    assert {"name", "passed", "value", "threshold", "weight", "detail"} <= set(raw["checks"][0])
    assert {"count", "rate_hz", "max_gap_s", "first_ns", "last_ns"} <= set(raw["per_topic"]["/imu"])
    assert raw["requirements"] == strict_requirements.to_dict()
    assert sorted(p.name for p in path.parent.iterdir()) == ["rt.json", "rt.lance", "rt.qc.json"]  # no temp files


@pytest.mark.parametrize(
    "requirements",
    [
        Requirements(rate_tolerance=-0.1),
        Requirements(auto_approve=0.5, review_floor=0.8),
        Requirements(min_duration_seconds=10, max_duration_seconds=5),
        Requirements(max_duration_seconds=-1),
        Requirements(expected_rates_hz={"/imu": 0}),
        {"required_topics": "/imu"},
        {"no_such_requirement": 1},
        "approve everything",
    ],
    ids=["negative-tolerance", "floor-above-approve", "min-above-max", "negative-max", "zero-rate", "topics-not-list", "unknown-key", "not-requirements"],
)
def test_bad_requirements_are_refused_before_reading_anything(make_recording, requirements):
    path = make_recording("r")
    before = dataset_digest(path)
    with pytest.raises(PlanningError):
        inspect_recording(path, requirements)
    assert dataset_digest(path) == before
    assert not report_path(path).exists()


def test_requirements_may_be_given_as_a_mapping(make_recording):
    report = inspect_recording(make_recording("m"), {"required_topics": ["/imu"], "max_gap_seconds": 0.5})
    assert report.check(REQUIRED_TOPICS).passed and report.approved


def test_unknown_runner_is_refused(make_recording):
    with pytest.raises(ValueError, match="runner"):
        inspect_recording(make_recording("x"), Requirements(), runner="spark")


def test_inspection_stays_native_despite_a_stray_ray_address_and_imports_daft_lazily(make_recording):
    """In a fresh process (Daft fixes its runner once per process): importing the package does not
    load Daft, and DAFT_RUNNER=ray + RAY_ADDRESS do not move inspection onto a (here unreachable)
    Ray cluster — without the native pin this hangs trying to connect."""
    path = make_recording("stray")
    script = textwrap.dedent(
        f"""
        import sys
        import axon_dagster.inspection as inspection
        assert "daft" not in sys.modules, "importing axon_dagster.inspection loaded daft"
        report = inspection.inspect_recording({str(path)!r}, {{}})
        import daft
        print(report.outcome.value, daft.get_or_infer_runner_type())
        """
    )
    env = {**os.environ, "DAFT_RUNNER": "ray", "RAY_ADDRESS": "127.0.0.1:1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["approved", "native"]
