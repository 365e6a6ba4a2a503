"""The one recorder-health policy (axon_dagster.recorder.health): what the edge agent judges from its
recorder and what the cloud judges from a robot's report agree."""

from __future__ import annotations

from axon_dagster.recorder.health import assess, health_of_report, recording_problem, reported_topics
from axon_dagster.recorder.protocol import RecorderStatus

IDLE = {"reachable": True, "error": None, "is_recording": False, "dataset_path": None, "active_topics": [], "last_error": None,
        "state": "idle", "subscribed_topics": ["/imu", "/odom"], "topic_counts": {}, "disk_usage_gb": 3.5, "disk_state": "normal"}


def status(**fields) -> RecorderStatus:
    return RecorderStatus(**{"is_recording": False, "dataset_path": "", **fields})


def test_an_idle_recorder_below_the_limit_is_ready():
    assert assess(status(disk_usage_gb=1.0), max_disk_usage_gb=50).ready
    assert health_of_report(IDLE, max_disk_usage_gb=50).ready


def test_each_reason_not_to_record_is_named():
    assert assess(None, unreachable="connection refused").reasons == ("recorder unavailable: connection refused",)
    assert "already recording (/d/t.mcap)" in assess(status(is_recording=True, dataset_path="/d/t.mcap")).reasons[0]
    assert assess(status(last_error="disk full")).reasons == ("recorder reported an error: disk full",)
    assert assess(status(), service_status="degraded").reasons == ("recorder health is 'degraded'",)
    assert assess(status(disk_usage_gb=60.0), max_disk_usage_gb=50).reasons == ("recorder data uses 60 GB; the limit is 50 GB",)
    assert assess(status(disk_state="hard_limit")).reasons == ("the recorder's disk guard is at its hard limit",)


def test_a_recording_in_progress_is_unusable_when_the_disk_guard_paused_it_or_it_reports_an_error():
    assert recording_problem(status(is_recording=True, state="recording")) is None
    assert recording_problem(status(state="paused", disk_state="hard_limit")) == "the recorder paused itself: disk hard limit reached"
    assert recording_problem(status(last_error="writer died")) == "recorder reported an error: writer died"


def test_a_robots_report_is_judged_by_the_same_rules():
    assert health_of_report(None).reasons == ("the robot has not reported its recorder's state",)
    assert health_of_report({**IDLE, "reachable": False, "error": "timed out"}).reasons == ("recorder unavailable: timed out",)
    assert health_of_report({**IDLE, "disk_usage_gb": 60}, max_disk_usage_gb=50).reasons == assess(
        status(disk_usage_gb=60.0), max_disk_usage_gb=50).reasons
    assert health_of_report({**IDLE, "state": "paused", "disk_state": "hard_limit", "last_error": "disk full"}).reasons == (
        "the recorder paused itself: disk full",)
    assert "unreadable" in health_of_report({**IDLE, "disk_usage_gb": "lots"}).reasons[0]


def test_reported_topics_prefer_the_ros_graph_then_the_recorders_subscriptions():
    assert reported_topics({**IDLE, "available_topics": ["/camera"]}) == {"/camera"}
    assert reported_topics(IDLE) == {"/imu", "/odom"}
    assert reported_topics({"topic_counts": {"/imu": {"received": 1}}}) == {"/imu"}
    assert reported_topics(None) == set()
