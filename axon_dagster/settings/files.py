"""Environment configs (``configs/<env>.yaml``); the recording templates are :mod:`.templates`.

``AXON_ENV`` (``dev`` | ``prod``, default ``dev``) selects ``configs/<env>.yaml``; ``AXON_CONFIG_FILE``
overrides the path. :func:`load_config` validates the file by hand and raises :class:`ConfigError`
naming the bad key as a dotted path (``inspection.runner``). Secrets are never read from the YAML:
a secret-looking key (``*token``, ``*password``, ``*secret``, ...) with a literal value, or a URL
with a password in it, is refused; reference a secret by environment-variable name
(``admin_token_env: AXON_ADMIN_TOKEN``) or by file (``admin_token_file: /run/secrets/admin-token``).

Import-light on purpose (stdlib + PyYAML only). The one reader of ``configs/`` (the settings
sections in this package turn it into each process's typed settings).

    python -m axon_dagster.settings check [--env prod] [--file PATH]   # exit 2 with the message on bad config
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .base import ConfigError, SecretRef
from .checks import boolean, count, enum, env_name, fail, nested, optional, positive, read_yaml, refuse_literal_secrets, retired, section, text, url

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
DEFAULT_ENV = "dev"

INSPECTION_RUNNERS = ("native", "ray", "ray-job", "kuberay")

_CONFIG_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


# -- the typed result -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ControlPlaneConfig:
    url: str = "http://127.0.0.1:8000"
    admin_token: SecretRef = SecretRef(env="AXON_ADMIN_TOKEN")
    admin_token_required: bool = False
    database_url: str | None = "sqlite:///.axon/control-plane.db"  # literal: only without a password
    database_url_secret: SecretRef = SecretRef()

    def resolve_database_url(self, environ: Mapping[str, str] | None = None) -> str | None:
        return self.database_url_secret.resolve(environ) or self.database_url


@dataclass(frozen=True)
class ObjectStoreConfig:
    url: str = "file://.axon/cloud"
    endpoint_url: str | None = None


@dataclass(frozen=True)
class StorageConfig:
    object_store: ObjectStoreConfig = ObjectStoreConfig()


@dataclass(frozen=True)
class InspectionConfig:
    runner: str = "native"
    ray_address: str | None = None


@dataclass(frozen=True)
class TimeoutsConfig:
    control_plane_seconds: float = 10.0  # the code location's requests to the control-plane API


@dataclass(frozen=True)
class RetriesConfig:
    upload_attempts: int = 5  # data_flow runs per staged dataset before staged_dataset_sensor gives it up (AXON_MAX_UPLOAD_ATTEMPTS)


@dataclass(frozen=True)
class AxonConfig:
    env: str = DEFAULT_ENV
    source: str | None = None
    control_plane: ControlPlaneConfig = ControlPlaneConfig()
    storage: StorageConfig = StorageConfig()
    inspection: InspectionConfig = InspectionConfig()
    timeouts: TimeoutsConfig = TimeoutsConfig()
    retries: RetriesConfig = RetriesConfig()


# -- the schema ------------------------------------------------------------------------------------

_SCHEMA: dict[str, Callable[[Any, str], Any]] = {
    "control_plane": nested({
        "url": url("http", "https"),
        "admin_token_env": optional(env_name),
        "admin_token_file": optional(text),
        "admin_token_required": boolean,
        "database_url": optional(text),
        "database_url_env": optional(env_name),
        "database_url_file": optional(text),
    }),
    "storage": nested({
        # Each robot's edge agent keeps its own cache (AXON_EDGE_CACHE_*, the axon-edge chart's edgeCache).
        "edge_cache": retired("the edge cache lives on each robot now: set AXON_EDGE_CACHE_* on its edge agent "
                              "(the axon-edge chart's edgeCache values); the cloud keeps no cache of robots' recordings"),
        "object_store": nested({
            "url": url("file", "s3", "gs", "az"),
            "endpoint_url": optional(url("http", "https")),
        }),
    }),
    "inspection": nested({
        "runner": enum(*INSPECTION_RUNNERS),
        "ray_address": optional(text),
    }),
    "timeouts": nested({
        "control_plane_seconds": positive,
    }),
    "retries": nested({
        "upload_attempts": count,
    }),
}


def parse_config(data: Any, *, env: str = DEFAULT_ENV, source: str | None = None) -> AxonConfig:
    """Validate a parsed YAML document into an :class:`AxonConfig`; missing keys take the defaults."""
    try:
        if data is None:
            data = {}
        refuse_literal_secrets(data)
        raw = section(data, "", _SCHEMA)
        cp = dict(raw.get("control_plane", {}))
        admin = SecretRef(env=cp.pop("admin_token_env", "AXON_ADMIN_TOKEN"), file=cp.pop("admin_token_file", None),
                          key="control_plane.admin_token_file")
        db_secret = SecretRef(env=cp.pop("database_url_env", None), file=cp.pop("database_url_file", None),
                              key="control_plane.database_url_file")
        if (db_secret.env or db_secret.file) and cp.get("database_url"):
            fail("control_plane.database_url", "set either database_url or database_url_env/_file, not both")
        if cp.get("admin_token_required") and not (admin.env or admin.file):
            fail("control_plane.admin_token_required", "needs admin_token_env or admin_token_file")
        if db_secret.env or db_secret.file:
            cp["database_url"] = None
        control_plane = ControlPlaneConfig(admin_token=admin, database_url_secret=db_secret, **cp)

        storage = raw.get("storage", {})
        insp = dict(raw.get("inspection", {}))
        return AxonConfig(
            env=env,
            source=source,
            control_plane=control_plane,
            storage=StorageConfig(
                object_store=ObjectStoreConfig(**storage.get("object_store", {})),
            ),
            inspection=InspectionConfig(**insp),
            timeouts=TimeoutsConfig(**raw.get("timeouts", {})),
            retries=RetriesConfig(**raw.get("retries", {})),
        )
    except ConfigError as exc:
        if source is None or exc.source:
            raise
        raise ConfigError(str(exc).removeprefix("config: ").removeprefix(f"{exc.key}: " if exc.key else ""),
                          key=exc.key, source=source) from None


def config_selected(environ: Mapping[str, str] | None = None) -> bool:
    """True when the environment picks a config file (``AXON_ENV`` or ``AXON_CONFIG_FILE`` set)."""
    env = os.environ if environ is None else environ
    return bool(env.get("AXON_ENV", "").strip() or env.get("AXON_CONFIG_FILE", "").strip())


def config_path(env: str | None = None, environ: Mapping[str, str] | None = None) -> tuple[str, Path]:
    """(env name, file) selected by the arguments, then ``AXON_CONFIG_FILE`` / ``AXON_ENV``."""
    environ = os.environ if environ is None else environ
    name = (env or environ.get("AXON_ENV", "").strip() or DEFAULT_ENV)
    if not _CONFIG_NAME.match(name):
        raise ConfigError(f"AXON_ENV must be a config name like dev or prod, got {name!r}")
    override = environ.get("AXON_CONFIG_FILE", "").strip()
    if override and env is None:
        return name, Path(override)
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise ConfigError(f"AXON_ENV={name!r}: no {path}; available: {', '.join(available) or 'none'}")
    return name, path


def load_config(env: str | None = None, *, environ: Mapping[str, str] | None = None) -> AxonConfig:
    """Load and validate the selected environment config (see the module docstring)."""
    name, path = config_path(env, environ)
    return parse_config(read_yaml(path), env=name, source=str(path))


def selected_config(environ: Mapping[str, str] | None = None) -> AxonConfig:
    """The config the environment selects (``AXON_ENV`` / ``AXON_CONFIG_FILE``), else the built-in
    defaults (:class:`AxonConfig`): what every process's settings start from."""
    return load_config(environ=environ) if config_selected(environ) else AxonConfig()
