# syntax=docker/dockerfile:1.7
# axon-edge: the robot-side agent with ROS 2 (Kilted) from the PyPI wheels — rclpy + Fast DDS for
# the recorder's ROS 2 services and ROS 2 teleop — and our interface package (axon_recorder_msgs)
# built from the .srv files at image build time. No Dagster, Ray or Daft on a robot.
#   docker build -f images/axon-edge.Dockerfile -t axon-edge:0.1.0 .
# Python 3.11: the ROS 2 wheels are cp311. Pin by digest in production:
#   --build-arg PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:...
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# rosidl generates C/C++ for the interface package: compilers, CMake and Ninja (build stage only)
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ cmake ninja-build \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md* ./
COPY axon_dagster ./axon_dagster
COPY edge ./edge
# the interface package goes to /opt/venv/axon-build/ros2_msgs (the venv's build cache), so the
# runtime stage gets it with the venv; the import check proves rclpy loads it
RUN pip install '.[ros2]' \
 && python -m axon_dagster.recorder.ros2_build \
 && python -c "import axon_edge; from axon_dagster.recorder.ros2_env import load_srv_module; load_srv_module()" \
 && ! python -c "import dagster" 2>/dev/null

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 axon \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/axon --create-home --shell /usr/sbin/nologin axon \
 && mkdir -p /data/edge /data/recordings \
 && chown -R 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AXON_EDGE_DATA_DIR=/data/edge \
    AXON_EDGE_PORT=8090 \
    RMW_IMPLEMENTATION=rmw_fastrtps_cpp \
    ROS_HOME=/tmp/ros \
    ROS_LOG_DIR=/tmp/ros/log
# No secrets here: the robot token comes from a Kubernetes Secret at run time.
USER 10001:10001
WORKDIR /home/axon
EXPOSE 8090
CMD ["axon-edge", "run"]
