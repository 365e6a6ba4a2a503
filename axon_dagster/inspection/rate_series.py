"""The per-topic message rate of a Lance recording (:class:`~axon_dagster.domain.rate_series.RateSeries`),
read where the recording is: by the data flow at inspection time (stored with the report) and by
the CLI. Only the ``topic`` and ``log_time_ns`` columns are read (never the payloads), one batch
at a time."""

from __future__ import annotations

import math
import os
from collections import defaultdict

from axon_dagster.domain.rate_series import MAX_BUCKETS, RateSeries, rounded_rate


class RateSeriesError(Exception):
    """The recording could not be read for its rate series."""


def rate_series(dataset_path: str | os.PathLike, *, bucket_seconds: float = 1.0, max_buckets: int = MAX_BUCKETS) -> RateSeries:
    """Messages per second per topic, in buckets of ``bucket_seconds`` from the first message;
    a recording longer than ``max_buckets`` buckets gets wider ones (at most ``max_buckets``)."""
    import lance
    import pyarrow as pa
    import pyarrow.compute as pc

    if not bucket_seconds > 0 or max_buckets < 1:
        raise ValueError(f"bucket_seconds must be positive and max_buckets at least 1, got {bucket_seconds!r}, {max_buckets!r}")
    try:
        ds = lance.dataset(str(dataset_path))
        span = pc.min_max(ds.to_table(columns=["log_time_ns"])["log_time_ns"])
    except Exception as exc:  # unreadable, missing, truncated
        raise RateSeriesError(f"cannot read recording {dataset_path}: {exc}") from exc
    lo, hi = span["min"].as_py(), span["max"].as_py()
    if lo is None:
        return RateSeries(bucket_seconds, 0, {})
    # (hi - lo) < max_buckets * width_ns, so (hi - lo) // width_ns + 1 <= max_buckets
    width_ns = max(int(bucket_seconds * 1e9), math.ceil((hi - lo + 1) / max_buckets))
    buckets = (hi - lo) // width_ns + 1
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * buckets)
    try:
        for batch in ds.to_batches(columns=["topic", "log_time_ns"]):
            idx = pc.divide(pc.subtract(batch.column("log_time_ns"), lo), width_ns)
            grouped = (
                pa.table({"topic": batch.column("topic"), "bucket": idx}).group_by(["topic", "bucket"]).aggregate([([], "count_all")])
            )
            for topic, bucket, n in zip(
                grouped.column("topic").to_pylist(), grouped.column("bucket").to_pylist(), grouped.column("count_all").to_pylist()
            ):
                counts[topic][max(0, min(buckets - 1, bucket))] += n
    except Exception as exc:
        raise RateSeriesError(f"cannot read recording {dataset_path}: {exc}") from exc
    width_s = width_ns / 1e9
    return RateSeries(width_s, lo, {t: [rounded_rate(c / width_s) for c in counts[t]] for t in sorted(counts)})
