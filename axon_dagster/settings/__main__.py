"""``python -m axon_dagster.settings check [--env prod] [--file PATH]``: validate a config."""

import sys

from .files import main

sys.exit(main())
