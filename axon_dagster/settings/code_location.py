"""Settings of the Dagster code location: one typed model, :class:`CodeLocationSettings`.

Each section is a frozen dataclass with ``load(environ=None, config=None)``: its value comes from
the ``AXON_*`` variable when set, else from the selected config file's key (``configs/<env>.yaml``,
when ``AXON_ENV`` / ``AXON_CONFIG_FILE`` picks one), else the built-in default. Modules that need
one section load just that section (cheap: no file is read unless a config is selected);
:func:`load_code_location_settings` loads them all, which the code location does once at start-up
so a bad value stops it with the variable's or the key's name.

To add a setting: add a field to the section it belongs to (or a new section, listed in
:class:`CodeLocationSettings`), read it in that section's ``load`` with :class:`~.environ.Env`,
document the variable in the README's table, and test it in ``tests/config``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

from .base import SecretRef
from .environ import Env
from .files import AxonConfig, selected_config

Environ = Mapping[str, str] | None


def _config(environ: Environ, config: AxonConfig | None) -> AxonConfig:
    return config if config is not None else selected_config(environ)


def absolute_file_url(url: str) -> str:
    """``file://relative`` made absolute against the working directory; other URLs unchanged."""
    if url.startswith("file://") and not url.startswith("file:///"):
        return "file://" + os.path.abspath(url[len("file://") :])
    return url


@dataclass(frozen=True)
class ControlPlaneSettings:
    """How the code location reaches the control-plane API. The token is a reference, resolved at
    run time (``token.resolve()``), so a rotated Secret needs no restart."""

    url: str = "http://127.0.0.1:8000"
    token: SecretRef = SecretRef(env="AXON_ADMIN_TOKEN")
    timeout_seconds: float = 10.0

    @classmethod
    def load(cls, environ: Environ = None, config: AxonConfig | None = None) -> ControlPlaneSettings:
        cfg = _config(environ, config)
        cp = cfg.control_plane
        return cls(
            url=Env(environ).text("AXON_CONTROL_PLANE_URL", cp.url),
            token=SecretRef(env=cp.admin_token.env or "AXON_ADMIN_TOKEN", file=cp.admin_token.file,
                            key="control_plane.admin_token_file"),
            timeout_seconds=cfg.timeouts.control_plane_seconds,
        )


@dataclass(frozen=True)
class ObjectStoreSettings:
    url: str = "file://.axon/cloud"  # a file:// URL is absolute once loaded
    endpoint_url: str | None = None

    @classmethod
    def load(cls, environ: Environ = None, config: AxonConfig | None = None) -> ObjectStoreSettings:
        env, store = Env(environ), _config(environ, config).storage.object_store
        return cls(
            url=absolute_file_url(env.text("AXON_OBJECT_STORE_URL", store.url)),
            endpoint_url=env.text("AWS_ENDPOINT_URL", store.endpoint_url),
        )


@dataclass(frozen=True)
class InspectionSettings:
    runner: str = "native"
    ray_address: str | None = None

    @classmethod
    def load(cls, environ: Environ = None, config: AxonConfig | None = None) -> InspectionSettings:
        env, insp = Env(environ), _config(environ, config).inspection
        return cls(runner=env.text("AXON_INSPECTION_RUNNER", insp.runner),
                   ray_address=env.text("AXON_RAY_ADDRESS", insp.ray_address))


@dataclass(frozen=True)
class UploadSettings:
    """Which robots may upload (the upload grant sensor) and how many data_flow attempts a staged
    dataset gets; where the uploaders keep state and how fast they send: :class:`~.storage.UploaderSettings`."""

    min_bandwidth_mbps: float = 10.0  # grant only while the robot reports at least this uplink
    max_upload_attempts: int = 5
    grant_ttl_seconds: int = 900  # how long a robot's upload grant lasts (re-granted when it expires)
    max_grants_per_robot: int = 1  # active upload grants a robot may hold at once

    @classmethod
    def load(cls, environ: Environ = None, config: AxonConfig | None = None) -> UploadSettings:
        env = Env(environ)
        retries = _config(environ, config).retries
        return cls(
            min_bandwidth_mbps=env.number("AXON_MIN_BANDWIDTH_MBPS", cls.min_bandwidth_mbps, minimum=0),
            max_upload_attempts=env.integer("AXON_MAX_UPLOAD_ATTEMPTS", retries.upload_attempts, minimum=1,
                                            key="retries.upload_attempts"),
            grant_ttl_seconds=env.integer("AXON_UPLOAD_GRANT_TTL_SECONDS", cls.grant_ttl_seconds, minimum=10),
            max_grants_per_robot=env.integer("AXON_MAX_GRANTS_PER_ROBOT", cls.max_grants_per_robot, minimum=1),
        )


