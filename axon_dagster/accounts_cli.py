"""``axon-dagster accounts``: people and services of the control plane, straight on its store
(``AXON_DATABASE_URL``; run where the API's database is reachable).

    axon-dagster accounts add alice --role reviewer          # asks for the password (or --password-stdin)
    axon-dagster accounts service dagster --role admin       # prints the service token once
    axon-dagster accounts sso alice@example.com --role admin # role for a person the sign-in proxy vouches for
    axon-dagster accounts list [--json] | disable NAME | role NAME ROLE | passwd NAME

Exit codes: 0 ok, 2 refused (the message says why), 1 store unavailable.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Sequence

ROLES = ("viewer", "reviewer", "admin")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="axon-dagster accounts", description="Accounts of the control plane.")
    p.add_argument("--database-url", help="default: AXON_DATABASE_URL")
    sub = p.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="a built-in account that signs in with a password")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    service = sub.add_parser("service", help="a service account; prints its bearer token once")
    service.add_argument("name")
    service.add_argument("--role", required=True, choices=ROLES)
    sso = sub.add_parser("sso", help="pin a role to a single-sign-on identity (user name or e-mail)")
    sso.add_argument("identity")
    sso.add_argument("--role", required=True, choices=ROLES)
    listing = sub.add_parser("list", help="every account (no secrets)")
    listing.add_argument("--json", action="store_true")
    disable = sub.add_parser("disable", help="no more sign-in or token use; open sessions end")
    disable.add_argument("name")
    role = sub.add_parser("role", help="change an account's role")
    role.add_argument("name")
    role.add_argument("role", choices=ROLES)
    passwd = sub.add_parser("passwd", help="new password; open sessions end")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true")
    return p


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from axon_dagster.domain import DomainError
    from axon_dagster.control_plane import accounts as acc
    from axon_dagster.control_plane.errors import ServiceError
    from axon_dagster.settings import load_settings
    from axon_dagster.control_plane.persistence import UnitOfWorkFactory, check_schema, make_engine

    try:
        engine = make_engine(args.database_url or load_settings().database_url)
        check_schema(engine)
    except Exception as exc:  # noqa: BLE001 - reported, exit 1
        print(f"control-plane store unavailable: {exc}", file=sys.stderr)
        return 1
    uow = UnitOfWorkFactory(engine)
    try:
        if args.action == "add":
            made = acc.create_user(uow(), args.name, args.role, _password(args.password_stdin))
            print(f"account {made.name} ({made.role}) created")
        elif args.action == "service":
            token = acc.create_service_token(uow(), args.name, args.role)
            print(token.token)
            print(f"service account {args.name} ({args.role}): the token above is shown once", file=sys.stderr)
        elif args.action == "sso":
            made = acc.pin_sso_role(uow(), args.identity, args.role)
            print(f"{made.name} has the {made.role} role when the sign-in proxy vouches for them")
        elif args.action == "list":
            views = acc.list_accounts(uow())
            if args.json:
                print(json.dumps([v.to_dict() for v in views], indent=2))
            for v in [] if args.json else views:
                print(f"{v.name:32} {v.kind:8} {v.role:9} {'disabled' if v.disabled else ''}")
        elif args.action == "disable":
            acc.disable_account(uow(), args.name)
            print(f"account {args.name} disabled")
        elif args.action == "role":
            acc.set_role(uow(), args.name, args.role)
            print(f"account {args.name} is now {args.role}")
        elif args.action == "passwd":
            acc.set_password(uow(), args.name, _password(args.password_stdin))
            print(f"password of {args.name} changed; its sessions ended")
    except (DomainError, ServiceError, ValueError) as refused:
        print(f"refused: {refused}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
