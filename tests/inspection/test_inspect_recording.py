"""inspect_recording over real synthetic Lance recordings, on Daft's native runner: the QC suite,
the faults it must catch, scoring, and what is not a verdict."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import lance
import pyarrow as pa
import pytest

from axon_dagster.domain import PlanningError, QcOutcome, Requirements
from axon_dagster.inspection import (
    InspectionInfrastructureError,
    InspectionReport,
    inspect_recording,
)
from axon_dagster.inspection.checks import (
    CHECK_NAMES,
    CHECK_WEIGHTS,
    CONTENT_CHECKS,
    CRITICAL_CHECKS,
    DATA_CHECKS,
    DROPPED_MESSAGES,
    DURATION,
    FROZEN_STREAMS,
    GATES,
    INTEGRITY,
    MAX_GAP,
    MONOTONIC_TIMESTAMPS,
    REQUIRED_TOPICS,
    ROWS_PRESENT,
    SIDECAR_CONSISTENCY,
    TOPIC_RATES,
    TOPIC_SET,
    TOPIC_SYNC,
    WELL_FORMED,
    outcome_of,
    score_of,
)
from axon_dagster.inspection.report import REPORT_FORMAT_VERSION, CheckResult
from axon_dagster.demo.sim.synthetic import DEFAULT_TOPICS, Faults, TopicSpec
from axon_dagster.storage.digest import dataset_digest
from axon_dagster.storage.recording import Sidecar, report_path, sidecar_path

CAMERA, JOINTS, IMU = "/camera/image_raw", "/joint_states", "/imu"


def failed(report: InspectionReport) -> set[str]:
    return {c.name for c in report.failed_checks}


# ------------------------------------------------------------------------------ clean recordings

@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_clean_recordings_pass_every_check(make_recording, strict_requirements, duration_s, seed):
    report = inspect_recording(make_recording(f"clean-{seed}", seed=seed), strict_requirements)

    assert [c.name for c in report.checks] == list(CHECK_NAMES)
    assert failed(report) == set(), [c.detail for c in report.failed_checks]
    # every check really checked (the content checks need decoded MCAP content, the topic set a
    # declared topic list: not applicable here)
    assert all(c.weight > 0 for c in report.checks if c.name not in GATES | {TOPIC_SET} and c.name not in CONTENT_CHECKS)
    assert all(c.weight == 0 and c.passed for c in report.checks if c.name in CONTENT_CHECKS)
    assert report.score == 1.0
    assert report.outcome is QcOutcome.APPROVED and report.approved
    assert report.row_count == sum(int(s.rate_hz * duration_s) for s in DEFAULT_TOPICS.values())
    assert report.duration_s == pytest.approx(duration_s, abs=0.02)
    for topic, spec in DEFAULT_TOPICS.items():
        stats = report.per_topic[topic]
        assert stats.count == int(spec.rate_hz * duration_s)
        assert stats.rate_hz == pytest.approx(spec.rate_hz, rel=0.01)
        assert stats.max_gap_s < 2.0 / spec.rate_hz
        assert stats.backward_steps == stats.lost_messages == stats.dropped_messages == stats.lost_in_gaps == 0
        assert stats.repeated_payloads == 0 and stats.longest_frozen_s == 0.0
        assert stats.first_ns < stats.last_ns
    sync = report.check(TOPIC_SYNC)
    assert 0 < sync.value < 0.5 / DEFAULT_TOPICS[JOINTS].rate_hz + 0.001  # nearest 200 Hz message: < ~2.5 ms
    assert "p95" in sync.detail and "150 messages" in sync.detail
    assert "matches the sidecar" in report.check(SIDECAR_CONSISTENCY).detail
    assert report.runner == "native"


def test_clean_recording_with_default_requirements_is_approved(make_recording):
    report = inspect_recording(make_recording("defaults", seed=11, duration_s=3.0), Requirements())
    assert failed(report) == set() and report.outcome is QcOutcome.APPROVED
    # Nothing to check without required topics or rates: those checks do not count.
    assert report.check(REQUIRED_TOPICS).weight == 0 and report.check(TOPIC_RATES).weight == 0
    assert report.check(TOPIC_SYNC).weight > 0 and report.check(FROZEN_STREAMS).weight > 0


# ------------------------------------------------------------------------------ injected faults

# fault -> (the check that must catch it, checks that may fail with it under strict requirements)
FAULTS = {
    "missing-topic": (Faults(missing_topics=(IMU,)), REQUIRED_TOPICS, {TOPIC_RATES}),
    "gap-2s": (Faults(gap_seconds=2.0), MAX_GAP, {TOPIC_RATES}),  # 40 % of a 5 s recording is gone
    "drops-10pct": (Faults(drop_rate=0.1), DROPPED_MESSAGES, {TOPIC_RATES}),
    "frozen-camera": (Faults(frozen_topics=(CAMERA,)), FROZEN_STREAMS, set()),
    "clock-backwards": (Faults(clock_backwards_at_fraction=0.5), MONOTONIC_TIMESTAMPS, set()),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_is_caught_by_its_check_and_named(make_recording, strict_requirements, fault):
    faults, check, may_also_fail = FAULTS[fault]
    report = inspect_recording(make_recording(fault, faults=faults, seed=3), strict_requirements)

    assert check in failed(report), [c.detail for c in report.checks]
    assert failed(report) <= {check} | may_also_fail, [c.detail for c in report.failed_checks]
    assert report.outcome is not QcOutcome.APPROVED
    caught = report.check(check)
    if fault == "missing-topic":
        assert caught.value == [IMU] and caught.detail == "missing /imu"
        assert report.outcome is QcOutcome.REJECTED  # a critical check
    elif fault == "gap-2s":
        assert 2.0 <= caught.value < 2.2 and caught.threshold == 1.0
        assert all(s.max_gap_s >= 2.0 and s.lost_in_gaps > 0 for s in report.per_topic.values())
        assert all(t in caught.detail for t in DEFAULT_TOPICS)
    elif fault == "drops-10pct":
        assert 0.05 < caught.value < 0.2 and caught.threshold == 0.01
        assert all(t in caught.detail for t in DEFAULT_TOPICS)
        assert report.check(MAX_GAP).passed  # single drops are not stalls
    elif fault == "frozen-camera":
        assert caught.value > 4.5 and CAMERA in caught.detail and JOINTS not in caught.detail
        assert report.per_topic[CAMERA].repeated_payloads == report.per_topic[CAMERA].count - 1
    elif fault == "clock-backwards":
        assert caught.value == len(DEFAULT_TOPICS)  # one backward step per topic
        assert all(s.backward_steps == 1 for s in report.per_topic.values())
        assert report.check(DURATION).passed and report.duration_s == pytest.approx(5.0, abs=0.02)


@pytest.mark.parametrize("fault", ["gap-2s", "drops-10pct", "frozen-camera", "clock-backwards"])
def test_with_default_requirements_only_the_right_check_fails(make_recording, fault):
    faults, check, _ = FAULTS[fault]
    report = inspect_recording(make_recording(fault, faults=faults), Requirements())
    assert failed(report) == {check}
    assert report.outcome is QcOutcome.NEEDS_REVIEW  # one failure: below auto_approve, above review_floor


def test_truncated_dataset_is_rejected_by_the_sidecar_check(make_recording, strict_requirements):
    path = make_recording("truncated", faults=Faults(truncate=True))
    lost = set(Sidecar.read(sidecar_path(path)).files) - {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    assert len(lost) == 1

    report = inspect_recording(path, strict_requirements)

    sidecar = report.check(SIDECAR_CONSISTENCY)
    assert not sidecar.passed and sidecar.value == 1
    assert sidecar.detail == f"inconsistent with the sidecar: file {lost.pop()} missing"
    assert report.outcome is QcOutcome.REJECTED
    for name in DATA_CHECKS:  # nothing else could be measured; said so, not passed vacuously
        assert not report.check(name).passed and report.check(name).detail.startswith("not measured")
    assert report.per_topic == {} and report.score == 0.0


def test_truncated_dataset_without_its_sidecar_is_rejected_as_malformed(make_recording):
    """Without the sidecar nothing names the lost file, but every file that is there reads and Lance
    cannot read the dataset: the data is bad (a verdict with the reason), not the storage."""
    path = make_recording("truncated", faults=Faults(truncate=True))
    sidecar_path(path).unlink()
    report = inspect_recording(path, Requirements())
    assert report.outcome is QcOutcome.REJECTED and report.score < 1.0
    well_formed = report.check(WELL_FORMED)
    assert not well_formed.passed and "not a readable Lance dataset although every file reads" in well_formed.detail
    assert "Not found" in well_formed.detail  # Lance's own reason: the data file it lists is gone
    assert not report.check(INTEGRITY).passed


def test_stuck_joint_values_are_a_frozen_stream(make_recording):
    report = inspect_recording(make_recording("stuck", faults=Faults(frozen_topics=(JOINTS,))), Requirements())
    frozen = report.check(FROZEN_STREAMS)
    assert failed(report) == {FROZEN_STREAMS}
    assert JOINTS in frozen.detail and frozen.value > 4.5
    # Only the watched topics count: unwatch the joints and the check passes.
    unwatched = inspect_recording(report.dataset_path, {"frozen_topics": [CAMERA]})
    assert unwatched.check(FROZEN_STREAMS).passed
    assert unwatched.per_topic[JOINTS].longest_frozen_s > 4.5  # still measured, for the reviewer


def test_a_short_frozen_stretch_within_the_limit_passes(make_recording):
    report = inspect_recording(make_recording("froze", faults=Faults(frozen_topics=(CAMERA,)), duration_s=1.0),
                               {"max_frozen_seconds": 1.0})
    assert report.check(FROZEN_STREAMS).passed and 0.9 < report.check(FROZEN_STREAMS).value <= 1.0
    assert not inspect_recording(report.dataset_path, {"max_frozen_seconds": 0.5}).check(FROZEN_STREAMS).passed


def test_camera_out_of_sync_with_slow_joint_states_fails_the_sync_check(make_recording):
    """Joint states at 5 Hz: most camera frames are tens of ms from the nearest joint sample."""
    topics = {CAMERA: DEFAULT_TOPICS[CAMERA], JOINTS: TopicSpec(5.0, "sensor_msgs/JointState", 184)}
    report = inspect_recording(make_recording("sync", topics=topics), Requirements())
    sync = report.check(TOPIC_SYNC)
    assert failed(report) == {TOPIC_SYNC}
    assert 0.05 < sync.value <= 0.1 and sync.threshold == 0.02
    assert f"p95 |{CAMERA} - nearest {JOINTS}|" in sync.detail
    relaxed = inspect_recording(report.dataset_path, {"max_sync_offset_seconds": 0.1})
    assert relaxed.check(TOPIC_SYNC).passed
    median = inspect_recording(report.dataset_path, {"sync_percentile": 50})
    assert median.check(TOPIC_SYNC).value < sync.value and "p50" in median.check(TOPIC_SYNC).detail


def test_sync_is_not_measured_without_both_topics_or_when_turned_off(make_recording):
    no_joints = make_recording("nojoints", faults=Faults(missing_topics=(JOINTS,)))
    sync = inspect_recording(no_joints, Requirements()).check(TOPIC_SYNC)
    assert sync.passed and sync.weight == 0 and "/joint_states not in the recording" in sync.detail
    off = inspect_recording(no_joints, {"sync_topic": None}).check(TOPIC_SYNC)
    assert off.passed and off.weight == 0 and "off" in off.detail


@pytest.mark.parametrize("bounds, passes", [({"min_duration_seconds": 10.0}, False), ({"max_duration_seconds": 3.0}, False), ({"min_duration_seconds": 4.9, "max_duration_seconds": 5.1}, True)])
def test_duration_bounds(make_recording, bounds, passes):
    report = inspect_recording(make_recording("d"), Requirements.from_dict(bounds))
    assert report.check(DURATION).passed is passes
    assert failed(report) == (set() if passes else {DURATION})


def test_recording_without_rows_is_rejected(make_recording):
    path = make_recording("empty", faults=Faults(missing_topics=tuple(DEFAULT_TOPICS)))
    report = inspect_recording(path, Requirements())

    assert report.row_count == 0 and report.per_topic == {}
    assert not report.check(ROWS_PRESENT).passed
    assert failed(report) == set(DATA_CHECKS)
    assert report.check(SIDECAR_CONSISTENCY).passed  # an empty sidecar for an empty recording
    assert report.outcome is QcOutcome.REJECTED


def test_a_single_message_topic_has_no_gap_and_does_not_break_the_checks(make_recording):
    topics = {"/slow": TopicSpec(0.5, "std_msgs/String", 8), "/fast": TopicSpec(50.0, "std_msgs/String", 8)}
    report = inspect_recording(make_recording("slow", topics=topics, duration_s=1.0), Requirements())
    assert report.per_topic["/slow"].count == 1
    assert report.per_topic["/slow"].max_gap_s == 0.0
    assert report.outcome is QcOutcome.APPROVED


# ------------------------------------------------------------------------------ sidecar consistency

def _tamper_sidecar(path: Path, change) -> None:
    side = sidecar_path(path)
    raw = json.loads(side.read_text())
    change(raw)
    side.write_text(json.dumps(raw))


@pytest.mark.parametrize("change, named", [
    (lambda s: s["topics"][IMU].update(count=s["topics"][IMU]["count"] + 1), "/imu count 500 != sidecar 501"),
    (lambda s: s["topics"][CAMERA].update(last_ns=s["topics"][CAMERA]["last_ns"] + 1), f"{CAMERA} time range"),
    (lambda s: s["topics"].pop(JOINTS), f"{JOINTS} recorded but not in the sidecar"),
    (lambda s: s.update(dataset_digest="0" * 64), "dataset digest"),
], ids=["count", "time-range", "topic-set", "digest"])
def test_sidecar_that_disagrees_with_the_data_is_rejected(make_recording, change, named):
    path = make_recording("side")
    _tamper_sidecar(path, change)
    report = inspect_recording(path, Requirements())
    check = report.check(SIDECAR_CONSISTENCY)
    assert failed(report) == {SIDECAR_CONSISTENCY}
    assert named in check.detail and check.value == 1
    assert report.outcome is QcOutcome.REJECTED


def test_changed_or_extra_files_fail_the_sidecar_check(make_recording):
    path = make_recording("files")
    txn = next((path / "_transactions").iterdir())
    txn.write_bytes(txn.read_bytes() + b"\n")  # Lance ignores it; the digest does not
    (path / "data" / "stray.bin").write_bytes(b"x")
    report = inspect_recording(path, Requirements())
    detail = report.check(SIDECAR_CONSISTENCY).detail
    assert failed(report) == {SIDECAR_CONSISTENCY}
    assert f"file _transactions/{txn.name} changed" in detail and "file data/stray.bin not in the sidecar" in detail


def test_without_digest_verification_names_are_still_compared(make_recording):
    path = make_recording("nodigest")
    txn = next((path / "_transactions").iterdir())
    txn.write_bytes(txn.read_bytes() + b"\n")
    trusted = inspect_recording(path, Requirements(), verify_digest=False).check(SIDECAR_CONSISTENCY)
    assert trusted.passed and "digest not verified" in trusted.detail  # contents are trusted ...
    assert not inspect_recording(path, Requirements()).check(SIDECAR_CONSISTENCY).passed  # ... unless verified
    truncated = make_recording("trunc-nodigest", faults=Faults(truncate=True))
    report = inspect_recording(truncated, Requirements(), verify_digest=False)
    assert report.outcome is QcOutcome.REJECTED and "missing" in report.check(SIDECAR_CONSISTENCY).detail


def test_an_invalid_sidecar_fails_and_a_missing_one_is_not_checked(make_recording):
    path = make_recording("bad-side")
    sidecar_path(path).write_text("{not json")
    check = inspect_recording(path, Requirements()).check(SIDECAR_CONSISTENCY)
    assert not check.passed and "not a valid sidecar" in check.detail
    sidecar_path(path).unlink()
    check = inspect_recording(path, Requirements()).check(SIDECAR_CONSISTENCY)
    assert check.passed and check.weight == 0 and "no sidecar" in check.detail


# ------------------------------------------------------------------------------ scoring

def test_one_failed_check_is_never_auto_approved_at_the_default_thresholds():
    scored = [w for w in CHECK_WEIGHTS.values() if w > 0]
    assert len(scored) == len(CHECK_NAMES) - 2 and GATES == {ROWS_PRESENT, WELL_FORMED}  # gates are not scored
    assert CRITICAL_CHECKS == {WELL_FORMED, ROWS_PRESENT, REQUIRED_TOPICS, SIDECAR_CONSISTENCY}
    # with every check applicable (an MCAP recording: 21 scored), one failure still scores below 0.9
    for names in (CHECK_NAMES, [n for n in CHECK_NAMES if n not in CONTENT_CHECKS]):
        checks = [CheckResult(n, n != MAX_GAP, 0, 0, CHECK_WEIGHTS[n]) for n in names]
        score = score_of(checks)
        assert score < Requirements().auto_approve
        assert outcome_of(checks, score, Requirements()) is QcOutcome.NEEDS_REVIEW
    # ... a Lance-era recording scores as it always did (one failure in 9 costs 1/9)
    assert score == pytest.approx(8 / 9, abs=1e-4)
    passing = [CheckResult(n, True, 0, 0, CHECK_WEIGHTS[n]) for n in CHECK_NAMES]
    assert score_of(passing) == 1.0 and outcome_of(passing, 1.0, Requirements()) is QcOutcome.APPROVED
    assert score_of([CheckResult(n, False, 0, 0, CHECK_WEIGHTS[n]) for n in CHECK_NAMES]) == 0.0


def test_thresholds_decide_between_approved_needs_review_and_rejected(make_recording):
    path = make_recording("frozen", faults=Faults(frozen_topics=(CAMERA,), drop_rate=0.1, gap_seconds=1.5))
    base = inspect_recording(path, Requirements())
    assert failed(base) == {FROZEN_STREAMS, DROPPED_MESSAGES, MAX_GAP}
    assert base.score == pytest.approx(6 / 9, abs=1e-4)  # 12 applicable scored checks: each failure costs 1/9
    assert base.outcome is QcOutcome.NEEDS_REVIEW  # between review_floor 0.6 and auto_approve 0.9
    assert inspect_recording(path, {"review_floor": 0.7}).outcome is QcOutcome.REJECTED
    assert inspect_recording(path, {"review_floor": 0.5, "auto_approve": 0.65}).outcome is QcOutcome.APPROVED


def test_missing_topic_is_rejected_even_when_the_score_would_pass(make_recording, strict_requirements):
    lenient = Requirements.from_dict({**strict_requirements.to_dict(), "auto_approve": 0.5, "review_floor": 0.1})
    report = inspect_recording(make_recording("no-imu", faults=Faults(missing_topics=(IMU,))), lenient)

    required = report.check(REQUIRED_TOPICS)
    assert not required.passed and required.value == [IMU]
    assert report.score >= lenient.auto_approve  # the score alone would approve ...
    assert report.outcome is QcOutcome.REJECTED  # ... but a critical check failed
    assert IMU not in report.per_topic


# ------------------------------------------------------------------------------ not a verdict

def test_a_missing_dataset_is_infrastructure_and_foreign_datasets_are_rejected_as_malformed(tmp_path):
    with pytest.raises(InspectionInfrastructureError, match="not found"):
        inspect_recording(tmp_path / "nowhere.lance", Requirements())
    (tmp_path / "plain_dir.lance").mkdir()
    report = inspect_recording(tmp_path / "plain_dir.lance", Requirements())
    assert report.outcome is QcOutcome.REJECTED and "not a readable Lance dataset" in report.check(WELL_FORMED).detail
    lance.write_dataset(pa.table({"x": [1, 2, 3]}), str(tmp_path / "other.lance"))
    report = inspect_recording(tmp_path / "other.lance", Requirements())
    assert report.outcome is QcOutcome.REJECTED
    assert "missing column(s) topic, sequence, log_time_ns, payload" in report.check(WELL_FORMED).detail


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_recordings_in_s3_are_inspected_and_unreachable_storage_is_infrastructure(make_recording, s3_env, s3_client, s3_bucket, monkeypatch):
    path = make_recording("remote")
    for file in path.rglob("*"):
        if file.is_file():
            s3_client.upload_file(str(file), s3_bucket, f"edge/remote.lance/{file.relative_to(path).as_posix()}")
    uri = f"s3://{s3_bucket}/edge/remote.lance"

    report = inspect_recording(uri, Requirements())
    assert report.row_count == 1650 and failed(report) == {INTEGRITY}
    assert report.check(SIDECAR_CONSISTENCY).weight == 0  # the sidecar is checked on local datasets ...
    assert report.outcome is QcOutcome.NEEDS_REVIEW  # ... so nothing vouches for a remote one: never approved

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(InspectionInfrastructureError, match=f"cannot inspect {uri}: cannot open the Lance dataset \\(storage unreachable"):
        inspect_recording(uri, Requirements())


# ------------------------------------------------------------------------------ report

def test_report_round_trips_through_json_and_is_written_atomically(make_recording, strict_requirements):
    path = make_recording("rt", faults=Faults(gap_seconds=1.5, drop_rate=0.05))
    report = inspect_recording(path, strict_requirements)

    assert InspectionReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report
    target = report_path(path)
    assert report.write(target) == target
    assert InspectionReport.read(target) == report
    raw = json.loads(target.read_text())
    assert raw["outcome"] == report.outcome.value and raw["dataset_path"] == str(path)
    assert raw["format_version"] == REPORT_FORMAT_VERSION == 3
    assert {"name", "passed", "value", "threshold", "weight", "detail"} <= set(raw["checks"][0])
    assert {"count", "rate_hz", "max_gap_s", "first_ns", "last_ns", "dropped_messages", "lost_in_gaps",
            "repeated_payloads", "longest_frozen_s"} <= set(raw["per_topic"][IMU])
    assert raw["requirements"] == strict_requirements.to_dict()
    assert sorted(p.name for p in path.parent.iterdir()) == ["rt.json", "rt.lance", "rt.qc.json"]  # no temp files


def test_a_version_1_report_still_reads():
    v1 = {"dataset_path": "/x.lance", "checks": [{"name": "max_gap", "passed": True, "value": 0.1, "threshold": 1.0,
                                                  "weight": 2.0, "detail": ""}], "score": 1.0, "outcome": "approved",
          "per_topic": {IMU: {"count": 5, "rate_hz": 100.0, "max_gap_s": 0.01, "first_ns": 1, "last_ns": 2,
                              "backward_steps": 0, "lost_messages": 0}}, "format_version": 1}
    report = InspectionReport.from_dict(v1)
    assert report.per_topic[IMU].dropped_messages == 0 and report.format_version == 1


# ------------------------------------------------------------------------------ bad input

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
        {"max_drop_rate": 1.5},
        {"sync_percentile": 0},
        {"sync_topic": 5},
        {"frozen_topics": "/camera/image_raw"},
        {"max_frozen_seconds": True},
        "approve everything",
    ],
    ids=["negative-tolerance", "floor-above-approve", "min-above-max", "negative-max", "zero-rate", "topics-not-list",
         "unknown-key", "drop-rate-over-1", "zero-percentile", "sync-topic-not-str", "frozen-not-list", "bool-seconds",
         "not-requirements"],
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


def test_default_requirements_round_trip(strict_requirements):
    req = Requirements()
    assert Requirements.from_dict(req.to_dict()) == req
    assert req.sync_topic == CAMERA and req.sync_reference_topic == JOINTS and req.frozen_topics == (CAMERA, JOINTS)
    assert Requirements.from_dict(strict_requirements.to_dict()) == strict_requirements


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
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["approved", "native"]
