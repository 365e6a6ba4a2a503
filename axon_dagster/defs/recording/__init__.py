"""The recording surface (see :mod:`.jobs`)."""

import dagster as dg

from .jobs import (
    LANCE_DATASET,
    RecordingPolicyResource,
    check_health,
    conditional_recording,
    daily_recording,
    disk_space_sensor,
    hourly_recording,
    lance_dataset,
    lance_dataset_metadata,
    multi_session_recording,
    recording_policy_from_env,
    simple_recording,
    topic_availability_sensor,
    topics_from_stats,
    update_config,
)

defs = dg.Definitions(
    assets=[lance_dataset],
    jobs=[simple_recording, multi_session_recording, conditional_recording],
    schedules=[daily_recording, hourly_recording],
    sensors=[disk_space_sensor, topic_availability_sensor],
)

__all__ = [
    "LANCE_DATASET",
    "RecordingPolicyResource",
    "check_health",
    "conditional_recording",
    "daily_recording",
    "defs",
    "disk_space_sensor",
    "hourly_recording",
    "lance_dataset",
    "lance_dataset_metadata",
    "multi_session_recording",
    "recording_policy_from_env",
    "simple_recording",
    "topic_availability_sensor",
    "topics_from_stats",
    "update_config",
]
