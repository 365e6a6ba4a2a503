"""QC trusts nothing: integrity first (no sidecar / no Axon checksum, no approval), the sanity checks
(duplication, constant and out-of-range timestamps, topic set against the recorder's declaration,
sequence numbers) each catching a fault no other check catches, and malformed data judged with a
reason while unreachable data stays an infrastructure failure."""

from __future__ import annotations

import json
import os
from pathlib import Path

import lance
import pyarrow as pa
import pytest

from axon_dagster.domain import QcOutcome, Requirements
from axon_dagster.inspection import InspectionInfrastructureError, inspect_recording
from axon_dagster.inspection.checks import (
    CONSTANT_TIMESTAMPS,
    DUPLICATE_MESSAGES,
    FROZEN_STREAMS,
    INTEGRITY,
    SEQUENCE_NUMBERS,
    SIDECAR_CONSISTENCY,
    TIMESTAMPS_IN_RANGE,
    TOPIC_SET,
    WELL_FORMED,
)
from axon_dagster.demo.sim.synthetic import DEFAULT_TOPICS, Faults
from axon_dagster.storage.recording import recording_schema, sidecar_path

CAMERA, JOINTS, IMU = "/camera/image_raw", "/joint_states", "/imu"
DECLARED = {"topics": list(DEFAULT_TOPICS)}


def failed(report) -> set[str]:
    return {c.name for c in report.failed_checks}


# ------------------------------------------------------------------------------ the sanity checks

# fault -> (write_recording kwargs, the check that must catch it (and only it), words in its detail)
SANITY_FAULTS = {
    "duplicated-rows": (dict(faults=Faults(duplicate_rate=0.05)), DUPLICATE_MESSAGES, "duplicated messages"),
    "sequence-reset": (dict(faults=Faults(sequence_reset_at_fraction=0.5)), SEQUENCE_NUMBERS, "1 back steps"),
    "constant-time": (dict(faults=Faults(constant_time_topics=(IMU,))), CONSTANT_TIMESTAMPS, f"{IMU} (499 of 500"),
    "other-clock": (dict(faults=Faults(clock_offset_topics=(IMU,), clock_offset_seconds=30.0)), TIMESTAMPS_IN_RANGE,
                    f"{IMU} until 29.9"),
    "declared-topic-lost": (dict(faults=Faults(missing_topics=(IMU,)), metadata=DECLARED), TOPIC_SET,
                            f"declared but lost: {IMU}"),
    "undeclared-topic": (dict(metadata={"topics": [CAMERA, JOINTS]}), TOPIC_SET, f"not declared: {IMU}"),
}


@pytest.mark.parametrize("fault", sorted(SANITY_FAULTS))
def test_each_sanity_fault_is_caught_by_its_check_and_only_by_it(make_recording, fault):
    kwargs, check, words = SANITY_FAULTS[fault]
    report = inspect_recording(make_recording(fault, seed=3, **kwargs), Requirements())
    assert failed(report) == {check}, {c.name: c.detail for c in report.failed_checks}
    assert words in report.check(check).detail
    assert report.outcome is QcOutcome.NEEDS_REVIEW and report.score < 0.9


def test_a_clean_recording_that_declares_its_topics_passes_every_sanity_check(make_recording):
    report = inspect_recording(make_recording("declared", metadata=DECLARED, seed=4), Requirements())
    assert failed(report) == set() and report.outcome is QcOutcome.APPROVED and report.score == 1.0
    for name in (INTEGRITY, TOPIC_SET, CONSTANT_TIMESTAMPS, TIMESTAMPS_IN_RANGE, SEQUENCE_NUMBERS, DUPLICATE_MESSAGES):
        assert report.check(name).weight > 0, name  # applied, not waved through
    assert report.check(TOPIC_SET).detail == "exactly the 3 declared topics"
    assert all(s.duplicate_messages == s.repeated_sequences == s.sequence_resets == s.zero_steps == 0
               for s in report.per_topic.values())


