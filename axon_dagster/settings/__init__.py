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

import importlib
from typing import Any

# name -> module that defines it; imported on first use (PEP 562), so `import axon_dagster.settings.ros`
# on a robot loads neither the config-file reader nor the code location's sections
_EXPORTS = {
    "DEFAULT_DATABASE_URL": "api", "DEFAULT_MAX_BODY_BYTES": "api", "DEFAULT_SESSION_HOURS": "api",
    "Settings": "api", "ApiSettings": "api", "load_settings": "api", "load_api_settings": "api",
    "ConfigError": "base", "SecretRef": "base", "SettingError": "base",
    "CodeLocationSettings": "code_location", "load_code_location_settings": "code_location",
    "Env": "environ", "child_environ": "environ", "export": "environ",
    "AxonConfig": "files", "load_config": "files", "selected_config": "files",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


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
