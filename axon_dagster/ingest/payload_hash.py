"""The payload hashes QC compares messages by — one definition, used by the ingestion (which writes
them as columns while it holds the payloads) and by QC (which computes them itself for a dataset
without those columns).

Each payload is split at its ``data_offset`` (clamped to the payload; null or none: all of it is
data) into the header bytes (``head``) and the data bytes (``tail``: pixels, points). The head and a
data part of less than FINGERPRINT_MIN_BYTES are hashed in full (64-bit xxh3, by Daft). A larger
data part (a camera frame, a point cloud) gets a fingerprint instead: the hash of FINGERPRINT_CHUNKS
chunks of FINGERPRINT_CHUNK_BYTES spread evenly over it, first and last included — equal data always
have equal fingerprints, different frames almost never do; the rows whose fingerprint repeats are
the only ones that can equal another, and QC reads those again and hashes them in full.

Columns (:data:`PAYLOAD_HASH_COLUMNS`, written by :func:`axon_dagster.ingest.ingest_mcap`):
``payload_head_hash`` / ``payload_data_hash`` (uint64, null for a null payload) and
``payload_data_fingerprinted`` (bool: ``payload_data_hash`` is a fingerprint, not the full hash).
"""

from __future__ import annotations

FINGERPRINT_MIN_BYTES = 64 << 10
FINGERPRINT_CHUNKS, FINGERPRINT_CHUNK_BYTES = 16, 64
HASH_BATCH_BYTES = 64 << 20  # bytes picked out of the payloads are hashed this many at a time

HEAD_HASH, DATA_HASH, FINGERPRINTED = "payload_head_hash", "payload_data_hash", "payload_data_fingerprinted"
PAYLOAD_HASH_COLUMNS = (HEAD_HASH, DATA_HASH, FINGERPRINTED)


def payload_hash_fields():
    """The columns' pyarrow fields, in :data:`PAYLOAD_HASH_COLUMNS` order."""
    import pyarrow as pa

    return [pa.field(HEAD_HASH, pa.uint64()), pa.field(DATA_HASH, pa.uint64()), pa.field(FINGERPRINTED, pa.bool_())]


def payload_hash_arrays(payload, data_offset=None) -> list:
    """The three columns (pyarrow arrays) for one batch of payloads."""
    import pyarrow as pa

    hasher = PayloadHasher()
    hasher.add(payload, data_offset)
    head, tail, fingerprinted = hasher.hashes()
    return [head, tail, pa.array(fingerprinted, pa.bool_())]


class PayloadHasher:
    """Head and tail hashes of payloads (see the module), batch by batch (:meth:`add`), hashed at the
    end (:meth:`hashes`, one Daft call per HASH_BATCH_BYTES). ``fingerprint=False``: every data part
    hashed in full. Null payloads hash to null."""

    def __init__(self, fingerprint: bool = True):
        self.fingerprint = fingerprint
        self.parts: list = []  # numpy uint8 arrays not hashed yet: the bytes to hash, row after row
        self.lengths: list = []  # per row: [head length, tail length] of what is hashed
        self.pending = 0  # bytes in parts
        self.hashed: list = []  # numpy uint64: head, tail, head, tail, ... of the rows hashed so far
        self.big: list = []
        self.valid: list = []

    def add(self, payload, data_offset=None) -> None:
        import numpy as np
        import pyarrow as pa

        if not (pa.types.is_binary(payload.type) or pa.types.is_large_binary(payload.type)):
            payload = payload.cast(pa.large_binary())  # fixed-size binary: copied, rare
        n = len(payload)
        kind = np.int64 if pa.types.is_large_binary(payload.type) else np.int32
        ends = np.frombuffer(payload.buffers()[1], dtype=kind)[payload.offset: payload.offset + n + 1].astype(np.int64)
        lengths = ends[1:] - ends[:-1]
        if data_offset is None:
            cut = np.zeros(n, dtype=np.int64)
        else:
            if data_offset.type != pa.int64():
                data_offset = data_offset.cast(pa.int64())
            cut = np.frombuffer(data_offset.buffers()[1], dtype=np.int64)[data_offset.offset: data_offset.offset + n]
            if data_offset.null_count:
                cut = np.where(np.asarray(data_offset.is_valid()), cut, 0)
            cut = np.clip(cut, 0, lengths)
        data_len = lengths - cut
        data = payload.buffers()[2]
        buffer = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, dtype=np.uint8)
        # The bytes to hash, row after row: runs of rows hashed in full are contiguous in the
        # buffer (one slice each); a fingerprinted row gives its header bytes and its samples.
        valid = np.asarray(payload.is_valid()) if payload.null_count else np.ones(n, dtype=bool)
        smallest = max(FINGERPRINT_MIN_BYTES, FINGERPRINT_CHUNKS * FINGERPRINT_CHUNK_BYTES) if self.fingerprint else np.iinfo(np.int64).max
        big = (data_len >= smallest) & valid
        rows = np.flatnonzero(big)
        if len(rows):
            k, chunk = FINGERPRINT_CHUNKS, FINGERPRINT_CHUNK_BYTES
            spread = (data_len[rows] - chunk)[:, None] * np.arange(k) // (k - 1)
            at = (ends[:-1][rows] + cut[rows])[:, None] + spread
            samples = buffer[at[:, :, None] + np.arange(chunk)].reshape(len(rows), k * chunk)
            parts, done = [], 0
            for j, r in enumerate(rows.tolist()):
                parts += (buffer[ends[done]:ends[r]], buffer[ends[r]:ends[r] + cut[r]], samples[j])
                done = r + 1
            parts.append(buffer[ends[done]:ends[n]])
            picked = np.concatenate(parts)
            data_len = np.where(big, k * chunk, data_len)
        else:
            picked = buffer[ends[0]:ends[n]].copy()
        self.parts.append(picked)
        self.pending += len(picked)
        self.lengths.append(np.column_stack((cut, data_len)).ravel())
        self.big.append(big)
        self.valid.append(valid)
        if self.pending >= HASH_BATCH_BYTES:
            self._hash_pending()

    def _hash_pending(self) -> None:
        import daft
        import numpy as np
        import pyarrow as pa

        if not self.parts:
            return
        lengths = np.concatenate(self.lengths)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        values = pa.Array.from_buffers(pa.large_binary(), len(lengths), [None, pa.py_buffer(offsets), pa.py_buffer(np.concatenate(self.parts))])
        self.hashed.append(np.asarray(daft.Series.from_arrow(values).hash().to_arrow(), dtype=np.uint64))
        self.parts, self.lengths, self.pending = [], [], 0

    def hashes(self):
        """(head hashes, tail hashes, fingerprinted: numpy bool per row) of every row added."""
        import numpy as np
        import pyarrow as pa

        self._hash_pending()
        if not self.hashed:
            empty = pa.array([], pa.uint64())
            return empty, empty, np.zeros(0, dtype=bool)
        hashed = np.concatenate(self.hashed)
        mask = ~np.concatenate(self.valid)
        return pa.array(hashed[0::2], mask=mask), pa.array(hashed[1::2], mask=mask), np.concatenate(self.big)
