"""The fuzz suite prints what its requests answered, by API and status class."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "edge"))

from fuzz_support import OUTCOMES  # noqa: E402


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ANN001
    if OUTCOMES:
        lines = ", ".join(f"{k}={v}" for k, v in sorted(OUTCOMES.items()))
        terminalreporter.write_line(f"schemathesis requests by API and status: {lines}")
