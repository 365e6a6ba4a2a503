"""The uploader in a real child process, for the kill-and-resume tests.

Loaded as the forkserver's preload module: boto3 and the S3 service model are loaded once in the
(single-threaded) fork server, so every child is forked warm in milliseconds instead of paying a
second of imports. A child runs one ``MultipartUploader.upload_file``; when a ``pause`` spec is
given it writes an announcement and stops itself (SIGSTOP) exactly at that point, and the test
then kills it with SIGKILL. Every request the child sends is appended to ``requests_log`` (one
JSON line, written with O_APPEND before the request goes out, so it survives the kill).
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3

from axon_dagster.storage.bandwidth import RateLimiter, UploadQueue
from axon_dagster.storage.object_stores.s3_multipart import MultipartUploader

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
SESSION = boto3.session.Session()
SESSION.client("s3", endpoint_url="http://127.0.0.1:9", **CREDENTIALS).close()  # warm the model cache


def _append(path: str, record: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)


class _Pauser:
    """Stops the process at the n-th matching event of this run."""

    def __init__(self, spec: dict[str, Any] | None, announce: str):
        self.spec, self.announce = spec, announce
        self.count = 0
        self.parts_seen: list[int] = []
        self.fired = False

    def __call__(self, name: str, info: Any) -> None:
        spec = self.spec
        if spec is None or self.fired:
            return
        if spec["kind"] == "between" and name == "part_done":
            self.count += 1
            hit = self.count == spec["nth"]
        elif spec["kind"] == "mid" and name == "part_bytes":
            if info["part"] not in self.parts_seen:
                self.parts_seen.append(info["part"])
            hit = self.parts_seen.index(info["part"]) + 1 == spec["nth"] and info["sent"] >= spec["sent"]
        elif spec["kind"] == "after_complete" and name == "completed":
            hit = True
        else:
            hit = False
        if hit:
            self.fired = True
            _append(self.announce, {"paused": spec, "event": name, "info": dict(info)})
            os.kill(os.getpid(), signal.SIGSTOP)


def run_upload(spec: dict[str, Any]) -> None:
    client = SESSION.client("s3", endpoint_url=spec["endpoint"], **CREDENTIALS)

    def log_request(request: Any, event_name: str, **_: Any) -> None:
        query = parse_qs(urlsplit(request.url).query)
        part = query.get("partNumber", [None])[0]
        _append(spec["requests_log"], {"op": event_name.rsplit(".", 1)[-1], "part": int(part) if part else None})

    client.meta.events.register("before-send.s3", log_request)
    uploader = MultipartUploader(
        client,
        state_dir=spec["state_dir"],
        part_size=spec["part_size"],
        concurrency=spec["concurrency"],
        rate_limiter=RateLimiter(None),
        queue=UploadQueue(),
        on_event=_Pauser(spec.get("pause"), spec["announce"]),
    )
    result = uploader.upload_file(spec["path"], spec["bucket"], spec["key"], sha256=spec["sha256"], metadata={"dataset-digest": spec["digest"]})
    _append(spec["result_path"], {k: v for k, v in result.__dict__.items()})
