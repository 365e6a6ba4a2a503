"""The only reader of the process environment and of ``configs/*.yaml``.

One typed model per process, validated when it starts (a bad value stops the process with the name
of the variable or the dotted config key); docs/architecture.md lists which process reads which:

- :mod:`.api` — the control-plane API (``ApiSettings`` via ``load_api_settings``, ``ServerSettings``);
  :mod:`.uploads` — its robot-upload routes;
- :mod:`.code_location` — the Dagster code location (``CodeLocationSettings`` via
  ``load_code_location_settings``), made of sections a module can also load on its own;
- :mod:`.storage` (object-store credentials, the uploaders' state), :mod:`.inspection` (Ray, KubeRay),
  :mod:`.ros` (ROS backends and builds, ``axon-sim``), :mod:`.tools` (the command line);
- :mod:`.files` — ``configs/<env>.yaml``; :mod:`.templates` — ``configs/recording/*.yaml``; :mod:`.checks` —
  the validators both use; ``python -m axon_dagster.settings check`` validates them all;
- :mod:`.environ` — the one place that touches ``os.environ``: typed reads (:class:`Env`), the
  environment of child processes (:func:`child_environ`) and what a process exports (:func:`export`);
- the edge agent keeps its own small module, ``edge/axon_edge/settings.py``: robots do not read
  ``configs/``.

Where a value comes from, first match wins: the ``AXON_*`` environment variable, then the config
file the environment selects (``AXON_ENV`` / ``AXON_CONFIG_FILE``), then the built-in default.
``tests/architecture`` fails on an environment read anywhere else. Stdlib + PyYAML only, and the
names below import lazily: cheap to import anywhere, robots included.
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
