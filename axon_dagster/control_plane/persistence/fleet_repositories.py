"""Robots: tokens, "last seen", and the per-robot task revisions the edge sync orders by."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.orm import Session


from .bulk import update_by_key
from .schema import (
    RobotRow,
)
from .records import RobotRecord, chunks, core, unique


# ---------------------------------------------------------------- robots


class RobotRepository:
    def __init__(self, session: Session):
        self._session = session

    def add(self, robot_id: str, name: str, token_hash: str, created_at: datetime) -> RobotRecord:
        with unique("robot"):
            self._session.add(RobotRow(robot_id=robot_id, name=name, token_hash=token_hash, created_at=created_at))
            self._session.flush()
        return RobotRecord(robot_id, name, created_at, None)

    def get(self, robot_id: str) -> RobotRecord | None:
        row = core(self._session, select(*_ROBOT_COLUMNS).where(_ROBOTS.c.robot_id == robot_id)).first()
        return _robot(row) if row else None

    def by_token_hash(self, token_hash: str, *, lock: bool = False, now: datetime | None = None) -> RobotRecord | None:
        """The robot a token hash belongs to — its current token, or the previous one until the
        rotation's overlap ends at ``now`` — unless its tokens are revoked. Reads the token
        indexes. With ``lock`` its row stays locked until commit."""
        now = now or datetime.now(timezone.utc)
        current = _ROBOTS.c.token_hash == token_hash
        previous = and_(_ROBOTS.c.previous_token_hash == token_hash, _ROBOTS.c.previous_token_expires_at > now)
        stmt = select(*_ROBOT_COLUMNS).where(or_(current, previous), _ROBOTS.c.tokens_revoked_at.is_(None))
        row = core(self._session, stmt.with_for_update() if lock else stmt).first()
        return _robot(row) if row else None

    def token_index(self) -> dict[str, tuple[str, datetime | None]]:
        """Every accepted token hash -> (robot id, valid until; None: no end), read in one scan:
        each robot's current token and its previous one while the rotation's overlap lasts;
        nothing of a robot whose tokens are revoked."""
        now = datetime.now(timezone.utc)
        stmt = select(_ROBOTS.c.robot_id, _ROBOTS.c.token_hash, _ROBOTS.c.previous_token_hash, _ROBOTS.c.previous_token_expires_at).where(
            _ROBOTS.c.tokens_revoked_at.is_(None)
        )
        index: dict[str, tuple[str, datetime | None]] = {}
        for robot_id, current, previous, until in core(self._session, stmt).tuples():
            if previous is not None and until is not None and until > now:
                index[previous] = (robot_id, until)
            index[current] = (robot_id, None)
        return index

    def token_hash(self, robot_id: str) -> str | None:
        return self._session.execute(select(_ROBOTS.c.token_hash).where(_ROBOTS.c.robot_id == robot_id)).scalar_one_or_none()

    def set_tokens(self, robot_id: str, **values: Any) -> None:
        """Rotation / revocation: ``token_hash``, ``previous_token_hash``, ``previous_token_expires_at``, ``tokens_revoked_at``."""
        self._session.execute(update(RobotRow).where(RobotRow.robot_id == robot_id).values(**values))

    def lock(self, robot_id: str) -> None:
        """Hold this robot's row lock until commit (PostgreSQL; SQLite's writer is already alone)."""
        self._session.execute(select(_ROBOTS.c.robot_id).where(_ROBOTS.c.robot_id == robot_id).with_for_update())

    def allocate_revisions(self, counts: Mapping[str, int]) -> dict[str, range]:
        """Reserve ``counts[robot]`` consecutive revisions of each robot. Rows are locked in robot id
        order (no deadlock between two multi-robot writers) and stay locked until commit, so a
        robot's revisions become visible in the order they were handed out."""
        wanted = {r: n for r, n in counts.items() if n > 0}
        if not wanted:
            return {}
        robots = sorted(wanted)
        current: dict[str, int] = {}
        for chunk in chunks(robots):
            stmt = select(_ROBOTS.c.robot_id, _ROBOTS.c.task_revision).where(_ROBOTS.c.robot_id.in_(chunk))
            current.update(core(self._session, stmt.order_by(_ROBOTS.c.robot_id).with_for_update()).tuples().all())
        missing = [r for r in robots if r not in current]
        if missing:
            raise LookupError(f"robot {missing[0]} is not registered")
        update_by_key(
            self._session, _ROBOTS, "robot_id", [{"robot_id": r, "task_revision": current[r] + wanted[r]} for r in robots]
        )
        return {r: range(current[r] + 1, current[r] + wanted[r] + 1) for r in robots}

    def revisions(self) -> dict[str, int]:
        """Every robot's newest task revision: one scan of a table as small as the fleet."""
        return dict(core(self._session, select(_ROBOTS.c.robot_id, _ROBOTS.c.task_revision)).tuples().all())

    def list(self) -> list[RobotRecord]:
        rows = self._session.execute(select(*_ROBOT_COLUMNS).order_by(_ROBOTS.c.robot_id))
        return [_robot(r) for r in rows]

    def existing_ids(self, robot_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in chunks(list(robot_ids)):
            found.update(self._session.execute(select(RobotRow.robot_id).where(RobotRow.robot_id.in_(chunk))).scalars())
        return found

    def touch_many(self, seen: Mapping[str, datetime]) -> None:
        """Batched "last seen" (one executemany): never moves a robot's time backwards, so two
        API processes flushing in any order agree."""
        if not seen:
            return
        stmt = (
            update(RobotRow)
            .where(RobotRow.robot_id == bindparam("rid"))
            .where((RobotRow.last_seen_at.is_(None)) | (RobotRow.last_seen_at < bindparam("seen")))
            .values(last_seen_at=bindparam("seen"))
            .execution_options(synchronize_session=False)
        )
        self._session.connection().execute(stmt, [{"rid": r, "seen": t} for r, t in sorted(seen.items())])


_ROBOTS = RobotRow.__table__
_ROBOT_COLUMNS = (_ROBOTS.c.robot_id, _ROBOTS.c.name, _ROBOTS.c.created_at, _ROBOTS.c.last_seen_at, _ROBOTS.c.task_revision,
                  _ROBOTS.c.previous_token_expires_at, _ROBOTS.c.tokens_revoked_at)


def _robot(row: Any) -> RobotRecord:
    return RobotRecord(row.robot_id, row.name, row.created_at, row.last_seen_at, row.task_revision,
                       row.previous_token_expires_at, row.tokens_revoked_at)
