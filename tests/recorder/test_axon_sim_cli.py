"""``axon-sim``: what the demo and `make dev` start, one per robot."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from axon_dagster.recorder import AxonHttpRecorder
from axon_dagster.demo.sim.cli import main
from axon_dagster.storage.digest import dataset_digest, file_sha256
from axon_dagster.storage.recording import Sidecar

LISTENING = re.compile(r"axon-sim listening on (http://\S+)")


def axon_sim_command() -> list[str]:
    script = Path(sys.executable).with_name("axon-sim")
    return [str(script)] if script.exists() else [sys.executable, "-m", "axon_dagster.demo.sim.cli"]


def test_the_axon_sim_entry_point_serves_and_stops_cleanly_on_sigterm(tmp_path):
    proc = subprocess.Popen(
        [*axon_sim_command(), "--port", "0", "--data-dir", str(tmp_path / "data"), "--robot-id", "robot-9",
         "--faults", '{"drop_rate": 0.1}'],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        first_line = proc.stdout.readline()
        assert (match := LISTENING.search(first_line)), f"unexpected first line {first_line!r}"
        url = match.group(1)
        with AxonHttpRecorder(url, retry_attempts=0) as client:
            health = client.health()
            assert (health["service"], health["state"]) == ("axon-sim", "idle")
        assert httpx.get(f"{url}/sim/faults").json()["data"]["drop_rate"] == 0.1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_main_in_process(args: list[str], capsys, act) -> int:
    """Run ``main(args)`` in this (main) thread, as the process would; ``act(url)`` runs in a
    helper thread once the listening line is printed. Returns main's exit status."""
    errors: list[BaseException] = []

    def helper() -> None:
        try:
            deadline = time.monotonic() + 20
            while not (match := LISTENING.search(capsys.readouterr().out)):
                assert time.monotonic() < deadline, "axon-sim never announced its URL"
                time.sleep(0.02)
            act(match.group(1))
        except BaseException as exc:  # reported by the test, after main returns
            errors.append(exc)
            os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=helper, daemon=True)
    thread.start()
    status = main(args)
    thread.join(timeout=10)
    if errors:
        raise errors[0]
    return status


def test_axon_sim_records_a_task_then_sigterm_ends_it_with_status_0(tmp_path, capsys, write_config):
    def record_then_terminate(url: str) -> None:
        with AxonHttpRecorder(url, retry_attempts=0) as client:
            client.start_recording(write_config("task-cli", device_id="robot-9"))
            time.sleep(0.2)
            client.stop_recording()
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    args = ["--port", "0", "--data-dir", str(tmp_path / "data"), "--robot-id", "robot-9"]
    assert run_main_in_process(args, capsys, record_then_terminate) == 0
    assert signal.getsignal(signal.SIGTERM) is previous, "the signal handlers are restored"
    recording = tmp_path / "data" / "task-cli.mcap"
    sidecar = json.loads((tmp_path / "data" / "task-cli.json").read_text())
    assert sidecar["recording"]["checksum_sha256"] == file_sha256(recording)
    assert sidecar["device"]["device_id"] == "robot-9"


def test_axon_sim_format_lance_writes_the_lance_era_layout(tmp_path, capsys, write_config):
    def record_then_terminate(url: str) -> None:
        with AxonHttpRecorder(url, retry_attempts=0) as client:
            client.start_recording(write_config("task-cli", device_id="robot-9"))
            client.stop_recording()
        os.kill(os.getpid(), signal.SIGTERM)

    args = ["--port", "0", "--data-dir", str(tmp_path / "data"), "--robot-id", "robot-9", "--format", "lance"]
    assert run_main_in_process(args, capsys, record_then_terminate) == 0
    dataset = tmp_path / "data" / "task-cli.lance"
    assert Sidecar.read(tmp_path / "data" / "task-cli.json").dataset_digest == dataset_digest(dataset)


def test_axon_sim_listens_on_axons_port_by_default():
    from axon_dagster.demo.sim.cli import _parser

    assert _parser().parse_args([]).port == 8080


def test_a_simulated_crash_ends_the_simulator_with_status_1(tmp_path, capsys, write_config):
    def record(url: str) -> None:
        with AxonHttpRecorder(url, retry_attempts=0) as client:
            client.start_recording(write_config("task-1", device_id="sim-robot"))

    status = run_main_in_process(
        ["--port", "0", "--data-dir", str(tmp_path / "data"), "--faults", '{"die_after_seconds": 0.2}'], capsys, record
    )
    assert status == 1
    assert not (tmp_path / "data" / "task-1.mcap.done").exists(), "the crashed recording was never finished"
    assert not (tmp_path / "data" / "task-1.json").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--faults", "{drop_rate: 1"], "--faults is not valid JSON"),
        (["--faults", '{"explode": 1}'], "unknown fault(s): explode"),
        (["--faults", '{"drop_rate": 7}'], "drop_rate must be a number"),
        (["--robot-id", "../up"], "invalid robot_id"),
        (["--port", "70000"], "--port must be between 0 and 65535"),
        (["--format", "bag"], "invalid choice: 'bag'"),
        (["--finish-seconds-per-gb", "-1"], "finish_seconds_per_gb must be a non-negative number"),
        (["--camera-bytes", "0"], "--camera-bytes must be a positive number"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message_and_start_nothing(args, words, capsys, tmp_path):
    with pytest.raises(SystemExit) as exited:
        main(["--data-dir", str(tmp_path / "data"), *args])
    assert exited.value.code == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "data").exists()
