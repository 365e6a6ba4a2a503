"""Identity and roles on the control-plane API over HTTP: built-in accounts (scrypt, sessions),
service tokens (the admin token is one), single sign-on from the trusted proxy only, roles per
route, the actor recorded from the principal, and the CSRF rules for browser-borne requests."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from axon_dagster.api.app import create_app
from axon_dagster.control_plane import accounts as acc
from axon_dagster.control_plane.persistence import UnitOfWorkFactory, make_engine
from axon_dagster.control_plane.persistence.schema import AccountRow, SessionRow

ADMIN = "identity-admin-token"
PASSWORD = "correct horse battery staple"
JSON = {"content-type": "application/json"}


@pytest.fixture
def api(sqlite_url, serve_app, monkeypatch):
    monkeypatch.setenv("AXON_TRUSTED_PROXIES", "127.0.0.1/32")  # tests reach the API from 127.0.0.1
    monkeypatch.setenv("AXON_SSO_DEFAULT_ROLE", "viewer")
    server = serve_app(create_app(database_url=sqlite_url, admin_token=ADMIN))
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {ADMIN}"}) as admin:
        admin.post("/api/v1/orders", json={"order_id": "o1", "scene": "warehouse", "skills": ["pick"]}).raise_for_status()
        for name, role in (("vera", "viewer"), ("rita", "reviewer"), ("adam", "admin")):
            r = admin.post("/api/v1/accounts", json={"name": name, "role": role, "password": PASSWORD})
            assert r.status_code == 201, r.text
        yield server.url, admin, sqlite_url


def signed_in(url: str, name: str) -> tuple[httpx.Client, str]:
    """A client holding the session cookie (httpx keeps Secure cookies for https only: set by hand)."""
    r = httpx.post(f"{url}/api/v1/auth/login", json={"name": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    session = r.cookies["axon_session"]
    return httpx.Client(base_url=url, headers={"cookie": f"axon_session={session}"}), r.json()["csrf_token"]


def session_of(client: httpx.Client) -> str:
    return client.headers["cookie"].split("=", 1)[1]


def rows(database_url: str, row: type) -> list:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(row.__table__)))
    finally:
        engine.dispose()


def test_passwords_and_sessions_are_stored_as_hashes_only(api):
    url, _, db = api
    client, _ = signed_in(url, "rita")
    session_id = session_of(client)
    (rita,) = [r for r in rows(db, AccountRow) if r.name == "rita"]
    assert rita.secret_hash.startswith("scrypt$15$8$1$") and PASSWORD not in rita.secret_hash
    assert acc.verify_password(PASSWORD, rita.secret_hash) and not acc.verify_password(PASSWORD + "x", rita.secret_hash)
    assert [s.id_hash for s in rows(db, SessionRow)] == [acc.secret_digest(session_id)]
    cookie = client.post("/api/v1/auth/login", json={"name": "rita", "password": PASSWORD}).headers["set-cookie"].lower()
    assert "httponly" in cookie and "secure" in cookie and "samesite=strict" in cookie


def test_sign_in_refusals_say_the_same_thing(api):
    url, admin, _ = api
    admin.patch("/api/v1/accounts/vera", json={"disabled": True}).raise_for_status()
    for name, password in (("rita", "wrong password!"), ("nobody", PASSWORD), ("vera", PASSWORD)):
        r = httpx.post(f"{url}/api/v1/auth/login", json={"name": name, "password": password})
        assert (r.status_code, r.json()["detail"]) == (401, "wrong account name or password"), name


def test_guessing_passwords_locks_the_address_out(api):
    url, _, _ = api
    codes = [httpx.post(f"{url}/api/v1/auth/login", json={"name": "rita", "password": f"guess {i}"}).status_code for i in range(10)]
    assert codes == [401] * 10
    locked = httpx.post(f"{url}/api/v1/auth/login", json={"name": "rita", "password": PASSWORD})  # even the right one
    assert locked.status_code == 429 and locked.headers["retry-after"] == "300"


def test_roles_per_route(api):
    url, _, _ = api
    viewer, v_csrf = signed_in(url, "vera")
    reviewer, r_csrf = signed_in(url, "rita")
    assert viewer.get("/api/v1/orders").status_code == 200
    r = viewer.post("/api/v1/orders", json={"order_id": "o2", "scene": "w", "skills": ["a"]}, headers={"x-csrf-token": v_csrf})
    assert r.status_code == 403 and "admin role" in r.json()["detail"]
    assert reviewer.get("/api/v1/accounts").status_code == 403
    r = reviewer.post("/api/v1/datasets/nope/review", json={"approve": True}, headers={"x-csrf-token": r_csrf})
    assert r.status_code == 404  # allowed to review: the dataset just does not exist
    assert httpx.get(f"{url}/api/v1/orders").status_code == 401  # nobody


def test_the_actor_is_the_principal(api):
    url, admin, _ = api
    adam, csrf = signed_in(url, "adam")
    headers = {"x-csrf-token": csrf}
    r = adam.put("/api/v1/orders/o1/review-policy", json={"actor": "mallory", "auto_approve_batches": False}, headers=headers)
    assert r.status_code == 403 and "themselves" in r.json()["detail"]
    assert adam.put("/api/v1/orders/o1/review-policy", json={"auto_approve_batches": False}, headers=headers).status_code == 200
    # A service relays the person it acts for; without one it is recorded as itself.
    assert admin.put("/api/v1/orders/o1/review-policy", json={"actor": "ops-bot-for-erin", "auto_approve_batches": False}).status_code == 200
    assert admin.put("/api/v1/orders/o1/review-policy", json={"auto_approve_batches": False}).status_code == 200
    actors = [a["actor"] for a in admin.get("/api/v1/audit", params={"order_id": "o1"}).json()]
    assert actors == ["adam", "ops-bot-for-erin", "admin-token"]


def test_session_writes_need_the_csrf_token_same_origin_and_json(api):
    url, admin, _ = api
    adam, csrf = signed_in(url, "adam")
    body = '{"auto_approve_batches": false}'
    path = "/api/v1/orders/o1/review-policy"
    for headers, words in (
        (JSON, "X-CSRF-Token"),
        ({**JSON, "x-csrf-token": "not-it"}, "X-CSRF-Token"),
        ({"content-type": "text/plain", "x-csrf-token": csrf}, "application/json"),
        ({**JSON, "x-csrf-token": csrf, "origin": "http://evil.example"}, "cross-origin"),
        ({**JSON, "x-csrf-token": csrf, "sec-fetch-site": "cross-site"}, "cross-site"),
    ):
        r = adam.put(path, content=body, headers=headers)
        assert r.status_code == 403 and words in r.json()["detail"], (headers, r.text)
    assert admin.get("/api/v1/audit", params={"order_id": "o1"}).json() == []
    same_origin = {**JSON, "x-csrf-token": csrf, "origin": url, "sec-fetch-site": "same-origin"}
    assert adam.put(path, content=body, headers=same_origin).status_code == 200
    # Sign out ends the session on the server.
    assert adam.post("/api/v1/auth/logout", headers={"x-csrf-token": csrf}).status_code == 204
    stale = httpx.get(f"{url}/api/v1/orders", headers={"cookie": f"axon_session={session_of(adam)}"})
    assert stale.status_code == 401


def test_service_tokens_and_the_admin_token(api):
    url, admin, _ = api
    made = admin.post("/api/v1/accounts", json={"name": "dagster", "role": "admin", "kind": "service"})
    assert made.status_code == 201 and made.json()["token"].startswith("axs_")
    token = made.json()["token"]
    service = httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"})
    # No CSRF token or JSON needed: a bearer token is no ambient credential.
    assert service.post("/api/v1/orders", json={"order_id": "o2", "scene": "w", "skills": ["a"]}).status_code == 201
    listed = admin.get("/api/v1/accounts")
    assert token not in listed.text and "token" not in listed.json()[0]  # shown once, never again
    admin.patch("/api/v1/accounts/dagster", json={"disabled": True}).raise_for_status()
    assert service.get("/api/v1/orders").status_code == 401
    assert httpx.get(f"{url}/api/v1/orders", headers={"authorization": "Bearer axs_forged"}).status_code == 401


def test_single_sign_on_only_from_the_trusted_proxy(api, sqlite_url, serve_app, monkeypatch):
    url, admin, _ = api
    sso = {"x-forwarded-user": "sam", "x-forwarded-email": "sam@example.com"}
    me = httpx.get(f"{url}/api/v1/auth/me", headers=sso).json()
    assert (me["name"], me["role"], me["kind"]) == ("sam@example.com", "viewer", "sso")  # the default role
    assert admin.post("/api/v1/accounts", json={"name": "sam", "role": "admin", "kind": "sso"}).status_code == 201
    me = httpx.get(f"{url}/api/v1/auth/me", headers=sso).json()
    assert (me["name"], me["role"]) == ("sam", "admin")  # a pinned role
    r = httpx.put(f"{url}/api/v1/orders/o1/review-policy", json={"auto_approve_batches": False}, headers=sso)
    assert r.status_code == 200
    r = httpx.put(f"{url}/api/v1/orders/o1/review-policy", content='{"auto_approve_batches": true}',
                  headers={**sso, "content-type": "text/plain"})
    assert r.status_code == 403
    assert [a["actor"] for a in admin.get("/api/v1/audit", params={"order_id": "o1"}).json()] == ["sam"]
    # The same headers from an address that is not the proxy are ignored: nobody is signed in.
    monkeypatch.setenv("AXON_TRUSTED_PROXIES", "10.9.8.7")
    other = serve_app(create_app(database_url=sqlite_url, admin_token=ADMIN))
    assert httpx.get(f"{other.url}/api/v1/auth/me", headers=sso).status_code == 401


def test_pages_send_csp_and_anonymous_pages_go_to_sign_in(api):
    url, _, _ = api
    r = httpx.get(f"{url}/admin")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fadmin"
    page = httpx.get(f"{url}/login")
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"] and page.headers["x-frame-options"] == "DENY"


def test_the_accounts_cli(sqlite_url, capsys):
    from axon_dagster.accounts_cli import main

    assert main(["--database-url", sqlite_url, "service", "ci", "--role", "viewer"]) == 0
    token = capsys.readouterr().out.strip()
    assert main(["--database-url", sqlite_url, "service", "ci", "--role", "viewer"]) == 2  # exists
    assert main(["--database-url", sqlite_url, "role", "ci", "reviewer"]) == 0
    engine = make_engine(sqlite_url)
    try:
        principal = acc.service_principal(UnitOfWorkFactory(engine)(), token)
    finally:
        engine.dispose()
    assert principal is not None and (principal.name, principal.role.value) == ("ci", "reviewer")
