"""What each dashboard page shows, read from the record in a few SQL queries and returned as JSON-ready dicts."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from hpoqueue.results.optimize_mode import best_first
from hpoqueue.states import ExperimentState, TrialState
from hpoqueue.storage import EventRow, ExperimentRecord, ExperimentRow, MetricRow, Storage, TrialRow

LOG_TAIL = 64 * 1024  #: bytes of a log shown when a trial page opens
T = TrialRow.__table__  #: the table itself: Core rows, without the ORM's per-row cost on big reads
LOG_NAMES = {"stdout": "trial.stdout", "stderr": "trial.stderr", "hpoqueue": "trial.log"}


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _better(exp: ExperimentRecord) -> Any:
    """The ORDER BY that puts the best final value first."""
    return best_first(TrialRow.final_value.expression, exp.optimize_mode)


def best_trial(storage: Storage, exp: ExperimentRecord) -> dict[str, Any] | None:
    """The best succeeded trial with a value (the CLI's `best` rule, as one indexed query)."""
    rows = storage.select(select(TrialRow.id, TrialRow.seq, TrialRow.final_value, TrialRow.params)
                          .where(TrialRow.experiment_id == exp.id, TrialRow.state == TrialState.SUCCEEDED,
                                 TrialRow.final_value.is_not(None)).order_by(_better(exp)).limit(1))
    if not rows:
        return None
    tid, seq, value, params = rows[0]
    return {"id": tid, "seq": seq, "value": value, "params": params}


def _counts(storage: Storage, exp_id: str | None = None) -> dict[str, dict[str, int]]:
    """Experiment id -> state -> number of trials (every state present, zeros included)."""
    stmt = select(TrialRow.experiment_id, TrialRow.state, func.count()).group_by(TrialRow.experiment_id, TrialRow.state)
    if exp_id is not None:
        stmt = stmt.where(TrialRow.experiment_id == exp_id)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {s.value: 0 for s in TrialState})
    for eid, state, n in storage.select(stmt):
        counts[eid][TrialState(state).value] = n
    return counts


def _summary(exp: ExperimentRecord, counts: dict[str, int], best: dict[str, Any] | None) -> dict[str, Any]:
    end = exp.ended_at or (None if exp.state is ExperimentState.RUNNING else exp.started_at)
    elapsed = ((end.timestamp() if end else time.time()) - exp.started_at.timestamp()) if exp.started_at else 0.0
    finished = sum(n for s, n in counts.items() if TrialState(s).is_finished())
    return {"id": exp.id, "name": exp.name, "state": exp.state.value, "message": exp.message,
            "optimize_mode": exp.optimize_mode, "concurrency": exp.concurrency,
            "max_trials": exp.max_trial_number, "max_duration": exp.max_duration,
            "trials": sum(counts.values()), "finished": finished, "counts": counts,
            "created": _ts(exp.created_at), "started": _ts(exp.started_at), "ended": _ts(exp.ended_at),
            "elapsed": elapsed, "best": best}


def experiments(storage: Storage) -> list[dict[str, Any]]:
    """Every experiment, newest first: state, budgets and how far they are spent, best value."""
    counts = _counts(storage)
    return [_summary(exp, counts[exp.id], best_trial(storage, exp)) for exp in storage.list_experiments()]


def overview(storage: Storage, exp_id: str) -> dict[str, Any]:
    """One experiment: its summary, the search space, and the boxes and GPUs its running trials hold."""
    exp = storage.get_experiment(exp_id)
    summary = _summary(exp, _counts(storage, exp.id)[exp.id], best_trial(storage, exp))
    running = storage.select(select(TrialRow.id, TrialRow.host, TrialRow.gpus).where(
        TrialRow.experiment_id == exp.id, TrialRow.state == TrialState.RUNNING).order_by(TrialRow.seq))
    in_use: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for tid, host, gpus in running:
        in_use[host or "?"].append({"trial": tid, "gpus": gpus or []})
    summary.update(work_dir=exp.work_dir, search_space=exp.config.get("searchSpace"),
                   tuner=(exp.config.get("tuner") or {}).get("name"),
                   assessor=(exp.config.get("assessor") or {}).get("name"),
                   trial_command=exp.config.get("trialCommand"),
                   hosts=[{"host": h, "trials": t} for h, t in sorted(in_use.items())])
    return summary


