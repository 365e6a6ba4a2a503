"""topic_availability_sensor over ROS 1: it asks the real master which topics are published."""

from __future__ import annotations

import dagster as dg
import pytest

from axon_dagster.defs.recording import RecordingPolicyResource, simple_recording, topic_availability_sensor
from axon_dagster.defs.resources import RecorderResource
from axon_dagster.recorder import RecordingConfig
from axon_dagster.recorder.ros1 import ensure_node
from axon_dagster.recorder.ros1_env import import_ros1
from ros_support import new_namespace, wait_until


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def test_topic_availability_sensor_starts_one_recording_when_the_topics_appear(rosmaster, tmp_path, instance):
    rospy = ensure_node(10.0)
    std_msgs = import_ros1("std_msgs.msg")
    prefix = f"/{new_namespace('robot')}"
    topics = [f"{prefix}/imu", f"{prefix}/joint_states"]
    RecordingConfig(task_id="template", device_id="robot-1", topics=tuple(topics)).write(tmp_path / "policy" / "default.yaml")
    resources = {
        "recorder": RecorderResource(transport="ros1", timeout_seconds=5, retry_attempts=0),
        "recording_policy": RecordingPolicyResource(config_dir=str(tmp_path / "policy")),
    }

    def tick(cursor):
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
            return topic_availability_sensor.evaluate_tick(context)

    publishers = [rospy.Publisher(topics[0], std_msgs.String, queue_size=1)]
    try:
        waiting = tick(None)
        assert waiting.run_requests == [] and waiting.cursor == "missing"
        assert waiting.skip_message == f"waiting for topics ['{topics[1]}']"

        publishers.append(rospy.Publisher(topics[1], std_msgs.String, queue_size=1))
        [request] = wait_until(lambda: tick("missing").run_requests, timeout=5)
        assert request.run_key.startswith("topics:") and dg.validate_run_config(simple_recording, request.run_config)
        again = tick("available")
        assert again.run_requests == [] and "already requested" in again.skip_message and again.cursor == "available"
    finally:
        for publisher in publishers:
            publisher.unregister()
    # gone again: the cursor resets, so the next appearance starts the next recording
    wait_until(lambda: tick("available").cursor == "missing", timeout=5)
