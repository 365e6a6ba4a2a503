"""Environment configs (``configs/<env>.yaml``) and recording templates (``configs/recording/*.yaml``).

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

import argparse
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from .base import ConfigError, SecretRef

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
TEMPLATE_DIR = CONFIG_DIR / "recording"
DEFAULT_ENV = "dev"
RECORDING_TEMPLATES = ("default", "camera_only", "lidar_only")

INSPECTION_RUNNERS = ("native", "ray", "ray-job", "kuberay")
CACHE_POLICIES = ("lru", "fifo", "manual")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_KEY = re.compile(r"(token|password|passwd|secret|api_key|apikey|access_key|private_key|credentials?)$", re.I)
_URL_PASSWORD = re.compile(r"://[^/@\s]*:[^/@\s]*@")
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
class EdgeCacheConfig:
    root: str = ".axon/edge-cache"
    max_size_gb: float | None = None
    policy: str = "lru"
    release_source: bool = False  # the cache takes ownership: the recorder's copy is removed once staged


@dataclass(frozen=True)
class ObjectStoreConfig:
    url: str = "file://.axon/cloud"
    endpoint_url: str | None = None


@dataclass(frozen=True)
class StorageConfig:
    edge_cache: EdgeCacheConfig = EdgeCacheConfig()
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
    upload_attempts: int = 5  # upload runs per dataset before the bandwidth sensor gives it up (AXON_MAX_UPLOAD_ATTEMPTS)


@dataclass(frozen=True)
class AxonConfig:
    env: str = DEFAULT_ENV
    source: str | None = None
    control_plane: ControlPlaneConfig = ControlPlaneConfig()
    storage: StorageConfig = StorageConfig()
    inspection: InspectionConfig = InspectionConfig()
    timeouts: TimeoutsConfig = TimeoutsConfig()
    retries: RetriesConfig = RetriesConfig()


# -- field checks (each takes the value and its dotted key) ----------------------------------------


def _fail(key: str, message: str):
    raise ConfigError(message, key=key)


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(key, f"must be a non-empty string, got {value!r}")
    if any(ord(ch) < 32 for ch in value):
        _fail(key, "contains control characters")
    return value


def _optional(check: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    return lambda value, key: None if value is None else check(value, key)


def _enum(*choices: str) -> Callable[[Any, str], str]:
    def check(value: Any, key: str) -> str:
        if value not in choices:
            _fail(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    return check


def _url(*schemes: str) -> Callable[[Any, str], str]:
    def check(value: Any, key: str) -> str:
        _str(value, key)
        if not value.startswith(tuple(f"{s}://" for s in schemes)) or any(ch.isspace() for ch in value):
            _fail(key, f"must be a {' or '.join(s + '://' for s in schemes)} URL, got {value!r}")
        return value

    return check


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(key, f"must be a number, got {value!r}")
    return float(value)


def _positive(value: Any, key: str) -> float:
    if _number(value, key) <= 0:
        _fail(key, f"must be positive, got {value!r}")
    return float(value)


def _count(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _fail(key, f"must be a whole number >= 1, got {value!r}")
    return value


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        _fail(key, f"must be true or false, got {value!r}")
    return value


def _env_name(value: Any, key: str) -> str:
    if not isinstance(value, str) or not _ENV_NAME.match(value):
        _fail(key, f"must be an environment variable name (letters, digits, _), got {value!r}")
    return value


def _section(data: Any, key: str, fields: Mapping[str, Callable[[Any, str], Any]]) -> dict[str, Any]:
    """Validate one mapping: unknown keys refused, each present key checked. Returns {field: value}."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        _fail(key or "<top level>", f"must be a mapping, got {type(data).__name__}")
    out: dict[str, Any] = {}
    for name, value in data.items():
        dotted = f"{key}.{name}" if key else str(name)
        if name not in fields:
            _fail(dotted, f"unknown key; known keys here: {', '.join(fields)}")
        out[name] = fields[name](value, dotted)
    return out


def _nested(fields: Mapping[str, Callable[[Any, str], Any]]) -> Callable[[Any, str], dict[str, Any]]:
    return lambda value, key: _section(value, key, fields)


