"""The only reader of the process environment and of ``configs/*.yaml``.

One typed model per process, validated at start-up (a bad value stops the process with the name of
the variable or the dotted config key):

- the control-plane API: :class:`ApiSettings` (:func:`load_api_settings`), in :mod:`.api`;
- the Dagster code location: :class:`CodeLocationSettings` (:func:`load_code_location_settings`),
  in :mod:`.code_location`, made of sections a module can load on its own;
- command-line tools and helpers shared by several processes: :mod:`.tools`;
- the edge agent keeps its own small settings module (``edge/axon_edge/settings.py``): robots do
  not load this package's config files.

Where a value comes from, first match wins: the ``AXON_*`` environment variable, then the config
file the environment selects (``AXON_ENV`` / ``AXON_CONFIG_FILE``, :mod:`.files`), then the built-in
default. :mod:`.environ` is the one place that touches ``os.environ``; ``tests/architecture``
fails on a read anywhere else. Stdlib + PyYAML only: cheap to import anywhere.
"""

from .api import DEFAULT_DATABASE_URL, DEFAULT_MAX_BODY_BYTES, DEFAULT_SESSION_HOURS, Settings, load_settings
from .base import ConfigError, SecretRef, SettingError
from .code_location import CodeLocationSettings, load_code_location_settings
from .environ import Env, child_environ, export
from .files import AxonConfig, load_config, selected_config

ApiSettings = Settings
load_api_settings = load_settings

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_SESSION_HOURS",
    "ApiSettings",
    "AxonConfig",
    "CodeLocationSettings",
    "ConfigError",
    "Env",
    "SecretRef",
    "SettingError",
    "Settings",
    "child_environ",
    "export",
    "load_api_settings",
    "load_code_location_settings",
    "load_config",
    "load_settings",
    "selected_config",
]
