"""Settings of the control-plane API, read from ``AXON_*`` environment variables.

Deliberately tiny and free of pydantic: the edge agent imports the package too, and a robot should
not pay for a settings framework to read two variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

DEFAULT_DATABASE_URL = "sqlite:///.axon/control-plane.db"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    # None means the admin API is open: acceptable for the embedded single-machine default only.
    admin_token: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    def __repr__(self) -> str:  # never print the token into logs
        token = "set" if self.admin_token else "unset"
        return f"Settings(database_url={self.database_url!r}, admin_token=<{token}>, max_body_bytes={self.max_body_bytes})"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``AXON_DATABASE_URL``, ``AXON_ADMIN_TOKEN`` and ``AXON_MAX_BODY_BYTES``; empty means unset."""
    env = os.environ if environ is None else environ
    raw_limit = env.get("AXON_MAX_BODY_BYTES", "").strip()
    try:
        max_body = int(raw_limit) if raw_limit else DEFAULT_MAX_BODY_BYTES
    except ValueError:
        raise ValueError(f"AXON_MAX_BODY_BYTES must be an integer number of bytes, got {raw_limit!r}") from None
    if max_body <= 0:
        raise ValueError(f"AXON_MAX_BODY_BYTES must be positive, got {max_body}")
    database_url = env.get("AXON_DATABASE_URL", "").strip() or None
    admin_token = env.get("AXON_ADMIN_TOKEN", "").strip() or None
    from axon_dagster.config import ConfigError, config_selected, load_config  # stdlib + PyYAML only

    if config_selected(env):
        # AXON_ENV / AXON_CONFIG_FILE picks configs/<env>.yaml: its values are the defaults.
        cp = load_config(environ=env).control_plane
        database_url = database_url or cp.resolve_database_url(env)
        if database_url is None:
            raise ConfigError(f"no database URL: set {cp.database_url_secret.describe()}", key="control_plane.database_url_env")
        admin_token = admin_token or cp.admin_token.resolve(env)
        if cp.admin_token_required and admin_token is None:
            raise ConfigError(f"the admin token is required: set {cp.admin_token.describe()}", key="control_plane.admin_token_env")
    return Settings(
        database_url=database_url or DEFAULT_DATABASE_URL,
        admin_token=admin_token,
        max_body_bytes=max_body,
    )
