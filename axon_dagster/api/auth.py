"""Who is asking, and may they: authentication, the route policy, CSRF defence and page headers.

A request is authenticated, in this order, by
1. ``Authorization: Bearer`` — a service token (``axs_…``, see ``services.accounts``) or the
   configured ``AXON_ADMIN_TOKEN`` (kept as the ``admin-token`` service so nothing else breaks);
2. the trusted sign-in proxy — oauth2-proxy's ``X-Forwarded-Email``/``X-Forwarded-User`` (or
   ``X-Auth-Request-*``), believed only from ``AXON_TRUSTED_PROXIES`` addresses;
3. the ``axon_session`` cookie of a built-in account (``POST /api/v1/auth/login``);
4. nothing configured at all (no admin token, no proxy, no account): the embedded default is open.

The route policy (:func:`needed_role`): reads need ``viewer``, writes ``admin``, unless the route is
marked with :func:`needs` (deciding a review: ``reviewer``; listing accounts: ``admin``).
State-changing requests that a browser could send on its own (cookie, proxy or open mode) must
come from this site (``Origin``/``Sec-Fetch-Site``), carry JSON or nothing, and — with a session
cookie — the session's CSRF token in ``X-CSRF-Token``. Bearer requests carry no ambient credential
and skip those checks.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Literal, TypeVar
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from axon_dagster.domain.identity import Principal, PrincipalKind, Role, allows
from axon_dagster.control_plane import accounts as acc
from axon_dagster.control_plane.errors import AuthenticationError, CrossSiteRequestError, NotFoundError, PermissionDeniedError
from axon_dagster.settings import Settings
from axon_dagster.web import STATIC_DIR

from .asgi import FailureLockout

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
SESSION_COOKIE = "axon_session"
CSRF_HEADER = "x-csrf-token"
ADMIN_TOKEN_SERVICE = "admin-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_USER_HEADERS = ("x-forwarded-email", "x-auth-request-email", "x-forwarded-user", "x-auth-request-user",
                 "x-forwarded-preferred-username", "x-auth-request-preferred-username")
WEB_DIR = STATIC_DIR.parent

# ---------------------------------------------------------------------------- the route policy

# Reads need viewer, writes need admin, unless a route says otherwise with @needs(role).
_ROLE_ATTR = "_axon_needs_role"
F = TypeVar("F", bound=Callable[..., Any])


def needs(role: Role) -> Callable[[F], F]:
    """Mark a route (under :func:`authorize`) as needing ``role`` instead of the default."""

    def mark(endpoint: F) -> F:
        setattr(endpoint, _ROLE_ATTR, role)
        return endpoint

    return mark


def needed_role(method: str, endpoint: Callable[..., Any] | None) -> Role:
    marked = getattr(endpoint, _ROLE_ATTR, None)
    if marked is not None:
        return marked
    return Role.ADMIN if method in UNSAFE_METHODS else Role.VIEWER


# ---------------------------------------------------------------------------- authentication


CsrfMode = Literal["none", "token", "json"]


@dataclass(frozen=True)
class Authenticated:
    principal: Principal
    csrf: CsrfMode  # what a state-changing request of this kind must also show
    csrf_token: str | None = None  # the session's, for "token"


class Authenticator:
    def __init__(self, settings: Settings, uow_factory: Callable[[], Any]):
        self.settings = settings
        self.uow_factory = uow_factory
        self.proxies = tuple(ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies)
        self.sso_default_role = Role(settings.sso_default_role) if settings.sso_default_role else None
        self.session_lifetime = timedelta(hours=settings.session_hours)
        self.sign_in_failures = FailureLockout(max_failures=10, lockout_seconds=300.0)  # per client address

    def from_proxy(self, request: Request) -> bool:
        if not self.proxies or request.client is None:
            return False
        try:
            address = ipaddress.ip_address(request.client.host)
        except ValueError:
            return False
        return any(address in net for net in self.proxies)

    def open_mode(self) -> bool:
        """Nothing configured: the embedded single-machine default (every request is the admin)."""
        return self.settings.admin_token is None and not self.proxies and not acc.accounts_exist(self.uow_factory())

    def authenticate(self, request: Request) -> Authenticated:
        cached = getattr(request.state, "authenticated", None)
        if cached is not None:
            return cached
        found = self._authenticate(request)
        request.state.authenticated = found
        return found

    def _authenticate(self, request: Request) -> Authenticated:
        token = bearer(request)
        if token is not None:
            admin = self.settings.admin_token
            if admin is not None and hmac.compare_digest(token.encode(), admin.encode()):
                return Authenticated(Principal(ADMIN_TOKEN_SERVICE, Role.ADMIN, PrincipalKind.SERVICE), "none")
            service = acc.service_principal(self.uow_factory(), token)
            if service is None:
                raise AuthenticationError("missing or invalid token")
            return Authenticated(service, "none")
        if self.from_proxy(request):
            identities = [request.headers.get(h, "").strip() for h in _USER_HEADERS]
            if any(identities):
                return Authenticated(acc.sso_principal(self.uow_factory(), identities, self.sso_default_role), "json")
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            found = acc.session_principal(self.uow_factory(), session_id)
            if found is not None:
                return Authenticated(found[0], "token", found[1])
        if self.open_mode():
            return Authenticated(Principal("embedded", Role.ADMIN, PrincipalKind.OPEN), "json")
        raise AuthenticationError("sign in first (or send a service token)")

    def check_same_site(self, request: Request) -> None:
        """Refuse what a browser sends on another site's behalf: cross-site ``Sec-Fetch-Site``, a
        foreign ``Origin``, or a body that is not JSON (forms and ``text/plain`` are the only
        bodies a cross-site page can send without asking first)."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            raise CrossSiteRequestError(f"cross-site request refused (Sec-Fetch-Site: {site})")
        origin = request.headers.get("origin")
        if origin is not None:
            hosts = {request.headers.get("host", "")}
            if self.from_proxy(request) and request.headers.get("x-forwarded-host"):
                hosts.add(request.headers["x-forwarded-host"].split(",")[0].strip())
            if origin == "null" or urlsplit(origin).netloc not in hosts:
                raise CrossSiteRequestError(f"cross-origin request refused (Origin: {origin[:100]})")
        content_type = request.headers.get("content-type")
        if content_type is not None and content_type.split(";")[0].strip().lower() != "application/json":
            raise CrossSiteRequestError(f"state-changing requests take application/json, not {content_type[:60]!r}")

    def check_csrf(self, request: Request, found: Authenticated) -> None:
        if found.csrf == "none" or request.method not in UNSAFE_METHODS:
            return
        self.check_same_site(request)
        if found.csrf == "json" and found.principal.kind is PrincipalKind.SSO and request.headers.get("content-type") is None:
            raise CrossSiteRequestError("state-changing requests take application/json")
        if found.csrf == "token":
            sent = request.headers.get(CSRF_HEADER, "")
            if not found.csrf_token or not hmac.compare_digest(sent.encode(), found.csrf_token.encode()):
                raise CrossSiteRequestError("missing or wrong X-CSRF-Token (reload the page)")


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _auth(request: Request) -> Authenticator:
    return request.app.state.auth


