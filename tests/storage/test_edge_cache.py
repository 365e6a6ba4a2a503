from __future__ import annotations

import errno
import logging
import os
import sqlite3
import tempfile
from pathlib import Path

import pytest

from axon_dagster.domain import InvalidIdError
from axon_dagster.storage import edge_cache as edge_cache_module
from axon_dagster.storage.digest import DigestMismatch, dataset_digest, file_digests
from axon_dagster.storage.edge_cache import (
    BYTES_PER_GB,
    CacheConflict,
    CacheState,
    EdgeCache,
    UnknownDataset,
)
from axon_dagster.storage.recording import Sidecar, sidecar_path

from .conftest import tamper


def inodes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_ino for p in root.rglob("*") if p.is_file()}


def cache_files(cache: EdgeCache) -> list[str]:
    """Everything under datasets/ and tmp/: what a refused request must not leave behind."""
    return sorted(p.relative_to(cache.root).as_posix() for d in ("datasets", "tmp") for p in (cache.root / d).rglob("*"))


def quota_gb(n_bytes: int) -> float:
    return n_bytes / BYTES_PER_GB


# ------------------------------------------------------------------------------------- staging


def test_stage_on_the_same_filesystem_hardlinks_every_file(tmp_path, make_recording):
    src = make_recording("task-1")
    cache = EdgeCache(tmp_path / "cache")

    entry = cache.stage(src, "task-1")

    assert entry.path == cache.root / "datasets" / "task-1" / "task-1.lance"
    assert entry.sidecar_path == entry.path.with_suffix(".json")
    assert inodes(entry.path) == inodes(src)  # same inodes: linked, not copied
    assert entry.dataset_digest == Sidecar.read(sidecar_path(src)).dataset_digest == dataset_digest(entry.path)
    assert entry.size_bytes == sum(p.stat().st_size for p in entry.path.rglob("*") if p.is_file()) + entry.sidecar_path.stat().st_size
    assert entry.state is CacheState.CACHED
    assert [e.dataset_id for e in cache.list()] == ["task-1"]
    assert cache_files(cache) == sorted(
        ["datasets/task-1", "datasets/task-1/task-1.json", "datasets/task-1/task-1.lance"]
        + [f"datasets/task-1/task-1.lance/{p.relative_to(src).as_posix()}" for p in src.rglob("*")]
    )


def test_stage_from_another_real_filesystem_copies_and_verifies(tmp_path, make_recording):
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem (tmpfs /dev/shm) available here")
    with tempfile.TemporaryDirectory(dir=shm) as other_fs:
        src = make_recording("task-1", parent=Path(other_fs))
        cache = EdgeCache(tmp_path / "cache")

        entry = cache.stage(src, "task-1")

        assert set(inodes(entry.path).values()).isdisjoint(inodes(src).values())
        assert file_digests(entry.path) == Sidecar.read(sidecar_path(src)).files
    assert entry.path.is_dir()  # the copy outlives the source filesystem's files


def test_stage_copies_and_verifies_when_filesystems_differ_simulated(tmp_path, make_recording, monkeypatch):
    """Simulated: _same_filesystem is forced to False (one real filesystem here besides tmpfs)."""
    monkeypatch.setattr(EdgeCache, "_same_filesystem", lambda self, src: False)
    monkeypatch.setattr(edge_cache_module.os, "link", _link_must_not_be_called)
    verified: list[Path] = []
    real_verify = Sidecar.verify
    monkeypatch.setattr(Sidecar, "verify", lambda self, d: (verified.append(Path(d)), real_verify(self, d))[1])
    src = make_recording("task-1")

    entry = EdgeCache(tmp_path / "cache").stage(src, "task-1")

    assert set(inodes(entry.path).values()).isdisjoint(inodes(src).values())
    assert dataset_digest(entry.path) == entry.dataset_digest
    assert len(verified) == 1 and verified[0].name == "task-1.lance"  # verified the copy, in scratch


def _link_must_not_be_called(*args, **kwargs):
    raise AssertionError("os.link called although the filesystems differ")


