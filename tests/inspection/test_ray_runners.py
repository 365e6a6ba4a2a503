"""The Ray runners: Daft on a Ray address (child process) and Ray Jobs submission.

The agreement tests run against a real local Ray head with token auth (the session fixture
``ray_head``); the rest need no cluster."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from axon_dagster.domain import QcOutcome, Requirements
from axon_dagster.inspection import InspectionInfrastructureError, inspect_recording
from axon_dagster.inspection.ray_runners import (
    RayConfig,
    _run_child,
    gcs_target,
    job_entrypoint,
    jobs_api_url,
    run_as_ray_job,
)
from axon_dagster.demo.sim.synthetic import Faults

REQ = Requirements.from_dict({"required_topics": ["/camera/image_raw", "/imu"], "max_gap_seconds": 0.5})


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def same_verdicts(a, b) -> None:
    assert a.checks == b.checks  # name, passed, value, threshold, weight, detail: all equal
    assert a.per_topic == b.per_topic
    assert (a.score, a.outcome, a.row_count, a.duration_s, a.requirements) == (
        b.score, b.outcome, b.row_count, b.duration_s, b.requirements)


# ------------------------------------------------------------------------------ against a real head

@pytest.fixture(scope="module")
def faulty_recording(tmp_path_factory) -> Path:
    """Several checks with non-trivial values: drops, a 0.8 s stall, a frozen camera, a clock jump."""
    from axon_dagster.demo.sim.synthetic import write_recording

    path = tmp_path_factory.mktemp("ray") / "faulty.lance"
    write_recording(path, task_id="faulty", robot_id="robot-1", start_ns=1_700_000_000_000_000_000, duration_s=3.0,
                    faults=Faults(drop_rate=0.05, gap_seconds=0.8, frozen_topics=("/camera/image_raw",),
                                  clock_backwards_at_fraction=0.8, clock_backwards_seconds=0.1), seed=5)
    return path


@pytest.mark.slow
def test_daft_on_a_ray_address_agrees_with_native(ray_head, faulty_recording):
    native = inspect_recording(faulty_recording, REQ)
    assert {c.name for c in native.failed_checks} >= {"dropped_messages", "max_gap", "frozen_streams",
                                                      "monotonic_timestamps"}
    config = RayConfig(auth_token=ray_head.token, timeout_s=240)
    on_ray = inspect_recording(faulty_recording, REQ, runner="ray", ray_address=ray_head.gcs_address, ray_config=config)
    assert on_ray.runner == "ray"
    same_verdicts(native, on_ray)


@pytest.fixture(scope="module")
def faulty_mcap_recording(tmp_path_factory) -> Path:
    """An Axon MCAP (simulator's writer) with content faults and a pause, ingested into Lance."""
    from axon_dagster.ingest import ingest_mcap
    from axon_dagster.demo.sim.axon_mcap import write_axon_recording

    root = tmp_path_factory.mktemp("ray-mcap")
    rec = write_axon_recording(
        root / "robot", task_config={"task_id": "mcap-faulty", "scene": "warehouse", "skills": ["pick"]},
        device_id="robot-1", started_at_ns=1_700_000_000_000_000_000, duration_s=4.0, pauses=((1.0, 0.5),), seed=5,
        faults=Faults(nan_topics=("/imu",), image_change_at_fraction=0.5, header_stamp_skew_seconds=0.8,
                      frozen_topics=("/joint_states",), sidecar_count_delta=2),
    )
    return ingest_mcap(rec.mcap_path, root / "lake" / "mcap-faulty.lance").dataset_path


@pytest.fixture(scope="module")
def sanity_recording(tmp_path_factory) -> Path:
    """Duplicated rows, a sequence reset, a stuck clock, a topic on another clock, a declared topic lost."""
    from axon_dagster.demo.sim.synthetic import DEFAULT_TOPICS, TopicSpec, write_recording

    path = tmp_path_factory.mktemp("ray-sanity") / "sanity.lance"
    topics = {**DEFAULT_TOPICS, "/odom": TopicSpec(50.0, "nav_msgs/Odometry", 120)}
    write_recording(path, task_id="sanity", robot_id="robot-1", start_ns=1_700_000_000_000_000_000, duration_s=3.0,
                    topics=topics, metadata={"topics": [*DEFAULT_TOPICS, "/lidar/points"]}, seed=5,
                    faults=Faults(duplicate_rate=0.05, sequence_reset_at_fraction=0.5, constant_time_topics=("/imu",),
                                  clock_offset_topics=("/odom",), clock_offset_seconds=20.0))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("recording, caught", [
    ("faulty_mcap_recording", {"nonfinite_values", "image_format_stable", "header_stamp_skew", "frozen_values",
                               "axon_sidecar_match"}),
    ("sanity_recording", {"duplicate_messages", "sequence_numbers", "constant_timestamps", "timestamps_in_range",
                          "topic_set"}),
], ids=["content-checks", "sanity-checks"])
def test_checks_on_a_ray_address_agree_with_native(ray_head, request, recording, caught):
    path = request.getfixturevalue(recording)
    native = inspect_recording(path, REQ)
    assert {c.name for c in native.failed_checks} >= caught
    config = RayConfig(auth_token=ray_head.token, timeout_s=240)
    on_ray = inspect_recording(path, REQ, runner="ray", ray_address=ray_head.gcs_address, ray_config=config)
    same_verdicts(native, on_ray)


@pytest.mark.slow
def test_ray_job_submission_agrees_with_native(ray_head, faulty_recording):
    native = inspect_recording(faulty_recording, REQ)
    config = RayConfig(auth_token=ray_head.token, job_python=sys.executable, timeout_s=240, poll_interval_s=0.5)
    as_job = inspect_recording(faulty_recording, REQ, runner="ray-job", ray_address=ray_head.jobs_url, ray_config=config)
    assert as_job.runner == "ray-job"
    same_verdicts(native, as_job)


@pytest.mark.slow
def test_a_wrong_token_is_refused_as_infrastructure(ray_head, faulty_recording):
    config = RayConfig(auth_token="not-the-token", job_python=sys.executable)
    with pytest.raises(InspectionInfrastructureError, match="refused the connection"):
        inspect_recording(faulty_recording, REQ, runner="ray-job", ray_address=ray_head.jobs_url, ray_config=config)


# ------------------------------------------------------------------------------ no cluster needed

@pytest.mark.parametrize("runner, address, what", [
    ("ray", "127.0.0.1:{port}", "Ray cluster unreachable"),
    ("ray", "ray://127.0.0.1:{port}", "Ray cluster unreachable"),
    ("ray-job", "http://127.0.0.1:{port}", "Ray Jobs API unreachable"),
])
def test_an_unreachable_ray_is_an_infrastructure_error_within_seconds(make_recording, runner, address, what):
    path = make_recording("r")
    started = time.monotonic()
    with pytest.raises(InspectionInfrastructureError, match=what):
        inspect_recording(path, REQ, runner=runner, ray_address=address.format(port=closed_port()))
    assert time.monotonic() - started < 15


@pytest.mark.parametrize("runner, address, message", [
    ("ray", "http://head:8265", "Jobs API"),
    ("ray", "head", "host:port"),
    ("ray-job", "ray://head:10001", "use the `ray` runner"),
    ("ray-job", "ftp://head", "http://head:8265"),
])
def test_an_address_of_the_wrong_kind_is_refused_before_connecting(make_recording, runner, address, message):
    with pytest.raises(ValueError, match=message):
        inspect_recording(make_recording("r"), REQ, runner=runner, ray_address=address)


def test_ray_runners_need_an_address(make_recording, monkeypatch):
    monkeypatch.delenv("AXON_RAY_ADDRESS", raising=False)
    for runner in ("ray", "ray-job"):
        with pytest.raises(ValueError, match="needs"):
            inspect_recording(make_recording(f"r-{runner}"), REQ, runner=runner)


def test_address_forms():
    assert gcs_target("10.0.0.5:6379") == ("10.0.0.5", 6379)
    assert gcs_target("ray://head.svc:10001") == ("head.svc", 10001)
    assert gcs_target("auto") is None
    assert jobs_api_url("head:8265") == "http://head:8265"
    assert jobs_api_url("https://ray.example.com/") == "https://ray.example.com"


def test_config_from_env(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    config = RayConfig.from_env({"AXON_RAY_ADDRESS": "http://head:8265", "AXON_RAY_AUTH_TOKEN_FILE": str(token_file),
                                 "AXON_RAY_JOB_PYTHON": "/opt/venv/bin/python", "AXON_RAY_TIMEOUT_SECONDS": "90"})
    assert (config.address, config.auth_token, config.job_python, config.timeout_s) == (
        "http://head:8265", "s3cret", "/opt/venv/bin/python", 90.0)
    assert "s3cret" not in repr(config)
    assert RayConfig.from_env({"AXON_RAY_AUTH_TOKEN": "t", "AXON_RAY_AUTH_TOKEN_FILE": "/nope"}).auth_token == "t"
    assert RayConfig.from_env({}) == RayConfig()
    with pytest.raises(ValueError, match="AXON_RAY_TIMEOUT_SECONDS"):
        RayConfig.from_env({"AXON_RAY_TIMEOUT_SECONDS": "soon"})
    with pytest.raises(ValueError, match="unreadable"):
        RayConfig.from_env({"AXON_RAY_AUTH_TOKEN_FILE": str(tmp_path / "missing")})
    for bad in ({"timeout_s": 0}, {"job_python": " "}, {"address": ""}, {"auth_token": ""}, {"poll_interval_s": True}):
        with pytest.raises(ValueError):
            RayConfig(**bad)


def test_the_job_entrypoint_prints_the_report_and_never_carries_the_token():
    entry = job_entrypoint("/data/it's here.lance", REQ, "/venv/bin/python")
    assert entry.startswith("/venv/bin/python -m axon_dagster.inspection.job --dataset '/data/it'\"'\"'s here.lance'")
    assert entry.endswith("--output - --runner ray") and "token" not in entry.lower()
    assert job_entrypoint("/d.lance", REQ, verify_digest=False).endswith("--runner ray --no-digest")


def test_a_hung_child_is_killed_with_its_process_group_on_timeout(tmp_path):
    marker = tmp_path / "grandchild.pid"
    script = ("import subprocess, sys, time; "
              f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); open({str(marker)!r}, 'w').write(str(p.pid)); "
              "print('started', flush=True); time.sleep(120)")
    started = time.monotonic()
    with pytest.raises(InspectionInfrastructureError, match=r"did not finish in 2 s(.|\n)*started"):
        _run_child([sys.executable, "-c", script], os.environ, 2.0, "/data/x.lance")
    assert time.monotonic() - started < 20
    grandchild = int(marker.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{grandchild}").exists():
        time.sleep(0.2)
    state = Path(f"/proc/{grandchild}/stat").read_text().split()[2] if Path(f"/proc/{grandchild}").exists() else "gone"
    assert state in ("gone", "Z")  # killed with the group (a zombie until its parent's parent reaps it)


class FakeJobStatus:
    def __init__(self, value: str):
        self.value = value

    def is_terminal(self) -> bool:
        return self.value in ("SUCCEEDED", "FAILED", "STOPPED")

    def __eq__(self, other):
        return isinstance(other, FakeJobStatus) and other.value == self.value


class FakeJobsClient:
    """Shaped like ray.job_submission.JobSubmissionClient, with scripted statuses."""

    def __init__(self, statuses, logs="", message=""):
        self.statuses, self.logs, self.message = list(statuses), logs, message
        self.calls: list[str] = []

    def submit_job(self, **kw):
        self.calls.append("submit")
        self.submitted = kw
        return kw["submission_id"]

    def get_job_status(self, sid):
        self.calls.append("status")
        return FakeJobStatus(self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0])

    def stop_job(self, sid):
        self.calls.append("stop")
        return True

    def get_job_logs(self, sid):
        return self.logs

    def get_job_info(self, sid):
        return type("Info", (), {"message": self.message})()


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.now += s


def test_a_ray_job_that_runs_too_long_is_stopped(monkeypatch):
    client = FakeJobsClient(["PENDING", "RUNNING"])
    monkeypatch.setattr("axon_dagster.inspection.ray_runners.jobs_client", lambda path, config: client)
    clock = FakeClock()
    config = RayConfig(address="http://head:8265", timeout_s=10, poll_interval_s=3)
    with pytest.raises(InspectionInfrastructureError, match="still RUNNING after 10 s; stopped"):
        run_as_ray_job("/d.lance", REQ, config, clock=clock, sleep=clock.sleep)
    assert client.calls[0] == "submit" and client.calls[-1] == "stop" and clock.now == 10
    assert client.submitted["runtime_env"]["env_vars"]["DAFT_PROGRESS_BAR"] == "0"


def test_a_failed_ray_job_is_infrastructure_with_its_logs(monkeypatch):
    client = FakeJobsClient(["RUNNING", "FAILED"], logs="line 1\ncannot inspect /d.lance: storage down\n",
                            message="Job entrypoint command failed with exit code 3")
    monkeypatch.setattr("axon_dagster.inspection.ray_runners.jobs_client", lambda path, config: client)
    clock = FakeClock()
    with pytest.raises(InspectionInfrastructureError, match=r"FAILED: Job entrypoint command failed with exit code 3(.|\n)*storage down"):
        run_as_ray_job("/d.lance", REQ, RayConfig(address="http://head:8265"), clock=clock, sleep=clock.sleep)


def test_a_succeeded_ray_job_without_a_report_is_infrastructure(monkeypatch):
    client = FakeJobsClient(["SUCCEEDED"], logs="all good, no report\n")
    monkeypatch.setattr("axon_dagster.inspection.ray_runners.jobs_client", lambda path, config: client)
    with pytest.raises(InspectionInfrastructureError, match="printed no report"):
        run_as_ray_job("/d.lance", REQ, RayConfig(address="http://head:8265"))


def test_report_outcomes_are_what_the_job_printed(monkeypatch, make_recording, capsys):
    """The report read back from the logs is the report the job printed."""
    from axon_dagster.inspection.job import main as job_main

    path = make_recording("j", faults=Faults(frozen_topics=("/camera/image_raw",)))
    assert job_main(["--dataset", str(path), "--requirements", "{}", "--output", "-", "--runner", "native"]) == 0
    printed = capsys.readouterr().out
    client = FakeJobsClient(["SUCCEEDED"], logs="INFO starting\n" + printed + "INFO done\n")
    monkeypatch.setattr("axon_dagster.inspection.ray_runners.jobs_client", lambda p, config: client)
    report = run_as_ray_job(str(path), Requirements(), RayConfig(address="http://head:8265"))
    assert report.outcome is QcOutcome.NEEDS_REVIEW and not report.check("frozen_streams").passed
