"""Kill the uploader — a real process, SIGKILL — at random points and rerun it.

Kill points (chosen per seed): between parts (after a part is recorded done), mid-part (after a
random number of a part's bytes went on the wire), and after CompleteMultipartUpload but before
verification. The child stops itself (SIGSTOP) exactly there and announces it; the test SIGKILLs
it. After the rerun: the object is byte-identical to the source, no part the store already held
was sent again, no multipart upload is left open, and the state file holds no upload in progress.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import pytest

from axon_dagster.storage.object_stores.s3_multipart import part_layout
from axon_dagster.storage.object_stores.s3_upload_state import UploadStateStore

from .conftest import MiB, object_sha256, open_uploads

PART = 5 * MiB
KILL_POINTS = 20


@pytest.fixture(scope="module")
def forkserver():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.upload._child"])
    return ctx


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _run(ctx, spec: dict, *, expect_pause: bool, timeout: float = 30.0) -> None:
    from tests.upload._child import run_upload

    announce = Path(spec["announce"])
    announce.unlink(missing_ok=True)
    proc = ctx.Process(target=run_upload, args=(spec,))
    proc.start()
    deadline = time.monotonic() + timeout
    try:
        if expect_pause:
            while not announce.exists():
                assert proc.exitcode is None, f"child finished (exit {proc.exitcode}) without reaching kill point {spec['pause']}"
                assert time.monotonic() < deadline, f"kill point {spec['pause']} not reached in {timeout}s"
                time.sleep(0.005)
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(timeout)
            assert proc.exitcode == -signal.SIGKILL
        else:
            proc.join(timeout)
            assert proc.exitcode == 0, f"rerun failed with exit code {proc.exitcode}"
    finally:
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
            proc.join()


def _held_parts(client, bucket: str, key: str, state_dir: Path) -> tuple[set[int], bool]:
    """Part numbers the store holds for the upload in our state, and whether that upload is open."""
    state = UploadStateStore(state_dir)
    try:
        row = state.upload(bucket, key)
    finally:
        state.close()
    if row is None:
        return set(), False
    try:
        parts = client.list_parts(Bucket=bucket, Key=key, UploadId=row.upload_id).get("Parts", [])
    except client.exceptions.NoSuchUpload:
        return set(), False
    return {p["PartNumber"] for p in parts}, True


def _choose_kill(rng: random.Random, remaining: list[int], sizes: dict[int, int]) -> dict:
    kinds = ["after_complete"] + (["mid"] if remaining else []) + (["between"] if len(remaining) > 1 else [])
    kind = rng.choice(kinds)
    if kind == "between":
        return {"kind": "between", "nth": rng.randint(1, len(remaining) - 1)}
    if kind == "mid":
        nth = rng.randint(1, len(remaining))
        # Which part is the nth to start depends on thread timing; any of them is at least 1 MiB.
        return {"kind": "mid", "nth": nth, "sent": rng.randint(64 * 1024, min(sizes.values()) - 64 * 1024)}
    return {"kind": "after_complete"}


def test_kill_at_20_random_points_and_resume(forkserver, s3_server, s3_client, s3_bucket, big_file, tmp_path):
    path, sha = big_file(size=2 * PART + MiB + 4321, seed=7)
    layout = part_layout(path.stat().st_size, PART)
    sizes = {n: length for n, _, length in layout}
    kinds_seen: list[str] = []

    for seed in range(KILL_POINTS):
        rng = random.Random(seed)
        key = f"kill/{seed}/data.lance/big.bin"
        work = tmp_path / f"run-{seed}"
        work.mkdir()
        spec = {
            "endpoint": s3_server.url, "bucket": s3_bucket, "key": key, "path": str(path), "sha256": sha,
            "digest": "d" * 64, "state_dir": str(work / "state"), "part_size": PART, "concurrency": 2,
            "announce": str(work / "announce"), "requests_log": str(work / "requests.jsonl"),
            "result_path": str(work / "result.jsonl"),
        }
        # One or two kills in a row (a rerun can itself be killed), then a clean rerun.
        for _ in range(rng.choice([1, 1, 2])):
            held, _open = _held_parts(s3_client, s3_bucket, key, work / "state")
            remaining = [n for n in sizes if n not in held]
            pause = _choose_kill(rng, remaining, sizes)
            kinds_seen.append(pause["kind"])
            _run(forkserver, {**spec, "pause": pause}, expect_pause=True)
            s3_server.wait_idle()  # a part fully received before the kill is still stored
            if pause["kind"] == "after_complete":
                break

        held, still_open = _held_parts(s3_client, s3_bucket, key, work / "state")
        before = len(_lines(Path(spec["requests_log"])))
        _run(forkserver, {**spec, "pause": None}, expect_pause=False)
        rerun = _lines(Path(spec["requests_log"]))[before:]
        sent = [r["part"] for r in rerun if r["op"] == "UploadPart"]
        result = _lines(Path(spec["result_path"]))[-1]

        context = f"seed {seed}, kills {kinds_seen[-2:]}, held {sorted(held)}, re-sent {sent}"
        assert not set(sent) & held, f"finished parts were sent again: {context}"
        if still_open:
            assert sorted(sent) == [n for n in sizes if n not in held], context
            assert result["parts_reused"] == len(held) and result["parts_sent"] == len(sizes) - len(held), context
        else:  # killed after completion: verified without sending anything
            assert sent == [] and result["parts_sent"] == 0, context
        assert object_sha256(s3_client, s3_bucket, key) == sha, context
        head = s3_client.head_object(Bucket=s3_bucket, Key=key)
        assert head["Metadata"] == {"sha256": sha, "dataset-digest": "d" * 64}
        assert open_uploads(s3_client, s3_bucket) == [], context
        state = UploadStateStore(work / "state")
        try:
            assert state.in_progress() == []
            assert state.completed_checksum(s3_bucket, key, sha, path.stat().st_size)
        finally:
            state.close()

    assert {"between", "mid", "after_complete"} <= set(kinds_seen), kinds_seen
