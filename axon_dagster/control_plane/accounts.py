"""People and services on the control plane: accounts, password sign-in, sessions, service tokens,
and the identities a trusted single-sign-on proxy vouches for.

Secrets are never stored: passwords as scrypt (stdlib ``hashlib.scrypt``, a per-password random
salt, parameters kept in the hash so they can be raised later), service tokens and session ids as
SHA-256 (they are 256-bit random values, so a fast hash is enough).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from axon_dagster.domain.identity import (
    Principal,
    PrincipalKind,
    Role,
    check_password_policy,
    parse_role,
    validate_principal_name,
)
from axon_dagster.domain.model import utcnow

from .persistence import SqlAlchemyUnitOfWork
from .persistence.errors import DuplicateKeyError
from .persistence.identity_repositories import AccountRecord
from .errors import AlreadyExistsError, AuthenticationError, NotFoundError
from .views import View

log = logging.getLogger(__name__)

UnitOfWork = SqlAlchemyUnitOfWork

KIND_USER, KIND_SERVICE, KIND_SSO = PrincipalKind.USER.value, PrincipalKind.SERVICE.value, PrincipalKind.SSO.value
SERVICE_TOKEN_PREFIX = "axs_"
# scrypt: N=2^15, r=8, p=1 (32 MiB, ~0.1 s here): above OWASP's minimum (N=2^17 with r=8 is its
# first choice; the parameters travel with each hash, so raising them later needs no migration).
SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN = 15, 8, 1, 32
_SCRYPT_MAXMEM = 256 * 1024 * 1024


@dataclass(frozen=True)
class AccountView(View):
    name: str
    kind: str
    role: str
    created_at: datetime
    disabled: bool


@dataclass(frozen=True)
class ServiceTokenView(View):
    account: AccountView
    token: str  # shown once


@dataclass(frozen=True)
class SignedIn:
    principal: Principal
    session_id: str  # goes into the HttpOnly cookie; only its SHA-256 is stored
    csrf_token: str
    expires_at: datetime


# ---------------------------------------------------------------------------- secrets


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=2**SCRYPT_LOG2_N, r=SCRYPT_R, p=SCRYPT_P,
                            maxmem=_SCRYPT_MAXMEM, dklen=SCRYPT_DKLEN)
    return f"scrypt${SCRYPT_LOG2_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, log2_n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=2 ** int(log2_n), r=int(r), p=int(p),
                                maxmem=_SCRYPT_MAXMEM, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# Checked when the account is unknown, so a wrong name costs the same time as a wrong password.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------- accounts


def _view(record: AccountRecord) -> AccountView:
    return AccountView(record.name, record.kind, record.role, record.created_at, record.disabled_at is not None)


def _add(uow: UnitOfWork, name: str, kind: str, role: Role, secret_hash: str | None) -> AccountView:
    with uow.writing():
        if uow.accounts.get(name) is not None:
            raise AlreadyExistsError("account", name)
        try:
            uow.accounts.add(name=name, kind=kind, role=role.value, secret_hash=secret_hash, created_at=utcnow())
        except DuplicateKeyError:
            raise AlreadyExistsError("account", name) from None
        record = uow.accounts.get(name)
        uow.commit()
    assert record is not None
    log.info("account %s created (%s, role %s)", name, kind, role.value)
    return _view(record)


def create_user(uow: UnitOfWork, name: str, role: str, password: str) -> AccountView:
    """A built-in account that signs in with ``password`` (only its scrypt hash is kept)."""
    name, parsed = validate_principal_name(name), parse_role(role)
    return _add(uow, name, KIND_USER, parsed, hash_password(check_password_policy(password)))


def create_service_token(uow: UnitOfWork, name: str, role: str) -> ServiceTokenView:
    """A service account (Dagster, scripts) and its bearer token, shown once."""
    name, parsed = validate_principal_name(name), parse_role(role)
    token = SERVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return ServiceTokenView(_add(uow, name, KIND_SERVICE, parsed, secret_digest(token)), token)


def pin_sso_role(uow: UnitOfWork, identity: str, role: str) -> AccountView:
    """Give a person who signs in at the trusted proxy (user name or e-mail) a role."""
    identity, parsed = validate_principal_name(identity, "identity"), parse_role(role)
    return _add(uow, identity, KIND_SSO, parsed, None)


def list_accounts(uow: UnitOfWork) -> list[AccountView]:
    with uow.reading():
        return [_view(r) for r in uow.accounts.list()]


def set_role(uow: UnitOfWork, name: str, role: str) -> AccountView:
    parsed = parse_role(role)
    with uow.writing():
        if uow.accounts.get(name) is None:
            raise NotFoundError("account", name)
        uow.accounts.update(name, role=parsed.value)
        record = uow.accounts.get(name)
        uow.commit()
    assert record is not None
    return _view(record)


def set_password(uow: UnitOfWork, name: str, password: str) -> None:
    """New password; every session of the account ends."""
    hashed = hash_password(check_password_policy(password))
    with uow.writing():
        record = uow.accounts.get(name)
        if record is None or record.kind != KIND_USER:
            raise NotFoundError("user account", name)
        uow.accounts.update(name, secret_hash=hashed)
        uow.sessions.delete_for_account(name)
        uow.commit()


def disable_account(uow: UnitOfWork, name: str) -> AccountView:
    """The account can no longer sign in or use its token; its sessions end now."""
    with uow.writing():
        record = uow.accounts.get(name)
        if record is None:
            raise NotFoundError("account", name)
        if record.disabled_at is None:
            uow.accounts.update(name, disabled_at=utcnow())
        uow.sessions.delete_for_account(name)
        record = uow.accounts.get(name)
        uow.commit()
    assert record is not None
    log.info("account %s disabled", name)
    return _view(record)


def accounts_exist(uow: UnitOfWork) -> bool:
    with uow.reading():
        return uow.accounts.any_enabled()


# ---------------------------------------------------------------------------- authentication

_SIGN_IN_REFUSED = "wrong account name or password"


def sign_in(uow: UnitOfWork, name: object, password: object, lifetime: timedelta) -> SignedIn:
    """Check a password and open a session. Unknown name, wrong password, disabled account and
    non-password accounts are all refused with the same words (and the same scrypt cost)."""
    if not isinstance(name, str) or not isinstance(password, str) or len(password) > 1024 or len(name) > 256:
        raise AuthenticationError(_SIGN_IN_REFUSED)
    with uow.reading():
        record = uow.accounts.get(name)
    usable = record is not None and record.kind == KIND_USER and record.disabled_at is None
    stored = record.secret_hash if usable and record is not None else None
    if not verify_password(password, stored or _DUMMY_HASH) or stored is None:
        log.info("sign-in refused for %r", name[:64])
        raise AuthenticationError(_SIGN_IN_REFUSED)
    assert record is not None
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = utcnow()
    with uow.writing():
        uow.sessions.delete_expired(now)
        uow.sessions.add(id_hash=secret_digest(session_id), account=record.name, csrf_token=csrf, created_at=now, expires_at=now + lifetime)
        uow.commit()
    log.info("%s signed in (role %s)", record.name, record.role)
    return SignedIn(Principal(record.name, Role(record.role), PrincipalKind.USER), session_id, csrf, now + lifetime)


def session_principal(uow: UnitOfWork, session_id: str) -> tuple[Principal, str] | None:
    """The signed-in person of a session cookie and the session's CSRF token; None when unknown,
    expired or the account is disabled."""
    if not session_id or len(session_id) > 256:
        return None
    with uow.reading():
        found = uow.sessions.get(secret_digest(session_id))
    if found is None or found.expires_at <= utcnow() or found.account.disabled_at is not None:
        return None
    return Principal(found.account.name, Role(found.account.role), PrincipalKind.USER), found.csrf_token


def sign_out(uow: UnitOfWork, session_id: str) -> None:
    with uow.writing():
        uow.sessions.delete(secret_digest(session_id))
        uow.commit()


def service_principal(uow: UnitOfWork, token: str) -> Principal | None:
    if not token.startswith(SERVICE_TOKEN_PREFIX) or len(token) > 256:
        return None
    with uow.reading():
        record = uow.accounts.by_secret_hash(secret_digest(token))
    if record is None or record.kind != KIND_SERVICE or record.disabled_at is not None:
        return None
    return Principal(record.name, Role(record.role), PrincipalKind.SERVICE)


def sso_principal(uow: UnitOfWork, identities: list[str], default_role: Role | None) -> Principal:
    """The person a trusted proxy forwarded (user name and/or e-mail, first pinned one wins).
    Without a pinned role the configured default applies; with no default they are refused."""
    names = [validate_principal_name(i, "forwarded identity") for i in identities if i]
    if not names:
        raise AuthenticationError("the sign-in proxy forwarded no identity")
    with uow.reading():
        for name in names:
            record = uow.accounts.get(name)
            if record is not None:
                if record.disabled_at is not None:
                    raise AuthenticationError(f"account {name!r} is disabled")
                return Principal(name, Role(record.role), PrincipalKind.SSO)
    if default_role is None:
        raise AuthenticationError(f"{names[0]!r} has no role on this control plane; an admin must grant one")
    return Principal(names[0], default_role, PrincipalKind.SSO)

