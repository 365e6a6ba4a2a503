"""The edge cache: where a finished recording waits for inspection and upload.

Layout under ``root``::

    index.db                          SQLite index (WAL): one row per cached dataset
    datasets/<id>/<id>.lance/         the Lance dataset directory
    datasets/<id>/<id>.json           its sidecar (digests, task metadata)
    tmp/<pid>-<uuid>/                 staging and eviction scratch space (same filesystem as datasets/)

Promises (DESIGN.md, "Rules"):

- Staging is atomic: a dataset is built in ``tmp/`` and appears with one ``os.rename`` of its entry
  directory, so a reader never sees half a dataset and a crash leaves only scratch behind.
- Every staged dataset is verified against its sidecar; a mismatch leaves nothing behind.
- Eviction only ever removes a dataset that is uploaded-and-verified or rejected. Over quota with
  nothing evictable, the cache reports pressure rather than delete anything else.

Source release (``release_source=True``, opt-in): the cache takes ownership of what it stages.
A linked stage leaves the recorder's directory naming the same inodes, so removing the cache's names
(eviction, retention, delete_after_upload) would free nothing. With ``release_source`` a successful
stage, once its entry is durable (every directory it made, the entry dir and ``datasets/`` fsynced),
removes the recorder's copy: each file of the sidecar's list that is the staged file's inode (or whose
bytes match the sidecar, when it was copied), then the sidecar, then the directories staged from that
are now empty (``os.rmdir``: anything the recorder added since stays, with its directories). A
failure to release never fails the stage: it is logged as a warning and the entry says
``source_released=False``; staging the id again finishes the release, even once the recorder's
sidecar is gone.

Eviction is explicit: :meth:`EdgeCache.evict` is called by whoever owns the schedule (the data flow
after an upload, the retention schedule); staging never deletes anything. Policy ``manual`` makes
:meth:`evict` a no-op; an operator removes datasets one by one with :meth:`EdgeCache.remove`, which
keeps the same safety rule.
"""

from __future__ import annotations

import builtins
import errno
import logging
import os
import shutil
import sqlite3
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Literal, get_args

from ..domain.ids import validate_id
from .axon_recording import AxonRecordingFiles, AxonSidecar, ChecksumMismatch, read_own_sidecar, require_complete
from .digest import DigestMismatch, digest_of_files, file_sha256
from .recording import Sidecar, sidecar_path

log = logging.getLogger(__name__)

EvictionPolicy = Literal["lru", "fifo", "manual"]
VerifyLinked = Literal["inode", "hash"]
BYTES_PER_GB = 10**9  # quotas are in decimal GB, like disk sizes on a spec sheet
SCHEMA_VERSION = 1


class CacheState(str, Enum):
    CACHED = "cached"  # on the edge, not yet safe to delete
    UPLOADED = "uploaded"  # cloud copy verified against the cached digest: evictable
    REJECTED = "rejected"  # inspection or review rejected it: evictable, never uploaded


EVICTABLE_STATES = (CacheState.UPLOADED, CacheState.REJECTED)


class EdgeCacheError(Exception):
    """A request the cache refuses. Nothing was changed."""


class UnknownDataset(EdgeCacheError, KeyError):
    def __init__(self, dataset_id: str, root: Path):
        self.dataset_id = dataset_id
        super().__init__(f"dataset {dataset_id!r} is not in the edge cache at {root}")

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


class CacheConflict(EdgeCacheError):
    """The request contradicts the dataset's state in the cache (e.g. removing an un-uploaded dataset)."""


@dataclass(frozen=True)
class CachedDataset:
    dataset_id: str
    path: Path  # the .lance directory inside the cache
    sidecar_path: Path
    size_bytes: int  # dataset files + sidecar, as counted against the quota
    dataset_digest: str
    state: CacheState = CacheState.CACHED
    cloud_uri: str | None = None
    staged_at: datetime | None = None
    last_access_at: datetime | None = None
    # Only set by stage(): None without release_source; True when nothing of the staged recording is
    # left in the recorder's directory; False when the release failed or was partial (a warning was
    # logged; staging the id again finishes it). Not stored in the index.
    source_released: bool | None = None