def authorize(request: Request) -> Principal:
    """Router dependency: authenticate, refuse cross-site writes, check the route's role."""
    auth = _auth(request)
    found = auth.authenticate(request)
    auth.check_csrf(request, found)
    needed = needed_role(request.method, getattr(request.scope.get("route"), "endpoint", None))
    if not allows(found.principal.role, needed):
        raise PermissionDeniedError(f"{found.principal.name} ({found.principal.role.value}) may not do this: it needs the {needed.value} role")
    request.state.principal = found.principal
    return found.principal


def current_principal(request: Request) -> Principal:
    """The principal :func:`authorize` admitted (use in routes behind it)."""
    principal = getattr(request.state, "principal", None)
    return principal if principal is not None else authorize(request)


def page_principal(request: Request) -> Principal | None:
    """For HTML pages: who is signed in, or None (the page then sends them to /login)."""
    try:
        return _auth(request).authenticate(request).principal
    except AuthenticationError:
        return None


def sign_in_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    from urllib.parse import quote

    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


# ---------------------------------------------------------------------------- routes


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=256)
    password: str = Field(max_length=1024)


class Me(BaseModel):
    name: str
    role: Role
    kind: PrincipalKind
    csrf_token: str | None = None


class NewAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=128)
    role: Role
    kind: Literal["user", "service", "sso"] = "user"
    password: str | None = Field(default=None, max_length=1024)


class AccountChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role | None = None
    password: str | None = Field(default=None, max_length=1024)
    disabled: Literal[True] | None = None


class AccountOut(BaseModel):
    name: str
    kind: str
    role: str
    created_at: datetime
    disabled: bool


class CreatedAccount(AccountOut):
    token: str | None = None  # service accounts: shown once, never again


def _uow(request: Request) -> Any:
    return request.app.state.uow_factory()


pages = APIRouter(include_in_schema=False)
session_api = APIRouter(prefix=f"{API_PREFIX}/auth", tags=["auth"])
accounts_api = APIRouter(prefix=API_PREFIX, tags=["auth"], dependencies=[Depends(authorize)])


@pages.get("/login")
def login_page() -> Response:
    return FileResponse(WEB_DIR / "login.html", media_type="text/html; charset=utf-8", headers={"cache-control": "no-cache"})


@session_api.post("/login", response_model=Me, responses={
    401: {"description": "wrong account name or password"},
    429: {"description": "too many failed sign-ins from this address",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
})
def login(body: LoginBody, request: Request) -> Any:
    auth = _auth(request)
    auth.check_same_site(request)
    client = request.client.host if request.client else ""
    if auth.sign_in_failures.locked(client):
        return JSONResponse({"detail": "too many failed sign-ins from this address; try again in 5 minutes"},
                            status_code=429, headers={"retry-after": "300"})
    try:
        signed = acc.sign_in(_uow(request), body.name, body.password, auth.session_lifetime)
    except AuthenticationError:
        auth.sign_in_failures.failed(client)
        raise
    auth.sign_in_failures.succeeded(client)
    response = JSONResponse(Me(name=signed.principal.name, role=signed.principal.role, kind=signed.principal.kind,
                               csrf_token=signed.csrf_token).model_dump(mode="json"))
    response.set_cookie(SESSION_COOKIE, signed.session_id, max_age=int(auth.session_lifetime.total_seconds()), path="/",
                        httponly=True, secure=auth.settings.cookie_secure, samesite="strict")
    return response


@session_api.post("/logout", status_code=204, responses={401: {"description": "not signed in"}})
def logout(request: Request) -> Response:
    auth = _auth(request)
    found = auth.authenticate(request)
    auth.check_csrf(request, found)
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        acc.sign_out(_uow(request), session_id)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, secure=auth.settings.cookie_secure, samesite="strict")
    return response


@session_api.get("/me", response_model=Me, responses={401: {"description": "not signed in"}})
def me(request: Request) -> Any:
    found = _auth(request).authenticate(request)
    return Me(name=found.principal.name, role=found.principal.role, kind=found.principal.kind, csrf_token=found.csrf_token)


@accounts_api.get("/accounts", response_model=list[AccountOut])
@needs(Role.ADMIN)
def list_accounts(request: Request) -> Any:
    return [a.to_dict() for a in acc.list_accounts(_uow(request))]


@accounts_api.post("/accounts", status_code=201, response_model=CreatedAccount)
def create_account(body: NewAccount, request: Request) -> Any:
    u = _uow(request)
    if body.kind == "service":
        made = acc.create_service_token(u, body.name, body.role.value)
        return {**made.account.to_dict(), "token": made.token}
    if body.kind == "sso":
        return acc.pin_sso_role(u, body.name, body.role.value).to_dict()
    return acc.create_user(u, body.name, body.role.value, body.password or "").to_dict()


@accounts_api.patch("/accounts/{name}", response_model=AccountOut)
def change_account(name: str, body: AccountChange, request: Request) -> Any:
    u = _uow(request)
    if body.password is not None:
        acc.set_password(u, name, body.password)
    if body.role is not None:
        acc.set_role(u, name, body.role.value)
    if body.disabled:
        acc.disable_account(u, name)
    for view in acc.list_accounts(u):
        if view.name == name:
            return view.to_dict()
    raise NotFoundError("account", name)
