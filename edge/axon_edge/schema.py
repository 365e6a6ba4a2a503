"""The robot's task database schema, one migration per version (``PRAGMA user_version``, applied by
:mod:`axon_dagster.storage.sqlite`): tables follow the reference design's edge schema (tasks, orders,
batches) plus the ``outbox`` of status events, ``sync_state`` (the pull cursor) and the uploader's
``uploads`` / ``upload_parts`` and ``recording_checks``."""

from __future__ import annotations

# 1: tasks, orders, batches, outbox, sync_state. 2: uploads, upload_parts (axon_edge.upload.state).
# 3: recording_checks (axon_edge.verification).
SCHEMA_VERSION = 3

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS orders (
    order_id    TEXT PRIMARY KEY,
    scene       TEXT NOT NULL,
    sub_scene   TEXT,
    skills      TEXT NOT NULL DEFAULT '[]',      -- JSON array
    status      TEXT NOT NULL,                   -- roll-up of this robot's tasks of the order
    created_at  TEXT NOT NULL,
    created_by  TEXT
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id    TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL,
    scene       TEXT NOT NULL,
    sub_scene   TEXT,
    skills      TEXT NOT NULL DEFAULT '[]',      -- JSON array
    status      TEXT NOT NULL,                   -- roll-up of this robot's tasks of the batch
    created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    task_id           TEXT PRIMARY KEY,
    order_id          TEXT NOT NULL,
    batch_id          TEXT NOT NULL,
    scene             TEXT NOT NULL,
    sub_scene         TEXT,
    skills            TEXT NOT NULL DEFAULT '[]',  -- JSON array
    status            TEXT NOT NULL,
    config_path       TEXT,
    dataset_path      TEXT,
    sidecar_path      TEXT,
    robot_id          TEXT,
    data_collector_id TEXT,
    created_at        TEXT NOT NULL,
    ready_at          TEXT,
    assigned_at       TEXT,
    executing_at      TEXT,
    executed_at       TEXT,
    uploaded_at       TEXT,
    uploaded          INTEGER NOT NULL DEFAULT 0,
    metadata          TEXT NOT NULL DEFAULT '{}',  -- JSON object (requirements, cloud status, ...)
    duration_seconds  REAL,
    topics            TEXT NOT NULL DEFAULT '[]',  -- JSON array
    priority          INTEGER NOT NULL DEFAULT 0,
    failure_reason    TEXT,
    cloud_revision    INTEGER NOT NULL DEFAULT 0,
    pending_command   TEXT,                        -- 'start'/'stop' sent to the recorder, not yet recorded
    updated_at        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_tasks_status ON tasks(status);
CREATE INDEX IF NOT EXISTS idx_tasks_uploaded ON tasks(uploaded);
CREATE INDEX IF NOT EXISTS idx_tasks_robot_id ON tasks(robot_id);
CREATE TABLE IF NOT EXISTS outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,  -- delivery order
    event_id     TEXT NOT NULL UNIQUE,
    task_id      TEXT NOT NULL,
    status       TEXT NOT NULL,
    occurred_at  TEXT NOT NULL,
    data         TEXT NOT NULL DEFAULT '{}',         -- JSON object
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    result       TEXT,                               -- applied | duplicate | rejected
    delivered_at TEXT                                -- when the control plane answered for it
);
CREATE INDEX IF NOT EXISTS idx_outbox_undelivered ON outbox(id) WHERE delivered_at IS NULL;
CREATE TABLE IF NOT EXISTS sync_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

_SCHEMA_V2 = """
CREATE TABLE IF NOT EXISTS uploads (
    task_id       TEXT PRIMARY KEY,
    grant_id      TEXT NOT NULL,
    state         TEXT NOT NULL,                     -- uploading | completed | failed
    bytes_sent    INTEGER NOT NULL DEFAULT 0,        -- part bytes confirmed by the store, sent by this robot
    parts_sent    INTEGER NOT NULL DEFAULT 0,
    parts_skipped INTEGER NOT NULL DEFAULT 0,        -- found done (plan's done_parts), not sent again
    retries       INTEGER NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    started_at    TEXT,
    completed_at  TEXT,
    updated_at    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS upload_parts (
    task_id     TEXT NOT NULL,
    file_name   TEXT NOT NULL,
    upload_id   TEXT NOT NULL,                       -- the backend's multipart upload id
    number      INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    md5         TEXT NOT NULL,
    etag        TEXT NOT NULL,
    verified_at TEXT NOT NULL,
    PRIMARY KEY (task_id, file_name, upload_id, number)
);
"""

_SCHEMA_V3 = """
CREATE TABLE IF NOT EXISTS recording_checks (
    task_id     TEXT NOT NULL,
    file_name   TEXT NOT NULL,
    sha256      TEXT NOT NULL,                       -- the recorder's checksum (reported in the manifest)
    state       TEXT NOT NULL,                       -- pending | verified | mismatch
    detail      TEXT,                                -- the mismatch, said plainly
    checked_at  TEXT,
    PRIMARY KEY (task_id, file_name)
);
"""

MIGRATIONS = (_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3)
