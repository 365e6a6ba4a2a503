"""The pure domain model: entities, ids, state machines, planning. No I/O, no framework."""

from .errors import DomainError, IllegalTransitionError, InvalidIdError, PlanningError
from .events import TaskEvent, transition_event_id
from .ids import validate_id
from .layout import axon_sidecar_key, cloud_dataset_key, mcap_key, report_key, sidecar_key
from .model import Batch, Dataset, Order, Requirements, ReviewDecisionFinal, RollupStatus, Task, rollup, utcnow
from .planning import BatchStrategy, ManualBatch, Plan, TaskTemplate, assign_round_robin, plan_order, plan_tasks
from .uploads import (
    EdgeGate,
    GrantStatus,
    ManifestError,
    ManifestFile,
    RecordingManifest,
    UploadGrant,
    UploadRefused,
)
from .states import (
    DATASET_TRANSITIONS,
    TASK_TRANSITIONS,
    DatasetStatus,
    QcOutcome,
    TaskStatus,
    check_transition,
    parse_task_status,
)

__all__ = [name for name in dir() if not name.startswith("_")]