@dataclass(frozen=True)
class DataFlowSettings:
    workdir: str = ".axon/data-flow"  # where data_flow runs ingest staged recordings (absolute once loaded)
    staging_rejected: str = "delete"  # what happens to a rejected dataset's staged files: delete | keep
    # Ingest a recording while the robot uploads it (stores that can be read before an upload
    # completes: the embedded file:// store); a run gives up on an upload that stalls this long.
    follow_uploads: bool = True
    follow_stall_seconds: float = 30.0

    @classmethod
    def load(cls, environ: Environ = None, config: AxonConfig | None = None) -> DataFlowSettings:
        env = Env(environ)
        return cls(
            workdir=os.path.abspath(env.text("AXON_DATA_FLOW_DIR", cls.workdir)),
            staging_rejected=env.choice("AXON_STAGING_REJECTED", cls.staging_rejected, ("delete", "keep")),
            follow_uploads=env.flag("AXON_DATA_FLOW_FOLLOW_UPLOADS", cls.follow_uploads),
            follow_stall_seconds=env.number("AXON_DATA_FLOW_FOLLOW_STALL_SECONDS", cls.follow_stall_seconds, positive=True),
        )


@dataclass(frozen=True)
class ReviewSettings:
    rejected_policy: str = "archive"  # what dispose_rejected does with a human-rejected dataset

    @classmethod
    def load(cls, environ: Environ = None, config: AxonConfig | None = None) -> ReviewSettings:
        return cls(rejected_policy=Env(environ).choice("AXON_REVIEW_REJECTED_POLICY", cls.rejected_policy,
                                                       ("archive", "delete")))


@dataclass(frozen=True)
class RecordingPolicySettings:
    config_dir: str = ".axon/recording-configs"  # absolute once loaded

    @classmethod
    def load(cls, environ: Environ = None, config: AxonConfig | None = None) -> RecordingPolicySettings:
        return cls(config_dir=os.path.abspath(Env(environ).text("AXON_RECORDING_CONFIG_DIR", cls.config_dir)))


@dataclass(frozen=True)
class AlertSettings:
    """The run-failure alert policy."""

    failure_ratio: float = 0.2
    window_seconds: int = 1800
    min_runs: int = 5
    webhook_url: str = ""  # "" = no webhook

    @classmethod
    def load(cls, environ: Environ = None, config: AxonConfig | None = None) -> AlertSettings:
        env = Env(environ)
        return cls(
            failure_ratio=env.number("AXON_ALERT_FAILURE_RATIO", cls.failure_ratio, minimum=0, maximum=1),
            window_seconds=env.integer("AXON_ALERT_WINDOW_SECONDS", cls.window_seconds, minimum=1),
            min_runs=env.integer("AXON_ALERT_MIN_RUNS", cls.min_runs, minimum=1),
            webhook_url=env.text("AXON_ALERT_WEBHOOK_URL", cls.webhook_url),
        )


@dataclass(frozen=True)
class MetricsSettings:
    """The code location's Prometheus endpoint (off unless a port is set)."""

    port: int | None = None
    addr: str = "0.0.0.0"

    @classmethod
    def load(cls, environ: Environ = None, config: AxonConfig | None = None) -> MetricsSettings:
        env = Env(environ)
        return cls(port=env.integer("AXON_METRICS_PORT", None, minimum=0, expected="a port number"),
                   addr=env.text("AXON_METRICS_ADDR", cls.addr))


@dataclass(frozen=True)
class CodeLocationSettings:
    """Everything the code location reads from its environment and config file."""

    config: AxonConfig = field(default_factory=AxonConfig)
    control_plane: ControlPlaneSettings = ControlPlaneSettings()
    object_store: ObjectStoreSettings = ObjectStoreSettings()
    inspection: InspectionSettings = InspectionSettings()
    upload: UploadSettings = UploadSettings()
    data_flow: DataFlowSettings = DataFlowSettings()
    review: ReviewSettings = ReviewSettings()
    recording_policy: RecordingPolicySettings = RecordingPolicySettings()
    alerts: AlertSettings = AlertSettings()
    metrics: MetricsSettings = MetricsSettings()


SECTIONS = {  # field of CodeLocationSettings -> its loader
    "control_plane": ControlPlaneSettings.load, "object_store": ObjectStoreSettings.load,
    "inspection": InspectionSettings.load, "upload": UploadSettings.load,
    "data_flow": DataFlowSettings.load, "review": ReviewSettings.load, "recording_policy": RecordingPolicySettings.load,
    "alerts": AlertSettings.load, "metrics": MetricsSettings.load,
}


def load_code_location_settings(environ: Environ = None) -> CodeLocationSettings:
    """Every section, validated (the config file read once). Raises ConfigError / SettingError
    naming the key or variable."""
    config = selected_config(environ)
    return CodeLocationSettings(config=config, **{name: load(environ, config) for name, load in SECTIONS.items()})
