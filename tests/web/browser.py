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


PASSWORD = "correct horse battery staple"


def create_account(base_url: str, admin_token: str, name: str, role: str, password: str = PASSWORD) -> None:
    """A built-in account, made over the API with a service (admin) token."""
    import httpx

    r = httpx.post(f"{base_url}/api/v1/accounts", json={"name": name, "role": role, "password": password},
                   headers={"authorization": f"Bearer {admin_token}"}, timeout=30)
    assert r.status_code == 201, r.text


def sign_in(page: object, base_url: str, name: str, password: str = PASSWORD, path: str = "/admin") -> None:
    """Open ``path``: an anonymous visit lands on /login; sign in there and come back."""
    from urllib.parse import quote

    from playwright.sync_api import expect

    page.goto(base_url + path)  # type: ignore[attr-defined]
    expect(page).to_have_url(f"{base_url}/login?next={quote(path, safe='')}")  # type: ignore[arg-type]
    page.fill("#name", name)  # type: ignore[attr-defined]
    page.fill("#password", password)  # type: ignore[attr-defined]
    page.click("#login-button")  # type: ignore[attr-defined]
    expect(page).to_have_url(base_url + path)  # type: ignore[arg-type]
