"""Frozen records handed to callers: plain values, never ORM objects, so nothing detaches or lazy-loads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hpoqueue.states import ExperimentState, TrialState
from hpoqueue.storage._models import Event, Experiment, Metric, Trial


@dataclass(frozen=True)
class ExperimentRecord:
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

    @classmethod
    def from_row(cls, row: Experiment) -> ExperimentRecord:
        return cls(id=row.id, name=row.name, state=row.state, config=row.config, work_dir=row.work_dir,
                   optimize_mode=row.optimize_mode, concurrency=row.concurrency,
                   max_trial_number=row.max_trial_number, max_duration=row.max_duration,
                   next_seq=row.next_seq, created_at=row.created_at, started_at=row.started_at,
                   ended_at=row.ended_at, message=row.message)


@dataclass(frozen=True)
class TrialRecord:
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

    @classmethod
    def from_row(cls, row: Trial) -> TrialRecord:
        return cls(id=row.id, experiment_id=row.experiment_id, seq=row.seq, params=row.params,
                   state=row.state, attempt=row.attempt, queue=row.queue, host=row.host, gpus=row.gpus,
                   pid=row.pid, exit_code=row.exit_code, exit_reason=row.exit_reason,
                   final_value=row.final_value, final_data=row.final_data, created_at=row.created_at,
                   started_at=row.started_at, ended_at=row.ended_at)


@dataclass(frozen=True)
class MetricRecord:
    trial_id: str
    attempt: int
    kind: str  #: 'intermediate' or 'final'
    step: int
    value: float
    data: Any
    created_at: datetime

    @classmethod
    def from_row(cls, row: Metric) -> MetricRecord:
        return cls(trial_id=row.trial_id, attempt=row.attempt, kind=row.kind, step=row.step,
                   value=row.value, data=row.data, created_at=row.created_at)


@dataclass(frozen=True)
class EventRecord:
    trial_id: str
    attempt: int
    kind: str
    data: dict
    created_at: datetime

    @classmethod
    def from_row(cls, row: Event) -> EventRecord:
        return cls(trial_id=row.trial_id, attempt=row.attempt, kind=row.kind, data=row.data,
                   created_at=row.created_at)
