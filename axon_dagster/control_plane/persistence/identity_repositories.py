"""Repositories added with migration 0006: accounts (people and services) and browser sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from .records import unique
from .schema import AccountRow, SessionRow


@dataclass(frozen=True)
class AccountRecord:
    name: str
    kind: str
    role: str
    secret_hash: str | None
    created_at: datetime
    disabled_at: datetime | None


@dataclass(frozen=True)
class SessionRecord:
    account: AccountRecord
    csrf_token: str
    expires_at: datetime


def _account(row: AccountRow) -> AccountRecord:
    return AccountRecord(row.name, row.kind, row.role, row.secret_hash, row.created_at, row.disabled_at)


class AccountRepository:
    def __init__(self, session: Session):
        self._session = session

    def add(self, *, name: str, kind: str, role: str, secret_hash: str | None, created_at: datetime) -> None:
        with unique("account"):
            self._session.add(AccountRow(name=name, kind=kind, role=role, secret_hash=secret_hash, created_at=created_at))
            self._session.flush()

    def get(self, name: str) -> AccountRecord | None:
        row = self._session.get(AccountRow, name)
        return _account(row) if row is not None else None

    def by_secret_hash(self, secret_hash: str) -> AccountRecord | None:
        row = self._session.scalars(select(AccountRow).where(AccountRow.secret_hash == secret_hash)).one_or_none()
        return _account(row) if row is not None else None

    def list(self) -> list[AccountRecord]:
        return [_account(r) for r in self._session.scalars(select(AccountRow).order_by(AccountRow.name))]

    def any_enabled(self) -> bool:
        return self._session.scalars(select(AccountRow.name).where(AccountRow.disabled_at.is_(None)).limit(1)).first() is not None

    def update(self, name: str, **values: object) -> None:
        self._session.execute(update(AccountRow).where(AccountRow.name == name).values(**values))
        self._session.flush()


class SessionRepository:
    def __init__(self, session: Session):
        self._session = session

    def add(self, *, id_hash: str, account: str, csrf_token: str, created_at: datetime, expires_at: datetime) -> None:
        self._session.add(SessionRow(id_hash=id_hash, account=account, csrf_token=csrf_token, created_at=created_at, expires_at=expires_at))
        self._session.flush()

    def get(self, id_hash: str) -> SessionRecord | None:
        found = self._session.execute(
            select(SessionRow, AccountRow).join(AccountRow, AccountRow.name == SessionRow.account).where(SessionRow.id_hash == id_hash)
        ).one_or_none()
        if found is None:
            return None
        session, account = found
        return SessionRecord(_account(account), session.csrf_token, session.expires_at)

    def delete(self, id_hash: str) -> None:
        self._session.execute(delete(SessionRow).where(SessionRow.id_hash == id_hash))

    def delete_for_account(self, account: str) -> int:
        return self._session.execute(delete(SessionRow).where(SessionRow.account == account)).rowcount or 0

    def delete_expired(self, now: datetime) -> int:
        return self._session.execute(delete(SessionRow).where(SessionRow.expires_at <= now)).rowcount or 0
