"""Staging: a finished recording becomes a cache entry, atomically and verified (see the package
docstring for the promises)."""

from __future__ import annotations

import builtins
import errno
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ...domain.ids import validate_id
from ..axon_recording import AxonRecordingFiles, AxonSidecar, ChecksumMismatch, read_own_sidecar, require_complete
from ..digest import DigestMismatch, file_sha256
from ..recording import Sidecar, sidecar_path
from .files import _check_sidecar_consistent, _fsync_dir, _fsync_file, _read_sidecar, _tree_size, _verify_links
from .model import CacheConflict, CachedDataset, _Materialized

log = logging.getLogger(__name__)


class Staging:
    """Mixed into :class:`~axon_dagster.storage.edge_cache.EdgeCache`."""

    def stage(self, dataset_dir: str | os.PathLike, dataset_id: str) -> CachedDataset:
        """Put the recording ``dataset_dir`` (a ``.lance`` directory with its sidecar ``.json`` beside
        it) into the cache as ``dataset_id``. Idempotent: staging the same recording again returns the
        existing entry. Raises DigestMismatch (and leaves nothing behind) if the files do not match
        the sidecar.

        With ``release_source`` the recorder's copy is removed after the entry is durable, and the
        returned entry says whether that worked (``source_released``). Staging an id that is cached
        when its recording is gone (or half released: its sidecar gone) returns the cached entry
        and finishes the release."""
        dataset_id = validate_id(dataset_id, "dataset_id")
        src = Path(dataset_dir)
        if not self.release_source:
            return self._stage(src, dataset_id)[0]
        if not src.is_dir() or not sidecar_path(src).is_file():
            entry = self._cached_for_release(dataset_id)
            if entry is None:
                return self._stage(src, dataset_id)[0]  # not cached: refused as without release_source
            durable = False
        else:
            entry, durable = self._stage(src, dataset_id)
        if not durable:
            # Staged earlier (maybe without release_source: only datasets/ fsynced) or by another
            # process: make every directory entry durable before the recorder's names go.
            try:
                self._fsync_entry_tree(entry.dataset_id)
            except OSError as exc:
                log.warning("not releasing the recorder's copy of dataset %s at %s: its cache entry could not be made "
                            "durable (%s)", entry.dataset_id, src, exc)
                return replace(entry, source_released=False)
        return replace(entry, source_released=self._release_source(entry, src))

    def _stage(self, src: Path, dataset_id: str) -> tuple[CachedDataset, bool]:
        """stage() without the release: the entry, and whether this call created it durably
        (every directory it made fsynced, as release_source needs)."""
        if not src.is_dir():
            raise FileNotFoundError(f"dataset directory not found: {src}")
        src_sidecar = sidecar_path(src)
        if not src_sidecar.is_file():
            raise FileNotFoundError(f"sidecar not found beside {src}: expected {src_sidecar}")
        sidecar_bytes = src_sidecar.read_bytes()
        sidecar = _read_sidecar(src_sidecar, sidecar_bytes)
        _check_sidecar_consistent(sidecar, src_sidecar)

        existing = self._find(dataset_id)
        if existing is not None:
            return self._same_or_conflict(existing, sidecar.dataset_digest, src), False

        entry_dir = self._entry_dir(dataset_id)
        if entry_dir.exists():
            # A previous stage renamed the entry into place but died before indexing it.
            adopted = self._adopt_orphan(dataset_id)
            if adopted is not None:
                return self._same_or_conflict(adopted, sidecar.dataset_digest, src), False

        scratch = self._scratch_dir()
        try:
            staged_dataset = scratch / f"{dataset_id}.lance"
            done = self._materialize(src, staged_dataset)
            staged_sidecar = scratch / f"{dataset_id}.json"
            sidecar_linked = self._link_or_copy(src_sidecar, staged_sidecar, try_link=done.linked > 0)
            if staged_sidecar.read_bytes() != sidecar_bytes:
                raise CacheConflict(f"sidecar {src_sidecar} was replaced while {dataset_id} was being staged; stage it again")
            if done.method == "copy" or self.verify_linked == "hash":
                sidecar.verify(staged_dataset)
            else:
                _verify_links(sidecar, staged_dataset, done.copied)
            try:
                os.rename(scratch, entry_dir)
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                # Another process staged the same id between our checks and our rename.
                log.info("dataset %s was staged concurrently; using that entry", dataset_id)
                entry = self._find(dataset_id) or self._adopt_orphan(dataset_id)
                if entry is None:
                    raise
                return self._same_or_conflict(entry, sidecar.dataset_digest, src), False
        finally:
            # After a successful rename the scratch path no longer exists; otherwise drop our copy.
            shutil.rmtree(scratch, ignore_errors=True)
        # Durability, before the index row makes the dataset CACHED. Copied files hold new bytes:
        # each was fsynced when copied, and every directory entry (copies, the rename) is fsynced
        # now. Linked files hold none: each is the recorder's inode, still named in the recorder's
        # directory, so one fsync of datasets/ makes the rename durable (on a journalling filesystem
        # the links commit with it). A crash before that leaves an unindexed or partial entry, only
        # ever adopted after it verifies against its sidecar byte for byte (_adopt_orphan), and the
        # recording where the recorder wrote it: staging it again is idempotent. With release_source
        # the recorder's names are about to go, so the links must be durable on their own: every
        # directory made is fsynced as for copies (a few directories: milliseconds).
        if done.copied or not sidecar_linked or self.release_source:
            for made in reversed(done.made_dirs):
                _fsync_dir(entry_dir / made)
            _fsync_dir(entry_dir)
        _fsync_dir(self._datasets)

        entry, usage = self._index_new(dataset_id, sidecar.dataset_digest, done.size_bytes)
        log.info(
            "staged dataset %s from %s by %s (%d files, %d bytes, digest %s)",
            dataset_id, src, done.method, len(sidecar.files), entry.size_bytes, entry.dataset_digest,
        )
        if usage.pressure:
            log.warning(
                "edge cache %s over quota after staging %s: %d of %d bytes used",
                self.root, dataset_id, usage.used_bytes, usage.quota_bytes,
            )
        return entry, True

    def stage_mcap(
        self,
        mcap_path: str | os.PathLike,
        dataset_id: str,
        *,
        ingest: Callable[[Path, Path, str, AxonSidecar | None], Sidecar],
        expected_checksum: str | None = None,
    ) -> CachedDataset:
        """Put an Axon MCAP recording (``<task_id>.mcap`` with Axon's sidecar and ``.mcap.done``
        beside it) into the cache as ``dataset_id``, ingested into Lance. The entry holds::

            <id>.lance/  <id>.json (the dataset's sidecar)  <id>.mcap (the original)  <id>.axon.json (Axon's)

        In a scratch directory: the MCAP (and Axon's sidecar) is hardlinked or copied, the staged
        copy's SHA-256 checked against Axon's ``checksum_sha256`` and ``expected_checksum`` (what
        the recorder reported), then ``ingest(staged_mcap, lance_dir, sha256, axon_sidecar)`` builds
        the dataset and writes its sidecar; the entry appears with one rename. Refuses an incomplete
        recording (IncompleteRecording), a malformed Axon sidecar (SidecarError) and a checksum
        mismatch (ChecksumMismatch, a DigestMismatch), leaving nothing behind. Idempotent: the same
        recording staged again returns the entry; a different one under the same id is a
        CacheConflict. With ``release_source`` the recorder's ``.mcap.done``, sidecar and ``.mcap``
        are removed (in that order) once the entry is durable, if its ``.mcap`` is the staged one
        (same inode, or the SHA-256 staged); staging the id again when they are gone returns the entry."""
        dataset_id = validate_id(dataset_id, "dataset_id")
        files = AxonRecordingFiles.for_mcap(mcap_path)
        if not files.mcap_path.exists():
            cached = self._find(dataset_id)
            if cached is not None:  # released (or removed by the recorder) after an earlier stage
                return replace(self.get(dataset_id), source_released=True) if self.release_source else self.get(dataset_id)
        require_complete(files)
        axon = read_own_sidecar(files)
        wanted = [(source, sha.lower()) for source, sha in (("sidecar", axon.checksum_sha256 if axon else None),
                                                             ("recorder", expected_checksum)) if sha]

        existing = self._find(dataset_id)
        if existing is None and self._entry_dir(dataset_id).exists():
            existing = self._adopt_orphan(dataset_id)
        if existing is not None:
            return self._released_mcap(self._same_mcap_or_conflict(existing, wanted, files.mcap_path), files)

        scratch = self._scratch_dir()
        try:
            staged_mcap = scratch / f"{dataset_id}.mcap"
            link = self._same_filesystem(files.mcap_path)
            linked = self._link_or_copy(files.mcap_path, staged_mcap, try_link=link)
            if axon is not None:
                self._link_or_copy(files.sidecar_path, scratch / f"{dataset_id}.axon.json", try_link=link)
            sha = file_sha256(staged_mcap)
            for source, want in wanted:
                if want != sha:
                    raise ChecksumMismatch(files.mcap_path, want, sha, source)
            sidecar = ingest(staged_mcap, scratch / f"{dataset_id}.lance", sha, axon)
            try:
                os.rename(scratch, self._entry_dir(dataset_id))
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                entry = self._find(dataset_id) or self._adopt_orphan(dataset_id)
                if entry is None:
                    raise
                return self._released_mcap(self._same_mcap_or_conflict(entry, wanted, files.mcap_path), files)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        # Durable before indexed, as for copies: the ingested files hold new bytes (the MCAP copy
        # was fsynced when copied; a linked one is the recorder's inode, still named there).
        entry_dir = self._entry_dir(dataset_id)
        for dirpath, _dirs, names in os.walk(entry_dir / f"{dataset_id}.lance"):
            for name in names:
                _fsync_file(Path(dirpath, name))
            _fsync_dir(Path(dirpath))
        _fsync_file(entry_dir / f"{dataset_id}.json")
        _fsync_dir(entry_dir)
        _fsync_dir(self._datasets)
        ds, sc = self._paths(dataset_id)
        size = _tree_size(entry_dir) - sc.stat().st_size  # _index_new adds the sidecar's size
        entry, usage = self._index_new(dataset_id, sidecar.dataset_digest, size)
        log.info(
            "staged MCAP recording %s from %s by %s (SHA-256 %s verified against %s), ingested: %d messages, "
            "%d bytes in the cache, digest %s",
            dataset_id, files.mcap_path, "link" if linked else "copy", sha[:12],
            " and ".join(s for s, _ in wanted) or "nothing (no sidecar, no reported checksum)",
            sidecar.row_count, entry.size_bytes, entry.dataset_digest,
        )
        if usage.pressure:
            log.warning("edge cache %s over quota after staging %s: %d of %d bytes used",
                        self.root, dataset_id, usage.used_bytes, usage.quota_bytes)
        return self._released_mcap(entry, files)


    def _same_mcap_or_conflict(self, entry: CachedDataset, wanted: builtins.list[tuple[str, str]], src: Path) -> CachedDataset:
        """An entry staged earlier is the same recording when the MCAP SHA-256 it recorded is the
        checksum Axon gives now."""
        source = (_read_sidecar(entry.sidecar_path).extra or {}).get("source") or {}
        have = source.get("mcap_sha256")
        for _source, want in wanted:
            if have != want:
                raise CacheConflict(
                    f"dataset {entry.dataset_id} is already cached from an MCAP with SHA-256 {have}; "
                    f"refusing to replace it with {src} (SHA-256 {want})"
                )
        log.info("MCAP recording %s already cached (digest %s); staging is a no-op", entry.dataset_id, entry.dataset_digest)
        return self.get(entry.dataset_id)


    # ----------------------------------------------------------------- staging helpers

    def _same_filesystem(self, src: Path) -> bool:
        """Hardlinks only work within one filesystem; tests replace this to exercise the copy path."""
        return os.stat(src).st_dev == os.stat(self._tmp).st_dev

    def _materialize(self, src: Path, dest: Path) -> _Materialized:
        """Recreate ``src`` under ``dest`` by hardlinks where possible, copies otherwise (copied
        files are fsynced; the directories are left to the caller, after its rename). A linked file
        *is* the recorder's inode — a successful ``link(2)`` makes it so — and files in the cache
        are never modified in place."""
        done = _Materialized()
        try_link = self._same_filesystem(src)
        stack = [(str(src), str(dest), dest.name)]
        while stack:
            source_dir, target_dir, rel_dir = stack.pop()
            os.mkdir(target_dir)
            done.made_dirs.append(rel_dir)
            with os.scandir(source_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
            for entry in entries:
                target = f"{target_dir}/{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, target, f"{rel_dir}/{entry.name}"))
                    continue
                done.size_bytes += entry.stat(follow_symlinks=False).st_size
                if self._link_or_copy(entry.path, target, try_link):
                    done.linked += 1
                else:
                    done.copied.append(f"{rel_dir}/{entry.name}".split("/", 1)[1])
        return done

    @staticmethod
    def _link_or_copy(source: str | Path, target: str | Path, try_link: bool) -> bool:
        """Hardlink ``source`` to ``target`` (True), or copy and fsync it when that fails (False)."""
        if try_link:
            try:
                os.link(source, target)
                return True
            except OSError as exc:  # EXDEV, EPERM (protected_hardlinks), EMLINK...
                log.debug("hardlink %s failed (%s); copying", source, exc)
        shutil.copyfile(source, target)
        _fsync_file(Path(target))
        return False


    def _same_or_conflict(self, entry: CachedDataset, digest: str, src: Path) -> CachedDataset:
        if entry.dataset_digest != digest:
            raise CacheConflict(
                f"dataset {entry.dataset_id} is already cached with digest {entry.dataset_digest}; "
                f"refusing to replace it with {src} (digest {digest})"
            )
        log.info("dataset %s already cached (digest %s); staging is a no-op", entry.dataset_id, digest)
        return self.get(entry.dataset_id)

    def _adopt_orphan(self, dataset_id: str) -> CachedDataset | None:
        """Index an entry directory that has no row, if it verifies; otherwise move it out of the way
        (into tmp, kept for a human: it may be the only copy) and return None."""
        entry_dir = self._entry_dir(dataset_id)
        ds, sc = self._paths(dataset_id)
        try:
            sidecar = _read_sidecar(sc)
            _check_sidecar_consistent(sidecar, sc)
            sidecar.verify(ds)
        except (OSError, ValueError, KeyError, TypeError, DigestMismatch) as exc:
            quarantine = self._tmp / f"orphan-{dataset_id}-{uuid.uuid4().hex[:8]}"
            os.rename(entry_dir, quarantine)
            log.error("unindexed cache entry %s does not verify (%s); moved to %s", entry_dir, exc, quarantine)
            return None
        log.warning("adopting unindexed cache entry %s (verified against its sidecar)", entry_dir)
        return self._index_new(dataset_id, sidecar.dataset_digest)[0]

    def _scratch_dir(self) -> Path:
        path = self._tmp / f"{os.getpid()}-{uuid.uuid4().hex}"
        path.mkdir()
        return path

