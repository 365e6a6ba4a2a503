"""Dagster resources: thin, configurable wrappers that hand out our adapters.

Defaults come from the AXON_* environment (see docs/contracts.md) so the same code location runs
on a laptop and in a cluster; secrets are read from the environment at run time, never from config.
"""

from __future__ import annotations

import os
from typing import Optional

import dagster as dg
from pydantic import Field

from axon_dagster.domain import Requirements


class ControlPlaneResource(dg.ConfigurableResource):
    """The control-plane API: orders, tasks, events and dataset records."""

    url: str = Field(default="http://127.0.0.1:8000", description="Base URL of the control-plane API")
    token_env_var: str = Field(default="AXON_ADMIN_TOKEN", description="Environment variable holding the admin token")
    token_file: Optional[str] = Field(default=None, description="File holding the admin token (when the env var is unset)")
    timeout_seconds: float = 10.0

    def client(self):
        from axon_dagster.client import ControlPlaneClient
        from axon_dagster.config import SecretRef

        token = SecretRef(env=self.token_env_var, file=self.token_file, key="token_file").resolve()
        return ControlPlaneClient(self.url, token=token, timeout=self.timeout_seconds)


class EdgeCacheResource(dg.ConfigurableResource):
    """Where recordings are staged before inspection and upload."""

    root: str = Field(default=".axon/edge-cache", description="Edge cache directory")
    max_size_gb: Optional[float] = Field(default=None, description="Quota; eviction never removes un-uploaded data")
    policy: str = Field(default="lru", description="lru | fifo | manual")
    retention_days: Optional[float] = Field(
        default=None, description="The retention schedule removes uploaded-and-verified or rejected datasets older than this"
    )
    delete_after_upload: bool = Field(default=False, description="Remove a dataset as soon as its upload is verified")
    release_source: bool = Field(
        default=False, description="Take ownership of a staged recording: remove the recorder's copy once the entry is durable"
    )

    def cache(self):
        from axon_dagster.storage.edge_cache import EdgeCache

        return EdgeCache(
            self.root,
            max_size_gb=self.max_size_gb,
            policy=self.policy,
            retention_days=self.retention_days,
            delete_after_upload=self.delete_after_upload,
            release_source=self.release_source,
        )


class ObjectStoreResource(dg.ConfigurableResource):
    """The cloud store datasets land in: file:///path (embedded default) or s3://bucket/prefix."""

    url: str = Field(default="file://.axon/cloud", description="file:///abs/path or s3://bucket/prefix")
    endpoint_url: Optional[str] = Field(default=None, description="S3-compatible endpoint (MinIO, moto, ...)")

    def store(self):
        from axon_dagster.storage.object_stores import object_store_from_url

        return object_store_from_url(self.url, endpoint_url=self.endpoint_url)


class InspectionResource(dg.ConfigurableResource):
    """How recordings are inspected: Daft native on this machine, or on a Ray cluster."""

    runner: str = Field(default="native", description="native | ray | ray-job | kuberay")
    ray_address: Optional[str] = Field(default=None, description="Ray address for the ray runners")

    def inspect(self, dataset_path: str, requirements: Requirements):
        from axon_dagster.inspection import inspect_recording

        return inspect_recording(dataset_path, requirements, runner=self.runner, ray_address=self.ray_address)


class RecorderResource(dg.ConfigurableResource):
    """A recorder's address. No job, sensor or schedule of the code location uses it (the cloud never
    calls a recorder: recordings are requested from robots through the control plane); kept while the
    demo and the config checks still build it, to be removed with the `recorder` settings section."""

    transport: str = Field(default="http", description="http | ros1 | ros2")
    url: str = Field(default="http://127.0.0.1:8080", description="Axon HTTP RPC base URL")
    namespace: str = Field(default="axon", description="ROS namespace of the recorder's services (ros1/ros2)")
    timeout_seconds: float = 5.0
    retry_attempts: int = 3

    def client(self):
        from axon_dagster.recorder.factory import recorder_from_config

        return recorder_from_config(
            transport=self.transport,
            url=self.url,
            timeout_seconds=self.timeout_seconds,
            retry_attempts=self.retry_attempts,
            namespace=self.namespace,
        )


def _absolute_file_url(url: str) -> str:
    if url.startswith("file://") and not url.startswith("file:///"):
        return "file://" + os.path.abspath(url[len("file://") :])
    return url


def resources_from_env() -> dict[str, dg.ConfigurableResource]:
    """Defaults from the selected environment config (``AXON_ENV`` / ``AXON_CONFIG_FILE``, see
    :mod:`axon_dagster.config`; built-in defaults when neither is set); ``AXON_*`` variables override."""
    from axon_dagster.config import AxonConfig, config_selected, env_flag, load_config

    cfg = load_config() if config_selected() else AxonConfig()
    cp, cache, store, insp, rec = cfg.control_plane, cfg.storage.edge_cache, cfg.storage.object_store, cfg.inspection, cfg.recorder
    env = os.environ.get
    max_gb = env("AXON_EDGE_CACHE_MAX_GB")
    retention_days = env("AXON_EDGE_CACHE_RETENTION_DAYS")
    return {
        "control_plane": ControlPlaneResource(
            url=env("AXON_CONTROL_PLANE_URL", cp.url),
            token_env_var=cp.admin_token.env or "AXON_ADMIN_TOKEN",
            token_file=cp.admin_token.file,
            timeout_seconds=cfg.timeouts.control_plane_seconds,
        ),
        "edge_cache": EdgeCacheResource(
            root=os.path.abspath(env("AXON_EDGE_CACHE_DIR", cache.root)),
            max_size_gb=float(max_gb) if max_gb else cache.max_size_gb,
            policy=env("AXON_EDGE_CACHE_POLICY", cache.policy),
            retention_days=float(retention_days) if retention_days else None,
            delete_after_upload=env_flag("AXON_EDGE_CACHE_DELETE_AFTER_UPLOAD", False, key="AXON_EDGE_CACHE_DELETE_AFTER_UPLOAD"),
            release_source=env_flag("AXON_EDGE_CACHE_RELEASE_SOURCE", cache.release_source, key="storage.edge_cache.release_source"),
        ),
        "object_store": ObjectStoreResource(
            url=_absolute_file_url(env("AXON_OBJECT_STORE_URL", store.url)),
            endpoint_url=env("AWS_ENDPOINT_URL") or store.endpoint_url,
        ),
        "inspection": InspectionResource(
            runner=env("AXON_INSPECTION_RUNNER", insp.runner), ray_address=env("AXON_RAY_ADDRESS") or insp.ray_address
        ),
        "recorder": RecorderResource(
            transport=env("AXON_RECORDER_TRANSPORT", rec.transport),
            url=env("AXON_RECORDER_URL", rec.url),
            namespace=env("AXON_RECORDER_NAMESPACE", rec.namespace),
            timeout_seconds=rec.timeout_seconds,
            retry_attempts=rec.retry_attempts,
        ),
    }
