"""Settings of the control-plane API process, read from ``AXON_*`` environment variables over the
selected config file's ``control_plane`` keys.

Free of pydantic on purpose: modules that robots run import this package too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from .base import SettingError
from .environ import Env

DEFAULT_DATABASE_URL = "sqlite:///.axon/control-plane.db"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_SESSION_HOURS = 12.0


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    # None means the admin API is open: acceptable for the embedded single-machine default only.
    admin_token: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Single sign-on: requests from these addresses (IPs or CIDRs) may name the signed-in person in
    # oauth2-proxy's forwarded headers; from anywhere else those headers are ignored.
    trusted_proxies: tuple[str, ...] = ()
    sso_default_role: str | None = None  # role of a proxy-vouched person with no pinned role (None: refused)
    cookie_secure: bool = True  # off only for the embedded default over plain http
    session_hours: float = DEFAULT_SESSION_HOURS

    def __repr__(self) -> str:  # never print the token into logs
        token = "set" if self.admin_token else "unset"
        return (
            f"Settings(database_url={self.database_url!r}, admin_token=<{token}>, max_body_bytes={self.max_body_bytes}, "
            f"trusted_proxies={self.trusted_proxies!r}, sso_default_role={self.sso_default_role!r}, "
            f"cookie_secure={self.cookie_secure!r}, session_hours={self.session_hours!r})"
        )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``AXON_DATABASE_URL``, ``AXON_ADMIN_TOKEN``, ``AXON_MAX_BODY_BYTES``, ``AXON_TRUSTED_PROXIES``,
    ``AXON_SSO_DEFAULT_ROLE``, ``AXON_COOKIE_SECURE`` and ``AXON_SESSION_HOURS`` over the selected
    config's ``control_plane`` keys; empty means unset. Errors name the variable or the key."""
    from .files import ConfigError, config_selected, load_config  # stdlib + PyYAML only

    env = Env(environ)
    mapping = os.environ if environ is None else environ
    max_body = env.integer("AXON_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, minimum=1, expected="an integer number of bytes")
    database_url = env.text("AXON_DATABASE_URL")
    admin_token = env.text("AXON_ADMIN_TOKEN")
    token_required = False
    if config_selected(mapping):
        # AXON_ENV / AXON_CONFIG_FILE picks configs/<env>.yaml: its values are the defaults.
        cp = load_config(environ=mapping).control_plane
        token_required = cp.admin_token_required
        database_url = database_url or cp.resolve_database_url(mapping)
        if database_url is None:
            raise ConfigError(f"no database URL: set {cp.database_url_secret.describe()}", key="control_plane.database_url_env")
        admin_token = admin_token or cp.admin_token.resolve(mapping)
        if token_required and admin_token is None:
            raise ConfigError(f"the admin token is required: set {cp.admin_token.describe()}", key="control_plane.admin_token_env")
    identity = _identity_settings(env)
    if not identity["cookie_secure"] and token_required:
        raise ConfigError("AXON_COOKIE_SECURE=0 is for the embedded default only (this environment requires authentication)",
                          key="AXON_COOKIE_SECURE")
    return Settings(
        database_url=database_url or DEFAULT_DATABASE_URL,
        admin_token=admin_token,
        max_body_bytes=max_body,
        **identity,  # type: ignore[arg-type]
    )


def _identity_settings(env: Env) -> dict[str, object]:
    import ipaddress

    proxies = env.items("AXON_TRUSTED_PROXIES")
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise SettingError(f"AXON_TRUSTED_PROXIES: {proxy!r} is not an IP address or network", name="AXON_TRUSTED_PROXIES") from None

    def role_of(value: str) -> str:
        if value.lower() not in ("none", "viewer", "reviewer", "admin"):
            raise ValueError(value)
        return value.lower()

    role = env.parsed("AXON_SSO_DEFAULT_ROLE", "none", role_of, "viewer, reviewer, admin or none")
    return {
        "trusted_proxies": proxies,
        "sso_default_role": None if role == "none" else role,
        "cookie_secure": env.flag("AXON_COOKIE_SECURE", True),
        "session_hours": env.number("AXON_SESSION_HOURS", DEFAULT_SESSION_HOURS, positive=True, maximum=24 * 30,
                                    expected="a number of hours"),
    }


ApiSettings = Settings  # the API process's typed settings (the older name stays for its importers)
load_api_settings = load_settings


MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own switch, read at its import


@dataclass(frozen=True)
class ServerSettings:
    """How the API is served: ``AXON_API_WORKERS`` uvicorn processes (None: the server decides from
    the database), and the directory their shared metrics live in (``PROMETHEUS_MULTIPROC_DIR``)."""

    workers: int | None = None
    metrics_dir: str | None = None

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        env = Env(environ)
        workers = env.integer("AXON_API_WORKERS", None, expected="a whole number of processes")
        if workers is not None and not 1 <= workers <= 64:
            raise SettingError(f"AXON_API_WORKERS must be between 1 and 64, got {workers}", name="AXON_API_WORKERS")
        return cls(workers=workers, metrics_dir=env.raw(MULTIPROCESS_ENV))
