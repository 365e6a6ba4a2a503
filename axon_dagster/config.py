"""Moved to :mod:`axon_dagster.settings.files` (the settings package is the one reader of
``configs/``); this name stays for old imports and ``python -m axon_dagster.config check``."""

import sys

from axon_dagster.settings.files import *  # noqa: F401,F403
from axon_dagster.settings.files import CONFIG_DIR, TEMPLATE_DIR, ConfigError, SecretRef, main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
