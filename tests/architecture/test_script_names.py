"""Scripts run as ``python bench/X.py`` (or ``scripts/``) put their own folder first on
``sys.path``: a sibling named like a standard-library module (``inspect.py``, ``json.py``, ...)
is then imported in its place by every library that imports that module, and every script of the
folder crashes at import."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT_FOLDERS = ("bench", "scripts")


@pytest.mark.parametrize("folder", SCRIPT_FOLDERS)
def test_no_script_shadows_a_standard_module(folder):
    shadowing = sorted(p.name for p in (REPO / folder).glob("*.py") if p.stem in sys.stdlib_module_names)
    assert not shadowing, f"{folder}/ has files named like standard-library modules: {shadowing}"
