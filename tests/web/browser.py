"""A real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, one per test
module. Shared by the browser suites (collector page, admin batch page)."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from typing import Iterator

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium_context() -> Iterator[object]:
    """A persistent context over a fresh user-data-dir (deleted afterwards)."""
    from playwright.sync_api import sync_playwright

    user_data = tempfile.mkdtemp(prefix="axon-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                user_data,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
            )
            context.set_default_timeout(20_000)
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(user_data, ignore_errors=True)
