"""QC reads every payload once and keeps two hashes per message (header bytes, data bytes); large data
parts are fingerprinted as read and hashed in full only where a fingerprint repeats. Whatever path
a payload takes, the equalities the checks see must be exactly those of the bytes."""

from __future__ import annotations

import random

import lance
import pyarrow as pa
import pytest

from axon_dagster.domain import Requirements
from axon_dagster.ingest import payload_hash
from axon_dagster.inspection import daft_profile, inspect_recording
from axon_dagster.inspection.checks import FROZEN_STREAMS, FROZEN_VALUES
from axon_dagster.demo.sim.synthetic import Faults

CAMERA = "/camera/image_raw"
HEADER = 40
FRAME = 200_000  # above FINGERPRINT_MIN_BYTES: fingerprinted


def _frames() -> list[bytes | None]:
    rng = random.Random(5)
    header = bytes(rng.getrandbits(8) for _ in range(HEADER))
    data = bytearray(rng.randbytes(FRAME))
    changed = bytearray(data)
    changed[100] ^= 0xFF  # a byte between the sampled chunks: the fingerprints stay equal
    other_header = bytes(reversed(header))
    return [
        header + bytes(data),  # 0
        header + bytes(data),  # 1: = 0
        header + bytes(changed),  # 2: data differs from 1 in one unsampled byte
        header + bytes(changed),  # 3: = 2
        other_header + bytes(data),  # 4: same data as 0, another header
        None,  # 5: no payload
        header + b"small" * 10,  # 6: a small data part, hashed in full
        header + b"small" * 10,  # 7: = 6
    ]


def _dataset(tmp_path, frames, data_offset=HEADER, hash_columns=False):
    """A recording of ``frames``; with ``hash_columns``, carrying the payload hashes as the
    ingestion writes them (computed now, at the fingerprint threshold in force)."""
    table = pa.table({
        "topic": [CAMERA] * len(frames),
        "sequence": list(range(len(frames))),
        "log_time_ns": [1_000 * (i + 1) for i in range(len(frames))],
        "message_type": ["sensor_msgs/msg/Image"] * len(frames),
        "payload": pa.array(frames, pa.binary()),
        "data_offset": pa.array([data_offset if f is not None else None for f in frames], pa.int64()),
    })
    if hash_columns:
        arrays = payload_hash.payload_hash_arrays(table.column("payload").combine_chunks(), table.column("data_offset").combine_chunks())
        for field, array in zip(payload_hash.payload_hash_fields(), arrays):
            table = table.append_column(field, array)
    path = tmp_path / f"frames-{len(list(tmp_path.iterdir()))}.lance"
    lance.write_dataset(table, str(path))
    return str(path)


def _hashes(path):
    frame, _, _ = daft_profile.read_recording(path)
    table = frame.to_arrow()
    return table.column("head_hash").to_pylist(), table.column("tail_hash").to_pylist()


def failed(report) -> set[str]:
    return {c.name for c in report.failed_checks}


def _equalities(values):
    return {(i, j) for i in range(len(values)) for j in range(len(values)) if values[i] is not None and values[i] == values[j]}


@pytest.mark.parametrize("hash_columns", [False, True], ids=["payloads-scanned", "hash-columns"])
@pytest.mark.parametrize("batch_bytes", [1 << 10, 2 << 20], ids=["a-row-per-batch", "all-in-one-batch"])
def test_fingerprinted_hashes_are_equal_exactly_where_the_bytes_are(tmp_path, monkeypatch, batch_bytes, hash_columns):
    frames = _frames()
    path = _dataset(tmp_path, frames, hash_columns=hash_columns)
    monkeypatch.setattr(daft_profile, "TARGET_BATCH_BYTES", batch_bytes)
    monkeypatch.setattr(daft_profile, "MIN_BATCH_ROWS", 1)
    head, tail = _hashes(path)
    monkeypatch.setattr(payload_hash, "FINGERPRINT_MIN_BYTES", 1 << 40)  # every byte hashed
    exact_head, exact_tail = _hashes(_dataset(tmp_path, frames, hash_columns=hash_columns))

    assert _equalities(tail) == _equalities(exact_tail)
    assert _equalities(head) == _equalities(exact_head)
    data = [f[HEADER:] if f is not None else None for f in frames]
    assert _equalities(tail) == _equalities(data)  # 0 = 1 = 4, 2 = 3, 6 = 7
    assert _equalities(head) == _equalities([f[:HEADER] if f is not None else None for f in frames])
    assert head[5] is None and tail[5] is None


