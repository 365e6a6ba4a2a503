"""Release, both ways: the recorder's copy once the cache holds a recording durably
(``release_source``), and the cache's own hold once the data is safe elsewhere (uploaded and
verified, or rejected): such entries become evictable."""

from __future__ import annotations

import builtins
import errno
import logging
import os
import stat
import time
from dataclasses import replace
from pathlib import Path

from ...domain.ids import validate_id
from ..axon_recording import AxonRecordingFiles
from ..digest import DigestMismatch, file_sha256
from ..recording import sidecar_path
from .files import _fsync_dir, _read_sidecar
from .model import CacheConflict, CachedDataset, CacheState

log = logging.getLogger(__name__)


class Release:
    """Mixed into :class:`~axon_dagster.storage.edge_cache.EdgeCache`."""

    def mark_uploaded(self, dataset_id: str, cloud_uri: str, verified_digest: str) -> CachedDataset:
        """Record that the cloud copy at ``cloud_uri`` was verified to have ``verified_digest``.
        Refuses (DigestMismatch) a digest that differs from the cached dataset's."""
        dataset_id = validate_id(dataset_id, "dataset_id")
        if not isinstance(cloud_uri, str) or not cloud_uri:
            raise ValueError(f"cloud_uri must be a non-empty string, got {cloud_uri!r}")
        with self._tx() as db:
            entry = self._to_entry(self._row_or_raise(db, dataset_id))
            if verified_digest != entry.dataset_digest:
                raise DigestMismatch(f"cloud copy {cloud_uri} of cached dataset {dataset_id}", entry.dataset_digest, verified_digest)
            if entry.state is CacheState.REJECTED:
                raise CacheConflict(f"dataset {dataset_id} was rejected; a rejected dataset is never marked uploaded")
            if entry.state is CacheState.UPLOADED and entry.cloud_uri == cloud_uri:
                return entry
            db.execute(
                "UPDATE entries SET state = ?, cloud_uri = ?, verified_digest = ?, updated_at = ? WHERE dataset_id = ?",
                (CacheState.UPLOADED.value, cloud_uri, verified_digest, time.time(), dataset_id),
            )
        log.info("dataset %s marked uploaded to %s (verified digest %s)", dataset_id, cloud_uri, verified_digest)
        entry = self._require(dataset_id)
        if self.delete_after_upload:
            # Only here, after the verified digest was recorded: the cloud copy is the dataset now.
            if self._delete_entry(dataset_id, require_evictable=True):
                log.info("deleted dataset %s from the edge cache after its verified upload (delete_after_upload)", dataset_id)
        return entry

    def mark_rejected(self, dataset_id: str) -> CachedDataset:
        dataset_id = validate_id(dataset_id, "dataset_id")
        with self._tx() as db:
            entry = self._to_entry(self._row_or_raise(db, dataset_id))
            if entry.state is CacheState.REJECTED:
                return entry
            if entry.state is CacheState.UPLOADED:
                raise CacheConflict(f"dataset {dataset_id} is already uploaded to {entry.cloud_uri}; it cannot be rejected")
            db.execute(
                "UPDATE entries SET state = ?, updated_at = ? WHERE dataset_id = ?",
                (CacheState.REJECTED.value, time.time(), dataset_id),
            )
        log.info("dataset %s marked rejected", dataset_id)
        return self._require(dataset_id)


    def _released_mcap(self, entry: CachedDataset, files: AxonRecordingFiles) -> CachedDataset:
        """With ``release_source``: remove the recorder's copy of a durably staged MCAP recording,
        only if its ``.mcap`` is what the cache holds. Never fails the stage: a warning, and
        ``source_released=False``."""
        if not self.release_source:
            return entry
        staged = self._entry_dir(entry.dataset_id) / f"{entry.dataset_id}.mcap"
        try:
            src, ours = files.mcap_path.stat(), staged.stat()
            same = (src.st_dev, src.st_ino) == (ours.st_dev, ours.st_ino)
            if not same:
                source = (_read_sidecar(entry.sidecar_path).extra or {}).get("source") or {}
                same = bool(source.get("mcap_sha256")) and file_sha256(files.mcap_path) == source["mcap_sha256"]
            if not same:
                log.warning("not releasing %s: it is not the recording cached as %s", files.mcap_path, entry.dataset_id)
                return replace(entry, source_released=False)
            # .done first: a half-released recording never looks complete
            for path in (files.done_path, files.sidecar_path, files.mcap_path):
                path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("releasing the recorder's copy of %s (%s) failed: %s", entry.dataset_id, files.mcap_path, exc)
            return replace(entry, source_released=False)
        log.info("released the recorder's copy of %s (%s)", entry.dataset_id, files.mcap_path)
        return replace(entry, source_released=True)


    def _cached_for_release(self, dataset_id: str) -> CachedDataset | None:
        """The cached entry of ``dataset_id`` when its recording's sidecar is gone (released, or
        half released by a killed process); an unindexed entry (its row lost, e.g. to a power loss
        after the release) is adopted if it verifies. None: not cached."""
        entry = self._find(dataset_id)
        if entry is None and self._entry_dir(dataset_id).exists():
            entry = self._adopt_orphan(dataset_id)
        if entry is None:
            return None
        log.info("dataset %s already cached and its recording is gone (released); staging is a no-op", dataset_id)
        return self.get(dataset_id)

    def _fsync_entry_tree(self, dataset_id: str) -> None:
        """fsync every directory of a cached entry (deepest first), the entry dir and datasets/."""
        entry_dir = self._entry_dir(dataset_id)
        for dirpath, _dirs, _files in os.walk(entry_dir, topdown=False):
            _fsync_dir(Path(dirpath))
        _fsync_dir(self._datasets)

    def _release_source(self, entry: CachedDataset, src: Path) -> bool:
        """Remove the recorder's copy of ``entry`` at ``src`` (the cache's entry must be durable).
        Only what was staged goes: each file of the cached sidecar's list that is the cached file's
        inode, or whose bytes match the sidecar (a copy); the sidecar if it is byte for byte the
        cached one; then the directories that were staged and are now empty, deepest first. True
        when nothing of the recording is left; never raises (a failure is logged as a warning)."""
        src_sidecar = sidecar_path(src)
        removed = linked_bytes = copied_bytes = 0
        kept: builtins.list[str] = []
        try:
            sidecar = _read_sidecar(entry.sidecar_path)
            for rel, digest in sorted(sidecar.files.items()):
                source = src / rel
                try:
                    st = os.lstat(source)
                except FileNotFoundError:
                    continue  # released already
                cached = os.lstat(entry.path / rel)  # missing in the cache: raise, remove nothing more
                same_inode = (st.st_dev, st.st_ino) == (cached.st_dev, cached.st_ino)
                if not stat.S_ISREG(st.st_mode) or (not same_inode and file_sha256(source) != digest):
                    kept.append(rel)  # replaced since staging: not what the cache holds
                    continue
                os.unlink(source)
                removed += 1
                if same_inode:
                    linked_bytes += st.st_size
                else:
                    copied_bytes += st.st_size
            sidecar_removed = False
            if os.path.lexists(src_sidecar):
                if src_sidecar.is_file() and src_sidecar.read_bytes() == entry.sidecar_path.read_bytes():
                    os.unlink(src_sidecar)
                    sidecar_removed = True
                else:
                    kept.append(src_sidecar.name)
            staged_dirs = {"."} | {Path(d).relative_to(entry.path).as_posix() for d, _, _ in os.walk(entry.path)}
            removed_dirs = 0
            for dirpath, _dirs, _files in os.walk(src, topdown=False):
                if Path(dirpath).relative_to(src).as_posix() not in staged_dirs:
                    continue  # the recorder made it since: not ours
                try:
                    os.rmdir(dirpath)
                    removed_dirs += 1
                except OSError as exc:
                    if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                        raise
            if removed or sidecar_removed or removed_dirs:
                _fsync_dir(src.parent)
        except OSError as exc:
            log.warning(
                "could not release the recorder's copy of dataset %s at %s (%s: %s); the cache entry is intact, "
                "staging it again finishes the release",
                entry.dataset_id, src, getattr(exc, "filename", None) or src, exc.strerror or exc,
            )
            return False
        except (ValueError, KeyError, TypeError) as exc:  # the cached sidecar is unreadable
            log.warning("could not release the recorder's copy of dataset %s at %s: %s", entry.dataset_id, src, exc)
            return False
        if removed or sidecar_removed or removed_dirs:
            log.info(
                "released the recorder's copy of dataset %s at %s: %d files%s and %d directories, %d bytes "
                "(%d freed now, %d named only by the cache: freed when it evicts the dataset)",
                entry.dataset_id, src, removed, " + sidecar" if sidecar_removed else "", removed_dirs,
                linked_bytes + copied_bytes, copied_bytes, linked_bytes,
            )
        if kept:
            log.warning(
                "kept %d file(s) of dataset %s at %s that differ from what the cache holds (replaced since staging?): %s",
                len(kept), entry.dataset_id, src, kept,
            )
            return False
        if os.path.lexists(src):
            log.info("kept %s: it holds files the recorder added after the recording (not staged)", src)
        return True

