"""The robot's edge cache: a finished recording moves in (hardlink + rename, no copy), under its
manifest's names; only a published or rejected recording is ever evicted; the edge gate."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from axon_dagster.storage.edge_cache import BYTES_PER_GB, CacheConflict, CacheState, EdgeCache
from axon_edge.gate import RecordingSummary, edge_gate
from axon_edge.settings import DataPathSettings, UploadWindow, parse_windows


def axon_recording(directory: Path, task_id: str, size: int = 4096) -> tuple[dict, dict, dict]:
    """``<task_id>.mcap`` + sidecar + ``.mcap.done`` as Axon leaves them; returns sources, markers, manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    mcap, sidecar, done = directory / f"{task_id}.mcap", directory / f"{task_id}.json", directory / f"{task_id}.mcap.done"
    mcap.write_bytes(os.urandom(size))
    sidecar.write_text('{"version": "1.0"}')
    done.write_text("done\n")
    sha = hashlib.sha256(mcap.read_bytes()).hexdigest()
    manifest = {
        "files": [
            {"name": mcap.name, "size": mcap.stat().st_size, "sha256": sha},
            {"name": sidecar.name, "size": sidecar.stat().st_size, "sha256": hashlib.sha256(sidecar.read_bytes()).hexdigest()},
        ],
        "dataset_digest": sha,
    }
    return {mcap.name: mcap, sidecar.name: sidecar}, {done.name: done}, manifest


def test_a_recording_moves_in_without_a_copy(tmp_path):
    sources, markers, manifest = axon_recording(tmp_path / "rec", "t1")
    inode = os.stat(sources["t1.mcap"]).st_ino
    cache = EdgeCache(tmp_path / "cache")
    entry = cache.take_recording("t1", "mcap", sources, manifest, markers=markers)
    assert entry.path == tmp_path / "cache" / "datasets" / "t1" / "t1.mcap"
    assert os.stat(entry.path).st_ino == inode, "the same bytes: hardlinked, never copied"
    assert os.stat(entry.path).st_nlink == 1, "the recorder's name is gone: a move"
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == []
    assert (entry.entry_dir / "t1.mcap.done").exists() and (entry.entry_dir / "t1.json").exists()
    assert entry.state is CacheState.CACHED and entry.manifest == manifest and entry.recording_format == "mcap"
    assert entry.size_bytes == sum(f["size"] for f in manifest["files"])
    # Taking it again (a retry after a crash) is a no-op; another recording under the id is refused.
    assert cache.take_recording("t1", "mcap", sources, manifest, markers=markers).dataset_digest == manifest["dataset_digest"]
    other_sources, other_markers, other = axon_recording(tmp_path / "rec2", "t1")
    with pytest.raises(CacheConflict):
        cache.take_recording("t1", "mcap", other_sources, other, markers=other_markers)
    assert other_sources["t1.mcap"].exists(), "a refused recording stays where it was"


def test_an_interrupted_move_is_finished_by_taking_it_again(tmp_path):
    """Crash after the entry was indexed, before the recorder's names were removed."""
    sources, markers, manifest = axon_recording(tmp_path / "rec", "t1")
    cache = EdgeCache(tmp_path / "cache")
    cache._release_recording_sources = lambda *a, **k: False  # the crash
    cache.take_recording("t1", "mcap", sources, manifest, markers=markers)
    assert sources["t1.mcap"].exists()
    restarted = EdgeCache(tmp_path / "cache")
    restarted.take_recording("t1", "mcap", sources, manifest, markers=markers)
    assert not any((tmp_path / "rec").iterdir())


def test_an_unindexed_entry_is_adopted_only_if_it_matches_its_manifest(tmp_path):
    """Crash after the rename, before the index row (or a power cut lost the row)."""
    sources, markers, manifest = axon_recording(tmp_path / "rec", "t1")
    cache = EdgeCache(tmp_path / "cache")
    cache.take_recording("t1", "mcap", sources, manifest, markers=markers)
    with cache._tx() as db:
        db.execute("DELETE FROM entries")
    entry = EdgeCache(tmp_path / "cache").take_recording("t1", "mcap", sources, manifest, markers=markers)
    assert entry.state is CacheState.CACHED and entry.manifest == manifest


def test_eviction_never_drops_a_recording_that_is_not_published(tmp_path):
    cache = EdgeCache(tmp_path / "cache", max_size_gb=5000 / BYTES_PER_GB, policy="fifo")  # room for one
    for i in (1, 2, 3):
        sources, markers, manifest = axon_recording(tmp_path / "rec", f"t{i}")
        cache.take_recording(f"t{i}", "mcap", sources, manifest, markers=markers)
    assert cache.evict() == [] and cache.usage().pressure, "nothing is published: everything stays"
    cache.mark_published("t2")
    cache.mark_rejected("t3")
    assert cache.evict() == ["t2", "t3"]
    assert [e.dataset_id for e in cache.list()] == ["t1"] and cache.get("t1").path.exists()
    with pytest.raises(CacheConflict):
        cache.remove("t1")


