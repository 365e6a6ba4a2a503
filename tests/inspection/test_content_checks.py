"""QC that reads the content of MCAP recordings: each content fault, injected by the simulator's
Axon writer (real MCAP, real ROS messages), is caught by its own check and by no other; a clean
recording with a pause passes everything (the pause is accounted for)."""

from __future__ import annotations

import pytest

from axon_dagster.domain import QcOutcome, Requirements
from axon_dagster.inspection import inspect_recording
from axon_dagster.inspection.checks import (
    AXON_SIDECAR_MATCH,
    CONTENT_CHECKS,
    FROZEN_STREAMS,
    FROZEN_VALUES,
    HEADER_STAMP_SKEW,
    IMAGE_FORMAT_STABLE,
    NONFINITE_VALUES,
    PAUSES_ACCOUNTED,
    TIMING_DROPS,
)
from axon_dagster.demo.sim.synthetic import Faults

def failed(report) -> set[str]:
    return {c.name for c in report.failed_checks}


@pytest.mark.parametrize("encoding", ["ros2", "ros1"])
def test_a_clean_recording_with_a_pause_passes_every_check_and_every_content_check_applies(axon_lance, encoding):
    report = inspect_recording(axon_lance(f"clean-{encoding}", pauses=((2.0, 1.5),), encoding=encoding), Requirements())
    assert failed(report) == set(), [c.detail for c in report.failed_checks]
    assert report.outcome is QcOutcome.APPROVED and report.score == 1.0
    for name in CONTENT_CHECKS:
        assert report.check(name).weight > 0, report.check(name).detail
    assert "1.5" in report.check(PAUSES_ACCOUNTED).detail  # the pause is seen and accounted for
    assert "pauses taken out" in report.check(HEADER_STAMP_SKEW).detail
    assert abs(report.check(PAUSES_ACCOUNTED).value) < 0.5


@pytest.mark.parametrize(
    "faults, pauses, check, words",
    [
        (Faults(header_stamp_skew_seconds=1.0), (), HEADER_STAMP_SKEW, "header stamps off their log times"),
        (Faults(nan_topics=("/imu",)), (), NONFINITE_VALUES, "/imu"),
        (Faults(nan_topics=("/joint_states",), nan_at_fraction=0.9), ((1.0, 1.0),), NONFINITE_VALUES, "joint_position"),
        (Faults(image_change_at_fraction=0.5), (), IMAGE_FORMAT_STABLE, "rgb8 -> "),
        (Faults(frozen_topics=("/joint_states",)), (), FROZEN_VALUES, "/joint_states identical decoded values"),
        (Faults(frozen_topics=("/camera/image_raw",)), (), FROZEN_VALUES, "/camera/image_raw identical decoded values"),
        (Faults(sidecar_count_delta=7), (), AXON_SIDECAR_MATCH, "message_count"),
        (Faults(silent_from_fraction=0.4), (), PAUSES_ACCOUNTED, "unaccounted"),
        (Faults(drop_rate=0.05), ((2.0, 1.0),), TIMING_DROPS, "missing from the timing"),
    ],
    ids=["stamp-skew", "nan-imu", "nan-joints-after-a-pause", "image-change", "frozen-values", "frozen-camera", "sidecar-count", "silent-tail",
         "drops-without-sequence-holes"],
)
def test_each_content_fault_is_caught_by_its_check_and_only_by_it(axon_lance, faults, pauses, check, words):
    report = inspect_recording(axon_lance("fault", faults=faults, pauses=pauses), Requirements())
    assert failed(report) == {check}, {c.name: c.detail for c in report.failed_checks}
    assert words in report.check(check).detail
    assert report.outcome is QcOutcome.NEEDS_REVIEW  # one failed check: never auto-approved


def test_the_frozen_payload_check_cannot_see_frozen_values_behind_changing_stamps(axon_lance):
    """Why frozen_values exists: with header stamps in every message, no two payloads are equal."""
    report = inspect_recording(axon_lance("frozen", faults=Faults(frozen_topics=("/joint_states",))), Requirements())
    assert report.check(FROZEN_STREAMS).passed and not report.check(FROZEN_VALUES).passed


def test_without_a_sidecar_the_axon_metadata_records_are_checked(axon_lance):
    report = inspect_recording(axon_lance("nosc", sidecar_mode="none", faults=Faults(sidecar_count_delta=3)), Requirements())
    check = report.check(AXON_SIDECAR_MATCH)
    assert not check.passed and "axon.* metadata" in check.detail


def test_thresholds_come_from_the_requirements(axon_lance):
    path = axon_lance("skew", faults=Faults(header_stamp_skew_seconds=1.0))
    relaxed = inspect_recording(path, {"max_stamp_skew_seconds": 1.5})
    assert relaxed.check(HEADER_STAMP_SKEW).passed and relaxed.check(HEADER_STAMP_SKEW).value == pytest.approx(1.0, abs=0.1)
    path = axon_lance("silent", faults=Faults(silent_from_fraction=0.4))
    assert inspect_recording(path, {"max_unaccounted_seconds": 5.0}).check(PAUSES_ACCOUNTED).passed
