"""The robot's uploader against a real S3 endpoint (moto's server over HTTP) through pre-signed
part URLs: verified parts, resume from the agent's database and from the backend's done parts, no
finished part sent twice, expired URLs re-planned, the rate cap, refused plans."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from pathlib import Path

import pytest
from upload_support import MiB, PresignedPlans

from axon_edge.db import EdgeDB
from axon_edge.upload import GrantUnusable, PartSender, PlanError, Uploader, UploadState, UploadStopped
from axon_edge.upload.transfer import PartCorrupted

try:
    from tests.s3_fixture import s3_bucket, s3_client, s3_server  # noqa: F401
except ModuleNotFoundError:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.s3_fixture import s3_bucket, s3_client, s3_server  # noqa: F401


def recording(root: Path, sizes: dict[str, int], seed: int = 1) -> dict:
    rng = random.Random(seed)
    files = []
    for name, size in sizes.items():
        data = rng.randbytes(size)
        (root / name).write_bytes(data)
        files.append({"name": name, "size": size, "sha256": hashlib.sha256(data).hexdigest()})
    return {"files": files}


class CountingSender(PartSender):
    """The real sender, counting the parts it puts on the wire; can stop the agent after n parts."""

    def __init__(self, *args, stop_after: int | None = None, stop: threading.Event | None = None, corrupt: set | None = None, **kw):
        super().__init__(*args, **kw)
        self.sent: list[int] = []
        self.stop_after, self.stop, self.corrupt = stop_after, stop, corrupt or set()
        self._lock = threading.Lock()

    def send(self, part, data, md5):
        if part.number in self.corrupt:
            self.corrupt.discard(part.number)
            raise PartCorrupted(f"part {part.number}: simulated mismatch")
        result = super().send(part, data, md5)
        with self._lock:
            self.sent.append(part.number)
            if self.stop_after is not None and len(self.sent) >= self.stop_after and self.stop is not None:
                self.stop.set()
        return result


@pytest.fixture
def env(tmp_path, s3_client, s3_bucket):
    root = tmp_path / "entry"
    root.mkdir()
    manifest = recording(root, {"t-1.mcap": 23 * MiB + 17, "t-1.json": 900})
    db = EdgeDB(tmp_path / "edge.db")
    yield root, manifest, PresignedPlans(s3_client, s3_bucket, manifest), UploadState(db)
    db.close()


def uploader(api, state, sender=None, **kw):
    return Uploader(api, state, sender or PartSender(concurrency=2), concurrency=2, retry_base_seconds=0.01, **kw)


def test_upload_is_verified_and_byte_identical(env):
    root, manifest, api, state = env
    sender = CountingSender()
    result = uploader(api, state, sender).upload("t-1", "g-1", root, manifest)
    assert result.parts_sent == 6 and result.parts_skipped == 0 and result.bytes_sent == 23 * MiB + 17 + 900
    assert sorted(sender.sent) == [1, 1, 2, 3, 4, 5]
    for f in manifest["files"]:
        assert api.completed[f["name"]] == (root / f["name"]).read_bytes()
    assert state.completed("t-1", "g-1") and state.get("t-1").parts_sent == 6
    # Uploading again under the same grant is a no-op for the wire... the control plane would refuse it anyway.


def test_resume_sends_only_what_is_not_verified(env):
    root, manifest, api, state = env
    stop = threading.Event()
    first = CountingSender(stop_after=2, stop=stop)
    with pytest.raises(UploadStopped):
        uploader(api, state, first, stop=stop).upload("t-1", "g-1", root, manifest)
    assert 2 <= len(first.sent) <= 4  # the two in flight when the stop came may finish too
    second = CountingSender()
    result = uploader(api, state, second).upload("t-1", "g-1", root, manifest)
    assert len(first.sent) + len(second.sent) == 6, "no finished part is sent twice"
    assert result.parts_skipped == len(first.sent)
    assert api.completed["t-1.mcap"] == (root / "t-1.mcap").read_bytes()


def test_parts_the_store_holds_but_the_robot_never_recorded_are_not_sent_again(env):
    """A kill after the store took a part but before the agent wrote it down: the plan's done parts
    (ListParts) say so, the robot checks their ETags against its own bytes and skips them."""
    root, manifest, api, state = env
    stop = threading.Event()
    first = CountingSender(stop_after=3, stop=stop)
    with pytest.raises(UploadStopped):
        uploader(api, state, first, stop=stop).upload("t-1", "g-1", root, manifest)
    state.forget_parts("t-1")  # as if the agent died before recording any of them
    second = CountingSender()
    uploader(api, state, second).upload("t-1", "g-1", root, manifest)
    assert len(first.sent) + len(second.sent) == 6
    assert api.completed["t-1.mcap"] == (root / "t-1.mcap").read_bytes()


def test_a_part_the_store_no_longer_holds_is_sent_again(env):
    """The robot recorded a part, but the store's listing lacks it (lost before completion, e.g. its
    host crashed): the store's listing is the truth, the part goes again — and only that part."""
    root, manifest, api, state = env
    stop = threading.Event()
    first = CountingSender(stop_after=3, stop=stop)
    with pytest.raises(UploadStopped):
        uploader(api, state, first, stop=stop).upload("t-1", "g-1", root, manifest)
    lost = min(n for n in first.sent if n > 1)  # an MCAP part (the JSON is one part, number 1)
    plan = api.plan

    def plan_without_lost_part(task_id, grant_id):
        raw = plan(task_id, grant_id)
        for f in raw["files"]:
            if f["name"] == "t-1.mcap":
                f["done_parts"] = [d for d in f["done_parts"] if d["number"] != lost]
        return raw

    api.plan = plan_without_lost_part
    second = CountingSender()
    uploader(api, state, second).upload("t-1", "g-1", root, manifest)
    assert lost in second.sent and len(first.sent) + len(second.sent) == 7, (first.sent, second.sent)
    assert api.completed["t-1.mcap"] == (root / "t-1.mcap").read_bytes()


