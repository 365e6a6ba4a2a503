# syntax=docker/dockerfile:1.7
# axon-dagster: Dagster code location (gRPC on 3030), control-plane API (8000) and the image of
# every Dagster run pod. Build from the repository root:
#   docker build -f images/axon-dagster.Dockerfile -t axon-dagster:0.1.0 .
# Python 3.11 like the edge image: the ROS 2 wheels (the `ros2` recorder transport) are cp311 only,
# and the Ray image must run the same minor version for a Ray driver here to join its cluster.
# Pin by digest in production: --build-arg PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:...
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# README.md* : pyproject names it as the long description; the glob keeps the build working
# on a tree without it.
COPY pyproject.toml README.md* ./
COPY axon_dagster ./axon_dagster
COPY edge ./edge
RUN pip install ".[cloud]" \
 && python -c "import axon_dagster, dagster, dagster_k8s, dagster_postgres, daft, ray"

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 axon \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/axon --create-home --shell /usr/sbin/nologin axon \
 && mkdir -p /opt/dagster/dagster_home \
 && chown -R 10001:10001 /opt/dagster
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home
# No secrets here: tokens, database URL and S3 keys come from Kubernetes Secrets at run time.
USER 10001:10001
WORKDIR /home/axon
EXPOSE 3030 8000
CMD ["dagster", "api", "grpc", "-m", "axon_dagster.defs", "--host", "0.0.0.0", "--port", "3030"]
