"""Axon's checksum of a recording, verified on the robot after the recording is reported.

An Axon MCAP comes with the recorder's own SHA-256 of the file (``checksum_sha256`` in its sidecar,
or in ``/rpc/stats``). The agent reports the recording EXECUTED as soon as it is in the edge cache,
with that checksum as the manifest's digest of the MCAP, and verifies it here, in a thread of its
own: one read of the file, which overlaps the wait for the upload grant (and the upload itself
when the grant comes first). The verdict is kept in the agent's database (table
``recording_checks``), so a restart verifies again only what was not finished.

- the uploader asks :meth:`RecordingChecks.require` before each part and, waiting for the
  verdict, before it completes: a recording that does not match its checksum never completes an
  upload (and stops using the uplink as soon as that is known);
- a mismatch fails the task with the reason (``on_mismatch``); the cloud's completion check
  would refuse such an upload anyway (it compares the staged bytes with the manifest).

Recordings without a recorder's checksum (the Lance-era layout, an MCAP without sidecar or stats
checksum) are hashed before the report, as before: nothing is pending for them here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from axon_dagster.domain import utcnow
from axon_dagster.storage.digest import file_sha256

from .db import EdgeDB

log = logging.getLogger(__name__)

PENDING, VERIFIED, MISMATCH = "pending", "verified", "mismatch"


class RecordingCorrupt(Exception):
    """The recording's bytes do not match the recorder's checksum: it is never uploaded."""


class RecordingChecks:
    def __init__(self, db: EdgeDB, locate: Callable[[str, str], Any], on_mismatch: Callable[[str, str], None],
                 stop: threading.Event):
        """``locate(task_id, name)``: the cached file's path; ``on_mismatch(task_id, reason)``:
        fail the task."""
        self.db, self.locate, self.on_mismatch, self.stop = db, locate, on_mismatch, stop
        self.wake = threading.Event()
        self._changed = threading.Condition()
        self.current: str | None = None
        self.verified = self.mismatches = 0

    # ------------------------------------------------------------------ what is pending

    def expect(self, task_id: str, name: str, sha256: str) -> None:
        """``name`` of ``task_id``'s recording must hash to ``sha256`` (the recorder's claim)."""
        with self.db.write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO recording_checks (task_id, file_name, sha256, state) VALUES (?, ?, ?, ?)",
                (task_id, name, sha256, PENDING),
            )
        self.wake.set()

    def verdict(self, task_id: str) -> tuple[str | None, str | None]:
        """(``mismatch`` | ``pending`` | ``verified`` | None when nothing is checked, the reason)."""
        with self.db.read() as conn:
            rows = conn.execute("SELECT state, detail FROM recording_checks WHERE task_id = ?", (task_id,)).fetchall()
        states = {r["state"] for r in rows}
        for state in (MISMATCH, PENDING, VERIFIED):
            if state in states:
                return state, next((r["detail"] for r in rows if r["state"] == state), None)
        return None, None

    def require(self, task_id: str, wait: bool = False) -> None:
        """Raise :class:`RecordingCorrupt` when the recording failed its check; with ``wait``,
        return only once nothing of it is pending (or the agent stops)."""
        while True:
            with self._changed:
                state, detail = self.verdict(task_id)
                if state == MISMATCH:
                    raise RecordingCorrupt(detail or f"task {task_id}: the recording does not match the recorder's checksum")
                if state != PENDING or not wait or self.stop.is_set():
                    return
                self._changed.wait(0.5)

    # ------------------------------------------------------------------ the thread

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                busy = self.check_one()
            except Exception:  # the loop must survive anything; the check stays pending
                log.exception("recording check failed unexpectedly")
                busy = False
            if not busy:
                self.wake.wait(5.0)
                self.wake.clear()

    def check_one(self) -> bool:
        """Verify the oldest pending file; True when one was checked."""
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT task_id, file_name, sha256 FROM recording_checks WHERE state = ? ORDER BY rowid LIMIT 1", (PENDING,)
            ).fetchone()
        if row is None:
            return False
        task_id, name, claimed = row["task_id"], row["file_name"], row["sha256"]
        self.current = task_id
        try:
            try:
                actual = file_sha256(self.locate(task_id, name))
            except (KeyError, OSError) as exc:
                actual, why = None, f"cannot read it in the edge cache: {exc}"
            else:
                why = f"its SHA-256 is {actual}, the recorder's checksum {claimed}"
        finally:
            self.current = None
        state = VERIFIED if actual == claimed else MISMATCH
        detail = None if state == VERIFIED else f"recording corrupt: {name} does not match the recorder's checksum ({why})"
        with self._changed:
            with self.db.write() as conn:
                conn.execute(
                    "UPDATE recording_checks SET state = ?, detail = ?, checked_at = ? WHERE task_id = ? AND file_name = ? AND state = ?",
                    (state, detail, utcnow().isoformat(), task_id, name, PENDING),
                )
            self._changed.notify_all()
        if state == VERIFIED:
            self.verified += 1
            log.info("task %s: %s matches the recorder's checksum (sha256 %s…)", task_id, name, claimed[:12])
        else:
            self.mismatches += 1
            log.error("task %s: %s", task_id, detail)
            self.on_mismatch(task_id, detail)  # type: ignore[arg-type]
        return True

    def status(self) -> dict[str, Any]:
        with self.db.read() as conn:
            pending = conn.execute("SELECT COUNT(*) FROM recording_checks WHERE state = ?", (PENDING,)).fetchone()[0]
        return {"pending": pending, "current_task": self.current, "verified": self.verified, "mismatches": self.mismatches}
