"""A robot's raw recordings: the edge agent moves a finished recording into its cache as it is
(Axon's MCAP and sidecar, or a Lance-era dataset and its sidecar), under the names of its manifest.

The move is a hardlink into a scratch entry, one rename into ``datasets/<id>/``, the index row
(with the manifest), then the recorder's names are removed: the bytes never move, nothing is
copied. Only when the recorder's directory is on another filesystem is a file copied (fsynced and
checked against the manifest's SHA-256, with a warning: put the cache on the recorder's disk).
A crash at any step leaves either the recording where the recorder wrote it (taking it again
finishes the move) or an entry that is adopted only if every file matches the manifest.

The entry keeps ``.manifest.json`` (adoption after a lost index row) and, for an MCAP, Axon's
``.mcap.done`` marker, so the entry is a complete Axon recording on its own.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from ...domain.ids import validate_id
from ..digest import file_sha256
from .files import _fsync_dir, _fsync_file
from .model import CacheConflict, CachedDataset, CacheState

log = logging.getLogger(__name__)

MANIFEST_FILE = ".manifest.json"


class RobotRecordings:
    """Mixed into :class:`~axon_dagster.storage.edge_cache.EdgeCache`."""

    def take_recording(
        self,
        dataset_id: str,
        recording_format: str,
        sources: Mapping[str, str | os.PathLike],
        manifest: Mapping,
        *,
        markers: Mapping[str, str | os.PathLike] | None = None,
    ) -> CachedDataset:
        """Move the recording into the cache as ``dataset_id``: ``sources`` maps each manifest file
        name to where the recorder wrote it; ``markers`` (e.g. Axon's ``.mcap.done``) come along
        unverified and are released first. Idempotent: taking the same recording again (same
        dataset digest) finishes an interrupted move and returns the entry; another recording under
        the same id is a :class:`CacheConflict`. Nothing is changed when a source is missing."""
        dataset_id = validate_id(dataset_id, "dataset_id")
        if recording_format not in ("mcap", "lance"):
            raise ValueError(f"unknown recording format {recording_format!r}")
        files = {f["name"]: f for f in manifest["files"]}
        if set(files) != set(sources):
            raise ValueError(f"sources {sorted(sources)} are not the manifest's files {sorted(files)}")
        markers = dict(markers or {})
        existing = self._find(dataset_id) or self._adopt_recording(dataset_id, manifest)
        if existing is not None:
            if existing.dataset_digest != manifest["dataset_digest"]:
                raise CacheConflict(
                    f"dataset {dataset_id} is already cached with digest {existing.dataset_digest}; refusing to "
                    f"replace it with another recording (digest {manifest['dataset_digest']})"
                )
            self._release_recording_sources(existing, sources, markers)
            return self.get(dataset_id)
        for name, src in sources.items():
            if not Path(src).is_file():
                raise FileNotFoundError(f"recording file {name} not found at {src}")

        scratch = self._scratch_dir()
        copied: builtins.list[str] = []
        try:
            made = {scratch}
            for name, src in [*sources.items(), *markers.items()]:
                target = scratch / name
                for parent in reversed(target.relative_to(scratch).parents[:-1]):
                    if (scratch / parent) not in made:
                        (scratch / parent).mkdir()
                        made.add(scratch / parent)
                if not Path(src).exists() and name in markers:
                    continue
                if not self._link_or_copy(src, target, try_link=True) and name in files:
                    copied.append(name)
                    actual = file_sha256(target)
                    if actual != files[name]["sha256"]:
                        raise CacheConflict(f"{src} changed while it was taken into the cache (sha256 {actual}, manifest {files[name]['sha256']})")
            for name, f in files.items():
                if (scratch / name).stat().st_size != f["size"]:
                    raise CacheConflict(f"{sources[name]} is not the size its manifest says ({f['size']} bytes)")
            manifest_path = scratch / MANIFEST_FILE
            manifest_path.write_text(json.dumps({"recording_format": recording_format, **dict(manifest)}, sort_keys=True))
            _fsync_file(manifest_path)
            for directory in sorted(made, key=lambda p: len(p.parts), reverse=True):
                _fsync_dir(directory)
            os.rename(scratch, self._entry_dir(dataset_id))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        _fsync_dir(self._datasets)
        if copied:
            log.warning(
                "dataset %s: %d file(s) copied into the edge cache at %s (not on the recorder's filesystem): "
                "put the cache on the recorder's disk to move recordings without copying", dataset_id, len(copied), self.root,
            )
        entry = self._index_recording(dataset_id, recording_format, manifest)
        log.info(
            "took %s recording %s into the edge cache (%d files, %d bytes, digest %s)",
            recording_format, dataset_id, len(files), entry.size_bytes, entry.dataset_digest[:12],
        )
        self._release_recording_sources(entry, sources, markers)
        return entry

    def mark_published(self, dataset_id: str) -> CachedDataset:
        """The control plane says the dataset is published (its task is UPLOADED: the lake copy was
        digest-verified there): the cached copy may go (evictable; removed now with
        ``delete_after_upload``)."""
        dataset_id = validate_id(dataset_id, "dataset_id")
        with self._tx() as db:
            entry = self._to_entry(self._row_or_raise(db, dataset_id))
            if entry.state is CacheState.UPLOADED:
                return entry
            db.execute(
                "UPDATE entries SET state = ?, verified_digest = dataset_digest, updated_at = ? WHERE dataset_id = ?",
                (CacheState.UPLOADED.value, time.time(), dataset_id),
            )
        log.info("dataset %s is published: its cached copy may be evicted", dataset_id)
        if self.delete_after_upload and self._delete_entry(dataset_id, require_evictable=True):
            log.info("deleted dataset %s from the edge cache after its publication (delete_after_upload)", dataset_id)
        return self._find(dataset_id) or entry

    # ------------------------------------------------------------------ helpers

    def _index_recording(self, dataset_id: str, recording_format: str, manifest: Mapping) -> CachedDataset:
        size = sum(int(f["size"]) for f in manifest["files"])
        entry, usage = self._index_new(dataset_id, manifest["dataset_digest"], size_bytes=size,
                                       recording_format=recording_format, manifest=dict(manifest))
        if usage.pressure:
            log.warning("edge cache %s over quota after taking %s: %d of %d bytes used",
                        self.root, dataset_id, usage.used_bytes, usage.quota_bytes)
        return entry

    def _adopt_recording(self, dataset_id: str, manifest: Mapping) -> CachedDataset | None:
        """An entry directory without its row (a crash between the rename and the index, or a lost
        commit): indexed if it holds this manifest's files byte for byte; otherwise moved aside into
        ``tmp/`` for a human (it may be the only copy) and None."""
        entry_dir = self._entry_dir(dataset_id)
        if not entry_dir.is_dir():
            return None
        try:
            recorded = json.loads((entry_dir / MANIFEST_FILE).read_text())
            if recorded.get("dataset_digest") != manifest["dataset_digest"]:
                raise ValueError(f"it holds another recording (digest {recorded.get('dataset_digest')})")
            for f in manifest["files"]:
                if file_sha256(entry_dir / f["name"]) != f["sha256"]:
                    raise ValueError(f"{f['name']} does not match the manifest")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            quarantine = self._tmp / f"orphan-{dataset_id}-{uuid.uuid4().hex[:8]}"
            os.rename(entry_dir, quarantine)
            log.error("unindexed cache entry %s not adopted (%s); moved to %s", entry_dir, exc, quarantine)
            return None
        log.warning("adopting unindexed cache entry %s (every file matches its manifest)", entry_dir)
        return self._index_recording(dataset_id, recorded.get("recording_format") or "mcap", manifest)

    def _release_recording_sources(self, entry: CachedDataset, sources: Mapping[str, str | os.PathLike], markers: Mapping) -> bool:
        """Remove the recorder's names of what the cache now holds: markers first (a half-released
        recording never looks complete), then each file that is the cached file's inode (or, copied,
        has its bytes), then the directories that are left empty. Never raises: False and a warning
        when something is kept."""
        kept: builtins.list[str] = []
        parents: set[Path] = set()
        try:
            for src in markers.values():
                Path(src).unlink(missing_ok=True)
                parents.add(Path(src).parent)
            shas = {f["name"]: f["sha256"] for f in (entry.manifest or {}).get("files", [])}
            for name, src in sorted(sources.items(), key=lambda item: item[0].endswith(".mcap")):  # the .mcap last
                src = Path(src)
                try:
                    st = os.lstat(src)
                except FileNotFoundError:
                    continue
                ours = os.lstat(entry.entry_dir / name)
                if (st.st_dev, st.st_ino) != (ours.st_dev, ours.st_ino) and file_sha256(src) != shas.get(name):
                    kept.append(str(src))
                    continue
                src.unlink()
                parents.add(src.parent)
            for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
                if parent.is_dir():
                    _fsync_dir(parent)
            self._remove_empty_dirs(sources)
        except OSError as exc:
            log.warning("could not release the recorder's copy of %s (%s); taking it again finishes the release", entry.dataset_id, exc)
            return False
        if kept:
            log.warning("kept %s: not the recording cached as %s (replaced since?)", kept, entry.dataset_id)
            return False
        return True

    @staticmethod
    def _remove_empty_dirs(sources: Mapping[str, str | os.PathLike]) -> None:
        """A Lance-era recording is a directory tree: remove its directories the move left empty
        (deepest first; anything the recorder added since stays)."""
        dirs: set[Path] = set()
        for name, src in sources.items():
            depth = len(Path(name).parts) - 1
            path = Path(src).parent
            for _ in range(depth):
                dirs.add(path)
                path = path.parent
        for directory in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            try:
                directory.rmdir()
            except OSError:
                pass
