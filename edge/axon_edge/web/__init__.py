"""The collector page's assets (served by :mod:`axon_edge.http`; plain files, no build step)."""

from pathlib import Path

WEB_DIR = Path(__file__).resolve().parent
