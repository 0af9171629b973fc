"""Frozen records handed to callers: plain values, never ORM objects, so nothing detaches or lazy-loads."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from typing_extensions import Self

from hpoqueue.states import ExperimentState, TrialState
from hpoqueue.storage._models import Base


class FromRow:
    """The one mapping from an ORM row to its record: each of the record's fields is the row's attribute of
    that name (tests/storage checks that every field names a column of its table)."""

    @classmethod
    def from_row(cls, row: Base) -> Self:
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]  # each subclass is a dataclass
        return cls(**{name: getattr(row, name) for name in names})


@dataclass(frozen=True)
class ExperimentRecord(FromRow):
    id: str
    name: str | None
    state: ExperimentState
    config: dict
    work_dir: str
    optimize_mode: str
    concurrency: int
    max_trial_number: int | None
    max_duration: float | None
    next_seq: int
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    message: str | None



@dataclass(frozen=True)
class TrialRecord(FromRow):
    id: str
    experiment_id: str
    seq: int
    params: dict
    state: TrialState
    attempt: int
    queue: str | None
    host: str | None
    gpus: list[int] | None
    pid: int | None
    exit_code: int | None
    exit_reason: str | None
    final_value: float | None
    final_data: Any
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None



@dataclass(frozen=True)
class MetricRecord(FromRow):
    trial_id: str
    attempt: int
    kind: str  #: 'intermediate' or 'final'
    step: int
    value: float
    data: Any
    created_at: datetime



@dataclass(frozen=True)
class EventRecord(FromRow):
    trial_id: str
    attempt: int
    kind: str
    data: dict
    created_at: datetime

