"""The trial table: sorted, filtered and paged in SQL, so an experiment of 10,000 trials stays fast.

A column is `seq`, `state`, `value`, `duration`, `started`, `ended`, `host`, `param:NAME` or `metric:NAME`
(a key of the final result's dict, `default` aside). A filter is `COLUMN OP VALUE` with OP one of
`= != < <= > >= ~` (`~`: contains, for text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Float, String, cast, func, select

from hpoqueue.errors import HpoQueueError
from hpoqueue.states import TrialState
from hpoqueue.storage import ExperimentRecord, Storage, TrialRow

FIXED_COLUMNS = ("seq", "state", "value", "duration", "started", "ended", "host")
OPERATORS = ("<=", ">=", "!=", "=", "<", ">", "~")
MAX_PAGE = 500
SAMPLE = 500  #: trials read to learn the parameter and metric names and kinds


class QueryError(HpoQueueError):
    """A sort column or filter the table cannot apply (HTTP 400, one line)."""


@dataclass(frozen=True)
class Columns:
    """The parameter and metric names of an experiment, each numeric or text."""

    params: dict[str, bool]  #: name -> numeric
    metrics: list[str]  #: numeric keys of the final results' dicts, besides `default`


def columns(storage: Storage, exp_id: str) -> Columns:
    """Learn the parameter and extra metric names from the latest trials (SAMPLE of them)."""
    rows = storage.select(select(TrialRow.params, TrialRow.final_data).where(TrialRow.experiment_id == exp_id)
                          .order_by(TrialRow.seq.desc()).limit(SAMPLE))
    params: dict[str, bool] = {}
    metrics: dict[str, None] = {}
    for row_params, data in reversed(rows):
        for name, value in (row_params or {}).items():
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            params[name] = params.get(name, True) and numeric
        if isinstance(data, dict):
            metrics.update({k: None for k, v in data.items()
                            if k != "default" and isinstance(v, int | float) and not isinstance(v, bool)})
    return Columns(params=params, metrics=list(metrics))


def _duration(dialect: str) -> ColumnElement[Any]:
    """Seconds from start to end (to now while running), in the database's own arithmetic."""
    if dialect == "sqlite":
        end = func.coalesce(func.julianday(TrialRow.ended_at), func.julianday("now"))
        return (end - func.julianday(TrialRow.started_at)) * 86400.0
    end = func.coalesce(TrialRow.ended_at, func.now())
    return func.extract("epoch", end - TrialRow.started_at)


def _column(name: str, cols: Columns, dialect: str) -> tuple[ColumnElement[Any], bool]:
    """The SQL expression of a table column, and whether it is numeric."""
    fixed: dict[str, tuple[ColumnElement[Any], bool]] = {
        "seq": (TrialRow.seq.expression, True), "state": (cast(TrialRow.state, String), False),
        "value": (TrialRow.final_value.expression, True), "duration": (_duration(dialect), True),
        "started": (TrialRow.started_at.expression, False), "ended": (TrialRow.ended_at.expression, False),
        "host": (TrialRow.host.expression, False)}
    if name in fixed:
        return fixed[name]
    kind, _, key = name.partition(":")
    if kind == "param" and key in cols.params:
        numeric = cols.params[key]
        element = TrialRow.params[key]
        return (element.as_float() if numeric else element.as_string()), numeric
    if kind == "metric" and key in cols.metrics:
        return TrialRow.final_data[key].as_float(), True
    known = [*FIXED_COLUMNS, *(f"param:{p}" for p in cols.params), *(f"metric:{m}" for m in cols.metrics)]
    raise QueryError(f"unknown column {name!r}; one of: {', '.join(known)}")


def parse_filter(text: str, cols: Columns, dialect: str) -> ColumnElement[bool]:
    """`lr < 0.01`, `param:optimizer = adam`, `state = RUNNING`, `metric:acc >= 0.9` as a WHERE clause.
    A bare name is looked up as a parameter, then a metric."""
    match = re.fullmatch(r"\s*([^<>=!~\s]+)\s*(<=|>=|!=|=|<|>|~)\s*(.*?)\s*", text)
    if not match:
        raise QueryError(f"bad filter {text!r}: write COLUMN OP VALUE with OP one of {' '.join(OPERATORS)}")
    name, op, raw = match.groups()
    if name not in FIXED_COLUMNS and ":" not in name:
        name = f"param:{name}" if name in cols.params else f"metric:{name}" if name in cols.metrics else name
    element, numeric = _column(name, cols, dialect)
    if name == "state":
        raw = raw.upper()
    value: Any = raw
    if numeric and op != "~":
        try:
            value = float(raw)
        except ValueError:
            raise QueryError(f"bad filter {text!r}: {name} is a number, not {raw!r}") from None
    if op == "~":
        return cast(element, String).contains(raw, autoescape=True)
    element = cast(element, Float) if numeric and name in ("seq", "duration") else element
    return {"=": element == value, "!=": element != value, "<": element < value, "<=": element <= value,
            ">": element > value, ">=": element >= value}[op]


def page(storage: Storage, exp: ExperimentRecord, *, sort: str = "seq", descending: bool = False,
         states: list[str] | None = None, filters: list[str] | None = None, offset: int = 0,
         limit: int = 50) -> dict[str, Any]:
    """One page of the experiment's trials and the number that match, as JSON-ready values."""
    dialect = "sqlite" if storage.url.startswith("sqlite") else "postgresql"
    cols = columns(storage, exp.id)
    where: list[ColumnElement[bool]] = [TrialRow.experiment_id == exp.id]
    if states:
        try:
            where.append(TrialRow.state.in_([TrialState(s.upper()) for s in states]))
        except ValueError:
            raise QueryError(f"unknown state in {states}; one of: {', '.join(s.value for s in TrialState)}"
                             ) from None
    where.extend(parse_filter(f, cols, dialect) for f in filters or [] if f.strip())
    order, _ = _column(sort, cols, dialect)
    order_by = (order.desc() if descending else order.asc()).nulls_last()
    limit = max(1, int(limit))
    duration = _duration(dialect).label("duration")
    stmt = (select(TrialRow, duration).where(*where).order_by(order_by, TrialRow.seq)
            .offset(max(0, int(offset))).limit(limit))
    total = storage.select(select(func.count()).select_from(TrialRow).where(*where))[0][0]
    rows = [trial_json(trial, seconds) for trial, seconds in storage.select(stmt)]
    return {"total": total, "offset": offset, "limit": limit, "rows": rows,
            "params": list(cols.params), "metrics": cols.metrics}


def trial_json(trial: TrialRow, duration: float | None) -> dict[str, Any]:
    """A trial row as the pages show it."""
    return {"id": trial.id, "seq": trial.seq, "state": trial.state.value, "value": trial.final_value,
            "params": trial.params, "metrics": trial.final_data if isinstance(trial.final_data, dict) else {},
            "attempt": trial.attempt, "host": trial.host, "gpus": trial.gpus, "pid": trial.pid,
            "exit_reason": trial.exit_reason,
            "started": trial.started_at.timestamp() if trial.started_at else None,
            "ended": trial.ended_at.timestamp() if trial.ended_at else None,
            "duration": duration if trial.started_at else None}