def test_duplicated_rows_are_counted_once_and_do_not_look_like_a_frozen_sensor(make_recording):
    report = inspect_recording(make_recording("dups", faults=Faults(duplicate_rate=0.2), seed=1), Requirements())
    dup = report.check(DUPLICATE_MESSAGES)
    counts = {t: s.duplicate_messages for t, s in report.per_topic.items()}
    assert dup.value == sum(counts.values()) and all(n > 0 for n in counts.values())
    # the rows really are there twice: the counts exceed the clean ones by exactly the duplicates
    for topic, spec in DEFAULT_TOPICS.items():
        assert report.per_topic[topic].count == int(spec.rate_hz * 5.0) + counts[topic]
    assert report.check(FROZEN_STREAMS).passed and report.check(SEQUENCE_NUMBERS).passed


def test_a_sequence_reset_is_not_mistaken_for_a_clock_jump_and_vice_versa(make_recording):
    reset = inspect_recording(make_recording("reset", faults=Faults(sequence_reset_at_fraction=0.5)), Requirements())
    assert all(s.sequence_resets == 1 and s.backward_steps == 0 for s in reset.per_topic.values())
    jump = inspect_recording(make_recording("jump", faults=Faults(clock_backwards_at_fraction=0.5)), Requirements())
    assert all(s.sequence_resets == 0 and s.backward_steps == 1 for s in jump.per_topic.values())
    assert failed(jump) == {"monotonic_timestamps"}


# ------------------------------------------------------------------------------ integrity first

def _flip_bytes_in_a_data_file(path: Path) -> Path:
    """Flip bytes in the middle of the biggest data file (inside the camera payloads)."""
    data = max((path / "data").glob("*.lance"), key=lambda f: f.stat().st_size)
    raw = bytearray(data.read_bytes())
    middle = len(raw) // 3
    for i in range(middle, middle + 64):
        raw[i] ^= 0xFF
    data.write_bytes(bytes(raw))
    return data


def test_flipped_bytes_without_a_sidecar_are_never_approved(make_recording):
    path = make_recording("flipped", seed=2)
    _flip_bytes_in_a_data_file(path)
    sidecar_path(path).unlink()
    report = inspect_recording(path, Requirements())
    assert report.outcome is not QcOutcome.APPROVED and report.score < 1.0
    integrity = report.check(INTEGRITY)
    assert not integrity.passed and "nothing vouches for these bytes" in integrity.detail


def test_flipped_bytes_with_a_sidecar_are_rejected(make_recording):
    path = make_recording("flipped-sc", seed=2)
    data = _flip_bytes_in_a_data_file(path)
    report = inspect_recording(path, Requirements())
    assert report.outcome is QcOutcome.REJECTED
    assert f"file data/{data.name} changed" in report.check(SIDECAR_CONSISTENCY).detail


def test_a_clean_recording_without_its_sidecar_needs_review_whatever_the_thresholds(make_recording):
    path = make_recording("nosidecar")
    sidecar_path(path).unlink()
    report = inspect_recording(path, Requirements())
    assert failed(report) == {INTEGRITY} and report.outcome is QcOutcome.NEEDS_REVIEW
    # an admin who approves anything above 0.5 still does not get it approved without evidence
    lenient = inspect_recording(path, {"auto_approve": 0.5, "review_floor": 0.1})
    assert lenient.score >= 0.5 and lenient.outcome is QcOutcome.NEEDS_REVIEW
    # with its sidecar back it is approved: the evidence is what was missing
    assert inspect_recording(make_recording("withsidecar"), Requirements()).outcome is QcOutcome.APPROVED


@pytest.fixture
def axon_lance(tmp_path):
    from axon_dagster.ingest import ingest_mcap
    from axon_dagster.demo.sim.axon_mcap import write_axon_recording

    def make(name: str, sidecar_mode: str = "always", hashed: bool = True):
        rec = write_axon_recording(tmp_path / name / "robot", task_config={"task_id": name, "scene": "warehouse"},
                                   device_id="robot-1", started_at_ns=1_780_000_000_000_000_000, duration_s=3.0,
                                   sidecar_mode=sidecar_mode, seed=3)
        sha = rec.checksum_sha256 if hashed else None
        return ingest_mcap(rec.mcap_path, tmp_path / name / "lake" / f"{name}.lance", mcap_sha256=sha).dataset_path

    return make


