"""What the uploader has done, in the agent's SQLite database (tables ``uploads`` and
``upload_parts`` of :mod:`axon_edge.db`'s schema, versioned with it).

A part is recorded only once the store confirmed it (its ETag is the MD5 the robot computed, or the
store checked the ``Content-MD5`` the robot sent): a restart skips exactly the parts recorded here
or listed by the plan as done, so no finished part is sent twice and no unconfirmed one is trusted.
Parts are keyed by the backend's multipart upload id: a re-issued grant that resumes the same
multipart upload keeps them; a new multipart upload starts from nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from axon_dagster.domain import utcnow

from ..db import EdgeDB

UPLOADING, COMPLETED, FAILED = "uploading", "completed", "failed"


@dataclass(frozen=True)
class VerifiedPart:
    number: int
    size: int
    md5: str
    etag: str


@dataclass(frozen=True)
class UploadRecord:
    task_id: str
    grant_id: str
    state: str
    bytes_sent: int
    parts_sent: int
    parts_skipped: int
    retries: int
    attempts: int
    last_error: str | None


class UploadState:
    def __init__(self, db: EdgeDB):
        self.db = db

    def begin(self, task_id: str, grant_id: str) -> UploadRecord:
        """Start (or resume) the upload of ``task_id`` under ``grant_id``; counts one attempt."""
        now = utcnow().isoformat()
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO uploads (task_id, grant_id, state, attempts, started_at, updated_at) VALUES (?, ?, ?, 1, ?, ?) "
                "ON CONFLICT(task_id) DO UPDATE SET grant_id = excluded.grant_id, state = excluded.state, "
                "attempts = attempts + 1, last_error = NULL, updated_at = excluded.updated_at",
                (task_id, grant_id, UPLOADING, now, now),
            )
        return self.get(task_id)  # type: ignore[return-value]

    def get(self, task_id: str) -> UploadRecord | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT * FROM uploads WHERE task_id = ?", (task_id,)).fetchone()
        if row is None:
            return None
        return UploadRecord(
            task_id=row["task_id"], grant_id=row["grant_id"], state=row["state"], bytes_sent=row["bytes_sent"],
            parts_sent=row["parts_sent"], parts_skipped=row["parts_skipped"], retries=row["retries"],
            attempts=row["attempts"], last_error=row["last_error"],
        )

    def completed(self, task_id: str, grant_id: str) -> bool:
        record = self.get(task_id)
        return record is not None and record.grant_id == grant_id and record.state == COMPLETED

    def verified_parts(self, task_id: str, file_name: str, upload_id: str) -> dict[int, VerifiedPart]:
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT number, size, md5, etag FROM upload_parts WHERE task_id = ? AND file_name = ? AND upload_id = ?",
                (task_id, file_name, upload_id),
            ).fetchall()
        return {r["number"]: VerifiedPart(r["number"], r["size"], r["md5"], r["etag"]) for r in rows}

    def part_verified(self, task_id: str, file_name: str, upload_id: str, part: VerifiedPart, *, sent: bool) -> None:
        """Record a confirmed part (``sent``: this process sent it; else it was found done)."""
        now = utcnow().isoformat()
        with self.db.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO upload_parts (task_id, file_name, upload_id, number, size, md5, etag, verified_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (task_id, file_name, upload_id, part.number, part.size, part.md5, part.etag, now),
            )
            if sent:
                conn.execute(
                    "UPDATE uploads SET parts_sent = parts_sent + 1, bytes_sent = bytes_sent + ?, updated_at = ? WHERE task_id = ?",
                    (part.size, now, task_id),
                )
            else:
                conn.execute(
                    "UPDATE uploads SET parts_skipped = parts_skipped + 1, updated_at = ? WHERE task_id = ?", (now, task_id)
                )

    def retried(self, task_id: str, error: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                "UPDATE uploads SET retries = retries + 1, last_error = ?, updated_at = ? WHERE task_id = ?",
                (error[:500], utcnow().isoformat(), task_id),
            )

    def failed(self, task_id: str, error: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                "UPDATE uploads SET state = ?, last_error = ?, updated_at = ? WHERE task_id = ?",
                (FAILED, error[:500], utcnow().isoformat(), task_id),
            )

    def complete(self, task_id: str) -> None:
        """The control plane accepted the upload (STAGED): the parts' rows are of no further use."""
        now = utcnow().isoformat()
        with self.db.write() as conn:
            conn.execute(
                "UPDATE uploads SET state = ?, last_error = NULL, completed_at = ?, updated_at = ? WHERE task_id = ?",
                (COMPLETED, now, now, task_id),
            )
            conn.execute("DELETE FROM upload_parts WHERE task_id = ?", (task_id,))

    def forget_parts(self, task_id: str) -> None:
        """The staged objects are gone (the control plane refused the upload): start over next time."""
        with self.db.write() as conn:
            conn.execute("DELETE FROM upload_parts WHERE task_id = ?", (task_id,))

    def totals(self) -> dict[str, int]:
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT COUNT(*) AS n, COALESCE(SUM(state = ?), 0) AS active, COALESCE(SUM(state = ?), 0) AS done FROM uploads",
                (UPLOADING, COMPLETED),
            ).fetchone()
        return {"uploads": row["n"], "active": row["active"], "completed": row["done"]}
