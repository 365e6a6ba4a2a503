"""Static assets shared by the product's pages (plain HTML + small vanilla JS + one CSS file).

Importing this package loads nothing but ``pathlib``: the edge agent serves ``axon.css`` too.
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).with_name("static")
SHARED_CSS = STATIC_DIR / "axon.css"

__all__ = ["SHARED_CSS", "STATIC_DIR"]
