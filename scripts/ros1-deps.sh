#!/usr/bin/env bash
# Installs ROS 1's Python packages from Debian (rospy, rosmaster, genpy, std_msgs) when the system
# Python cannot import rospy from /usr/lib/python3/dist-packages; idempotent, a no-op otherwise.
# The ros1 recorder transport and its tests (a real rosmaster) need them.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

PACKAGES=(python3-rospy python3-rosmaster python3-genpy python3-std-msgs)
DIST_PACKAGES=/usr/lib/python3/dist-packages

# -I: ignore PYTHONPATH and user site, so only what Debian installed counts
if python3 -I -c "import sys; sys.path.append('$DIST_PACKAGES'); import rospy, genpy, rosmaster, std_msgs.msg" >/dev/null 2>&1 \
  && command -v rosmaster >/dev/null 2>&1; then
  exit 0
fi

apt_install "${PACKAGES[@]}"
