# syntax=docker/dockerfile:1.7
# axon-edge: the robot-side agent on a ROS 2 Jazzy base (rclpy path for the recorder's ROS
# services). Only the bare package is installed: no Dagster, Ray or Daft on a robot.
#   docker build -f images/axon-edge.Dockerfile -t axon-edge:0.1.0 .
# Pin by digest in production: --build-arg ROS_IMAGE=ros:jazzy-ros-base-noble@sha256:...
ARG ROS_IMAGE=ros:jazzy-ros-base-noble

FROM ${ROS_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv python3-pip \
 && rm -rf /var/lib/apt/lists/*
# --system-site-packages: rclpy and the message packages come from /opt/ros/jazzy.
RUN python3 -m venv --system-site-packages /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md* ./
COPY axon_dagster ./axon_dagster
COPY edge ./edge
RUN pip install . \
 && python -c "import axon_edge" \
 && ! python -c "import dagster" 2>/dev/null

FROM ${ROS_IMAGE} AS runtime
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
    ROS_HOME=/tmp/ros \
    ROS_LOG_DIR=/tmp/ros/log
# No secrets here: the robot token comes from a Kubernetes Secret at run time.
USER 10001:10001
WORKDIR /home/axon
EXPOSE 8090
# The ROS base image's entrypoint sources /opt/ros/$ROS_DISTRO/setup.bash, then runs the command.
ENTRYPOINT ["/ros_entrypoint.sh"]
CMD ["axon-edge", "run"]
