"""Who is recorded for an action: a person as themselves, a service for whom it relays, and the
open embedded default as named; the role ranking; names that can be recorded."""

import pytest

from axon_dagster.domain import InvalidIdError
from axon_dagster.domain.identity import (
    ActorMismatchError,
    Principal,
    PrincipalKind,
    Role,
    allows,
    recorded_actor,
    validate_principal_name,
)

ALICE = Principal("alice@example.com", Role.REVIEWER, PrincipalKind.SSO)
DAGSTER = Principal("dagster", Role.ADMIN, PrincipalKind.SERVICE)
OPEN = Principal("embedded", Role.ADMIN, PrincipalKind.OPEN)


def test_a_person_is_recorded_as_themselves_whatever_the_body_says():
    assert recorded_actor(ALICE, None) == recorded_actor(ALICE, "alice@example.com") == "alice@example.com"
    with pytest.raises(ActorMismatchError, match="themselves"):
        recorded_actor(ALICE, "bob")


def test_a_service_relays_a_named_person_or_is_recorded_as_itself():
    assert recorded_actor(DAGSTER, "erin") == "erin"
    assert recorded_actor(DAGSTER, None) == "dagster"
    with pytest.raises(InvalidIdError):
        recorded_actor(DAGSTER, "erin/../x")


def test_the_open_default_needs_a_name():
    assert recorded_actor(OPEN, "carol", "reviewer") == "carol"
    with pytest.raises(InvalidIdError, match="reviewer"):
        recorded_actor(OPEN, None, "reviewer")


def test_roles_are_ranked():
    assert allows(Role.ADMIN, Role.REVIEWER) and allows(Role.REVIEWER, Role.VIEWER)
    assert not allows(Role.VIEWER, Role.REVIEWER) and not allows(Role.REVIEWER, Role.ADMIN)


@pytest.mark.parametrize("bad", ["", "a b", "../x", "a/b", "-x", "x" * 129, 7, None])
def test_unrecordable_names_are_refused(bad):
    with pytest.raises(InvalidIdError):
        validate_principal_name(bad)