@pytest.mark.parametrize("policy", ["lru", "manual"])
def test_other_policies_keep_unpublished_recordings_too(tmp_path, policy):
    cache = EdgeCache(tmp_path / "cache", max_size_gb=1 / BYTES_PER_GB, policy=policy)
    sources, markers, manifest = axon_recording(tmp_path / "rec", "t1")
    cache.take_recording("t1", "mcap", sources, manifest, markers=markers)
    assert cache.evict() == [] and cache.get("t1").path.exists()


def test_the_index_of_an_older_version_is_migrated(tmp_path):
    import sqlite3

    root = tmp_path / "cache"
    root.mkdir()
    with sqlite3.connect(root / "index.db") as db:
        from axon_dagster.storage.edge_cache.index import MIGRATIONS

        db.executescript(MIGRATIONS[0])
        db.execute("PRAGMA user_version = 1")
    cache = EdgeCache(root)
    assert cache._sql.pragma("user_version") == 2
    sources, markers, manifest = axon_recording(tmp_path / "rec", "t1")
    assert cache.take_recording("t1", "mcap", sources, manifest, markers=markers).manifest == manifest


# ------------------------------------------------------------------ the edge gate

SUMMARY = RecordingSummary(duration_seconds=10.0, topic_counts={"/camera/image_raw": 300, "/joint_states": 1000, "/imu": 0})


def test_gate_passes_what_the_order_asked_for():
    assert edge_gate(SUMMARY, {})["passed"], "the task's topics say what to record; only required_topics must be there"
    gate = edge_gate(SUMMARY, {"min_duration_seconds": 5, "expected_rates_hz": {"/camera/image_raw": 30},
                               "required_topics": ["/camera/image_raw"]})
    assert gate["passed"] and gate["reasons"] == []
    assert gate["checks"]["duration"]["seconds"] == 10.0 and gate["checks"]["rates"]["below"] == {}


@pytest.mark.parametrize(
    "requirements, reason",
    [
        ({"required_topics": ["/camera/image_raw", "/imu"]}, "required topic(s) without messages: /imu"),
        ({"required_topics": ["/lidar"]}, "required topic(s) without messages: /lidar"),
        ({"min_duration_seconds": 30}, "duration 10.00s outside 30s .. unbounded"),
        ({"max_duration_seconds": 5}, "duration 10.00s outside 0s .. 5s"),
        ({"expected_rates_hz": {"/camera/image_raw": 60}}, "topic(s) below their expected rate: /camera/image_raw 300 < 479 messages"),
    ],
)
def test_gate_rejects_what_is_plainly_not_what_was_ordered(requirements, reason):
    gate = edge_gate(SUMMARY, requirements)
    assert not gate["passed"] and gate["reasons"] == [reason]


def test_gate_rejects_an_empty_recording():
    gate = edge_gate(RecordingSummary(1.0, {}), {})
    assert gate["reasons"] == ["the recording holds no messages"]


# ------------------------------------------------------------------ settings

def test_data_path_settings_from_the_environment(tmp_path):
    env = {
        "AXON_EDGE_CACHE_DIR": str(tmp_path / "c"), "AXON_EDGE_CACHE_MAX_GB": "2.5", "AXON_EDGE_CACHE_POLICY": "fifo",
        "AXON_EDGE_UPLOAD_MAX_MBPS": "40", "AXON_EDGE_UPLOAD_WINDOWS": "22:00-06:00, 12:00-13:00",
        "AXON_EDGE_GATE_REJECTED": "delete", "AXON_EDGE_UPLOAD_CONCURRENCY": "2",
    }
    s = DataPathSettings.from_env(env)
    assert s.cache_root(tmp_path) == tmp_path / "c" and s.cache_max_gb == 2.5 and s.cache_policy == "fifo"
    assert s.upload_max_bytes_per_second == 5_000_000 and s.gate_rejected == "delete" and s.upload_concurrency == 2
    assert s.upload_windows == (UploadWindow("22:00", "06:00"), UploadWindow("12:00", "13:00"))
    assert DataPathSettings.from_env({}).cache_root(tmp_path) == tmp_path / "cache"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"AXON_EDGE_UPLOAD_MAX_MBPS": "fast"}, "AXON_EDGE_UPLOAD_MAX_MBPS must be a number"),
        ({"AXON_EDGE_UPLOAD_MAX_MBPS": "0"}, "AXON_EDGE_UPLOAD_MAX_MBPS must be a positive number"),
        ({"AXON_EDGE_GATE_REJECTED": "archive"}, "AXON_EDGE_GATE_REJECTED must be one of keep, delete"),
        ({"AXON_EDGE_CACHE_POLICY": "random"}, "AXON_EDGE_CACHE_POLICY must be one of lru, fifo, manual"),
        ({"AXON_EDGE_UPLOAD_WINDOWS": "25:00-01:00"}, "bad window '25:00-01:00'"),
        ({"AXON_EDGE_UPLOAD_WINDOWS": "10:00-10:00"}, "bad window '10:00-10:00'"),
    ],
)
def test_bad_data_path_settings_are_clear_errors(env, message):
    with pytest.raises(ValueError, match=message):
        DataPathSettings.from_env(env)


def test_windows_parse_empty():
    assert parse_windows("") == () and parse_windows(" , ") == ()