def _refuse_literal_secrets(data: Any, key: str = "") -> None:
    """Refuse a secret-looking key with a literal value, and URLs with a password, anywhere in the tree."""
    if isinstance(data, Mapping):
        for name, value in data.items():
            dotted = f"{key}.{name}" if key else str(name)
            if isinstance(name, str) and value is not None and not name.endswith(("_env", "_file")):
                if _SECRET_KEY.search(name) and not isinstance(value, Mapping):
                    _fail(dotted, f"secrets are never read from the YAML; use {name}_env (an environment "
                                  f"variable name) or {name}_file (a path to a file holding it)")
            _refuse_literal_secrets(value, dotted)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            _refuse_literal_secrets(item, f"{key}[{i}]")
    elif isinstance(data, str) and _URL_PASSWORD.search(data):
        _fail(key, f"URL contains a password; secrets are never read from the YAML: use {key.rsplit('.', 1)[-1]}_env "
                   "or _file")


# -- the schema ------------------------------------------------------------------------------------

_SCHEMA: dict[str, Callable[[Any, str], Any]] = {
    "control_plane": _nested({
        "url": _url("http", "https"),
        "admin_token_env": _optional(_env_name),
        "admin_token_file": _optional(_str),
        "admin_token_required": _bool,
        "database_url": _optional(_str),
        "database_url_env": _optional(_env_name),
        "database_url_file": _optional(_str),
    }),
    "storage": _nested({
        "edge_cache": _nested({
            "root": _str,
            "max_size_gb": _optional(_positive),
            "policy": _enum(*CACHE_POLICIES),
            "release_source": _bool,
        }),
        "object_store": _nested({
            "url": _url("file", "s3", "gs", "az"),
            "endpoint_url": _optional(_url("http", "https")),
        }),
    }),
    "inspection": _nested({
        "runner": _enum(*INSPECTION_RUNNERS),
        "ray_address": _optional(_str),
    }),
    "timeouts": _nested({
        "control_plane_seconds": _positive,
    }),
    "retries": _nested({
        "upload_attempts": _count,
    }),
}


def parse_config(data: Any, *, env: str = DEFAULT_ENV, source: str | None = None) -> AxonConfig:
    """Validate a parsed YAML document into an :class:`AxonConfig`; missing keys take the defaults."""
    try:
        if data is None:
            data = {}
        _refuse_literal_secrets(data)
        raw = _section(data, "", _SCHEMA)
        cp = dict(raw.get("control_plane", {}))
        admin = SecretRef(env=cp.pop("admin_token_env", "AXON_ADMIN_TOKEN"), file=cp.pop("admin_token_file", None),
                          key="control_plane.admin_token_file")
        db_secret = SecretRef(env=cp.pop("database_url_env", None), file=cp.pop("database_url_file", None),
                              key="control_plane.database_url_file")
        if (db_secret.env or db_secret.file) and cp.get("database_url"):
            _fail("control_plane.database_url", "set either database_url or database_url_env/_file, not both")
        if cp.get("admin_token_required") and not (admin.env or admin.file):
            _fail("control_plane.admin_token_required", "needs admin_token_env or admin_token_file")
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
                edge_cache=EdgeCacheConfig(**storage.get("edge_cache", {})),
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


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", source=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read file: {exc}", source=path) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", source=path) from None


def env_flag(name: str, default: bool, *, key: str, environ: Mapping[str, str] | None = None) -> bool:
    """A boolean ``AXON_*`` override of the config key ``key``: ``default`` when unset or empty,
    else 1/true/yes/on or 0/false/no/off (any case); anything else is refused (SettingError)."""
    from .environ import Env

    return Env(environ).flag(name, default, key=key)


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
    return parse_config(_read_yaml(path), env=name, source=str(path))


def selected_config(environ: Mapping[str, str] | None = None) -> AxonConfig:
    """The config the environment selects (``AXON_ENV`` / ``AXON_CONFIG_FILE``), else the built-in
    defaults (:class:`AxonConfig`): what every process's settings start from."""
    return load_config(environ=environ) if config_selected(environ) else AxonConfig()


# -- recording templates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateTopic:
    name: str
    message_type: str
    batch_size: int = 100
    flush_interval_ms: int = 1000


@dataclass(frozen=True)
class RecordingTemplate:
    name: str
    description: str
    topics: tuple[TemplateTopic, ...]
    max_disk_usage_gb: float | None = None

    @property
    def topic_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.topics)


