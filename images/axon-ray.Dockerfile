# syntax=docker/dockerfile:1.7
# axon-ray: Ray head/worker for Daft inspection (KubeRay RayCluster of the axon-cloud chart) and
# the RayJob submitter. Ray comes from the base image; Daft, Lance and the axon_dagster package
# (for `python -m axon_dagster.inspection.job`) are added. No Dagster.
#   docker build -f images/axon-ray.Dockerfile -t axon-ray:0.1.0 .
# Python 3.11 like axon-dagster: a Ray driver (the `ray` runner in a Dagster pod) must run the
# cluster's Python minor version. Pin by digest in production:
#   --build-arg RAY_IMAGE=rayproject/ray:2.59.0-py311@sha256:...
ARG RAY_IMAGE=rayproject/ray:2.59.0-py311

FROM ${RAY_IMAGE} AS build
WORKDIR /home/ray/src
COPY --chown=1000:100 pyproject.toml README.md* ./
COPY --chown=1000:100 axon_dagster ./axon_dagster
COPY --chown=1000:100 edge ./edge
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /home/ray/wheels .

FROM ${RAY_IMAGE} AS runtime
COPY --from=build --chown=1000:100 /home/ray/wheels /home/ray/wheels
# ray stays the base image's 2.59.0; the rest matches pyproject's sim/cloud extras.
RUN pip install --no-cache-dir \
      "ray[default]==2.59.0" \
      "daft[lance,ray]==0.7.26" \
      "pylance>=14,<15" \
      "pyarrow>=17,<26" \
      "boto3>=1.34" \
      "axon-dagster[sim] @ file://$(ls /home/ray/wheels/axon_dagster-*.whl)" \
 && rm -rf /home/ray/wheels \
 && python -c "import daft, lance, ray, axon_dagster.inspection; assert ray.__version__ == '2.59.0'"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# rayproject/ray's non-root `ray` user (uid 1000, gid 100); the chart runs Ray pods as it.
USER 1000:100