def test_stage_falls_back_to_copy_when_a_hardlink_fails(tmp_path, make_recording, monkeypatch):
    def refuse_link(src, dst, *args, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(edge_cache_module.os, "link", refuse_link)
    src = make_recording("task-1")

    entry = EdgeCache(tmp_path / "cache").stage(src, "task-1")

    assert set(inodes(entry.path).values()).isdisjoint(inodes(src).values())
    assert dataset_digest(entry.path) == entry.dataset_digest


def _record_fsyncs(monkeypatch) -> list[str]:
    """The paths fsynced by the cache (file or directory), in order."""
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(edge_cache_module.os, "fsync", fsync)
    return synced


def test_a_linked_stage_makes_its_rename_durable_and_a_copied_one_every_new_byte(tmp_path, make_recording, monkeypatch):
    src = make_recording("task-1")
    cache = EdgeCache(tmp_path / "cache")
    synced = _record_fsyncs(monkeypatch)

    cache.stage(src, "task-1")
    # Linked: no new bytes exist (every file is the recorder's inode); the rename into datasets/ is synced.
    assert synced == [str(cache.root / "datasets")]

    synced.clear()
    monkeypatch.setattr(EdgeCache, "_same_filesystem", lambda self, src: False)
    entry = cache.stage(make_recording("task-2"), "task-2")
    copied_files = [p for p in entry.path.rglob("*") if p.is_file()] + [entry.sidecar_path]
    directories = [p for p in entry.path.rglob("*") if p.is_dir()] + [entry.path, entry.path.parent, cache.root / "datasets"]
    # Copied: every copied file's bytes (fsynced in scratch, so compared by name) and every directory entry.
    assert sorted(Path(p).name for p in synced[: len(copied_files)]) == sorted(p.name for p in copied_files)
    assert sorted(synced[len(copied_files):]) == sorted(str(d) for d in directories)
    assert synced[-1] == str(cache.root / "datasets")  # the rename last, after everything it names


def test_a_sidecar_replaced_during_staging_is_refused_and_leaves_nothing_behind(tmp_path, make_recording, monkeypatch):
    src = make_recording("task-1")
    cache = EdgeCache(tmp_path / "cache")
    real_materialize = EdgeCache._materialize

    def recorder_rewrites_sidecar(self, source, dest):
        done = real_materialize(self, source, dest)
        # The recorder writes a new sidecar (atomic replace) between the links and the sidecar's.
        replaced = sidecar_path(src).read_text().replace('"robot-1"', '"robot-2"')
        tmp = sidecar_path(src).with_suffix(".tmp")
        tmp.write_text(replaced)
        os.replace(tmp, sidecar_path(src))
        return done

    monkeypatch.setattr(EdgeCache, "_materialize", recorder_rewrites_sidecar)
    with pytest.raises(CacheConflict, match="replaced while task-1 was being staged"):
        cache.stage(src, "task-1")
    assert cache_files(cache) == [] and cache.list() == []


@pytest.mark.parametrize("path", ["hardlink", "copy"])
def test_a_tampered_recording_is_refused_and_leaves_nothing_behind(tmp_path, make_recording, monkeypatch, path):
    if path == "copy":
        monkeypatch.setattr(EdgeCache, "_same_filesystem", lambda self, src: False)
    src = make_recording("task-1")
    tamper(src)
    # Hardlinks are re-hashed only with verify_linked="hash" (the default checks inode identity and
    # leaves the byte check to the upload: tests/upload/test_edge_cache_policies.py).
    cache = EdgeCache(tmp_path / "cache", verify_linked="hash")

    with pytest.raises(DigestMismatch, match="does not match"):
        cache.stage(src, "task-1")

    assert cache.list() == []
    assert cache_files(cache) == []
    assert cache.usage().used_bytes == 0
    with pytest.raises(UnknownDataset):
        cache.get("task-1")
    assert all(p.exists() for p in src.rglob("*"))  # the recorder's files are untouched


def test_an_extra_file_in_the_recording_is_refused(tmp_path, make_recording):
    src = make_recording("task-1")
    (src / "data" / "stray.bin").write_bytes(b"not in the sidecar")
    cache = EdgeCache(tmp_path / "cache")

    with pytest.raises(DigestMismatch):
        cache.stage(src, "task-1")
    assert cache.list() == [] and cache_files(cache) == []


def test_a_sidecar_whose_digest_does_not_follow_from_its_files_is_refused(tmp_path, make_recording):
    src = make_recording("task-1")
    sidecar = Sidecar.read(sidecar_path(src))
    sidecar.dataset_digest = "0" * 64
    sidecar.write(sidecar_path(src))
    cache = EdgeCache(tmp_path / "cache")

    with pytest.raises(DigestMismatch, match="dataset_digest field"):
        cache.stage(src, "task-1")
    assert cache_files(cache) == []


def test_staging_without_a_sidecar_is_refused(tmp_path, make_recording):
    src = make_recording("task-1")
    sidecar_path(src).unlink()
    cache = EdgeCache(tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="sidecar not found"):
        cache.stage(src, "task-1")
    assert cache_files(cache) == []


def test_staging_is_idempotent(tmp_path, make_recording):
    src = make_recording("task-1")
    cache = EdgeCache(tmp_path / "cache")
    first = cache.stage(src, "task-1")

    again = cache.stage(src, "task-1")

    assert (again.dataset_id, again.path, again.dataset_digest, again.size_bytes) == (
        first.dataset_id, first.path, first.dataset_digest, first.size_bytes)
    assert len(cache.list()) == 1
    assert cache.usage().used_bytes == first.size_bytes


def test_staging_a_different_recording_under_a_cached_id_is_refused(tmp_path, make_recording):
    cache = EdgeCache(tmp_path / "cache")
    first = cache.stage(make_recording("task-1", seed=0), "task-1")
    other = make_recording("other", seed=1)

    with pytest.raises(CacheConflict, match="already cached"):
        cache.stage(other, "task-1")
    assert dataset_digest(first.path) == first.dataset_digest
    assert [e.dataset_digest for e in cache.list()] == [first.dataset_digest]


@pytest.mark.parametrize("bad_id", ["../evil", "..", "a/b", "/abs", "a\\b", "", "x\n", "evil/../../x", "a" * 129, ".hidden"])
def test_unsafe_dataset_ids_are_refused_and_nothing_is_written(tmp_path, make_recording, bad_id):
    src = make_recording("task-1")
    cache = EdgeCache(tmp_path / "cache")
    before = sorted(p.as_posix() for p in tmp_path.rglob("*"))

    with pytest.raises(InvalidIdError, match="invalid dataset_id"):
        cache.stage(src, bad_id)
    for call in (cache.get, cache.mark_rejected, cache.remove, lambda i: cache.mark_uploaded(i, "s3://b/k", "0" * 64)):
        with pytest.raises(ValueError):
            call(bad_id)

    assert sorted(p.as_posix() for p in tmp_path.rglob("*")) == before


def test_get_of_an_unknown_dataset_says_so_clearly(tmp_path):
    cache = EdgeCache(tmp_path / "cache")
    with pytest.raises(UnknownDataset) as info:
        cache.get("task-404")
    assert isinstance(info.value, KeyError)
    assert str(info.value) == f"dataset 'task-404' is not in the edge cache at {cache.root}"


def test_bad_configuration_is_refused(tmp_path):
    with pytest.raises(ValueError, match="policy"):
        EdgeCache(tmp_path / "c", policy="random")
    with pytest.raises(ValueError, match="max_size_gb"):
        EdgeCache(tmp_path / "c", max_size_gb=-1)
    with pytest.raises(ValueError, match="verify_linked"):
        EdgeCache(tmp_path / "c", verify_linked="sometimes")
    with pytest.raises(ValueError, match="retention_days"):
        EdgeCache(tmp_path / "c", retention_days=0)
    with pytest.raises(ValueError, match="delete_after_upload"):
        EdgeCache(tmp_path / "c", delete_after_upload="yes")


# ------------------------------------------------------------------------------------- states


def test_mark_uploaded_refuses_a_digest_other_than_the_cached_one(tmp_path, make_recording):
    cache = EdgeCache(tmp_path / "cache")
    entry = cache.stage(make_recording("task-1"), "task-1")

    with pytest.raises(DigestMismatch):
        cache.mark_uploaded("task-1", "s3://bucket/x.lance", "f" * 64)
    assert cache.get("task-1").state is CacheState.CACHED

    uploaded = cache.mark_uploaded("task-1", "s3://bucket/x.lance", entry.dataset_digest)
    assert (uploaded.state, uploaded.cloud_uri) == (CacheState.UPLOADED, "s3://bucket/x.lance")
    assert cache.mark_uploaded("task-1", "s3://bucket/x.lance", entry.dataset_digest) == uploaded  # replay


def test_rejected_and_uploaded_exclude_each_other(tmp_path, make_recording):
    cache = EdgeCache(tmp_path / "cache")
    a = cache.stage(make_recording("a", seed=0), "a")
    b = cache.stage(make_recording("b", seed=1), "b")
    cache.mark_rejected("a")
    cache.mark_uploaded("b", "file:///cloud/b.lance", b.dataset_digest)

    with pytest.raises(CacheConflict, match="rejected"):
        cache.mark_uploaded("a", "file:///cloud/a.lance", a.dataset_digest)
    with pytest.raises(CacheConflict, match="already uploaded"):
        cache.mark_rejected("b")
    assert cache.mark_rejected("a").state is CacheState.REJECTED  # replay is harmless


def test_the_index_survives_a_restart_in_wal_mode(tmp_path, make_recording):
    cache = EdgeCache(tmp_path / "cache", max_size_gb=1, policy="fifo")
    entry = cache.stage(make_recording("task-1"), "task-1")
    cache.mark_uploaded("task-1", "s3://bucket/t.lance", entry.dataset_digest)

    reopened = EdgeCache(tmp_path / "cache", max_size_gb=1, policy="fifo")

    assert reopened.get("task-1").state is CacheState.UPLOADED
    assert reopened.get("task-1").cloud_uri == "s3://bucket/t.lance"
    with sqlite3.connect(tmp_path / "cache" / "index.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_restart_finishes_an_interrupted_eviction_and_clears_dead_scratch(tmp_path, make_recording):
    cache = EdgeCache(tmp_path / "cache")
    entry = cache.stage(make_recording("task-1"), "task-1")
    keep = cache.stage(make_recording("task-2", seed=1), "task-2")
    cache.mark_uploaded("task-1", "s3://b/t1.lance", entry.dataset_digest)
    # Crash after the entry was moved away but before its row was dropped:
    os.rename(cache.root / "datasets" / "task-1", cache.root / "tmp" / "999999999-dead-evict-task-1")

    reopened = EdgeCache(tmp_path / "cache")

    assert [e.dataset_id for e in reopened.list()] == ["task-2"]
    assert list((cache.root / "tmp").iterdir()) == []
    assert dataset_digest(keep.path) == keep.dataset_digest


# ------------------------------------------------------------------------------------- eviction


def fill(cache: EdgeCache, make_recording, names: list[str]) -> dict[str, int]:
    return {name: cache.stage(make_recording(name, seed=i), name).size_bytes for i, name in enumerate(names)}


def test_eviction_never_removes_an_unuploaded_dataset_even_over_quota(tmp_path, make_recording, caplog):
    cache = EdgeCache(tmp_path / "cache", max_size_gb=quota_gb(1000), policy="lru")
    sizes = fill(cache, make_recording, ["a", "b", "c"])
    assert all(size > 1000 for size in sizes.values())

    with caplog.at_level(logging.WARNING, logger="axon_dagster.storage.edge_cache"):
        assert cache.evict() == []

    usage = cache.usage()
    assert (usage.used_bytes, usage.quota_bytes, usage.pressure) == (sum(sizes.values()), 1000, True)
    assert all(dataset_digest(e.path) == e.dataset_digest for e in cache.list()) and len(cache.list()) == 3
    assert "still over quota" in caplog.text


def test_lru_evicts_uploaded_datasets_least_recently_accessed_first(tmp_path, make_recording):
    names = ["a", "b", "c", "d", "e"]
    cache = EdgeCache(tmp_path / "cache", policy="lru")
    sizes = fill(cache, make_recording, names)
    for name in ["a", "b", "c", "d"]:
        cache.mark_uploaded(name, f"s3://bucket/{name}.lance", cache.get(name).dataset_digest)
    for name in ["c", "a", "d", "b"]:  # access order: c is now least recently used, b most
        cache.get(name)
    # Room for e (never uploaded) and two more: two uploaded datasets must go.
    cache.quota_bytes = sizes["e"] + sizes["d"] + sizes["b"]

    evicted = cache.evict()

    assert evicted == ["c", "a"]
    assert sorted(e.dataset_id for e in cache.list()) == ["b", "d", "e"]
    assert not (cache.root / "datasets" / "c").exists() and not (cache.root / "datasets" / "a").exists()
    assert cache.usage().pressure is False


def test_fifo_evicts_uploaded_or_rejected_datasets_first_staged_first(tmp_path, make_recording):
    names = ["a", "b", "c", "d", "e"]
    cache = EdgeCache(tmp_path / "cache", policy="fifo")
    sizes = fill(cache, make_recording, names)
    cache.mark_rejected("c")
    for name in ["b", "d", "e"]:
        cache.mark_uploaded(name, f"s3://bucket/{name}.lance", cache.get(name).dataset_digest)
    cache.get("b")  # recent access does not matter to fifo
    cache.quota_bytes = sizes["a"] + sizes["e"]  # "a" stays: it is neither uploaded nor rejected

    evicted = cache.evict()

    assert evicted == ["b", "c", "d"]
    assert [e.dataset_id for e in cache.list()] == ["a", "e"]


def test_eviction_stops_as_soon_as_the_cache_is_within_quota(tmp_path, make_recording):
    cache = EdgeCache(tmp_path / "cache", policy="fifo")
    sizes = fill(cache, make_recording, ["a", "b", "c"])
    for name in sizes:
        cache.mark_uploaded(name, f"s3://bucket/{name}.lance", cache.get(name).dataset_digest)
    cache.quota_bytes = sum(sizes.values()) - 1

    assert cache.evict() == ["a"]
    assert cache.evict() == []


def test_manual_policy_never_evicts_but_allows_removing_uploaded_datasets(tmp_path, make_recording, caplog):
    cache = EdgeCache(tmp_path / "cache", max_size_gb=quota_gb(1000), policy="manual")
    fill(cache, make_recording, ["a", "b"])
    cache.mark_uploaded("a", "s3://bucket/a.lance", cache.get("a").dataset_digest)

    with caplog.at_level(logging.WARNING, logger="axon_dagster.storage.edge_cache"):
        assert cache.evict() == []
    assert "policy is manual" in caplog.text
    assert cache.usage().pressure is True and len(cache.list()) == 2

    with pytest.raises(CacheConflict, match="not uploaded or rejected"):
        cache.remove("b")
    cache.remove("a")
    assert [e.dataset_id for e in cache.list()] == ["b"]
    assert not (cache.root / "datasets" / "a").exists()


def test_without_a_quota_nothing_is_ever_evicted(tmp_path, make_recording):
    cache = EdgeCache(tmp_path / "cache")
    fill(cache, make_recording, ["a"])
    cache.mark_uploaded("a", "s3://bucket/a.lance", cache.get("a").dataset_digest)
    assert cache.evict() == [] and cache.usage() == edge_cache_module.CacheUsage(cache.usage().used_bytes, None, False)


def test_concurrent_stages_of_one_recording_yield_one_entry(tmp_path, make_recording):
    """Edge agent and Dagster op may stage the same recording at once; each builds its own
    scratch copy and exactly one rename wins."""
    from concurrent.futures import ThreadPoolExecutor

    src = make_recording("task-1")
    caches = [EdgeCache(tmp_path / "cache") for _ in range(4)]  # separate instances, shared root

    with ThreadPoolExecutor(max_workers=4) as pool:
        entries = list(pool.map(lambda cache: cache.stage(src, "task-1"), caches))

    assert {(e.path, e.dataset_digest, e.size_bytes) for e in entries} == {(entries[0].path, entries[0].dataset_digest, entries[0].size_bytes)}
    assert [e.dataset_id for e in caches[0].list()] == ["task-1"]
    assert list((caches[0].root / "tmp").iterdir()) == []
    assert dataset_digest(entries[0].path) == entries[0].dataset_digest


def test_an_unreadable_sidecar_is_refused_clearly(tmp_path, make_recording):
    src = make_recording("task-1")
    sidecar_path(src).write_text('{"task_id": "task-1"}')
    cache = EdgeCache(tmp_path / "cache")
    with pytest.raises(ValueError, match="unreadable sidecar"):
        cache.stage(src, "task-1")
    assert cache_files(cache) == []


# ------------------------------------------------------------------------------------- release_source


def _tree_inodes(*roots: Path) -> set[int]:
    return {p.lstat().st_ino for root in roots if root.exists() for p in root.rglob("*") if p.is_file()}


def _verify_entry(entry) -> None:
    sidecar = Sidecar.read(entry.sidecar_path)
    sidecar.verify(entry.path)  # every file, byte for byte
    assert sidecar.dataset_digest == entry.dataset_digest == dataset_digest(entry.path)


def test_release_source_removes_the_recorders_copy_and_the_entry_verifies(tmp_path, make_recording, caplog):
    src = make_recording("task-1")
    source_bytes = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    cache = EdgeCache(tmp_path / "cache", release_source=True)

    with caplog.at_level(logging.INFO, logger="axon_dagster.storage.edge_cache"):
        entry = cache.stage(src, "task-1")

    assert entry.source_released is True
    assert not src.exists() and not sidecar_path(src).exists()
    assert list(src.parent.iterdir()) == []  # the recorder's directory itself stays
    _verify_entry(entry)
    assert all(p.stat().st_nlink == 1 for p in entry.path.rglob("*") if p.is_file())  # the cache holds the only names
    assert entry.sidecar_path.stat().st_nlink == 1
    n_files = len(Sidecar.read(entry.sidecar_path).files)
    assert f"released the recorder's copy of dataset task-1 at {src}: {n_files} files + sidecar" in caplog.text
    assert f"{source_bytes} bytes" in caplog.text
    assert cache.get("task-1").state is CacheState.CACHED and cache.disk_usage()["release_source"] is True


def test_release_source_makes_every_made_directory_durable_before_the_first_unlink(tmp_path, make_recording, monkeypatch):
    src = make_recording("task-1")
    cache = EdgeCache(tmp_path / "cache", release_source=True)
    events: list[tuple[str, str]] = []
    real_fsync, real_unlink, real_rmdir = os.fsync, os.unlink, os.rmdir

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def unlink(path, *args, **kwargs):
        events.append(("unlink", str(path)))
        real_unlink(path, *args, **kwargs)

    def rmdir(path, *args, **kwargs):
        events.append(("rmdir", str(path)))
        real_rmdir(path, *args, **kwargs)

    monkeypatch.setattr(edge_cache_module.os, "fsync", fsync)
    monkeypatch.setattr(edge_cache_module.os, "unlink", unlink)
    monkeypatch.setattr(edge_cache_module.os, "rmdir", rmdir)

    entry = cache.stage(src, "task-1")

    first_unlink = next(i for i, (kind, _) in enumerate(events) if kind == "unlink")
    synced_before = {path for kind, path in events[:first_unlink] if kind == "fsync"}
    entry_dirs = {str(p) for p in entry.path.rglob("*") if p.is_dir()} | {str(entry.path), str(entry.path.parent)}
    assert entry_dirs | {str(cache.root / "datasets")} <= synced_before
    removals = [path for kind, path in events if kind in ("unlink", "rmdir")]
    assert all(Path(p).is_relative_to(src.parent) for p in removals)  # nothing but the recorder's copy
    assert str(sidecar_path(src)) in removals and str(src) in removals
    last_removal = max(i for i, (kind, _) in enumerate(events) if kind in ("unlink", "rmdir"))
    assert ("fsync", str(src.parent)) in events[last_removal:]  # the removals made durable


def test_a_file_the_recorder_added_after_recording_survives_the_release(tmp_path, make_recording, monkeypatch):
    src = make_recording("task-1")
    cache = EdgeCache(tmp_path / "cache", release_source=True)
    real_materialize = EdgeCache._materialize

    def recorder_writes_more(self, source, dest):
        done = real_materialize(self, source, dest)
        (src / "data" / "late.bin").write_bytes(b"written after the recording")
        (src / "notes").mkdir()
        (src / "notes" / "n.txt").write_text("mine")
        return done

    monkeypatch.setattr(EdgeCache, "_materialize", recorder_writes_more)
    entry = cache.stage(src, "task-1")

    assert entry.source_released is True  # nothing that was staged is left
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*")) == ["data", "data/late.bin", "notes", "notes/n.txt"]
    assert (src / "data" / "late.bin").read_bytes() == b"written after the recording"
    assert not sidecar_path(src).exists()
    _verify_entry(entry)


def test_staging_again_after_the_release_returns_the_cached_entry(tmp_path, make_recording):
    src = make_recording("task-1")
    cache = EdgeCache(tmp_path / "cache", release_source=True)
    first = cache.stage(src, "task-1")
    assert not src.exists()

    again = cache.stage(src, "task-1")
    after_restart = EdgeCache(tmp_path / "cache", release_source=True).stage(src, "task-1")

    for entry in (again, after_restart):
        assert (entry.path, entry.dataset_digest, entry.size_bytes, entry.source_released) == (
            first.path, first.dataset_digest, first.size_bytes, True)
    assert len(cache.list()) == 1
    _verify_entry(first)
    with pytest.raises(FileNotFoundError):  # without release_source a missing recording is refused, as ever
        EdgeCache(tmp_path / "cache").stage(src, "task-1")
    with pytest.raises(FileNotFoundError):  # and an id never cached too
        cache.stage(src, "task-2")


def test_an_interrupted_release_keeps_the_entry_warns_and_a_second_stage_finishes_it(tmp_path, make_recording, monkeypatch, caplog):
    src = make_recording("task-1")
    n_files = len(Sidecar.read(sidecar_path(src)).files)
    cache = EdgeCache(tmp_path / "cache", release_source=True)
    real_unlink = os.unlink
    calls = {"n": 0}

    def unlink_fails_after_two(path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(edge_cache_module.os, "unlink", unlink_fails_after_two)
    with caplog.at_level(logging.WARNING, logger="axon_dagster.storage.edge_cache"):
        entry = cache.stage(src, "task-1")

    assert entry.source_released is False and entry.state is CacheState.CACHED
    assert "could not release the recorder's copy of dataset task-1" in caplog.text and "Permission denied" in caplog.text
    assert str(src) in caplog.text
    _verify_entry(entry)  # the cache's copy is whole
    left = [p for p in src.rglob("*") if p.is_file()]
    assert len(left) == n_files - 2 and sidecar_path(src).exists()

    monkeypatch.setattr(edge_cache_module.os, "unlink", real_unlink)
    again = cache.stage(src, "task-1")

    assert again.source_released is True and again.path == entry.path
    assert not src.exists() and not sidecar_path(src).exists()
    _verify_entry(again)


def test_a_release_killed_after_the_sidecar_went_is_finished_by_the_next_stage(tmp_path, make_recording):
    """The recording was staged without release_source (only datasets/ fsynced), then a release
    died after removing some files and the sidecar: a release_source stage finishes it."""
    src = make_recording("task-1")
    entry = EdgeCache(tmp_path / "cache").stage(src, "task-1")
    assert entry.source_released is None and sidecar_path(src).exists()
    files = sorted(p for p in src.rglob("*") if p.is_file())
    for p in files[: len(files) // 2]:
        p.unlink()
    sidecar_path(src).unlink()

    again = EdgeCache(tmp_path / "cache", release_source=True).stage(src, "task-1")

    assert again.source_released is True and not src.exists()
    _verify_entry(again)


def test_release_of_a_copied_stage_checks_the_bytes_and_keeps_a_replaced_file(tmp_path, make_recording, monkeypatch):
    monkeypatch.setattr(EdgeCache, "_same_filesystem", lambda self, src: False)
    cache = EdgeCache(tmp_path / "cache", release_source=True)
    src = make_recording("task-1")
    assert cache.stage(src, "task-1").source_released is True and not src.exists()

    other = make_recording("task-2", seed=1)
    real_materialize = EdgeCache._materialize
    replaced: list[Path] = []

    def recorder_replaces_a_file(self, source, dest):
        done = real_materialize(self, source, dest)
        replaced.append(tamper(other))  # a new inode with other bytes, after the copy was made
        return done

    monkeypatch.setattr(EdgeCache, "_materialize", recorder_replaces_a_file)
    entry = cache.stage(other, "task-2")

    assert entry.source_released is False
    assert [p for p in other.rglob("*") if p.is_file()] == replaced  # only the replaced file is kept
    _verify_entry(entry)


def test_evicting_a_released_dataset_leaves_its_inodes_without_a_name(tmp_path, make_recording):
    src = make_recording("task-1")
    cache = EdgeCache(tmp_path / "cache", release_source=True)
    entry = cache.stage(src, "task-1")
    staged = _tree_inodes(entry.path.parent)
    assert staged and not staged & _tree_inodes(src.parent)  # the cache holds the only names

    cache.mark_uploaded("task-1", "s3://bucket/task-1.lance", entry.dataset_digest)
    cache.quota_bytes = 1
    assert cache.evict() == ["task-1"]

    # No name is left for any staged inode in either tree: st_nlink 0, the space is free.
    assert not staged & _tree_inodes(src.parent, cache.root)
    assert cache.usage().used_bytes == 0


def test_without_release_source_eviction_leaves_the_recording_where_it_was(tmp_path, make_recording):
    """Today's behaviour, kept: the source is untouched (and so still names the staged inodes)."""
    src = make_recording("task-1")
    before = {p.relative_to(src.parent).as_posix(): (p.lstat().st_ino, p.read_bytes()) for p in src.parent.rglob("*") if p.is_file()}
    cache = EdgeCache(tmp_path / "cache")
    entry = cache.stage(src, "task-1")
    assert entry.source_released is None
    cache.mark_uploaded("task-1", "s3://bucket/task-1.lance", entry.dataset_digest)
    cache.quota_bytes = 1
    assert cache.evict() == ["task-1"]

    after = {p.relative_to(src.parent).as_posix(): (p.lstat().st_ino, p.read_bytes()) for p in src.parent.rglob("*") if p.is_file()}
    assert after == before


def test_release_source_refuses_a_different_recording_under_a_cached_id_and_keeps_it(tmp_path, make_recording):
    cache = EdgeCache(tmp_path / "cache", release_source=True)
    cache.stage(make_recording("task-1", seed=0), "task-1")
    other = make_recording("other", seed=1)
    before = inodes(other)

    with pytest.raises(CacheConflict, match="already cached"):
        cache.stage(other, "task-1")
    assert inodes(other) == before and sidecar_path(other).exists()


def test_release_source_must_be_a_bool(tmp_path):
    with pytest.raises(ValueError, match="release_source"):
        EdgeCache(tmp_path / "c", release_source="yes")