def _topic_name(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or value == "/" or any(
        ch.isspace() or ord(ch) < 32 for ch in value
    ):
        _fail(key, f"a ROS topic name starts with '/' and has no whitespace, got {value!r}")
    return value


_TOPIC_FIELDS = {"name": _topic_name, "message_type": _str, "batch_size": _count, "flush_interval_ms": _count}


def parse_recording_template(data: Any, *, name: str, source: str | None = None) -> RecordingTemplate:
    try:
        if not isinstance(data, Mapping):
            _fail("<top level>", f"must be a mapping, got {type(data).__name__}")
        _refuse_literal_secrets(data)
        raw = _section(data, "", {
            "name": _str,
            "description": _str,
            "topics": lambda v, k: v,
            "recording": _nested({"max_disk_usage_gb": _optional(_positive)}),
        })
        if raw.get("name", name) != name:
            _fail("name", f"must match the file name {name!r}, got {raw['name']!r}")
        topics_raw = raw.get("topics")
        if not isinstance(topics_raw, list) or not topics_raw:
            _fail("topics", "must be a non-empty list of topics")
        topics = []
        for i, item in enumerate(topics_raw):
            fields = _section(item, f"topics[{i}]", _TOPIC_FIELDS)
            for required in ("name", "message_type"):
                if required not in fields:
                    _fail(f"topics[{i}].{required}", "missing")
            topics.append(TemplateTopic(**fields))
        names = [t.name for t in topics]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            _fail("topics", f"lists {dup} more than once")
        return RecordingTemplate(
            name=name,
            description=raw.get("description", ""),
            topics=tuple(topics),
            max_disk_usage_gb=raw.get("recording", {}).get("max_disk_usage_gb"),
        )
    except ConfigError as exc:
        if source is None or exc.source:
            raise
        raise ConfigError(str(exc).removeprefix("config: ").removeprefix(f"{exc.key}: " if exc.key else ""),
                          key=exc.key, source=source) from None


def recording_template(name: str, *, directory: str | os.PathLike | None = None) -> RecordingTemplate:
    """The recording template ``name`` (one of :data:`RECORDING_TEMPLATES`); unknown names refused."""
    if name not in RECORDING_TEMPLATES:
        raise ConfigError(f"unknown recording template {name!r}; expected one of {', '.join(RECORDING_TEMPLATES)}",
                          key="recording_template")
    path = Path(directory or TEMPLATE_DIR) / f"{name}.yaml"
    return parse_recording_template(_read_yaml(path), name=name, source=str(path))


# -- CLI -------------------------------------------------------------------------------------------


def _summary(cfg: AxonConfig, environ: Mapping[str, str]) -> list[str]:
    cp = cfg.control_plane
    token = cp.admin_token.resolve(environ)
    if cp.admin_token_required and not token:
        raise ConfigError(f"the admin token is required but not set ({cp.admin_token.describe()})",
                          key="control_plane.admin_token_env", source=cfg.source)
    db = cp.resolve_database_url(environ)
    if db is None:
        raise ConfigError(f"the database URL is not set ({cp.database_url_secret.describe()})",
                          key="control_plane.database_url_env", source=cfg.source)
    s, i = cfg.storage, cfg.inspection
    return [
        f"config OK: env={cfg.env} file={cfg.source}",
        f"  control_plane.url = {cp.url}; admin token: {'set' if token else 'unset'} ({cp.admin_token.describe()})",
        f"  database: {'from ' + cp.database_url_secret.describe() if cp.database_url is None else cp.database_url}",
        f"  storage.edge_cache = {s.edge_cache.root} (max {s.edge_cache.max_size_gb} GB, {s.edge_cache.policy}"
        f"{', release_source' if s.edge_cache.release_source else ''})",
        f"  storage.object_store = {s.object_store.url}" + (f" via {s.object_store.endpoint_url}" if s.object_store.endpoint_url else ""),
        f"  inspection.runner = {i.runner}" + (f" at {i.ray_address}" if i.ray_address else ""),
        f"  timeouts.control_plane_seconds = {cfg.timeouts.control_plane_seconds}; "
        f"retries.upload_attempts = {cfg.retries.upload_attempts}",
        f"  recording templates: {', '.join(RECORDING_TEMPLATES)}",
    ]


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m axon_dagster.settings", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate the selected config and the recording templates")
    check.add_argument("--env", default=None, help="config name (default: AXON_ENV, else dev)")
    check.add_argument("--file", default=None, help="config file (default: AXON_CONFIG_FILE, else configs/<env>.yaml)")
    args = parser.parse_args(argv)
    environ = dict(os.environ if environ is None else environ)
    if args.file:
        environ["AXON_CONFIG_FILE"] = args.file
    try:
        cfg = load_config(None if args.file else args.env, environ=environ)
        for name in RECORDING_TEMPLATES:
            recording_template(name)
        lines = _summary(cfg, environ)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