def test_an_axon_mcap_with_its_checksum_is_approved(axon_lance):
    report = inspect_recording(axon_lance("axon-ok"), Requirements())
    assert report.outcome is QcOutcome.APPROVED and report.check(INTEGRITY).passed
    assert "against Axon's checksum" in report.check(INTEGRITY).detail


@pytest.mark.parametrize("mode, hashed, words", [
    ("none", True, "no Axon checksum_sha256"),  # sidecar mode none: only the axon.* metadata, no checksum
    ("always", False, "not hashed at ingestion"),
])
def test_an_axon_mcap_without_a_checksum_to_verify_is_never_approved(axon_lance, mode, hashed, words):
    report = inspect_recording(axon_lance(f"axon-{mode}-{hashed}", sidecar_mode=mode, hashed=hashed), Requirements())
    assert failed(report) == {INTEGRITY}, {c.name: c.detail for c in report.failed_checks}
    assert words in report.check(INTEGRITY).detail
    assert report.outcome is QcOutcome.NEEDS_REVIEW


# ------------------------------------------------------------------------------ malformed input

def _write_lance(path: Path, table: pa.Table) -> Path:
    lance.write_dataset(table, str(path))
    return path


def _rows(n: int = 20) -> dict:
    return {
        "topic": ["/imu"] * n,
        "log_time_ns": [1_700_000_000_000_000_000 + i * 10_000_000 for i in range(n)],
        "sequence": list(range(n)),
        "message_type": ["sensor_msgs/Imu"] * n,
        "payload": [bytes([i]) * 8 for i in range(n)],
    }


def _corrupt_every_data_file(path: Path) -> None:
    for f in (path / "data").glob("*.lance"):
        raw = bytearray(f.read_bytes())
        raw[-40:] = b"\x00" * 40  # the file's footer: Lance cannot find its columns any more
        f.write_bytes(bytes(raw))


def _truncate_every_data_file(path: Path) -> None:
    for f in (path / "data").glob("*.lance"):
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


@pytest.mark.parametrize("make, words", [
    (lambda p: _write_lance(p, pa.table({**_rows(), "log_time_ns": [str(v) for v in _rows()["log_time_ns"]]})),
     "log_time_ns is string, expected integer"),
    (lambda p: _write_lance(p, pa.table({k: v for k, v in _rows().items() if k != "sequence"})), "missing column(s) sequence"),
    (lambda p: (_write_lance(p, pa.table(_rows(), schema=recording_schema())), _corrupt_every_data_file(p)), "every file reads"),
    (lambda p: (_write_lance(p, pa.table(_rows(), schema=recording_schema())), _truncate_every_data_file(p)), "every file reads"),
    (lambda p: (p.mkdir(), (p / "junk.bin").write_bytes(os.urandom(64))), "not a readable Lance dataset"),
], ids=["wrong-type", "missing-column", "corrupt-footer", "truncated-file", "not-lance"])
def test_malformed_datasets_get_a_rejection_with_the_reason(tmp_path, make, words):
    path = tmp_path / "bad.lance"
    make(path)
    report = inspect_recording(path, Requirements())
    assert report.outcome is QcOutcome.REJECTED
    well_formed = report.check(WELL_FORMED)
    assert not well_formed.passed and words in well_formed.detail, well_formed.detail
    assert report.check("rows_present").detail.startswith("not measured")


def test_an_empty_dataset_is_rejected_for_having_no_rows(tmp_path):
    path = _write_lance(tmp_path / "empty.lance", pa.Table.from_batches([], schema=recording_schema()))
    report = inspect_recording(path, Requirements())
    assert report.outcome is QcOutcome.REJECTED and report.check(WELL_FORMED).passed
    assert not report.check("rows_present").passed and report.row_count == 0


