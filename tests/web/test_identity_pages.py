"""People on the control plane's pages, in headless Chromium against the real API: sign-in with a
built-in account (HttpOnly/Secure/SameSite session, nothing in localStorage), the roles enforced
per page and per action, the reviewer recorded from the session (a forged name is refused), a
cross-site form post refused with nothing changed, sign-out ending the session."""

from __future__ import annotations

import httpx
import pytest
from browser import create_account, sign_in
from edge_support import ADMIN_TOKEN, ControlPlaneServer
from playwright.sync_api import expect

from seed_rows import seed_order

pytestmark = pytest.mark.timeout(180)
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
EVIL = "http://evil.example"


def seed(url: str) -> None:
    """An order with a batch waiting for approval and two datasets waiting for a reviewer."""
    seed_order(
        url,
        auto_approve_batches=False,
        batches=[dict(batch_id="o1_b", review_status="pending_review"), dict(batch_id="o1_done", review_status="approved")],
        tasks=[dict(task_id="b1", batch_id="o1_b", status="PENDING", revision=1), dict(task_id="b2", batch_id="o1_b", status="PENDING", revision=2),
               dict(task_id="t1", batch_id="o1_done", revision=3), dict(task_id="t2", batch_id="o1_done", revision=4)],
        datasets=[dict(dataset_id=t, task_id=t, status="INSPECTED", qc_outcome="needs_review", qc_score=0.5,
                       inspection_report={"checks": [], "score": 0.5}) for t in ("t1", "t2")],
    )


@pytest.fixture
def control_plane(tmp_path):
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    seed(url)
    server = ControlPlaneServer(url)
    server.start()
    try:
        for name, role in (("vera", "viewer"), ("rita", "reviewer"), ("adam", "admin")):
            create_account(server.url, ADMIN_TOKEN, name, role)
        yield server
    finally:
        server.stop()


def dataset(cp: str, dataset_id: str) -> dict:
    return httpx.get(f"{cp}/api/v1/datasets/{dataset_id}", headers=ADMIN).json()


def batch_status(cp: str, headers: dict = ADMIN) -> str:
    batches = httpx.get(f"{cp}/api/v1/orders/o1/review-batches", headers=headers).json()
    return next(b["review_status"] for b in batches if b["batch_id"] == "o1_b")


def in_page_post(page, path: str, body: dict, csrf: bool = True) -> dict:
    """A request the signed-in page's own script could make (same origin, session cookie)."""
    return page.evaluate(
        """async ([path, body, csrf]) => {
            const headers = {'content-type': 'application/json'};
            if (csrf) headers['x-csrf-token'] = (await (await fetch('/api/v1/auth/me')).json()).csrf_token;
            const r = await fetch(path, {method: 'POST', headers, body: JSON.stringify(body)});
            return {status: r.status, body: await r.json().catch(() => null)};
        }""",
        [path, body, csrf],
    )


def test_sign_in_sets_a_locked_down_session_and_keeps_nothing_in_the_page(control_plane, browser_context):
    cp = control_plane.url
    page = browser_context.new_page()
    try:
        page.goto(cp + "/review")
        expect(page).to_have_url(f"{cp}/login?next=%2Freview")
        page.fill("#name", "rita")
        page.fill("#password", "not the password")
        page.click("#login-button")
        expect(page.locator("#message")).to_have_text("wrong account name or password")
        assert not [c for c in browser_context.cookies() if c["name"] == "axon_session"]

        page.fill("#password", "correct horse battery staple")
        page.click("#login-button")
        expect(page).to_have_url(cp + "/review")
        expect(page.locator("#signed-in")).to_have_text("rita")
        (cookie,) = [c for c in browser_context.cookies() if c["name"] == "axon_session"]
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
        # The page's script can see neither the session nor any token.
        assert "axon_session" not in page.evaluate("document.cookie")
        assert page.evaluate("Object.keys(localStorage)") == []
        # Pages carry a CSP that forbids framing and inline script.
        headers = page.request.get(cp + "/review").headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src 'self'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"

        # Sign out: the session is gone on the server, not just in the browser.
        page.click("#signout-button")
        expect(page).to_have_url(cp + "/login")
        stale = httpx.get(f"{cp}/api/v1/review/queue", cookies={"axon_session": cookie["value"]})
        assert stale.status_code == 401
    finally:
        page.close()
        browser_context.clear_cookies()


