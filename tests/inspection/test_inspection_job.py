"""The job entry point the Ray runners execute, run in-process on the native runner.

(Its Ray runner path is exercised against a real Ray head in test_ray_runners.py.)"""

from __future__ import annotations

import json

import pytest

from axon_dagster.domain import QcOutcome
from axon_dagster.inspection import InspectionReport
from axon_dagster.inspection.job import (
    EXIT_BAD_INPUT,
    EXIT_INFRASTRUCTURE,
    REPORT_MARKER,
    main,
)
from axon_dagster.inspection.ray_runners import parse_report_from_logs
from axon_dagster.demo.sim.synthetic import Faults
from axon_dagster.storage.recording import sidecar_path


def run(dataset, requirements, output) -> int:
    req = requirements if isinstance(requirements, str) else json.dumps(requirements)
    return main(["--dataset", str(dataset), "--requirements", req, "--output", str(output), "--runner", "native"])


def test_job_writes_the_report_to_a_path_or_file_uri(make_recording, tmp_path):
    path = make_recording("job", faults=Faults(gap_seconds=2.0))
    out = tmp_path / "reports" / "job.qc.json"
    assert run(path, {"max_gap_seconds": 1.0}, out) == 0
    report = InspectionReport.read(out)
    assert report.dataset_path == str(path) and report.outcome is QcOutcome.NEEDS_REVIEW

    # A tolerated stall's lost messages are judged as drops: tolerate those too.
    assert run(path, {"max_gap_seconds": 3.0, "max_drop_rate": 0.5}, f"file://{tmp_path}/again.json") == 0
    assert InspectionReport.read(tmp_path / "again.json").approved


def test_job_writes_the_report_to_s3(make_recording, monkeypatch):
    moto = pytest.importorskip("moto")
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    path = make_recording("s3job")
    with moto.mock_aws():  # in-process fake of S3: a real S3 cannot exist here
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="reports")
        assert run(path, {}, "s3://reports/qc/s3job.json") == 0
        body = s3.get_object(Bucket="reports", Key="qc/s3job.json")["Body"].read()
    assert InspectionReport.from_dict(json.loads(body)).approved


@pytest.mark.parametrize("requirements", ["{not json", "[1, 2]", {"min_duration_s": 5}, {"rate_tolerance": -1}])
def test_job_refuses_bad_requirements_and_writes_nothing(make_recording, tmp_path, requirements):
    out = tmp_path / "out.json"
    assert run(make_recording("bad"), requirements, out) == EXIT_BAD_INPUT
    assert not out.exists()


def test_job_refuses_an_unsupported_output(make_recording, tmp_path):
    assert run(make_recording("o"), {}, "ftp://host/report.json") == EXIT_BAD_INPUT


def test_a_missing_dataset_is_an_infrastructure_exit_and_no_report(tmp_path):
    out = tmp_path / "out.json"
    assert run(tmp_path / "missing.lance", {}, out) == EXIT_INFRASTRUCTURE
    assert not out.exists()


def test_a_truncated_dataset_without_its_sidecar_gets_a_rejected_report(make_recording, tmp_path):
    """Every file that is there reads, and Lance cannot read the dataset: malformed, a verdict."""
    out = tmp_path / "out.json"
    truncated = make_recording("trunc", faults=Faults(truncate=True))
    sidecar_path(truncated).unlink()
    assert run(truncated, {}, out) == 0
    report = InspectionReport.read(out)
    assert report.outcome is QcOutcome.REJECTED and not report.check("well_formed").passed


def test_a_truncated_dataset_with_its_sidecar_gets_a_rejected_report(make_recording, tmp_path):
    out = tmp_path / "out.json"
    assert run(make_recording("trunc", faults=Faults(truncate=True)), {}, out) == 0
    report = InspectionReport.read(out)
    assert report.outcome is QcOutcome.REJECTED and "missing" in report.check("sidecar_consistency").detail


def test_report_on_stdout_is_one_marked_line(make_recording, capsys):
    path = make_recording("stdout", faults=Faults(drop_rate=0.1))
    assert run(path, {}, "-") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(REPORT_MARKER)
    report = parse_report_from_logs("some log line\n" + lines[0] + "\nmore logs\n")
    assert report.dataset_path == str(path) and not report.check("dropped_messages").passed
    assert parse_report_from_logs("no report here") is None
