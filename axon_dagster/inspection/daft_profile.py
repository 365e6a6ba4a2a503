"""The Daft pipeline behind inspection: one aggregate row per topic.

It reads only ``topic``, ``sequence`` and ``log_time_ns`` (never the payload), orders each topic by
sequence with a window, takes the log-time step to the previous message, and groups by topic:
count, first/last log time, largest step, backward steps and sequence holes. Daft is imported
lazily so the package imports on machines without it; the caller chooses the Daft runner.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from axon_dagster.storage.recording import RECORDING_COLUMNS

from .checks import TopicProfile
from .errors import InspectionInfrastructureError

logger = logging.getLogger(__name__)

PROFILE_COLUMNS = ("topic", "sequence", "log_time_ns")
assert set(PROFILE_COLUMNS) <= set(RECORDING_COLUMNS)


def profile_recording(dataset_path: str | os.PathLike) -> dict[str, TopicProfile]:
    """Per-topic profile of the Lance recording at ``dataset_path`` on the current Daft runner.

    Raises InspectionInfrastructureError when the dataset cannot be read (missing, not a Lance
    dataset, files lost or unreadable, not in the recording format).
    """
    import daft
    from daft import Window, col

    path = str(dataset_path)
    if "://" not in path and not Path(path).is_dir():
        raise InspectionInfrastructureError(path, "dataset directory not found")
    try:
        df = daft.read_lance(path)
    except Exception as exc:
        raise InspectionInfrastructureError(path, f"not a readable Lance dataset: {exc}") from exc
    missing = [c for c in PROFILE_COLUMNS if c not in df.column_names]
    if missing:
        raise InspectionInfrastructureError(path, f"not a recording: missing column(s) {', '.join(missing)}")

    by_sequence = Window().partition_by("topic").order_by("sequence", "log_time_ns")
    steps = df.select(*PROFILE_COLUMNS).with_columns(
        {
            "step_ns": col("log_time_ns") - col("log_time_ns").lag(1).over(by_sequence),
            "seq_step": col("sequence") - col("sequence").lag(1).over(by_sequence),
        }
    )
    per_topic = steps.groupby("topic").agg(
        col("log_time_ns").count().alias("count"),
        col("log_time_ns").min().alias("first_ns"),
        col("log_time_ns").max().alias("last_ns"),
        col("step_ns").max().alias("max_step_ns"),
        (col("step_ns") < 0).cast(daft.DataType.int64()).sum().alias("backward_steps"),
        # a step of k in the sequence means k - 1 messages never arrived
        (col("seq_step") - 1).clip(0, None).sum().alias("lost_messages"),
    )
    try:
        rows = per_topic.to_pylist()
    except Exception as exc:
        # Lost or corrupt data files surface only when the scan runs.
        raise InspectionInfrastructureError(path, f"reading the dataset failed: {exc}") from exc
    profile = {
        r["topic"]: TopicProfile(
            count=int(r["count"]),
            first_ns=int(r["first_ns"]),
            last_ns=int(r["last_ns"]),
            max_step_ns=int(r["max_step_ns"] or 0),  # null for a single-message topic
            backward_steps=int(r["backward_steps"] or 0),
            lost_messages=int(r["lost_messages"] or 0),
        )
        for r in rows
    }
    logger.debug("profiled %s: %d topics, %d rows", path, len(profile), sum(p.count for p in profile.values()))
    return profile
