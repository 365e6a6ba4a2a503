"""Publishing staged files into the lake, digest-verified, on every backend (local dir, S3 over
moto's HTTP server, Azure over Azurite): the copy is verified, a copy that does not hold the
expected digest is deleted, a missing or mismatching staged object publishes nothing."""

from __future__ import annotations

import hashlib
import os

import pytest

from axon_dagster.domain.layout import staging_key
from axon_dagster.storage.digest import DigestMismatch, digest_of_files
from axon_dagster.storage.files import file_fingerprint
from axon_dagster.storage.object_stores import LocalDirObjectStore, ObjectNotFound, S3ObjectStore
from axon_dagster.storage.object_stores.azure import AzureBlobObjectStore
from axon_dagster.storage.object_stores.publish import publish_copies, publish_copy, verify_staged

try:
    from tests.azurite_fixture import azure_container, azure_service, azurite  # noqa: F401
except ModuleNotFoundError:  # repository root not on sys.path
    from azurite_fixture import azure_container, azure_service, azurite  # type: ignore[no-redef]  # noqa: F401

STAGED = staging_key("robot-1", "t-1", "t-1.mcap")
LAKE = "warehouse/aisle_1/pick_20261126T093000.000000Z.mcap"


@pytest.fixture(params=["local", "s3", "azure"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalDirObjectStore(tmp_path / "cloud")
    if request.param == "s3":
        return S3ObjectStore(request.getfixturevalue("s3_bucket"), prefix="cloud", client=request.getfixturevalue("s3_client"))
    endpoint = request.getfixturevalue("azurite")
    return AzureBlobObjectStore(request.getfixturevalue("azure_container"), "cloud", connection_string=endpoint.connection_string)


def test_a_staged_file_is_verified_and_published_by_copy(store) -> None:
    data = os.urandom(300_000)
    sha = hashlib.sha256(data).hexdigest()
    store.put_bytes(STAGED, data)
    assert verify_staged(store, STAGED, sha) == sha
    assert publish_copy(store, STAGED, LAKE, sha) == store.uri_for(LAKE)
    assert store.get_bytes(LAKE) == data
    assert store.delete(STAGED) is True and store.delete(STAGED) is False
    assert store.get_bytes(LAKE) == data  # the published copy does not depend on the staged one


def test_a_copy_that_does_not_hold_the_digest_is_deleted(store) -> None:
    store.put_bytes(STAGED, b"what the robot uploaded")
    claimed = hashlib.sha256(b"what the manifest says").hexdigest()
    with pytest.raises(DigestMismatch, match="the copy was deleted") as refused:
        publish_copy(store, STAGED, LAKE, claimed)
    assert refused.value.expected == claimed
    assert not store.exists(LAKE)
    with pytest.raises(DigestMismatch, match="staged"):
        verify_staged(store, STAGED, claimed)


def test_nothing_is_published_when_a_source_is_missing(store) -> None:
    store.put_bytes(STAGED, b"mcap")
    sha = hashlib.sha256(b"mcap").hexdigest()
    missing = staging_key("robot-1", "t-1", "t-1.json")
    with pytest.raises(ObjectNotFound, match="nothing published"):
        publish_copies(store, {LAKE: (STAGED, sha), LAKE + ".json": (missing, sha)})
    assert store.list_keys("warehouse/") == []
    with pytest.raises(ObjectNotFound):
        verify_staged(store, missing, sha)
    with pytest.raises(ValueError, match="invalid sha256"):
        publish_copy(store, STAGED, LAKE, "ABC")
    assert store.list_keys("warehouse/") == []


def test_s3_verifies_the_copy_from_the_checksum_s3_computes_without_reading_it_back(s3_client, s3_bucket) -> None:
    try:
        from tests.s3_fixture import S3RequestLog
    except ModuleNotFoundError:
        from s3_fixture import S3RequestLog  # type: ignore[no-redef]

    store = S3ObjectStore(s3_bucket, prefix="cloud", client=s3_client)
    data = os.urandom(6 * 1024 * 1024 + 3)
    upload_id = store.start_multipart(STAGED)  # staged as robots do: multipart, no checksum of its own
    etags = {n: s3_client.upload_part(Bucket=s3_bucket, Key=f"cloud/{STAGED}", UploadId=upload_id, PartNumber=n, Body=body)["ETag"]
             for n, body in ((1, data[:5 * 1024 * 1024]), (2, data[5 * 1024 * 1024:]))}
    store.complete_multipart(STAGED, upload_id, etags)
    requests = S3RequestLog(s3_client)
    publish_copy(store, STAGED, LAKE, hashlib.sha256(data).hexdigest())
    assert requests.count("CopyObject") == 1 and requests.count("GetObject") == 0
    assert store.get_bytes(LAKE) == data
    requests.clear()
    with pytest.raises(DigestMismatch, match="the copy was deleted"):
        publish_copy(store, STAGED, LAKE + ".2", hashlib.sha256(b"other").hexdigest())
    assert requests.count("GetObject") == 0 and not store.exists(LAKE + ".2")


# --------------------------------------------------------------------------- datasets: copy_dataset, adopt_dataset

DATASET = "staging/robot-1/t-1/ingested/t-1.lance"
LAKE_DATASET = "warehouse/aisle_1/pick_20261126T093000.000000Z.lance"


def _dataset_dir(root, files: dict[str, bytes]):
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}


def test_a_dataset_is_copied_file_by_file_each_copy_verified(store, tmp_path) -> None:
    src = tmp_path / "t-1.lance"
    files = _dataset_dir(src, {"data/a.lance": os.urandom(70_000), "_versions/1.manifest": b"m" * 100})
    store.put_dataset(src, DATASET, files)
    digest = store.copy_dataset(DATASET, LAKE_DATASET, files)
    assert digest == digest_of_files(files)
    assert store.verify_dataset(LAKE_DATASET, files) == digest
    assert store.get_bytes(f"{LAKE_DATASET}/data/a.lance") == (src / "data/a.lance").read_bytes()


def test_a_dataset_copy_that_does_not_hold_the_sidecars_digest_is_refused_and_deleted(store, tmp_path) -> None:
    src = tmp_path / "t-1.lance"
    files = _dataset_dir(src, {"data/a.lance": b"what was stored", "data/b.lance": b"b"})
    store.put_dataset(src, DATASET, files)
    claimed = {**files, "data/a.lance": hashlib.sha256(b"what the sidecar says").hexdigest()}
    with pytest.raises(DigestMismatch, match="the copy was deleted"):
        store.copy_dataset(DATASET, LAKE_DATASET, claimed)
    assert not store.exists(f"{LAKE_DATASET}/data/a.lance")
    with pytest.raises(ObjectNotFound, match="nothing copied"):  # a file the sidecar lists is not stored
        store.copy_dataset(DATASET, LAKE_DATASET + "2", {**files, "data/c.lance": files["data/b.lance"]})
    assert store.list_keys(LAKE_DATASET + "2/") == []


def test_adopting_a_dataset_puts_it_at_its_key(store, tmp_path) -> None:
    src = tmp_path / "t-1.lance"
    files = _dataset_dir(src, {"data/a.lance": os.urandom(50_000), "_versions/1.manifest": b"m"})
    uri = store.adopt_dataset(src, DATASET, files)
    assert uri == store.uri_for(DATASET) and store.verify_dataset(DATASET, files) == digest_of_files(files)
    again = tmp_path / "again.lance"
    more = _dataset_dir(again, {"data/a.lance": b"a"})
    with pytest.raises(ValueError, match="does not match its manifest"):  # a file the manifest lists is not there
        store.adopt_dataset(again, "other/t.lance", {**more, "data/b.lance": more["data/a.lance"]})
    assert store.list_keys("other/") == [] and again.is_dir()


def test_the_local_store_adopts_by_rename_and_proves_its_links_without_reading_them(tmp_path, monkeypatch) -> None:
    """Local store: a dataset written in its scratch directory enters by a rename (the very files,
    no copy); a hard link whose fingerprint is the proof taken when the file was hashed is accepted
    without reading it; a file changed since (same size, new bytes) is read again and refused."""
    store = LocalDirObjectStore(tmp_path / "cloud")
    work = store.scratch_dir("data-flow/t-1/attempt-1")
    assert work.is_dir() and store.list_keys("") == []  # never an object
    src = work / "t-1.lance"
    files = _dataset_dir(src, {"data/a.lance": os.urandom(50_000), "data/b.lance": os.urandom(10)})
    inodes = {rel: (src / rel).stat().st_ino for rel in files}
    store.adopt_dataset(src, DATASET, files)
    assert not src.exists() and {rel: store.local_path(f"{DATASET}/{rel}").stat().st_ino for rel in files} == inodes
    proofs = {f"{DATASET}/{rel}": list(file_fingerprint(store.local_path(f"{DATASET}/{rel}"))) for rel in files}

    read = []
    monkeypatch.setattr(store, "sha256_of", lambda key: read.append(key) or LocalDirObjectStore.sha256_of(store, key))
    assert store.copy_dataset(DATASET, LAKE_DATASET, files, proofs=proofs) == digest_of_files(files)
    assert read == [] and store.local_path(f"{LAKE_DATASET}/data/a.lance").stat().st_ino == inodes["data/a.lance"]

    changed = store.local_path(f"{DATASET}/data/a.lance")
    changed.write_bytes(os.urandom(50_000))  # in place, same size: the proof no longer holds
    with pytest.raises(DigestMismatch, match="the copy was deleted"):
        store.copy_dataset(DATASET, LAKE_DATASET + "2", files, proofs=proofs)
    assert read == [f"{LAKE_DATASET}2/data/a.lance"] and not store.exists(f"{LAKE_DATASET}2/data/a.lance")
