"""A teleop device as its own ROS node (run by the tests as a child process): ``teleop_device.py ros1|ros2``.

Publishes each stdin line as a std_msgs/String on /teleop/recording_commands and prints every
message of /teleop/recording_feedback as ``FEEDBACK <json>``. Prints ``READY`` once the agent's
subscriber and the feedback publisher are both connected (so no command is lost to a slow join).
"""

from __future__ import annotations

import sys
import time

CONNECT_TIMEOUT = 30.0
COMMANDS, FEEDBACK = "/teleop/recording_commands", "/teleop/recording_feedback"


def wait_connected(connected) -> bool:
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while not connected():
        if time.monotonic() > deadline:
            print("NOT CONNECTED", flush=True)
            return False
        time.sleep(0.05)
    print("READY", flush=True)
    return True


def ros1() -> int:
    from axon_dagster.recorder.ros1_env import import_ros1

    rospy = import_ros1("rospy")
    String = import_ros1("std_msgs.msg").String
    rospy.init_node("teleop_device", anonymous=True, disable_signals=True)
    sub = rospy.Subscriber(FEEDBACK, String, lambda m: print(f"FEEDBACK {m.data}", flush=True), queue_size=50)
    pub = rospy.Publisher(COMMANDS, String, queue_size=50)
    if not wait_connected(lambda: pub.get_num_connections() >= 1 and sub.get_num_connections() >= 1):
        return 1
    for line in sys.stdin:
        pub.publish(String(data=line.rstrip("\n")))
    time.sleep(0.5)  # let the last feedback arrive before the node goes away
    rospy.signal_shutdown("stdin closed")
    return 0


def ros2() -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import String

    import threading

    rclpy.init()
    node = rclpy.create_node("teleop_device")
    node.create_subscription(String, FEEDBACK, lambda m: print(f"FEEDBACK {m.data}", flush=True), 50)
    pub = node.create_publisher(String, COMMANDS, 50)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    if not wait_connected(lambda: pub.get_subscription_count() >= 1 and node.count_publishers(FEEDBACK) >= 1):
        return 1
    for line in sys.stdin:
        pub.publish(String(data=line.rstrip("\n")))
    time.sleep(0.5)
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(ros2() if sys.argv[1:] == ["ros2"] else ros1())
