"""Storage: SQLAlchemy models and the repository (`Storage`) the scheduler writes and the CLI reads; the
models are exported for read-only queries built elsewhere (the dashboard's paged tables)."""

from __future__ import annotations

from hpoqueue.storage._models import EventRow, ExperimentRow, MetricRow, TrialRow
from hpoqueue.storage._records import EventRecord, ExperimentRecord, MetricRecord, TrialRecord
from hpoqueue.storage._schema import upgrade as upgrade_schema
from hpoqueue.storage._storage import TRIAL_FIELDS, Storage, default_storage_url, make_trial_id

__all__ = [
    "TRIAL_FIELDS",
    "EventRow",
    "EventRecord",
    "ExperimentRow",
    "ExperimentRecord",
    "MetricRow",
    "MetricRecord",
    "Storage",
    "TrialRow",
    "TrialRecord",
    "default_storage_url",
    "make_trial_id",
    "upgrade_schema",
]