def test_roles_are_enforced_per_page_and_per_action(control_plane, browser_context):
    cp = control_plane.url
    page = browser_context.new_page()
    try:
        # A viewer sees the queue and the admin page, but is offered no decision and no change ...
        sign_in(page, cp, "vera", path="/review")
        expect(page.locator("section.card[data-dataset=t1]")).to_be_visible()
        assert page.locator("section.card[data-dataset=t1] button").count() == 0
        expect(page.locator("section.card[data-dataset=t1] .decision")).to_contain_text("can only view")
        # ... and the API refuses what the page does not offer.
        refused = in_page_post(page, "/api/v1/datasets/t1/review", {"approve": True})
        assert refused["status"] == 403 and "reviewer role" in refused["body"]["detail"]
        page.goto(cp + "/admin?order=o1")
        expect(page.locator("#identity")).to_have_text("Signed in as vera (viewer)")
        expect(page.locator("tr[data-batch-id=o1_b] button.approve")).to_be_disabled()
        expect(page.locator("#dispatch-btn")).to_be_disabled()
        assert in_page_post(page, "/api/v1/batches/o1_b/approve", {})["status"] == 403
        assert dataset(cp, "t1")["reviewed_by"] is None and batch_status(cp) == "pending_review"
        browser_context.clear_cookies()

        # A reviewer decides reviews, recorded as themselves; naming someone else is refused ...
        sign_in(page, cp, "rita", path="/review")
        forged = in_page_post(page, "/api/v1/datasets/t2/review", {"reviewer": "adam", "approve": True})
        assert forged["status"] == 403 and dataset(cp, "t2")["reviewed_by"] is None
        card = page.locator("section.card[data-dataset=t1]")
        card.locator("textarea[name=comment]").fill("looks fine")
        card.locator("button.approve").click()
        expect(card.locator(".decision")).to_contain_text("approved by rita")
        after = dataset(cp, "t1")
        assert (after["reviewed_by"], after["qc_outcome"], after["review_comment"]) == ("rita", "approved", "looks fine")
        # ... but cannot approve batches.
        assert in_page_post(page, "/api/v1/batches/o1_b/approve", {})["status"] == 403
        # Without the session's CSRF token even an allowed write is refused.
        no_token = in_page_post(page, "/api/v1/datasets/t2/review", {"approve": False}, csrf=False)
        assert no_token["status"] == 403 and "CSRF" in no_token["body"]["detail"]
        browser_context.clear_cookies()

        # An admin approves the batch from the page; the change log names the session's admin.
        sign_in(page, cp, "adam", path="/admin?order=o1")
        page.locator("tr[data-batch-id=o1_b] button.approve").click()
        expect(page.locator("tr[data-batch-id=o1_b]")).to_have_attribute("data-review", "approved")
        audit = httpx.get(f"{cp}/api/v1/audit", params={"order_id": "o1"}, headers=ADMIN).json()
        assert [(a["actor"], a["action"]) for a in audit] == [("adam", "approved")]
    finally:
        page.close()
        browser_context.clear_cookies()


def attack_page(cp: str) -> str:
    return (
            f'<form id="f" method="post" enctype="text/plain" action="{cp}/api/v1/batches/o1_b/approve">'
            '<input name=\'{"comment":"x", "pad":"\' value=\'"}\'></form>'
            f'<form id="g" method="post" action="{cp}/api/v1/datasets/t1/review">'
            '<input name="approve" value="true"></form>'
    )


def post_forms_from_another_site(page, cp: str) -> list[str]:
    """Load the attacker's page (served for another origin) and submit each form; what came back."""
    page.route(f"{EVIL}/**", lambda route: route.fulfill(body=attack_page(cp), content_type="text/html"))
    answers = []
    for form in ("f", "g"):
        page.goto(f"{EVIL}/")
        with page.expect_navigation():
            page.evaluate(f"document.getElementById('{form}').submit()")
        assert page.url.startswith(cp)
        answers.append(page.locator("body").inner_text())
    return answers


def assert_nothing_changed(cp: str, headers: dict) -> None:
    assert batch_status(cp, headers) == "pending_review"
    assert httpx.get(f"{cp}/api/v1/datasets/t1", headers=headers).json()["reviewed_by"] is None
    assert httpx.get(f"{cp}/api/v1/audit", params={"order_id": "o1"}, headers=headers).json() == []


def test_a_cross_site_form_post_is_refused_and_changes_nothing(control_plane, browser_context):
    """A signed-in admin visits another site whose page posts forms (text/plain, urlencoded) to the
    control plane: the SameSite=Strict session is not sent, so nobody is signed in for them."""
    cp = control_plane.url
    page = browser_context.new_page()
    try:
        sign_in(page, cp, "adam")
        answers = post_forms_from_another_site(page, cp)
        assert all("sign in first" in a for a in answers), answers
        assert_nothing_changed(cp, ADMIN)
    finally:
        page.close()
        browser_context.clear_cookies()


def test_the_open_embedded_default_refuses_cross_site_posts_too(tmp_path, browser_context):
    """With no authentication configured (embedded default) there is no session to withhold: the
    Origin / Sec-Fetch-Site check refuses the forged posts on its own."""
    from axon_dagster.api.app import create_app
    from axon_dagster.api.server import ApiThread

    url = f"sqlite:///{tmp_path / 'open.db'}"
    seed(url)
    server = ApiThread(create_app(url, admin_token="")).start()
    page = browser_context.new_page()
    try:
        answers = post_forms_from_another_site(page, server.url)
        assert all("cross-site request refused" in a for a in answers), answers
        assert_nothing_changed(server.url, {})
    finally:
        page.close()
        server.stop()
