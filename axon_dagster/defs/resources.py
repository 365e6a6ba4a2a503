"""Dagster resources: thin, configurable wrappers that hand out our adapters.

Their values come from the code location's settings (:mod:`axon_dagster.settings.code_location`:
``AXON_*`` variables over the selected config file over the defaults), so the same code location
runs on a laptop and in a cluster; secrets are resolved at run time, never stored in run config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import dagster as dg
from pydantic import Field

from axon_dagster.domain import Requirements

if TYPE_CHECKING:
    from axon_dagster.settings.code_location import CodeLocationSettings


class ControlPlaneResource(dg.ConfigurableResource):
    """The control-plane API: orders, tasks, events and dataset records."""

    url: str = Field(default="http://127.0.0.1:8000", description="Base URL of the control-plane API")
    token_env_var: str = Field(default="AXON_ADMIN_TOKEN", description="Environment variable holding the admin token")
    token_file: Optional[str] = Field(default=None, description="File holding the admin token (when the env var is unset)")
    timeout_seconds: float = 10.0

    def token(self) -> str | None:
        """The admin token, resolved now (the variable, else the file): a rotated Secret needs no restart."""
        from axon_dagster.settings import SecretRef

        return SecretRef(env=self.token_env_var, file=self.token_file, key="token_file").resolve()

    def client(self):
        from axon_dagster.client import ControlPlaneClient

        return ControlPlaneClient(self.url, token=self.token(), timeout=self.timeout_seconds)


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

    def inspect(self, dataset_path: str, requirements: Requirements, *, verify_digest: bool = True):
        """``verify_digest=False``: the files were just checked against the sidecar (or written with it)."""
        from axon_dagster.inspection import inspect_recording

        return inspect_recording(dataset_path, requirements, runner=self.runner, ray_address=self.ray_address,
                                 verify_digest=verify_digest)


def resources_from_env(settings: CodeLocationSettings | None = None) -> dict[str, dg.ConfigurableResource]:
    """The resources of the code location's settings (loaded now when not given)."""
    from axon_dagster.settings import load_code_location_settings

    s = settings or load_code_location_settings()
    cp, insp = s.control_plane, s.inspection
    return {
        "control_plane": ControlPlaneResource(
            url=cp.url, token_env_var=cp.token.env or "AXON_ADMIN_TOKEN", token_file=cp.token.file,
            timeout_seconds=cp.timeout_seconds,
        ),
        "object_store": ObjectStoreResource(url=s.object_store.url, endpoint_url=s.object_store.endpoint_url),
        "inspection": InspectionResource(runner=insp.runner, ray_address=insp.ray_address),
    }
