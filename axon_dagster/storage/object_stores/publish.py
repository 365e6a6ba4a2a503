"""From the staging area into the lake, digest-verified (issue 13, step 5).

Staged files are checked against the robot's manifest before anything uses them
(:func:`verify_staged`); approved files go to their lake keys by a server-side copy whose result
is verified again (:func:`publish_copy`): a copy that does not hold the expected SHA-256 is
deleted, so nothing unverified is ever left at a lake key. A Lance dataset the cloud ingested sits
in the store already (staging's ``ingested/``) and is copied the same way, file by file
(:meth:`~.base.ObjectStore.copy_dataset`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from ..digest import DigestMismatch
from .base import ObjectStore, is_sha256_hex
from .errors import ObjectNotFound

log = logging.getLogger(__name__)


def _sha(sha256: object, what: str) -> str:
    if not is_sha256_hex(sha256):
        raise ValueError(f"invalid sha256 {sha256!r} for {what}: expected 64 lowercase hex digits")
    return sha256  # type: ignore[return-value]


def verify_staged(store: ObjectStore, key: str, sha256: str) -> str:
    """The staged object at ``key`` holds ``sha256`` (streamed through this process), else
    :class:`DigestMismatch` naming both digests; :class:`ObjectNotFound` if nothing is staged there."""
    expected = _sha(sha256, key)
    actual = store.sha256_of(key)
    if actual != expected:
        raise DigestMismatch(f"staged {store.uri_for(key)}", expected, actual)
    return actual


def publish_copy(store: ObjectStore, src_key: str, dst_key: str, sha256: str, *, proof: Sequence[int] | None = None) -> str:
    """Copy ``src_key`` to ``dst_key`` server-side and verify the copy holds ``sha256``
    (:meth:`~.base.ObjectStore.copy_verified`; ``proof``: the source file's fingerprint when
    ``sha256`` was computed, which lets the local store prove its hard link without re-reading it);
    returns the copy's URI. On a mismatch the copy is deleted and :class:`DigestMismatch` says so."""
    actual = store.copy_verified(src_key, dst_key, _sha(sha256, src_key), proof=proof)
    log.info("published %s -> %s (sha256 %s)", store.uri_for(src_key), store.uri_for(dst_key), actual)
    return store.uri_for(dst_key)


def publish_copies(store: ObjectStore, copies: Mapping[str, tuple[str, str]],
                   proofs: Mapping[str, Sequence[int]] | None = None) -> dict[str, str]:
    """``{dst_key: (src_key, sha256)}`` -> ``{dst_key: uri}``, each by :func:`publish_copy`
    (``proofs``: ``{src_key: fingerprint}`` where known). Every source is checked to exist first,
    so a missing one publishes nothing."""
    for dst_key, (src_key, sha256) in copies.items():
        _sha(sha256, src_key)
        if not store.exists(src_key):
            raise ObjectNotFound(f"nothing staged at {store.uri_for(src_key)} (to publish as {dst_key}); nothing published")
    proofs = proofs or {}
    store.copy_all_verified([(src, dst, sha, proofs.get(src)) for dst, (src, sha) in copies.items()])
    for dst, (src, sha) in copies.items():
        log.info("published %s -> %s (sha256 %s)", store.uri_for(src), store.uri_for(dst), sha)
    return {dst: store.uri_for(dst) for dst in copies}
