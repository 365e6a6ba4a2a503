"""Who acts on the control plane: principals, their roles, and what each role may do.

Pure model: no I/O. The API authenticates a request into a :class:`Principal`; the route policy
(``axon_dagster.api.auth``) asks :func:`allows` whether its role suffices.

Roles are ranked: ``viewer`` reads everything; ``reviewer`` also decides human reviews;
``admin`` also changes orders, batches, robots, accounts and the data flow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from .errors import InvalidIdError

MAX_PRINCIPAL_LENGTH = 128
# Account names and SSO identities (an e-mail address is a common one): no spaces, no path separators.
_PRINCIPAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]*")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024


class Role(str, Enum):
    VIEWER = "viewer"
    REVIEWER = "reviewer"
    ADMIN = "admin"


_RANK = {Role.VIEWER: 0, Role.REVIEWER: 1, Role.ADMIN: 2}


class PrincipalKind(str, Enum):
    USER = "user"  # a built-in account, signed in with a password (session cookie)
    SSO = "sso"  # a person signed in at the trusted reverse proxy (forwarded user/e-mail headers)
    SERVICE = "service"  # Dagster, the CLI, other automation: a bearer service token
    OPEN = "open"  # nobody: the embedded default with no authentication configured


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    kind: PrincipalKind

    @property
    def is_person(self) -> bool:
        """People are recorded as themselves; a request body can never name someone else."""
        return self.kind in (PrincipalKind.USER, PrincipalKind.SSO)


def parse_role(value: object) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidIdError("role", value, f"must be one of {', '.join(r.value for r in Role)}") from None


def allows(role: Role, needed: Role) -> bool:
    return _RANK[role] >= _RANK[needed]


def validate_principal_name(value: object, kind: str = "account") -> str:
    """Account names, SSO identities and the reviewer/actor recorded for them.

    >>> validate_principal_name("alice@example.com")
    'alice@example.com'
    """
    if not isinstance(value, str) or not value:
        raise InvalidIdError(kind, value, "must be a non-empty string")
    if len(value) > MAX_PRINCIPAL_LENGTH:
        raise InvalidIdError(kind, value, f"longer than {MAX_PRINCIPAL_LENGTH} characters")
    if ".." in value or not _PRINCIPAL.fullmatch(value):
        raise InvalidIdError(kind, value, "only letters, digits, '.', '_', '-', '@' and '+' are allowed, starting with a letter or digit")
    return value


def check_password_policy(password: object) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidIdError("password", "<hidden>", f"must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidIdError("password", "<hidden>", f"longer than {MAX_PASSWORD_LENGTH} characters")
    return password


def recorded_actor(principal: Principal, claimed: object, kind: str = "actor") -> str:
    """The name a review decision or an audit entry records for ``principal``.

    A person is always recorded as themselves (a body naming someone else is refused); a service
    relays the person it acts for (required: automation has no one to record otherwise); with no
    authentication configured (embedded default) the body names the actor as before."""
    if principal.is_person:
        if claimed not in (None, "", principal.name):
            raise ActorMismatchError(principal.name, claimed, kind)
        return principal.name
    if claimed in (None, "") and principal.kind is PrincipalKind.SERVICE:
        return principal.name
    return validate_principal_name(claimed, kind)


class ActorMismatchError(InvalidIdError):
    def __init__(self, signed_in: str, claimed: object, kind: str = "actor"):
        super().__init__(kind, claimed, f"a signed-in person acts as themselves ({signed_in!r}); the request named someone else")