def test_qc_reads_no_payload_when_the_ingestion_wrote_the_hashes(axon_lance, monkeypatch):
    path = axon_lance("frozen", faults=Faults(frozen_topics=(CAMERA,)))
    if "payload_head_hash" not in lance.dataset(str(path)).schema.names:
        pytest.skip("this dataset was ingested without the hash columns")

    def no_scan(*args, **kwargs):
        raise AssertionError("the payloads were scanned")

    monkeypatch.setattr(daft_profile, "_payload_hashes", no_scan)
    assert failed(inspect_recording(path, Requirements())) == {FROZEN_VALUES}


def test_a_payload_without_data_offset_is_all_data(tmp_path):
    frames = [b"x" * FRAME, b"x" * FRAME, b"x" * (FRAME - 1) + b"y"]
    head, tail = _hashes(_dataset(tmp_path, frames, data_offset=None))
    assert tail[0] == tail[1] != tail[2] and head[0] == head[1] == head[2]  # the empty header


@pytest.mark.parametrize("fingerprint_min", [1 << 10, 1 << 40], ids=["fingerprinted", "hashed-in-full"])
def test_a_frozen_camera_is_caught_on_either_path_and_a_clean_one_passes(axon_lance, monkeypatch, fingerprint_min):
    """The simulator's camera frames are 8 KiB: above 1 KiB they are fingerprinted (by the ingestion
    into the hash columns, or by QC as it reads them)."""
    monkeypatch.setattr(payload_hash, "FINGERPRINT_MIN_BYTES", fingerprint_min)
    frozen = inspect_recording(axon_lance("frozen", faults=Faults(frozen_topics=(CAMERA,))), Requirements())
    assert failed(frozen) == {FROZEN_VALUES} and CAMERA in frozen.check(FROZEN_VALUES).detail
    clean = inspect_recording(axon_lance("clean", pauses=((2.0, 1.0),)), Requirements())
    assert failed(clean) == set(), [c.detail for c in clean.failed_checks]


def test_identical_payloads_are_a_frozen_stream_on_the_fingerprinted_path(make_recording, monkeypatch):
    """Lance-era recordings have no data_offset: the whole payload is fingerprinted."""
    monkeypatch.setattr(payload_hash, "FINGERPRINT_MIN_BYTES", 1 << 10)
    report = inspect_recording(make_recording("frozen", faults=Faults(frozen_topics=(CAMERA,))), Requirements())
    assert failed(report) == {FROZEN_STREAMS}
    assert report.per_topic[CAMERA].repeated_payloads == report.per_topic[CAMERA].count - 1


def test_a_recording_in_s3_is_read_again_for_its_repeated_fingerprints(make_recording, s3_env, s3_client, s3_bucket, monkeypatch):
    monkeypatch.setattr(payload_hash, "FINGERPRINT_MIN_BYTES", 1 << 10)
    path = make_recording("frozen", faults=Faults(frozen_topics=(CAMERA,)))
    for file in path.rglob("*"):
        if file.is_file():
            s3_client.upload_file(str(file), s3_bucket, f"staging/frozen.lance/{file.relative_to(path).as_posix()}")
    report = inspect_recording(f"s3://{s3_bucket}/staging/frozen.lance", Requirements())
    assert FROZEN_STREAMS in failed(report)  # (and integrity: nothing vouches for a remote dataset)
    assert report.per_topic[CAMERA].repeated_payloads == report.per_topic[CAMERA].count - 1
