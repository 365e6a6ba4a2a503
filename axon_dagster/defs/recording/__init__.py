"""The recording surface: recordings requested from robots through the control plane
(:mod:`.jobs`, :mod:`.dispatch`), the schedules and sensors that request them (:mod:`.triggers`),
and the ``lance_dataset`` asset (:mod:`.assets`). Nothing here talks to a recorder."""

import dagster as dg

from .assets import LANCE_DATASET, lance_dataset, lance_dataset_metadata, mcap_recording_metadata
from .jobs import conditional_recording, multi_session_recording, simple_recording
from .triggers import (
    RecordingPolicyResource,
    daily_recording,
    disk_space_sensor,
    hourly_recording,
    recording_policy_from_env,
    topic_availability_sensor,
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
    "conditional_recording",
    "daily_recording",
    "defs",
    "disk_space_sensor",
    "hourly_recording",
    "lance_dataset",
    "lance_dataset_metadata",
    "mcap_recording_metadata",
    "multi_session_recording",
    "recording_policy_from_env",
    "simple_recording",
    "topic_availability_sensor",
]
