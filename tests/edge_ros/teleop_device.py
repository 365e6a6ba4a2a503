"""A teleop device as its own ROS 1 node (run by the tests as a child process).

Publishes each stdin line as a std_msgs/String on /teleop/recording_commands and prints every
message of /teleop/recording_feedback as ``FEEDBACK <json>``. Prints ``READY`` once the agent's
subscriber and the feedback publisher are both connected (so no command is lost to a slow join).
"""

from __future__ import annotations

import sys
import time

from axon_dagster.recorder.ros1_env import import_ros1

CONNECT_TIMEOUT = 30.0


def main() -> int:
    rospy = import_ros1("rospy")
    String = import_ros1("std_msgs.msg").String
    rospy.init_node("teleop_device", anonymous=True, disable_signals=True)
    sub = rospy.Subscriber(
        "/teleop/recording_feedback", String, lambda m: print(f"FEEDBACK {m.data}", flush=True), queue_size=50
    )
    pub = rospy.Publisher("/teleop/recording_commands", String, queue_size=50)
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while pub.get_num_connections() < 1 or sub.get_num_connections() < 1:
        if time.monotonic() > deadline:
            print("NOT CONNECTED", flush=True)
            return 1
        time.sleep(0.05)
    print("READY", flush=True)
    for line in sys.stdin:
        pub.publish(String(data=line.rstrip("\n")))
    time.sleep(0.5)  # let the last feedback arrive before the node goes away
    rospy.signal_shutdown("stdin closed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
