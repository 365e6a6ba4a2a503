"""The multipart uploader against moto's S3 server over HTTP: verified round trips, checksums,
idempotence, strays, refusals, and the S3ObjectStore integration."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from axon_dagster.storage import S3ObjectStore, Sidecar
from axon_dagster.storage.bandwidth import RateLimiter, UploadQueue
from axon_dagster.storage.digest import DigestMismatch, digest_of_files, file_digests
from axon_dagster.storage.recording import sidecar_path
from axon_dagster.storage.object_stores.s3_multipart import MultipartUploader, composite_checksum, fit_part_size, part_layout
from axon_dagster.storage.object_stores.s3_upload_state import UploadStateStore

from .conftest import MiB, object_sha256, open_uploads, write_random

try:
    from tests.s3_fixture import S3RequestLog
except ModuleNotFoundError:  # see conftest.py
    from s3_fixture import S3RequestLog  # type: ignore[no-redef]

PART = 5 * MiB


def make_uploader(client, tmp_path: Path, **kwargs) -> MultipartUploader:
    kwargs.setdefault("part_size", PART)
    kwargs.setdefault("concurrency", 3)
    return MultipartUploader(client, state_dir=tmp_path / "state", rate_limiter=RateLimiter(None), queue=UploadQueue(), **kwargs)


def test_a_multipart_upload_is_byte_identical_and_carries_checksums_and_metadata(s3_client, s3_bucket, big_file, tmp_path):
    path, sha = big_file()
    uploader = make_uploader(s3_client, tmp_path)
    requests = S3RequestLog(s3_client)

    result = uploader.upload_file(path, s3_bucket, "ds/a.lance/data.bin", sha256=sha, metadata={"dataset-digest": "e" * 64})

    data = path.read_bytes()
    layout = part_layout(len(data), PART)
    assert result.parts_total == result.parts_sent == len(layout) == 3 and result.bytes_sent == len(data)
    assert requests.count("UploadPart") == 3 and requests.count("CompleteMultipartUpload") == 1
    assert object_sha256(s3_client, s3_bucket, "ds/a.lance/data.bin") == sha
    head = s3_client.head_object(Bucket=s3_bucket, Key="ds/a.lance/data.bin", ChecksumMode="ENABLED")
    assert head["Metadata"] == {"sha256": sha, "dataset-digest": "e" * 64}
    # The store's checksum is the composite it computed from the part bytes it holds.
    sums = [hashlib.sha256(data[o:o + n]).digest() for _, o, n in layout]
    assert head["ChecksumSHA256"].split("-")[0] == composite_checksum(sums) == result.checksum.split("-")[0]
    assert open_uploads(s3_client, s3_bucket) == []


def test_every_part_is_sent_with_its_own_sha256(s3_client, s3_bucket, big_file, tmp_path):
    path, sha = big_file()
    sent: dict[int, str] = {}

    def capture(params, **_):
        sent[params["PartNumber"]] = params["ChecksumSHA256"]

    s3_client.meta.events.register("before-parameter-build.s3.UploadPart", capture)
    make_uploader(s3_client, tmp_path).upload_file(path, s3_bucket, "k", sha256=sha)
    data = path.read_bytes()
    assert sent == {n: base64.b64encode(hashlib.sha256(data[o:o + ln]).digest()).decode() for n, o, ln in part_layout(len(data), PART)}


def test_uploading_a_verified_object_again_sends_nothing(s3_client, s3_bucket, big_file, tmp_path):
    path, sha = big_file()
    uploader = make_uploader(s3_client, tmp_path)
    uploader.upload_file(path, s3_bucket, "k", sha256=sha)
    requests = S3RequestLog(s3_client)

    again = uploader.upload_file(path, s3_bucket, "k", sha256=sha)

    assert again.skipped and again.bytes_sent == 0
    assert requests.count("UploadPart") == requests.count("CreateMultipartUpload") == requests.count("PutObject") == 0


def test_a_part_corrupted_on_the_wire_is_caught_and_the_object_deleted(s3_client, s3_bucket, big_file, tmp_path):
    """The part checksum header is what S3 validates on receipt; moto does not, so this also shows
    the second line of defence: the composite the store computes from what it received."""
    path, sha = big_file()
    uploader = make_uploader(s3_client, tmp_path, concurrency=1)

    def flip_a_byte(request, **_):
        if "partNumber=2" in request.url and not getattr(request, "_flipped", False):
            body = request.body.read()
            request.body.seek(0)
            import io

            request.body = io.BytesIO(body[:100] + bytes([body[100] ^ 0xFF]) + body[101:])
            request._flipped = True

    s3_client.meta.events.register_first("before-send.s3.UploadPart", flip_a_byte)
    with pytest.raises(DigestMismatch, match="the object was deleted"):
        uploader.upload_file(path, s3_bucket, "k", sha256=sha)
    s3_client.meta.events.unregister("before-send.s3.UploadPart", flip_a_byte)

    assert s3_client.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0
    # The next run starts clean and succeeds.
    assert uploader.upload_file(path, s3_bucket, "k", sha256=sha).parts_sent == 3
    assert object_sha256(s3_client, s3_bucket, "k") == sha


def test_a_local_file_that_differs_from_its_sidecar_is_refused_and_leaves_nothing(s3_client, s3_bucket, big_file, tmp_path):
    path, _sha = big_file()
    wrong = hashlib.sha256(b"what the sidecar claims").hexdigest()
    uploader = make_uploader(s3_client, tmp_path)

    with pytest.raises(DigestMismatch, match="differs from its sidecar"):
        uploader.upload_file(path, s3_bucket, "k", sha256=wrong)

    assert s3_client.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0
    assert open_uploads(s3_client, s3_bucket) == []
    assert uploader.state.in_progress() == []


def test_an_interrupted_upload_resumes_in_process_without_resending_parts(s3_client, s3_bucket, big_file, tmp_path):
    path, sha = big_file()

    class Boom(Exception):
        pass

    def fail_after_two(name, info):
        if name == "part_done" and info["parts_done"] == 2:  # of 3
            raise Boom

    with pytest.raises(Boom):
        make_uploader(s3_client, tmp_path, concurrency=1, on_event=fail_after_two).upload_file(path, s3_bucket, "k", sha256=sha)
    assert len(open_uploads(s3_client, s3_bucket)) == 1  # kept open for the resume
    requests = S3RequestLog(s3_client)

    result = make_uploader(s3_client, tmp_path).upload_file(path, s3_bucket, "k", sha256=sha)

    assert result.resumed and result.parts_reused == 2 and result.parts_sent == 1
    assert requests.count("UploadPart") == 1 and requests.count("CreateMultipartUpload") == 0
    assert object_sha256(s3_client, s3_bucket, "k") == sha
    assert open_uploads(s3_client, s3_bucket) == []


def test_stray_multipart_uploads_of_the_key_are_aborted(s3_client, s3_bucket, big_file, tmp_path):
    path, sha = big_file()
    for _ in range(2):  # e.g. created by runs killed before they wrote their state
        s3_client.create_multipart_upload(Bucket=s3_bucket, Key="k", ChecksumAlgorithm="SHA256")
    other = s3_client.create_multipart_upload(Bucket=s3_bucket, Key="k2")["UploadId"]

    make_uploader(s3_client, tmp_path).upload_file(path, s3_bucket, "k", sha256=sha)

    assert [(u["Key"], u["UploadId"]) for u in open_uploads(s3_client, s3_bucket)] == [("k2", other)]  # not ours to touch


def test_changed_content_under_the_same_key_aborts_the_old_upload_and_starts_over(s3_client, s3_bucket, big_file, tmp_path):
    path, sha = big_file(seed=1)

    def stop(name, info):
        if name == "part_done":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_uploader(s3_client, tmp_path, concurrency=1, on_event=stop).upload_file(path, s3_bucket, "k", sha256=sha)
    path2, sha2 = big_file(seed=2, name="other.bin")

    result = make_uploader(s3_client, tmp_path).upload_file(path2, s3_bucket, "k", sha256=sha2)

    assert not result.resumed and result.parts_sent == 3
    assert object_sha256(s3_client, s3_bucket, "k") == sha2 and open_uploads(s3_client, s3_bucket) == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"part_size": 1024}, "part_size"),
        ({"part_size": 6 * 1024**3}, "part_size"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"verify": "maybe"}, "verify"),
    ],
)
def test_bad_uploader_settings_are_refused(s3_client, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_uploader(s3_client, tmp_path, **kwargs)


def test_bad_upload_requests_are_refused_and_send_nothing(s3_client, s3_bucket, big_file, tmp_path):
    path, sha = big_file(size=6 * MiB)
    uploader = make_uploader(s3_client, tmp_path)
    requests = S3RequestLog(s3_client)
    with pytest.raises(ValueError, match="sha256"):
        uploader.upload_file(path, s3_bucket, "k", sha256="ABC")
    with pytest.raises(ValueError, match="object key"):
        uploader.upload_file(path, s3_bucket, "/abs", sha256=sha)
    with pytest.raises(FileNotFoundError, match="not found"):
        uploader.upload_file(tmp_path / "missing", s3_bucket, "k", sha256=sha)
    assert requests.requests == []


def test_part_size_grows_to_fit_ten_thousand_parts():
    assert fit_part_size(100 * MiB, 8 * MiB) == 8 * MiB
    assert fit_part_size(200_000 * MiB, 8 * MiB) == 20 * MiB
    with pytest.raises(ValueError, match="largest object"):
        fit_part_size(10_000 * 5 * 1024**3 + 1, 8 * MiB)
    assert [n for n, _, _ in part_layout(11 * MiB, 5 * MiB)] == [1, 2, 3]
    assert sum(length for _, _, length in part_layout(11 * MiB + 1, 5 * MiB)) == 11 * MiB + 1


def test_state_survives_reopening(tmp_path):
    from axon_dagster.storage.object_stores.s3_upload_state import PartRow, UploadRow

    state = UploadStateStore(tmp_path / "s")
    state.start("b", "k", UploadRow("u1", "a" * 64, 10, PART))
    state.record_part("u1", 1, PartRow('"e"', "c", 5))
    state.close()
    again = UploadStateStore(tmp_path / "s")
    assert again.upload("b", "k").upload_id == "u1" and again.parts("u1")[1].checksum == "c"
    again.complete("b", "k", "a" * 64, 10, "x-2", "u1")
    assert again.in_progress() == [] and again.parts("u1") == {} and again.completed_checksum("b", "k", "a" * 64, 10) == "x-2"


# ------------------------------------------------------------------------------- the object store


def _big_recording(tmp_path: Path, seed: int = 3) -> tuple[Path, Sidecar]:
    """A dataset dir with one large file (multipart) and two small ones, plus its sidecar."""
    ds = tmp_path / "rec" / "task-9.lance"
    write_random(ds / "data" / "0.lance", 12 * MiB + 17, seed)
    write_random(ds / "_versions" / "1.manifest", 2000, seed + 1)
    write_random(ds / "_transactions" / "0.txn", 300, seed + 2)
    files = file_digests(ds)
    sidecar = Sidecar("task-9", "robot-1", {}, {}, 0, 1, files, digest_of_files(files))
    sidecar.write(sidecar_path(ds))
    return ds, sidecar


def test_the_store_sends_large_files_multipart_and_verifies_without_downloading(s3_client, s3_bucket, tmp_path):
    ds, sidecar = _big_recording(tmp_path)
    store = S3ObjectStore(s3_bucket, prefix="cloud", client=s3_client, part_size=PART, multipart_threshold=PART, rate_limiter=RateLimiter(None),
                          upload_queue=UploadQueue(), state_dir=tmp_path / "state")
    requests = S3RequestLog(s3_client)

    uri = store.put_dataset(ds, "w/a/task-9.lance", sidecar.files)

    assert uri == f"s3://{s3_bucket}/cloud/w/a/task-9.lance"
    assert requests.count("UploadPart") == 3 and requests.count("CreateMultipartUpload") == 1
    assert sorted(store.list_keys("w/a/task-9.lance/")) == sorted(f"w/a/task-9.lance/{rel}" for rel in sidecar.files)
    assert store.list_keys("") == store.list_keys("w/")  # the dataset record is hidden from listings

    requests.clear()
    assert store.verify_dataset("w/a/task-9.lance", sidecar.files) == sidecar.dataset_digest
    data_gets = [p for op, p in requests.requests if op == "GetObject" and ".axon-meta" not in p]
    assert data_gets == []  # verified by checksums, not by downloading

    # Another machine (no local upload state) verifies through the dataset record in the bucket.
    other = S3ObjectStore(s3_bucket, prefix="cloud", client=s3_client, state_dir=tmp_path / "elsewhere")
    requests.clear()
    assert other.verify_dataset("w/a/task-9.lance", sidecar.files) == sidecar.dataset_digest
    assert [p for op, p in requests.requests if op == "GetObject" and ".axon-meta" not in p] == []

    # And uploading it again sends nothing.
    requests.clear()
    store.put_dataset(ds, "w/a/task-9.lance", sidecar.files)
    assert requests.count("UploadPart") == requests.count("PutObject") == 0


def test_a_replaced_multipart_object_fails_verification(s3_client, s3_bucket, tmp_path):
    ds, sidecar = _big_recording(tmp_path)
    store = S3ObjectStore(s3_bucket, client=s3_client, part_size=PART, multipart_threshold=PART, rate_limiter=RateLimiter(None), upload_queue=UploadQueue(),
                          state_dir=tmp_path / "state")
    store.put_dataset(ds, "k.lance", sidecar.files)
    # Someone overwrites the big file with other bytes but keeps the metadata claims.
    head = s3_client.head_object(Bucket=s3_bucket, Key="k.lance/data/0.lance")
    s3_client.put_object(Bucket=s3_bucket, Key="k.lance/data/0.lance", Body=b"x" * 100, Metadata=head["Metadata"])

    with pytest.raises(DigestMismatch, match="changed"):
        store.verify_dataset("k.lance", sidecar.files)


def test_a_store_without_checksum_support_verifies_by_rereading(s3_server, s3_client, s3_bucket, tmp_path):
    """checksums=False is how GCS's S3-compatible XML API is used: no x-amz-checksum headers (and a
    client that does not add botocore's default CRC32 ones, as the store builds it by itself)."""
    import boto3
    from botocore.config import Config

    s3_client = boto3.client(
        "s3", endpoint_url=s3_server.url, aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1",
        config=Config(request_checksum_calculation="when_required", response_checksum_validation="when_required"),
    )
    ds, sidecar = _big_recording(tmp_path)
    store = S3ObjectStore(s3_bucket, client=s3_client, checksums=False, part_size=PART, multipart_threshold=PART, rate_limiter=RateLimiter(None),
                          upload_queue=UploadQueue(), state_dir=tmp_path / "state")
    requests = S3RequestLog(s3_client)
    headers: list[str] = []
    s3_client.meta.events.register("before-send.s3", lambda request, **_: headers.extend(h.lower() for h in request.headers))

    store.put_dataset(ds, "k.lance", sidecar.files)

    assert [h for h in headers if h.startswith("x-amz-checksum") or h == "x-amz-sdk-checksum-algorithm"] == []
    assert requests.count("UploadPart") == 3
    assert store.verify_dataset("k.lance", sidecar.files) == sidecar.dataset_digest
    assert object_sha256(s3_client, s3_bucket, "k.lance/data/0.lance") == sidecar.files["data/0.lance"]