def test_a_done_part_with_other_bytes_is_sent_again(env, s3_client):
    root, manifest, api, state = env
    api.plan("t-1", "g-1")  # creates the multipart uploads
    s3_client.upload_part(Bucket=api.bucket, Key=api.key("t-1.mcap"), UploadId=api.upload_ids["t-1.mcap"], PartNumber=2, Body=b"x" * (5 * MiB))
    sender = CountingSender()
    uploader(api, state, sender).upload("t-1", "g-1", root, manifest)
    assert sorted(sender.sent) == [1, 1, 2, 3, 4, 5]
    assert api.completed["t-1.mcap"] == (root / "t-1.mcap").read_bytes()


def test_a_corrupted_part_is_retried_and_counted(env):
    root, manifest, api, state = env
    sender = CountingSender(corrupt={3})
    result = uploader(api, state, sender).upload("t-1", "g-1", root, manifest)
    assert result.retries == 1 and state.get("t-1").retries == 1
    assert api.completed["t-1.mcap"] == (root / "t-1.mcap").read_bytes()


@pytest.fixture
def expired_url_server():
    """Answers every request as S3 answers a pre-signed URL past its expiry (moto does not check expiry)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Expired(BaseHTTPRequestHandler):
        def do_PUT(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
            self.send_response(403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Expired)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_expired_urls_are_planned_again(env, expired_url_server):
    root, manifest, api, state = env
    original = api.plan

    def expired_first_plan(task_id, grant_id):
        plan = original(task_id, grant_id)
        if api.plans == 1:
            for f in plan["files"]:
                for part in f["parts"]:
                    part["url"] = expired_url_server + "/" + part["url"].split("/", 3)[3]
        return plan

    api.plan = expired_first_plan
    sender = CountingSender()
    result = uploader(api, state, sender).upload("t-1", "g-1", root, manifest)
    assert result.plans == 2 and sorted(sender.sent) == [1, 1, 2, 3, 4, 5]
    assert api.completed["t-1.mcap"] == (root / "t-1.mcap").read_bytes()


def test_an_expired_grant_stops_the_upload_and_keeps_verified_parts(env):
    root, manifest, api, state = env
    stop = threading.Event()
    first = CountingSender(stop_after=2, stop=stop)
    with pytest.raises(UploadStopped):
        uploader(api, state, first, stop=stop).upload("t-1", "g-1", root, manifest)
    api.expired = True
    with pytest.raises(GrantUnusable):
        uploader(api, state).upload("t-1", "g-1", root, manifest)
    # The grant is re-issued; the same multipart uploads resume.
    api.expired, api.grant_id = False, "g-2"
    second = CountingSender()
    uploader(api, state, second).upload("t-1", "g-2", root, manifest)
    assert len(first.sent) + len(second.sent) == 6


def test_a_plan_that_contradicts_the_manifest_sends_nothing(env):
    root, manifest, api, state = env
    lying = dict(manifest, files=[dict(manifest["files"][0], sha256="0" * 64), manifest["files"][1]])
    sender = CountingSender()
    with pytest.raises(PlanError, match="the robot holds"):
        uploader(api, state, sender).upload("t-1", "g-1", root, lying)
    assert sender.sent == []


def test_rate_cap_holds(tmp_path, s3_client, s3_bucket):
    from axon_dagster.storage.bandwidth import RateLimiter

    root = tmp_path / "entry"
    root.mkdir()
    manifest = recording(root, {"t-1.mcap": 6 * MiB})
    db = EdgeDB(tmp_path / "edge.db")
    cap = 3_000_000  # bytes/s
    limiter = RateLimiter(cap)
    sender = PartSender(acquire=limiter.acquire, capped=limiter.capped, concurrency=2)
    started = time.monotonic()
    uploader(PresignedPlans(s3_client, s3_bucket, manifest), UploadState(db), sender).upload("t-1", "g-1", root, manifest)
    elapsed = time.monotonic() - started
    db.close()
    assert elapsed >= 6 * MiB / cap * 0.9, f"{6 * MiB / elapsed / 1e6:.2f} MB/s is over the 3 MB/s cap"
