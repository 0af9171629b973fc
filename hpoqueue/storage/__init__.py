"""Storage: SQLAlchemy models and the repository (`Storage`) the scheduler writes and the CLI reads."""

from __future__ import annotations

from hpoqueue.storage._records import EventRecord, ExperimentRecord, MetricRecord, TrialRecord
from hpoqueue.storage._schema import upgrade as upgrade_schema
from hpoqueue.storage._storage import TRIAL_FIELDS, Storage, default_storage_url, make_trial_id

__all__ = [
    "TRIAL_FIELDS",
    "EventRecord",
    "ExperimentRecord",
    "MetricRecord",
    "Storage",
    "TrialRecord",
    "default_storage_url",
    "make_trial_id",
    "upgrade_schema",
]