def version(storage: Storage, exp_id: str | None) -> str:
    """Changes whenever anything a page shows may have changed: pages poll this and refetch only then."""
    metric = storage.select(select(func.max(MetricRow.id)))[0][0]
    event = storage.select(select(func.max(EventRow.id)))[0][0]
    exps = storage.select(select(ExperimentRow.id, ExperimentRow.state, ExperimentRow.concurrency,
                                 ExperimentRow.max_trial_number, ExperimentRow.max_duration, ExperimentRow.next_seq)
                          .where(*([ExperimentRow.id == exp_id] if exp_id else [])))
    counts = sorted((eid, sorted(c.items())) for eid, c in _counts(storage, exp_id).items())
    return str(hash((metric, event, tuple(map(tuple, exps)), repr(counts))))


def trial_points(storage: Storage, exp_id: str) -> dict[str, Any]:
    """Every trial as columns (seq, id, state, value, start, end, each parameter), for scripts: the pages
    draw the reduced data of `charts` instead."""
    exp = storage.get_experiment(exp_id)
    rows = storage.select(select(T.c.seq, T.c.id, T.c.state, T.c.final_value, T.c.started_at, T.c.ended_at,
                                 T.c.params).where(T.c.experiment_id == exp.id).order_by(T.c.seq))
    names = list(dict.fromkeys(k for r in rows for k in (r[6] or {})))
    return {"optimize_mode": exp.optimize_mode, "seq": [r[0] for r in rows], "id": [r[1] for r in rows],
            "state": [r[2].value for r in rows], "value": [r[3] for r in rows],
            "started": [_ts(r[4]) for r in rows], "ended": [_ts(r[5]) for r in rows],
            "params": {n: [(r[6] or {}).get(n) for r in rows] for n in names}}


def trial(storage: Storage, trial_id: str) -> dict[str, Any]:
    """One trial: parameters, every metric of every attempt, the attempts (box, GPU, pid, how each ended)."""
    record = storage.get_trial(trial_id)
    metrics = [{"attempt": m.attempt, "kind": m.kind, "step": m.step, "value": m.value, "data": m.data,
                "at": _ts(m.created_at)} for m in storage.metrics(trial_id)]
    attempts: dict[int, dict[str, Any]] = {}
    events = []
    for e in storage.events(trial_id):
        events.append({"attempt": e.attempt, "kind": e.kind, "data": e.data, "at": _ts(e.created_at)})
        entry = attempts.setdefault(e.attempt, {"attempt": e.attempt})
        if e.kind == "started":
            entry.update({k: e.data.get(k) for k in ("host", "gpus", "pid", "queue")}, started=_ts(e.created_at))
        elif e.kind in ("finished", "lost"):
            entry.update(ended=_ts(e.created_at), exit_code=e.data.get("exit_code"),
                         exit_reason=e.data.get("message") or e.data.get("reason") or e.kind)
    current = attempts.setdefault(record.attempt, {"attempt": record.attempt})
    current.update(host=record.host or current.get("host"), gpus=record.gpus or current.get("gpus"),
                   pid=record.pid or current.get("pid"), state=record.state.value,
                   exit_code=record.exit_code, exit_reason=record.exit_reason or current.get("exit_reason"),
                   started=_ts(record.started_at) or current.get("started"), ended=_ts(record.ended_at))
    return {"id": record.id, "experiment": record.experiment_id, "seq": record.seq,
            "state": record.state.value, "value": record.final_value, "final_data": record.final_data,
            "params": record.params, "attempt": record.attempt, "created": _ts(record.created_at),
            "started": _ts(record.started_at), "ended": _ts(record.ended_at),
            "metrics": metrics, "attempts": [attempts[k] for k in sorted(attempts)], "events": events}


def log_tail(storage: Storage, trial_id: str, name: str, offset: int) -> dict[str, Any]:
    """The trial's current-attempt log from byte `offset` (-1: its last LOG_TAIL bytes), for following it."""
    from hpoqueue.cli.commands import _trial_file

    record = storage.get_trial(trial_id)
    path = _trial_file(storage.get_experiment(record.experiment_id), record, LOG_NAMES[name])
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = max(0, size - LOG_TAIL) if offset < 0 or offset > size else offset
            fh.seek(start)
            text = fh.read(max(0, size - start)).decode(errors="replace")
    except OSError:
        return {"text": "", "offset": 0, "exists": False, "path": str(path), "active": not
                record.state.is_finished()}
    return {"text": text, "offset": size, "exists": True, "path": str(Path(path)),
            "active": not record.state.is_finished()}
