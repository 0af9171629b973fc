"""SQLAlchemy 2 typed models: experiments, trials, metrics and trial events (the whole schema)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, Enum, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from hpoqueue.states import ExperimentState, TrialState


def utcnow() -> datetime:
    """The current time as a timezone-aware UTC datetime (the only kind storage hands out)."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime stored as UTC and always read back timezone-aware, on SQLite (naive text) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to storage; pass a timezone-aware UTC datetime")
        value = value.astimezone(timezone.utc)
        # SQLite has no time zones: store naive UTC text so that string order is time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


#: JSON where Python None is SQL NULL (not the JSON text 'null'), so "no value" reads the same everywhere.
NullableJSON = JSON(none_as_null=True)


def _state_enum(enum: type[TrialState] | type[ExperimentState]) -> Enum:
    """A VARCHAR holding the state's value: no native enum type, so a new state needs no migration."""
    return Enum(enum, native_enum=False, create_constraint=False, length=24,
                values_callable=lambda members: [m.value for m in members])


class Base(DeclarativeBase):
    """Declarative base of every hpoqueue table."""

    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class ExperimentRow(Base):
    __tablename__ = "experiments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[ExperimentState] = mapped_column(_state_enum(ExperimentState))
    config: Mapped[dict[str, Any]]
    work_dir: Mapped[str] = mapped_column(Text)
    optimize_mode: Mapped[str] = mapped_column(String(16))
    concurrency: Mapped[int]
    max_trial_number: Mapped[int | None]
    max_duration: Mapped[float | None] = mapped_column(Float)
    #: the seq the next created trial gets; only ever grows (resume never reuses a seq)
    next_seq: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    message: Mapped[str | None] = mapped_column(Text)


class TrialRow(Base):
    __tablename__ = "trials"
    __table_args__ = (Index("ix_trials_experiment_seq", "experiment_id", "seq", unique=True),)

    id: Mapped[str] = mapped_column(String(96), primary_key=True)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    seq: Mapped[int]
    params: Mapped[dict[str, Any]]
    state: Mapped[TrialState] = mapped_column(_state_enum(TrialState))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    queue: Mapped[str | None] = mapped_column(String(255))
    host: Mapped[str | None] = mapped_column(String(255))
    gpus: Mapped[list[int] | None] = mapped_column(NullableJSON)
    pid: Mapped[int | None]
    exit_code: Mapped[int | None]
    exit_reason: Mapped[str | None] = mapped_column(Text)
    final_value: Mapped[float | None] = mapped_column(Float)
    final_data: Mapped[Any] = mapped_column(NullableJSON, nullable=True)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]


class MetricRow(Base):
    __tablename__ = "metrics"
    __table_args__ = (
        # unique: a redelivered metric (same attempt, kind and step) is ignored, not stored twice
        Index("ix_metrics_trial_attempt_kind_step", "trial_id", "attempt", "kind", "step", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    attempt: Mapped[int]
    kind: Mapped[str] = mapped_column(String(16))
    step: Mapped[int]
    value: Mapped[float] = mapped_column(Float)
    data: Mapped[Any] = mapped_column(NullableJSON, nullable=True)
    created_at: Mapped[datetime]


class EventRow(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_trial", "trial_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    attempt: Mapped[int]
    kind: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