def test_a_sidecar_that_is_not_json_rejects(make_recording):
    path = make_recording("badjson")
    sidecar_path(path).write_text('{"task_id": "badjson", "topics": ')
    report = inspect_recording(path, Requirements())
    assert report.outcome is QcOutcome.REJECTED
    assert "not a valid sidecar" in report.check(SIDECAR_CONSISTENCY).detail
    assert not report.check(INTEGRITY).passed


def test_unreadable_files_stay_an_infrastructure_failure(make_recording):
    """Bytes that cannot be read at all (here: no permission) say nothing about the data: the run
    fails and is retried; it is never judged malformed."""
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    path = make_recording("noperm", faults=Faults(truncate=True))
    sidecar_path(path).unlink()
    victim = next((path / "data").glob("*.lance"))
    victim.chmod(0)
    try:
        with pytest.raises(InspectionInfrastructureError):
            inspect_recording(path, Requirements())
    finally:
        victim.chmod(0o644)


def test_a_scan_that_fails_for_a_reason_other_than_the_data_stays_infrastructure(make_recording, monkeypatch):
    """The runner failing mid-scan (Ray down) on a dataset Lance reads fine: not a verdict."""
    from axon_dagster.inspection import daft_profile

    def ray_died(path, requirements=None):
        raise InspectionInfrastructureError(str(path), "reading the dataset failed: Ray actor died")

    monkeypatch.setattr("axon_dagster.inspection.inspector.profile_recording", ray_died)
    assert daft_profile.profile_recording is not ray_died
    path = make_recording("raydown")
    sidecar_path(path).unlink()
    with pytest.raises(InspectionInfrastructureError, match="Ray actor died"):
        inspect_recording(path, Requirements())


def test_a_corrupt_mcap_is_rejected_by_the_cli_with_the_reason(tmp_path, capsys):
    from axon_dagster.inspection.cli import main
    from axon_dagster.demo.sim.axon_mcap import write_axon_recording

    rec = write_axon_recording(tmp_path / "robot", task_config={"task_id": "broken"}, device_id="robot-1",
                               started_at_ns=1_780_000_000_000_000_000, duration_s=2.0, seed=1)
    raw = bytearray(rec.mcap_path.read_bytes())
    rec.mcap_path.write_bytes(bytes(raw[: len(raw) // 3]) + os.urandom(200))
    assert main([str(rec.mcap_path), "--json", "-q"]) == 2  # rejected, not "could not inspect"
    out = json.loads(capsys.readouterr().out)
    assert out["outcome"] == "rejected"
    well_formed = next(c for c in out["checks"] if c["name"] == WELL_FORMED)
    assert not well_formed["passed"] and "not a readable MCAP" in well_formed["detail"]
    # a path that is not there is still "could not inspect"
    assert main([str(tmp_path / "nowhere.mcap"), "-q"]) == 3


def test_an_axon_subscription_that_never_published_is_a_declared_topic_lost(tmp_path):
    """Axon opens a channel per subscription: one without messages is a topic the recording lost."""
    from axon_dagster.ingest import ingest_mcap
    from axon_dagster.demo.sim.axon_mcap import write_axon_recording

    rec = write_axon_recording(tmp_path / "robot", task_config={"task_id": "quiet-odom"}, device_id="robot-1",
                               started_at_ns=1_780_000_000_000_000_000, duration_s=3.0, seed=3,
                               faults=Faults(missing_topics=("/odom",)))
    path = ingest_mcap(rec.mcap_path, tmp_path / "quiet-odom.lance", mcap_sha256=rec.checksum_sha256).dataset_path
    report = inspect_recording(path, Requirements())
    assert failed(report) == {TOPIC_SET}, {c.name: c.detail for c in report.failed_checks}
    assert report.check(TOPIC_SET).detail.endswith("declared but lost: /odom")
    assert report.outcome is QcOutcome.NEEDS_REVIEW
