"""Fixtures of the end-to-end tests."""

import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def demo_workdir():
    """A workdir for the demo that its per-robot users can reach (pytest's base temp is 0700: the
    demo would let its users through with an ACL entry; this leaves the test machine as it was)."""
    base = Path(tempfile.mkdtemp(prefix="axon-e2e-"))
    base.chmod(0o711)
    yield base / "work"
    shutil.rmtree(base, ignore_errors=True)