@dataclass(frozen=True)
class CacheUsage:
    used_bytes: int
    quota_bytes: int | None  # None: no quota
    pressure: bool  # over quota (eviction could not, or has not yet, brought it under)


@dataclass
class _Materialized:
    """What :meth:`EdgeCache._materialize` did: directories made (relative to the scratch dir),
    files linked, files copied (relative to the dataset), and the bytes the dataset holds."""

    made_dirs: builtins.list[str] = field(default_factory=list)
    copied: builtins.list[str] = field(default_factory=list)
    linked: int = 0
    size_bytes: int = 0

    @property
    def method(self) -> str:
        return "link" if not self.copied else ("copy" if self.linked == 0 else "mixed")


class EdgeCache:
    def __init__(
        self,
        root: str | os.PathLike,
        max_size_gb: float | None = None,
        policy: EvictionPolicy = "lru",
        *,
        verify_linked: VerifyLinked | bool = "inode",
        delete_after_upload: bool = False,
        retention_days: float | None = None,
        release_source: bool = False,
    ):
        """How a staged dataset is checked against its sidecar: copied files are always re-hashed.
        Hardlinked files (same filesystem) are checked by ``verify_linked``:

        - ``"inode"`` (default): the staged file list equals the sidecar's, the sidecar's digest
          follows from that list, and every staged file *is* the recorder's file (same device and
          inode). Re-hashing a hardlink would only re-read the recorder's own bytes — no copy was
          made that could differ — so it checks the recording against its sidecar, not the staging.
          That check happens anyway, on every byte, when the dataset is uploaded (the uploader
          hashes what it sends and refuses a file that differs from the sidecar), and nothing is
          ever deleted from the cache before a verified upload. Staging 1 GB costs milliseconds.
        - ``"hash"`` (or ``True``): re-hash linked files too, catching a recording that does not
          match its sidecar at staging instead of at upload.

        ``delete_after_upload``: remove a dataset as soon as :meth:`mark_uploaded` has recorded its
        verified cloud copy (never before). ``retention_days``: :meth:`apply_retention` removes
        uploaded-and-verified or rejected datasets that have been so for longer than this.

        ``release_source``: after a successful, durable stage remove the recorder's copy of the
        recording (see the module docstring), so the cache holds the only names of its files and
        eviction gives the disk its space back."""
        if policy not in get_args(EvictionPolicy):
            raise ValueError(f"unknown eviction policy {policy!r}; expected one of {get_args(EvictionPolicy)}")
        if max_size_gb is not None and (isinstance(max_size_gb, bool) or not isinstance(max_size_gb, (int, float)) or max_size_gb < 0):
            raise ValueError(f"max_size_gb must be a non-negative number or None, got {max_size_gb!r}")
        if verify_linked is True:
            verify_linked = "hash"
        elif verify_linked is False:
            verify_linked = "inode"
        if verify_linked not in get_args(VerifyLinked):
            raise ValueError(f"verify_linked must be one of {get_args(VerifyLinked)}, got {verify_linked!r}")
        if not isinstance(delete_after_upload, bool):
            raise ValueError(f"delete_after_upload must be true or false, got {delete_after_upload!r}")
        if not isinstance(release_source, bool):
            raise ValueError(f"release_source must be true or false, got {release_source!r}")
        if retention_days is not None and (
            isinstance(retention_days, bool) or not isinstance(retention_days, (int, float)) or not retention_days > 0
        ):
            raise ValueError(f"retention_days must be a positive number of days or None, got {retention_days!r}")
        self.root = Path(root).resolve()
        self.policy: EvictionPolicy = policy
        self.quota_bytes = None if max_size_gb is None else int(max_size_gb * BYTES_PER_GB)
        self.verify_linked: VerifyLinked = verify_linked
        self.delete_after_upload = delete_after_upload
        self.release_source = release_source
        self.retention_days = retention_days
        self._datasets = self.root / "datasets"
        self._tmp = self.root / "tmp"
        self._db = self.root / "index.db"
        self._datasets.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(exist_ok=True)
        # One connection per thread (and process), kept for the cache's lifetime: opening one costs
        # more than the queries staging makes, and a short-lived connection would be the last to
        # close and checkpoint the WAL (fsyncs) every time.
        self._local = threading.local()
        self._init_db()
        self._recover()

    # ----------------------------------------------------------------- public surface

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

    def get(self, dataset_id: str) -> CachedDataset:
        """The cached dataset; counts as an access for the lru policy."""
        dataset_id = validate_id(dataset_id, "dataset_id")
        with self._tx() as db:
            if db.execute("SELECT 1 FROM entries WHERE dataset_id = ?", (dataset_id,)).fetchone() is None:
                raise UnknownDataset(dataset_id, self.root)
            self._touch(db, dataset_id)
        return self._require(dataset_id)

    def list(self) -> builtins.list[CachedDataset]:
        """Every cached dataset, oldest staged first. Does not count as an access."""
        with self._reading() as db:
            rows = db.execute("SELECT * FROM entries ORDER BY staged_seq").fetchall()
        return [self._to_entry(row) for row in rows]

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

    def usage(self) -> CacheUsage:
        with self._reading() as db:
            used = db.execute("SELECT COALESCE(SUM(size_bytes), 0) FROM entries").fetchone()[0]
        return self._usage_of(used)

    def _usage_of(self, used: int) -> CacheUsage:
        return CacheUsage(used, self.quota_bytes, self.quota_bytes is not None and used > self.quota_bytes)

    def evict(self) -> builtins.list[str]:
        """Remove uploaded-and-verified or rejected datasets in policy order (lru: least recently
        accessed first; fifo: first staged first) until the cache is within quota. Never touches any
        other dataset: if still over quota, logs a warning and ``usage().pressure`` stays true.
        Returns the evicted dataset ids."""
        usage = self.usage()
        if not usage.pressure:
            return []
        if self.policy == "manual":
            log.warning(
                "edge cache %s over quota (%d of %d bytes) and policy is manual: nothing evicted",
                self.root, usage.used_bytes, usage.quota_bytes,
            )
            return []
        order = "access_seq" if self.policy == "lru" else "staged_seq"
        with self._reading() as db:
            candidates = db.execute(
                f"SELECT dataset_id, size_bytes FROM entries WHERE state IN (?, ?) ORDER BY {order}",
                tuple(s.value for s in EVICTABLE_STATES),
            ).fetchall()
        used = usage.used_bytes
        evicted: builtins.list[str] = []
        for row in candidates:
            if used <= usage.quota_bytes:
                break
            if self._delete_entry(row["dataset_id"], require_evictable=True):
                used -= row["size_bytes"]
                evicted.append(row["dataset_id"])
        after = self.usage()
        log.info("edge cache %s evicted %d dataset(s) by %s: %s", self.root, len(evicted), self.policy, evicted)
        if after.pressure:
            log.warning(
                "edge cache %s still over quota after eviction (%d of %d bytes): the rest is not yet "
                "uploaded or rejected, so it is kept",
                self.root, after.used_bytes, after.quota_bytes,
            )
        return evicted

    def apply_retention(self, now: float | None = None) -> builtins.list[str]:
        """The retention schedule's step: remove every uploaded-and-verified or rejected dataset that
        has been so for more than ``retention_days`` (whatever the quota). Never touches a dataset
        that is only cached. Returns the removed ids; a no-op without ``retention_days``."""
        if self.retention_days is None:
            return []
        cutoff = (time.time() if now is None else now) - self.retention_days * 86400
        with self._reading() as db:
            rows = db.execute(
                "SELECT dataset_id FROM entries WHERE state IN (?, ?) AND updated_at <= ? ORDER BY updated_at",
                (*(s.value for s in EVICTABLE_STATES), cutoff),
            ).fetchall()
        removed = [row["dataset_id"] for row in rows if self._delete_entry(row["dataset_id"], require_evictable=True, older_than=cutoff)]
        if removed:
            log.info("edge cache %s: retention (%.1f days) removed %d dataset(s): %s", self.root, self.retention_days, len(removed), removed)
        return removed

    def disk_usage(self) -> dict:
        """A JSON-ready report for the control plane: quota, usage by state, what eviction could
        free, the filesystem's free space, and the oldest dataset still waiting for upload."""
        with self._reading() as db:
            rows = db.execute(
                "SELECT state, COUNT(*) AS n, COALESCE(SUM(size_bytes), 0) AS bytes, MIN(staged_at) AS oldest FROM entries GROUP BY state"
            ).fetchall()
        by_state = {s.value: {"count": 0, "bytes": 0} for s in CacheState}
        oldest_cached = None
        for row in rows:
            by_state[row["state"]] = {"count": row["n"], "bytes": row["bytes"]}
            if row["state"] == CacheState.CACHED.value and row["oldest"] is not None:
                oldest_cached = datetime.fromtimestamp(row["oldest"], timezone.utc).isoformat()
        used = sum(v["bytes"] for v in by_state.values())
        fs = shutil.disk_usage(self.root)
        return {
            "root": str(self.root),
            "policy": self.policy,
            "quota_bytes": self.quota_bytes,
            "used_bytes": used,
            "pressure": self.quota_bytes is not None and used > self.quota_bytes,
            "datasets": by_state,
            "evictable_bytes": sum(by_state[s.value]["bytes"] for s in EVICTABLE_STATES),
            "pending_upload_bytes": by_state[CacheState.CACHED.value]["bytes"],
            "oldest_pending_staged_at": oldest_cached,
            "filesystem": {"total_bytes": fs.total, "free_bytes": fs.free},
            "delete_after_upload": self.delete_after_upload,
            "release_source": self.release_source,
            "retention_days": self.retention_days,
            "reported_at": datetime.now(timezone.utc).isoformat(),
        }

    def remove(self, dataset_id: str) -> None:
        """Remove one dataset now (operator action, or delete-after-upload). Same rule as eviction:
        refuses (CacheConflict) a dataset that is not uploaded-and-verified or rejected."""
        dataset_id = validate_id(dataset_id, "dataset_id")
        entry = self._require(dataset_id)
        if entry.state not in EVICTABLE_STATES:
            raise CacheConflict(f"dataset {dataset_id} is {entry.state.value}, not uploaded or rejected: refusing to remove it")
        self._delete_entry(dataset_id, require_evictable=True)
        log.info("removed dataset %s (%s) from the edge cache", dataset_id, entry.state.value)

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

    def _entry_dir(self, dataset_id: str) -> Path:
        return self._datasets / dataset_id

    def _paths(self, dataset_id: str) -> tuple[Path, Path]:
        entry_dir = self._entry_dir(dataset_id)
        return entry_dir / f"{dataset_id}.lance", entry_dir / f"{dataset_id}.json"

    def _delete_entry(self, dataset_id: str, *, require_evictable: bool, older_than: float | None = None) -> bool:
        """Move the entry out of ``datasets/`` and drop its row in one transaction, then delete the
        files. A crash in between leaves an evictable row without files, cleaned up by _recover."""
        with self._tx() as db:
            row = db.execute("SELECT state, updated_at FROM entries WHERE dataset_id = ?", (dataset_id,)).fetchone()
            if row is None:
                return False
            if require_evictable and CacheState(row["state"]) not in EVICTABLE_STATES:
                return False  # its state changed since the candidate list was read
            if older_than is not None and row["updated_at"] > older_than:
                return False
            trash = self._tmp / f"{os.getpid()}-{uuid.uuid4().hex}-evict-{dataset_id}"
            entry_dir = self._entry_dir(dataset_id)
            if entry_dir.exists():
                os.rename(entry_dir, trash)
            db.execute("DELETE FROM entries WHERE dataset_id = ?", (dataset_id,))
        shutil.rmtree(trash, ignore_errors=True)
        return True

    # ----------------------------------------------------------------- index

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection to the index (a forked child opens its own)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.db, local.pid = self._connect(), os.getpid()
        return local.db

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        yield self._connection()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._db, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        # WAL + NORMAL (as the rest of the project): a commit survives a process crash; a power
        # loss may roll back the last commits, and every such loss errs on the side of keeping
        # data: a lost "staged" row leaves an entry that is re-adopted only after it verifies, a
        # lost "uploaded"/"rejected" mark keeps the dataset un-evictable, a lost eviction is
        # finished by _recover.
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; BEGIN IMMEDIATE so concurrent writers (edge agent and Dagster op)
        queue instead of failing on upgrade."""
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _init_db(self) -> None:
        db = self._connection()
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(
            """
            CREATE TABLE IF NOT EXISTS entries (
                dataset_id TEXT PRIMARY KEY,
                state TEXT NOT NULL CHECK (state IN ('cached', 'uploaded', 'rejected')),
                size_bytes INTEGER NOT NULL,
                dataset_digest TEXT NOT NULL,
                cloud_uri TEXT,
                verified_digest TEXT,
                staged_at REAL NOT NULL,
                staged_seq INTEGER NOT NULL,
                last_access_at REAL NOT NULL,
                access_seq INTEGER NOT NULL,
                updated_at REAL NOT NULL
            );
            CREATE INDEX IF NOT EXISTS entries_by_state ON entries (state);
            """
        )
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version > SCHEMA_VERSION:
            raise EdgeCacheError(f"edge cache index {self._db} has schema {version}, newer than this code ({SCHEMA_VERSION})")

    def _recover(self) -> None:
        """Finish what a crashed process left: drop rows of evictable entries whose files were already
        moved away (an interrupted eviction) and delete scratch dirs of processes that are gone."""
        with self._tx() as db:
            for row in db.execute("SELECT dataset_id, state FROM entries").fetchall():
                if self._entry_dir(row["dataset_id"]).exists():
                    continue
                if CacheState(row["state"]) in EVICTABLE_STATES:
                    db.execute("DELETE FROM entries WHERE dataset_id = ?", (row["dataset_id"],))
                    log.info("dropped index row of %s: its eviction was interrupted", row["dataset_id"])
                else:
                    log.error("cached dataset %s is missing from %s (deleted outside the cache?)", row["dataset_id"], self.root)
        for scratch in self._tmp.iterdir():
            pid = scratch.name.split("-", 1)[0]
            if pid.isdigit() and not _process_alive(int(pid)):
                shutil.rmtree(scratch, ignore_errors=True)
                log.info("removed leftover scratch %s", scratch)

    def _index_new(self, dataset_id: str, digest: str, dataset_bytes: int | None = None) -> tuple[CachedDataset, CacheUsage]:
        """Index a dataset whose entry directory is in place (``dataset_bytes``: the size of its
        ``.lance`` directory, if known); returns its entry and the cache's usage."""
        ds, sc = self._paths(dataset_id)
        size = (_tree_size(ds) if dataset_bytes is None else dataset_bytes) + sc.stat().st_size
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO entries (dataset_id, state, size_bytes, dataset_digest, staged_at, staged_seq, "
                "last_access_at, access_seq, updated_at) SELECT ?, ?, ?, ?, ?, COALESCE(MAX(staged_seq), 0) + 1, ?, "
                "COALESCE(MAX(access_seq), 0) + 1, ? FROM entries",
                (dataset_id, CacheState.CACHED.value, size, digest, now, now, now),
            )
            row = self._row_or_raise(db, dataset_id)
            used = db.execute("SELECT COALESCE(SUM(size_bytes), 0) FROM entries").fetchone()[0]
        return self._to_entry(row), self._usage_of(used)

    def _touch(self, db: sqlite3.Connection, dataset_id: str) -> None:
        # A logical clock orders accesses exactly, even when wall-clock times tie.
        db.execute(
            "UPDATE entries SET last_access_at = ?, access_seq = (SELECT COALESCE(MAX(access_seq), 0) + 1 FROM entries) "
            "WHERE dataset_id = ?",
            (time.time(), dataset_id),
        )

    def _find(self, dataset_id: str) -> CachedDataset | None:
        with self._reading() as db:
            row = db.execute("SELECT * FROM entries WHERE dataset_id = ?", (dataset_id,)).fetchone()
        return None if row is None else self._to_entry(row)

    def _require(self, dataset_id: str) -> CachedDataset:
        entry = self._find(dataset_id)
        if entry is None:
            raise UnknownDataset(dataset_id, self.root)
        return entry

    def _row_or_raise(self, db: sqlite3.Connection, dataset_id: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM entries WHERE dataset_id = ?", (dataset_id,)).fetchone()
        if row is None:
            raise UnknownDataset(dataset_id, self.root)
        return row

    def _to_entry(self, row: sqlite3.Row) -> CachedDataset:
        ds, sc = self._paths(row["dataset_id"])
        return CachedDataset(
            dataset_id=row["dataset_id"],
            path=ds,
            sidecar_path=sc,
            size_bytes=row["size_bytes"],
            dataset_digest=row["dataset_digest"],
            state=CacheState(row["state"]),
            cloud_uri=row["cloud_uri"],
            staged_at=datetime.fromtimestamp(row["staged_at"], timezone.utc),
            last_access_at=datetime.fromtimestamp(row["last_access_at"], timezone.utc),
        )


def _read_sidecar(path: Path, raw: bytes | None = None) -> Sidecar:
    try:
        return Sidecar.from_json(path.read_bytes() if raw is None else raw)
    except (ValueError, KeyError, TypeError) as exc:  # bad JSON, missing or unknown fields
        raise ValueError(f"unreadable sidecar {path}: {exc}") from exc


def _check_sidecar_consistent(sidecar: Sidecar, path: Path) -> None:
    """Sidecar.verify compares file lists; the dataset digest it states must follow from them too."""
    derived = digest_of_files(sidecar.files)
    if derived != sidecar.dataset_digest:
        raise DigestMismatch(f"sidecar {path} (dataset_digest field vs its file list)", sidecar.dataset_digest, derived)


def _verify_links(sidecar: Sidecar, staged: Path, copied: builtins.list[str]) -> None:
    """Staged by hardlinks: the file list must be the sidecar's, and a file that was copied after a
    failed link is re-hashed. A linked file is the recorder's very inode (``link(2)`` succeeded), so
    its bytes are the recording's own: they are checked against the sidecar on upload, byte for byte.
    Reads directory entries only."""
    _check_file_list(sidecar, staged)
    for rel in copied:
        expected, actual = sidecar.files[rel], file_sha256(staged / rel)
        if actual != expected:
            raise DigestMismatch(f"{staged / rel} (copied after a failed hardlink) does not match its sidecar", expected, actual)


def _scan_files(root: Path) -> builtins.list[str]:
    """The relative POSIX path of every regular file under ``root``, from directory entries alone."""
    out: builtins.list[str] = []
    stack = [("", str(root))]
    while stack:
        prefix, path = stack.pop()
        with os.scandir(path) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((f"{prefix}{entry.name}/", entry.path))
                elif entry.is_file(follow_symlinks=False):
                    out.append(prefix + entry.name)
    return out


def _check_file_list(sidecar: Sidecar, dataset_dir: Path) -> None:
    present = set(_scan_files(dataset_dir))
    if present != set(sidecar.files):
        missing, extra = sorted(set(sidecar.files) - present), sorted(present - set(sidecar.files))
        raise DigestMismatch(f"{dataset_dir} file list (missing {missing}, unexpected {extra})", sidecar.dataset_digest, "n/a")


def _tree_size(root: Path) -> int:
    total = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    return total


def _fsync_file(path: Path) -> None:
    # Read-only is enough for fsync on Linux, and a linked file may be the recorder's, not ours.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
