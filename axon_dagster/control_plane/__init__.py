"""The control plane: its use cases, one module per area, over its SQL persistence.

- ``robots``: registration, token rotation/revocation, bearer authentication, "last seen"
- ``orders``: orders and batches (create, plan, dispatch, read)
- ``tasks``: reading tasks, cloud-side moves
- ``edge_sync``: the robots' task pull and event push, the task-status sensor's event feed
- ``datasets``: the data flow's dataset steps; ``review`` (the reviewer's queue, decisions,
  disposal), ``dataset_search``, ``batch_review`` (admin batch review with its audit log)
- ``uploads``: upload grants, robots' uplinks, upload plans and completion into the staging area
- ``caches``: robots' edge-cache usage reports (one per robot); ``metrics``: gauges for /metrics
- ``accounts``: people and service tokens
- ``persistence``: SQLAlchemy repositories and the unit of work (the only owner of SQL), Alembic migrations
- ``validation``, ``views``, ``errors``: what every use case shares

Each use case takes a fresh unit of work, opens one transaction, lets the domain
(``axon_dagster.domain``) decide, and commits. Every refusal raises before anything is written
(or rolls the transaction back), so bad input changes nothing. Entry points (``axon_dagster.api``,
the CLIs) import the area modules; this package re-exports the use cases as one namespace.
"""

from __future__ import annotations

from .caches import list_cache_usage, parse_cache_usage, report_cache_usage
from .datasets import (
    dataset_cached,
    dataset_inspected,
    dataset_publish_attempt,
    dataset_upload_failed,
    dataset_upload_started,
    dataset_uploaded,
    get_dataset,
    list_datasets,
    review_dataset,
)
from .edge_sync import apply_events, events_after, parse_events, publish_events, pull_tasks, robot_revisions
from .metrics import metrics_snapshot
from .orders import create_order, dispatch_order, get_batch, get_order, list_batches, list_orders, plan_order
from .robots import (
    LAST_SEEN_RESOLUTION,
    LastSeen,
    authenticate_robot,
    hash_token,
    RecorderReport,
    list_robots,
    register_robot,
    report_recorder,
    revoke_robot_tokens,
    robot_token_index,
    rotate_robot_token,
)
from .tasks import get_task, list_tasks, transition_task
from .uploads import complete_upload, expire_grants, grant_upload, plan_upload, report_uplink, upload_queue

__all__ = [
    "LAST_SEEN_RESOLUTION",
    "LastSeen",
    "apply_events",
    "authenticate_robot",
    "create_order",
    "dataset_cached",
    "dataset_inspected",
    "dataset_publish_attempt",
    "dataset_upload_failed",
    "dataset_upload_started",
    "dataset_uploaded",
    "dispatch_order",
    "events_after",
    "expire_grants",
    "complete_upload",
    "grant_upload",
    "plan_upload",
    "report_uplink",
    "RecorderReport",
    "report_recorder",
    "upload_queue",
    "get_batch",
    "get_dataset",
    "get_order",
    "get_task",
    "hash_token",
    "list_batches",
    "list_cache_usage",
    "parse_cache_usage",
    "list_datasets",
    "list_orders",
    "list_robots",
    "list_tasks",
    "metrics_snapshot",
    "parse_events",
    "plan_order",
    "publish_events",
    "pull_tasks",
    "register_robot",
    "report_cache_usage",
    "review_dataset",
    "revoke_robot_tokens",
    "robot_token_index",
    "robot_revisions",
    "rotate_robot_token",
    "transition_task",
]