def test_gs_urls_build_an_s3_store_on_the_gcs_xml_endpoint(monkeypatch):
    from axon_dagster.storage.object_stores import object_store_from_url

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "hmac-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hmac-secret")
    store = object_store_from_url("gs://my-bucket/datasets")
    assert store.endpoint_url == "https://storage.googleapis.com"
    assert store.checksums is False and store.verify == "reread"
    assert store.uri_for("a/b") == "gs://my-bucket/datasets/a/b"


def test_the_store_reports_what_an_upload_did_for_run_metadata(s3_client, s3_bucket, tmp_path):
    ds, sidecar = _big_recording(tmp_path)
    store = S3ObjectStore(s3_bucket, client=s3_client, part_size=PART, multipart_threshold=PART, rate_limiter=RateLimiter(None),
                          upload_queue=UploadQueue(), state_dir=tmp_path / "state")
    store.put_dataset(ds, "k.lance", sidecar.files, priority=3, created_at=0.0)
    first = store.last_upload_stats()
    assert first["files_sent"] == 3 and first["files_already_stored"] == 0 and first["parts_sent"] == 3
    assert first["bytes_sent"] == sum(p.stat().st_size for p in ds.rglob("*") if p.is_file())
    assert first["upload_bytes_per_second"] > 0 and first["upload_seconds"] > 0

    store.put_dataset(ds, "k.lance", sidecar.files)
    again = store.last_upload_stats()
    assert again["files_sent"] == 0 and again["files_already_stored"] == 3 and again["bytes_sent"] == 0
