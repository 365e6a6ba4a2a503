"""AxonHttpRecorder against the real simulator over real HTTP, and against misbehaving peers."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from axon_dagster.recorder import (
    AxonHttpRecorder,
    RecorderClient,
    RecorderProtocolError,
    RecorderRefused,
    RecorderTimeout,
    RecorderUnreachable,
    RecordingConfigError,
    recorder_from_config,
)
from mcap.reader import make_reader

from axon_dagster.demo.sim.axon_mcap import AXON_DEFAULT_TOPICS
from axon_dagster.demo.sim import SimulatedRecorder, bind_socket, serve_app_in_thread
from axon_dagster.storage.digest import dataset_digest, file_sha256
from axon_dagster.storage.recording import Sidecar, sidecar_path


def test_full_cycle_config_begin_status_finish_writes_an_axon_recording(sim, client, write_config):
    config_path = write_config("task-1", user_token="s3cret", duration_seconds=30)
    assert isinstance(client, RecorderClient)

    updated = client.update_config(config_path)
    assert updated.success
    assert client.state().state == "ready"

    started = client.start_recording(config_path)
    assert started.success
    expected = sim.data_dir / "task-1.mcap"
    time.sleep(0.3)
    status = client.get_status()
    assert status.is_recording and status.state == "recording"
    assert status.dataset_path == "", "Axon names no file while recording"
    assert status.active_topics == sorted(AXON_DEFAULT_TOPICS) == status.subscribed_topics
    counts = dict(zip(status.active_topics, status.batch_sizes))
    assert 0 < counts["/lidar/points"] < counts["/camera/image_raw"] < counts["/imu"] < counts["/joint_states"], "10/30/100/200 Hz"
    assert status.topic_counts["/imu"]["received"] == status.topic_counts["/imu"]["written"]
    assert status.last_error == "" and status.disk_state == "normal"

    stopped = client.stop_recording()
    assert stopped.success
    assert stopped.output_path == str(expected), "read from /rpc/stats metadata after finish"
    assert stopped.sidecar_path == str(sim.data_dir / "task-1.json")
    sidecar = json.loads((sim.data_dir / "task-1.json").read_text())
    assert stopped.checksum_sha256 == sidecar["recording"]["checksum_sha256"] == file_sha256(expected)

    after = client.get_status()
    assert not after.is_recording and after.state == "idle"
    assert after.dataset_path == after.output_path == str(expected), "the last recording stays reported after finish"
    assert after.active_topics == [] and after.disk_usage_gb > 0
    assert all(c == {"received": 0, "written": 0, "dropped": 0} for c in after.topic_counts.values()), "counts reset at finish"
    assert sidecar["task"]["order_id"] == "order-1" and sidecar["task"]["subscene"] == "aisle_1"
    assert sidecar["task"]["skills"] == ["pick_place"]
    assert "s3cret" not in (sim.data_dir / "task-1.json").read_text(), "secrets never travel with the recording"
    assert 0.3 <= sidecar["recording"]["duration_sec"] < 3.0, "the recording covers begin to finish"
    assert (sim.data_dir / "task-1.mcap.done").read_text() == "done\n"


@pytest.mark.parametrize("sim", [{"recording_format": "lance"}], indirect=True)
def test_lance_format_keeps_the_lance_era_layout(sim, client, write_config):
    client.start_recording(write_config("task-1"))
    time.sleep(0.2)
    stopped = client.stop_recording()
    expected = sim.data_dir / "task-1.lance"
    assert stopped.output_path == str(expected) and stopped.checksum_sha256 == ""
    sidecar = Sidecar.read(sidecar_path(expected))
    sidecar.verify(expected)
    assert sidecar.dataset_digest == dataset_digest(expected)
    assert sidecar.task_id == "task-1" and sidecar.metadata["batch_id"] == "batch-1"
    assert set(sidecar.topics) == {"/camera/image_raw", "/imu", "/joint_states"}


def test_start_is_idempotent_for_the_same_task_and_stop_needs_an_open_session(sim, client, write_config):
    config_path = write_config("task-1")
    client.start_recording(config_path)
    again = client.start_recording(config_path)  # a duplicate teleop press
    assert again.success and "already recording" in again.message
    client.stop_recording()
    with pytest.raises(RecorderRefused, match="nothing to stop: recorder is idle"):
        client.stop_recording()
    assert sorted(p.name for p in sim.data_dir.iterdir()) == ["task-1.json", "task-1.mcap", "task-1.mcap.done"]


def test_a_different_pending_config_is_cleared_but_an_open_session_is_never_touched(sim, client, write_config):
    client.update_config(write_config("task-a"))
    client.start_recording(write_config("task-b"))
    assert client.state().task_id == "task-b"

    with pytest.raises(RecorderRefused, match="busy: recording task 'task-b'"):
        client.start_recording(write_config("task-c"))
    with pytest.raises(RecorderRefused, match="busy: recording task 'task-b'"):
        client.update_config(write_config("task-c"))
    assert client.state().task_id == "task-b" and client.state().state == "recording"


def test_pause_and_resume_leave_the_paused_time_out_of_the_recording(sim, client, write_config):
    started = time.monotonic()
    client.start_recording(write_config("task-p"))
    time.sleep(0.2)
    client.pause()
    paused_at = time.monotonic()
    assert client.get_status().is_recording, "a paused session is still open"
    assert client.state().state == "paused"
    time.sleep(0.6)
    paused_s = time.monotonic() - paused_at
    client.resume()
    time.sleep(0.2)
    client.stop_recording()
    wall_s = time.monotonic() - started
    sidecar = json.loads((sim.data_dir / "task-p.json").read_text())
    assert sidecar["recording"]["duration_sec"] >= wall_s - 0.2, "Axon's duration_sec is wall time, pauses included"
    with open(sim.data_dir / "task-p.mcap", "rb") as fh:
        stats = make_reader(fh).get_summary().statistics
    recorded_s = (stats.message_end_time - stats.message_start_time) / 1e9
    assert recorded_s >= 0.3
    assert recorded_s <= wall_s - paused_s, f"log times span {recorded_s:.2f}s of {wall_s:.2f}s: the pause must not count"


def test_cancel_discards_the_recording(sim, client, write_config):
    client.start_recording(write_config("task-x"))
    assert (sim.data_dir / "task-x.mcap").exists(), "Axon's file exists from begin on"
    reply = client.cancel("task-x")
    assert reply.data == {"state": "idle"}
    assert list(sim.data_dir.iterdir()) == []
    assert not client.get_status().is_recording


def test_cancel_task_cancels_only_our_own_recording(sim, client, write_config):
    client.start_recording(write_config("task-x"))
    assert client.cancel_task("someone-else") is False, "Axon would cancel task-x: we must not ask"
    assert client.state().state == "recording"
    assert client.cancel_task("task-x") is True
    assert client.state().state == "idle" and list(sim.data_dir.iterdir()) == []


def test_start_refused_by_the_recorder_raises_with_its_message(sim, write_config):
    sim.recorder.set_faults({"fail_start": True})
    with sim.client() as client:
        with pytest.raises(RecorderRefused, match="simulated start failure") as caught:
            client.start_recording(write_config("task-1"))
        assert caught.value.operation == "begin"
        assert client.state().state == "ready", "a refused begin leaves the config pending"
        assert client.get_status().last_error == "", "Axon's stats carry no last_error: the refusal said it"

        sim.recorder.set_faults({})
        assert client.start_recording(write_config("task-1")).success


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda c: c.begin("task-1"), "No task configuration cached. Call /rpc/config first."),
        (lambda c: c.finish("task-1"), "Cannot finish recording from state: idle"),
        (lambda c: c.pause(), "Cannot pause from state: idle"),
        (lambda c: c.resume(), "Cannot resume from state: idle"),
        (lambda c: c.cancel("task-1"), "Cannot cancel recording from state: idle"),
        (lambda c: c.clear(), "Cannot clear config from state: idle"),
    ],
)
def test_illegal_rpc_sequences_are_refused_and_change_nothing(client, call, words):
    with pytest.raises(RecorderRefused, match=words):
        call(client)
    assert client.state().state == "idle"


def test_illegal_rpcs_while_ready_and_recording(client, write_config):
    client.update_config(write_config("task-1"))
    with pytest.raises(RecorderRefused, match="Task ID mismatch: cached config is for task 'task-1', begin asked for 'task-2'"):
        client.begin("task-2")
    with pytest.raises(RecorderRefused, match="Must be in RECORDING or PAUSED"):
        client.finish("task-1")
    client.config({"task_id": "task-2", "device_id": "robot-1"})  # Axon: a config in READY replaces the held one
    assert client.state().task_id == "task-2"
    client.config({"task_id": "task-1", "device_id": "robot-1"})
    client.begin("task-1")
    with pytest.raises(RecorderRefused, match="Cannot start recording from state: recording"):
        client.begin("task-1")
    with pytest.raises(RecorderRefused, match="Cannot set config in state: recording"):
        client.config({"task_id": "task-1", "device_id": "robot-1"})
    with pytest.raises(RecorderRefused, match="Cannot clear config from state: recording"):
        client.clear()
    with pytest.raises(RecorderRefused, match="Task ID mismatch"):
        client.finish("task-2")
    assert client.state().state == "recording"


def test_a_bad_config_file_is_refused_before_anything_reaches_the_recorder(sim, client, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task_id: ../escape\ndevice_id: robot-1\n")
    with pytest.raises(RecordingConfigError, match="task_id"):
        client.start_recording(str(bad))
    with pytest.raises(RecordingConfigError, match="file not found"):
        client.update_config(str(tmp_path / "missing.yaml"))
    assert client.state().state == "idle"


def test_unreachable_recorder_is_retried_with_backoff_then_reported(counting_transport):
    sock = bind_socket()  # bound, never listening: every connection is refused
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    client = AxonHttpRecorder(url, timeout_seconds=1.0, retry_attempts=3, backoff_seconds=0.05, transport=counting_transport)
    started = time.monotonic()
    with pytest.raises(RecorderUnreachable, match="failed after 4 attempt"):
        client.get_status()
    elapsed = time.monotonic() - started
    sock.close()
    assert counting_transport.attempts == 4
    assert 0.05 + 0.1 + 0.2 <= elapsed < 2.0, f"backoff 0.05/0.1/0.2 s expected, took {elapsed:.2f}s"


def test_a_recorder_that_comes_up_during_the_retries_is_reached(tmp_path, counting_transport):
    sock = bind_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    recorder = SimulatedRecorder(tmp_path / "data", "robot-1")
    stops = []
    # The recorder starts listening on the reserved socket while the client is backing off.
    timer = threading.Timer(0.3, lambda: stops.append(serve_app_in_thread(recorder.app, sock=sock)[1]))
    timer.start()
    try:
        client = AxonHttpRecorder(url, retry_attempts=6, backoff_seconds=0.1, transport=counting_transport)
        assert client.health()["state"] == "idle"
        assert counting_transport.attempts >= 2
    finally:
        timer.join()
        for stop in stops:
            stop()


def slow_app(delay_s: float) -> Starlette:
    async def state(request: Request) -> JSONResponse:
        await asyncio.sleep(delay_s)
        return JSONResponse({"success": True, "message": "late", "data": {"state": "idle"}})

    return Starlette(routes=[Route("/rpc/state", state), Route("/rpc/begin", state, methods=["POST"])])


def test_a_slow_recorder_times_out_without_retry_or_hang(serve_app, counting_transport):
    url = serve_app(slow_app(1.0))
    client = AxonHttpRecorder(url, timeout_seconds=0.3, retry_attempts=3, transport=counting_transport)
    started = time.monotonic()
    with pytest.raises(RecorderTimeout, match=r"did not answer GET .*/rpc/state within 0.3s"):
        client.state()
    with pytest.raises(RecorderTimeout, match="POST"):
        client.begin("task-1")
    assert time.monotonic() - started < 1.5
    assert counting_transport.attempts == 2, "a timed-out call may have been acted on: never repeated"


def misbehaving_app() -> Starlette:
    """A peer that answers the Axon routes wrongly, one way per route. A correct recorder
    (the simulator) cannot produce these replies, so this stand-in exists only for these tests."""

    async def state(request: Request) -> Response:
        return JSONResponse({"success": True, "message": "", "data": {"state": "recording", "task_id": "task-1"}})

    async def begin(request: Request) -> JSONResponse:  # acts on another task than asked
        return JSONResponse({"success": True, "message": "ok", "data": {"state": "recording", "task_id": "other-task"}})

    async def finish(request: Request) -> Response:  # not JSON at all
        return PlainTextResponse("<html>gateway error</html>", status_code=502)

    async def stats(request: Request) -> JSONResponse:  # no envelope
        return JSONResponse({"messages_received": 3})

    async def pause(request: Request) -> JSONResponse:  # success=true with an error status
        return JSONResponse({"success": True, "message": "", "data": {}}, status_code=500)

    async def resume(request: Request) -> JSONResponse:  # data of the wrong type
        return JSONResponse({"success": True, "message": "", "data": ["recording"]})

    async def health(request: Request) -> JSONResponse:  # Axon's bare health object
        return JSONResponse({"status": "ok", "service": "AxonRecorder", "version": "0.4.0", "running": True, "state": "recording"})

    return Starlette(
        routes=[
            Route("/rpc/state", state),
            Route("/rpc/begin", begin, methods=["POST"]),
            Route("/rpc/finish", finish, methods=["POST"]),
            Route("/rpc/stats", stats),
            Route("/rpc/pause", pause, methods=["POST"]),
            Route("/rpc/resume", resume, methods=["POST"]),
            Route("/health", health),
        ]
    )


def test_protocol_mismatches_are_reported_as_such(serve_app):
    client = AxonHttpRecorder(serve_app(misbehaving_app()), retry_attempts=0)
    with pytest.raises(RecorderProtocolError, match="task_id mismatch: asked for task 'task-1' but the recorder answered for 'other-task'"):
        client.begin("task-1")
    with pytest.raises(RecorderProtocolError, match="HTTP 502 reply is not JSON"):
        client.finish("task-1")
    with pytest.raises(RecorderProtocolError, match="not an Axon v0.4 envelope: 'success' must be true or false"):
        client.stats()
    with pytest.raises(RecorderProtocolError, match="success=true with HTTP status 500"):
        client.pause()
    with pytest.raises(RecorderProtocolError, match="'data' must be an object"):
        client.resume()
    with pytest.raises(RecorderProtocolError, match="HTTP 404"):
        client.clear()  # this peer has no /rpc/clear: not an Axon v0.4 recorder
    with pytest.raises(RecorderProtocolError):
        client.stop_recording()  # state says recording task-1, finish answers garbage
    assert client.health()["service"] == "AxonRecorder", "Axon's bare health object is accepted"


def test_unknown_state_is_a_protocol_error(serve_app):
    async def state(request: Request) -> JSONResponse:
        return JSONResponse({"success": True, "message": "", "data": {"state": "flying"}})

    client = AxonHttpRecorder(serve_app(Starlette(routes=[Route("/rpc/state", state)])), retry_attempts=0)
    with pytest.raises(RecorderProtocolError, match="unknown recorder state 'flying'"):
        client.get_status()


def test_callbacks_reach_the_receiver_with_the_bearer_token(sim, client, write_config, serve_app, wait_for):
    received: list[tuple[str, str, dict]] = []

    async def receive(request: Request) -> JSONResponse:
        received.append((request.url.path, request.headers.get("authorization", ""), json.loads(await request.body())))
        return JSONResponse({"ok": True})

    receiver = serve_app(Starlette(routes=[Route("/cb/{kind}", receive, methods=["POST"])]))
    config_path = write_config(
        "task-cb", start_callback_url=f"{receiver}/cb/start", finish_callback_url=f"{receiver}/cb/finish", user_token="tok-1"
    )
    client.start_recording(config_path)
    wait_for(lambda: len(received) == 1)
    client.stop_recording()
    wait_for(lambda: len(received) == 2)

    (start_path, start_auth, start), (finish_path, finish_auth, finish) = received
    assert (start_path, start_auth) == ("/cb/start", "Bearer tok-1")
    assert start.keys() == {"task_id", "device_id", "status", "started_at", "topics"}
    assert (start["task_id"], start["device_id"], start["status"]) == ("task-cb", "robot-1", "recording")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", start["started_at"]), "whole seconds, UTC"
    assert (finish_path, finish_auth) == ("/cb/finish", "Bearer tok-1")
    assert (finish["task_id"], finish["status"]) == ("task-cb", "finished")
    assert finish["output_path"] == str(sim.data_dir / "task-cb.mcap")
    assert finish["sidecar_path"] == str(sim.data_dir / "task-cb.json")
    assert finish["sidecar_enabled"] is finish["sidecar_generated"] is True
    assert finish["file_size_bytes"] == (sim.data_dir / "task-cb.mcap").stat().st_size
    assert finish["message_count"] > 0 and finish["duration_sec"] > 0 and finish["error"] is None
    assert finish["metadata"] == {"scene": "warehouse", "subscene": "aisle_1", "skills": ["pick_place"], "factory": ""}
    assert "dataset_path" not in finish, "Axon's field is output_path"
    assert "user_token" not in client.state().task_config, "the recorder never echoes the token"


def test_a_broken_callback_receiver_does_not_fail_the_recording(sim, client, write_config):
    dead = bind_socket()
    dead_url = f"http://127.0.0.1:{dead.getsockname()[1]}/cb"
    client.start_recording(write_config("task-1", start_callback_url=dead_url, finish_callback_url=dead_url))
    client.stop_recording()
    dead.close()
    assert (sim.data_dir / "task-1.json").exists()


def test_the_finish_callback_can_arrive_after_the_finish_reply(sim, client, write_config, serve_app, wait_for):
    received: list[dict] = []

    async def receive(request: Request) -> JSONResponse:
        received.append(json.loads(await request.body()))
        return JSONResponse({"ok": True})

    receiver = serve_app(Starlette(routes=[Route("/cb", receive, methods=["POST"])]))
    sim.recorder.set_faults({"finish_callback_delay_seconds": 0.5})
    client.start_recording(write_config("task-late", finish_callback_url=f"{receiver}/cb"))
    client.stop_recording()
    assert received == [], "the reply came first"
    wait_for(lambda: len(received) == 1)
    assert received[0]["output_path"].endswith("task-late.mcap")


def test_a_recorder_that_dies_mid_recording_becomes_unreachable(start_sim, write_config, wait_for):
    sim = start_sim(faults={"die_after_seconds": 0.3})
    with sim.client() as client:
        client.start_recording(write_config("task-1"))
        assert client.get_status().is_recording
        wait_for(sim.recorder.crashed.is_set)

        def unreachable() -> bool:
            try:
                client.get_status()
            except RecorderUnreachable:
                return True
            return False  # still shutting down

        wait_for(unreachable, timeout=3)
    assert [p.name for p in sim.data_dir.iterdir()] == ["task-1.mcap"], "a crashed recorder leaves an unfinished file"
    assert not (sim.data_dir / "task-1.mcap.done").exists()


def test_factory_builds_the_http_backend_and_refuses_others(sim, monkeypatch):
    recorder = recorder_from_config("http", url=sim.url, timeout_seconds=2, retry_attempts=1)
    assert isinstance(recorder, AxonHttpRecorder) and isinstance(recorder, RecorderClient)
    assert (recorder.timeout_seconds, recorder.retry_attempts) == (2.0, 1)
    assert recorder.get_status().is_recording is False

    monkeypatch.setenv("AXON_RECORDER_URL", sim.url)
    assert recorder_from_config().base_url == sim.url
    monkeypatch.delenv("AXON_RECORDER_URL")
    with pytest.raises(ValueError, match="needs url="):
        recorder_from_config("http")
    with pytest.raises(ValueError, match="invalid ROS namespace"):
        recorder_from_config("ros1", namespace="bad ns")
    with pytest.raises(ValueError, match="unknown recorder transport 'pigeon'"):
        recorder_from_config("pigeon", url=sim.url)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"base_url": "localhost:8080"}, "must start with http"),
        ({"base_url": "http://x", "finish_timeout_seconds": 0}, "finish_timeout_seconds"),
        ({"base_url": "http://x", "retry_attempts": -1}, "retry_attempts"),
        ({"base_url": "http://x", "timeout_seconds": 0}, "timeout_seconds"),
    ],
)
def test_client_settings_are_validated(kwargs, words):
    with pytest.raises(ValueError, match=words):
        AxonHttpRecorder(**kwargs)


def test_stop_succeeds_when_stats_are_unreadable_after_finish(serve_app):
    """The finish happened; unreadable stats only mean the path must come from elsewhere
    (the finish callback or the output directory)."""

    async def state(request: Request) -> JSONResponse:
        return JSONResponse({"success": True, "message": "", "data": {"state": "recording", "task_config": {"task_id": "t1"}}})

    async def finish(request: Request) -> JSONResponse:
        return JSONResponse({"success": True, "message": "Recording finished successfully", "data": {"state": "idle", "task_id": "t1"}})

    async def stats(request: Request) -> PlainTextResponse:
        return PlainTextResponse("busy", status_code=503)

    app = Starlette(routes=[Route("/rpc/state", state), Route("/rpc/finish", finish, methods=["POST"]), Route("/rpc/stats", stats)])
    client = AxonHttpRecorder(serve_app(app), retry_attempts=0)
    stopped = client.stop_recording()
    assert stopped.success and stopped.output_path == "" and stopped.checksum_sha256 == ""


def test_stats_metadata_of_another_task_is_not_taken_for_ours():
    from axon_dagster.recorder.axon_http import _metadata_of

    stats = {"metadata": {"output_path": "/rec/other.mcap", "sidecar_path": "/rec/other.json", "checksum_sha256": "ab"}}
    assert _metadata_of(stats, "t1") == {}
    assert _metadata_of({"metadata": {**stats["metadata"], "output_path": "/rec/t1.mcap"}}, "t1")["output_path"] == "/rec/t1.mcap"
    assert _metadata_of({"metadata": None}, "t1") == {}
