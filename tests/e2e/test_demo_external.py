"""`axon-dagster demo --external-recorder ROBOT_ID=URL,DATA_DIR`: the demo against a recorder that
is already running (here a separately started `axon-sim` process, as a bench robot's Axon would
be) ends with every task UPLOADED and verified, and leaves that recorder running."""

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from axon_dagster.demo.driver import DEFAULT_RECORDING_FORMAT

pytestmark = pytest.mark.slow

LISTENING = re.compile(r"axon-sim listening on (http://\S+)")


@pytest.fixture
def external_sim(tmp_path):
    data_dir = tmp_path / "bench-robot" / "recording"
    proc = subprocess.Popen(
        [sys.executable, "-m", "axon_dagster.demo.sim.cli", "--port", "0", "--data-dir", str(data_dir),
         "--robot-id", "bench-1", "--format", DEFAULT_RECORDING_FORMAT],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = proc.stdout.readline()
        match = LISTENING.search(line)
        assert match, f"axon-sim did not announce its URL: {line!r}"
        yield match.group(1), data_dir, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)


def test_demo_against_an_already_running_recorder_uploads_every_task(demo_workdir, tmp_path, external_sim):
    url, data_dir, sim = external_sim
    out, work = tmp_path / "demo.json", demo_workdir
    proc = subprocess.run(
        [sys.executable, "-m", "axon_dagster.cli", "demo", "--external-recorder", f"bench-1={url},{data_dir}",
         "--tasks-per-skill", "1", "--duration", "2", "--workdir", str(work), "--json", str(out), "--timeout", "200"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "external recorder" in proc.stdout
    tasks = json.loads(out.read_text())["tasks"]
    assert len(tasks) == 2 and {t["robot_id"] for t in tasks} == {"bench-1"}
    assert all(t["status"] == "UPLOADED" and t["approved"] for t in tasks)
    # the recordings were written by the external recorder, in its own directory (Axon's stats name
    # the last file), and the robot's agent moved them from there into its edge cache: none is left
    last = httpx.get(f"{url}/rpc/stats").json()["data"]["metadata"]["output_path"]
    assert Path(last).parent == data_dir and Path(last).stem in {t["task_id"] for t in tasks}
    for task in tasks:
        assert not [p for p in data_dir.iterdir() if p.name.startswith(task["task_id"])], sorted(data_dir.iterdir())
    # the demo started no simulator of its own and left the external one running
    assert not list((work / "logs").glob("*-sim.log"))
    assert sim.poll() is None
    assert httpx.get(f"{url}/health").json()["state"] == "idle"


@pytest.mark.parametrize(
    "spec, words",
    [
        ("robot-1", "expected ROBOT_ID=URL,DATA_DIR"),
        ("robot-1=localhost:8080,/tmp/x", "must start with http"),
        ("../r=http://x,/tmp/x", "robot_id"),
    ],
)
def test_a_bad_external_recorder_spec_is_refused_before_anything_starts(tmp_path, spec, words):
    proc = subprocess.run(
        [sys.executable, "-m", "axon_dagster.cli", "demo", "--external-recorder", spec, "--workdir", str(tmp_path / "w")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert words in proc.stderr
    assert not (tmp_path / "w").exists()


def test_an_external_recorder_that_does_not_answer_is_a_clear_error(tmp_path):
    from axon_dagster.demo.fleet import ExternalRecorder, SimulatedFleet
    from axon_dagster.demo.processes import free_port

    dead = ExternalRecorder.parse(f"robot-1=http://127.0.0.1:{free_port()},{tmp_path / 'rec'}")
    with pytest.raises(RuntimeError, match="does not answer GET /health"):
        with SimulatedFleet(tmp_path / "work", external_recorders=[dead]):
            pass


def test_external_recorder_spec_parses(tmp_path):
    from axon_dagster.demo.fleet import ExternalRecorder

    rec = ExternalRecorder.parse(f"robot-7=http://10.0.0.5:8080/,{tmp_path}/rec")
    assert (rec.robot_id, rec.url, rec.data_dir) == ("robot-7", "http://10.0.0.5:8080", Path(tmp_path) / "rec")
