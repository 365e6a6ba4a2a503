#!/usr/bin/env bash
# Installs what building our ROS 2 interface package needs besides the wheels (rosidl generates C
# and C++ and compiles it with CMake + Ninja): gcc, g++, cmake, ninja; idempotent, a no-op when
# all four are there. The ROS 2 wheels themselves come from pyproject.toml's `ros2` extra.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

if command -v gcc >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1 \
  && command -v cmake >/dev/null 2>&1 && command -v ninja >/dev/null 2>&1; then
  exit 0
fi

apt_install gcc g++ cmake ninja-build
