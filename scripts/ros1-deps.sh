#!/usr/bin/env bash
# Installs ROS 1's Python packages from Debian (rospy, rosmaster, genpy, std_msgs) when the system
# Python cannot import rospy from /usr/lib/python3/dist-packages; idempotent, a no-op otherwise.
# The ros1 recorder transport and its tests (a real rosmaster) need them.
set -euo pipefail

PACKAGES=(python3-rospy python3-rosmaster python3-genpy python3-std-msgs)
DIST_PACKAGES=/usr/lib/python3/dist-packages

# -I: ignore PYTHONPATH and user site, so only what Debian installed counts
if python3 -I -c "import sys; sys.path.append('$DIST_PACKAGES'); import rospy, genpy, rosmaster, std_msgs.msg" >/dev/null 2>&1 \
  && command -v rosmaster >/dev/null 2>&1; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ros1-deps: rospy is missing and this is not a Debian/Ubuntu system; install ${PACKAGES[*]} (or ROS Noetic) by hand" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing Debian packages: ${PACKAGES[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
