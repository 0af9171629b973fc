"""An experiment's trials as the dashboard's charts read them, kept in memory between requests and brought up to
date from what changed since the last look: the trials active then, the trials new since, and the trials with
metrics or events written since. A change of a running 10,000-trial experiment then costs a few rows, not a
read of every trial (each chart's full read took 0.4-0.8 s)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Text, cast, func, or_, select

from hpoqueue.states import TrialState
from hpoqueue.storage import EventRow, ExperimentRecord, MetricRow, Storage, TrialRow

T = TrialRow.__table__  #: the tables themselves: Core rows, without the ORM's per-row cost on big reads
M = MetricRow.__table__
E = EventRow.__table__
#: metric and event ids looked at again below the last ones seen: PostgreSQL hands ids out before the commit,
#: so a row can turn up after one with a higher id
SLACK = 100
FULL = 2000  #: past this many changed trials, every trial is read again (one scan beats a long IN list)


class Trial(NamedTuple):
    """One trial, its current attempt: what the charts draw of it."""

    id: str
    seq: int
    state: TrialState
    attempt: int
    value: float | None
    params: dict[str, Any]
    host: str | None
    gpus: list[int] | None
    queue: str | None
    started: float | None
    ended: float | None


class Attempt(NamedTuple):
    """An earlier attempt of a trial (lost, or retried), from its `started` and `lost`/`finished` events."""

    trial: str
    seq: int
    attempt: int
    state: str  # "LOST" or "RETRIED"
    host: str | None
    gpus: list[int] | None
    queue: str | None
    start: float
    end: float


class Snapshot:
    """The trials of experiment `exp_id`; call refresh() (holding `lock`) before reading a chart's data."""

    def __init__(self, storage: Storage, exp_id: str) -> None:
        self.storage = storage
        self.exp_id = exp_id
        self.lock = threading.Lock()
        self.exp: ExperimentRecord | None = None
        self.trials: dict[str, Trial] = {}
        self.stopped_at: dict[str, int] = {}  #: early-stopped trial -> step of its last intermediate result
        self.earlier: dict[str, list[Attempt]] = {}  #: trial -> its earlier attempts, for the timeline
        self._series: dict[str, tuple[list[int], list[float]]] = {}
        self._seen: tuple[int, int] | None = None  # the last metric and event ids read
        self._active: set[str] = set()  # the trials waiting or running
        self._by_seq: list[Trial] | None = None

    @classmethod
    def read(cls, storage: Storage, exp_id: str) -> Snapshot:
        """A snapshot read in full (for one use, such as a report)."""
        snapshot = cls(storage, exp_id)
        snapshot.refresh()
        return snapshot

    @property
    def experiment(self) -> ExperimentRecord:
        assert self.exp is not None, "refresh() first"
        return self.exp

    def refresh(self) -> None:
        """Read what changed since the last refresh (everything, the first time). Should the trials' counts by
        state then differ from the record's (a change that left no metric or event), read everything."""
        self.exp = self.storage.get_experiment(self.exp_id)
        seen = (self.storage.select(select(func.coalesce(func.max(M.c.id), 0)))[0][0],
                self.storage.select(select(func.coalesce(func.max(E.c.id), 0)))[0][0])
        changed = self._changed() if self._seen is not None else None
        self._read(changed if changed is None or len(changed) <= FULL else None)
        if changed is not None and not self._agrees():
            self._read(None)
        self._seen = seen

    def by_seq(self) -> list[Trial]:
        """Every trial, in the order they were created."""
        if self._by_seq is None:
            self._by_seq = sorted(self.trials.values(), key=lambda t: t.seq)
        return self._by_seq

    def series(self, ids: Iterable[str]) -> dict[str, tuple[list[int], list[float]]]:
        """The intermediate results (steps, values) of each trial's current attempt, read once per change."""
        ids = list(ids)
        missing = [tid for tid in ids if tid not in self._series]
        if missing:
            for tid in missing:
                self._series[tid] = ([], [])
            rows = self.storage.select(select(M.c.trial_id, M.c.step, M.c.value).join(T, T.c.id == M.c.trial_id)
                                       .where(T.c.id.in_(missing), M.c.kind == "intermediate",
                                              M.c.attempt == T.c.attempt).order_by(M.c.trial_id, M.c.step))
            for tid, step, value in rows:
                steps, values = self._series[tid]
                steps.append(step)
                values.append(value)
        return {tid: self._series[tid] for tid in ids}

    def _changed(self) -> set[str]:
        """The trials that may have changed since the last refresh (new ones aside): those active then (every
        state change starts from an active state) and those with a metric or an event written since."""
        assert self._seen is not None
        metric, event = (max(0, seen - SLACK) for seen in self._seen)
        changed = set(self._active)
        for table, after in ((M, metric), (E, event)):  # a range of the primary key (DISTINCT would scan an index
            # of every row), and no join: other experiments' trials are left out when the trials are read
            changed.update(r[0] for r in self.storage.select(select(table.c.trial_id).where(table.c.id > after)))
        return changed

    def _read(self, changed: set[str] | None) -> None:
        """Read the trials in `changed` and those created since (every trial when None), with what the charts
        need of their metrics and events."""
        where = [T.c.experiment_id == self.exp_id]
        if changed is None:
            self.trials, self._series, self.stopped_at, self.earlier, self._active = {}, {}, {}, {}, set()
        else:
            last = max((t.seq for t in self.trials.values()), default=0)
            where.append(or_(T.c.id.in_(changed), T.c.seq > last) if changed else T.c.seq > last)
        rows = self.storage.select(select(T.c.id, T.c.seq, T.c.state, T.c.attempt, T.c.final_value,
                                          cast(T.c.params, Text), T.c.host, cast(T.c.gpus, Text), T.c.queue,
                                          T.c.started_at, T.c.ended_at).where(*where))
        parsed = _json([r[5] for r in rows] + [r[7] for r in rows])
        read = []
        for i, (tid, seq, state, attempt, value, _, host, _, queue, started, ended) in enumerate(rows):
            params, gpus = parsed[i], parsed[len(rows) + i]
            trial = Trial(tid, seq, TrialState(state), attempt, value, params or {}, host, gpus, queue, _ts(started),
                          _ts(ended))
            self.trials[tid] = trial
            self._series.pop(tid, None)
            self.earlier.pop(tid, None)
            if trial.state.is_finished():
                self._active.discard(tid)
            else:
                self._active.add(tid)
            read.append(trial)
        self._by_seq = None
        stopped = [t.id for t in read if t.state is TrialState.EARLY_STOPPED]
        retried = [t.id for t in read if t.attempt > 1]
        if stopped:  # every one: found by the experiment, not by a list of thousands of ids
            self._read_stops(T.c.state == TrialState.EARLY_STOPPED if changed is None else T.c.id.in_(stopped))
        if retried:
            self._read_earlier(T.c.attempt > 1 if changed is None else T.c.id.in_(retried))

    def _read_stops(self, which: Any) -> None:
        """Where each early-stopped trial in `which` stopped: its current attempt's last intermediate step."""
        rows = self.storage.select(select(M.c.trial_id, func.max(M.c.step)).join(T, T.c.id == M.c.trial_id)
                                   .where(T.c.experiment_id == self.exp_id, which,
                                          T.c.state == TrialState.EARLY_STOPPED, M.c.kind == "intermediate",
                                          M.c.attempt == T.c.attempt).group_by(M.c.trial_id))
        self.stopped_at.update({tid: step for tid, step in rows})

    def _read_earlier(self, which: Any) -> None:
        """The earlier attempts of the trials in `which`, from their events in the order written."""
        rows = self.storage.select(select(E.c.trial_id, T.c.seq, E.c.attempt, E.c.kind, E.c.data, E.c.created_at)
                                   .join(T, T.c.id == E.c.trial_id)
                                   .where(T.c.experiment_id == self.exp_id, which, E.c.attempt < T.c.attempt,
                                          E.c.kind.in_(["started", "lost", "finished"])).order_by(E.c.id))
        starts: dict[tuple[str, int], tuple[Any, ...]] = {}
        for tid, seq, attempt, kind, data, at in rows:
            if kind == "started":
                starts[(tid, attempt)] = (seq, data or {}, at)
            elif (tid, attempt) in starts:
                seq, data, began = starts.pop((tid, attempt))
                self.earlier.setdefault(tid, []).append(Attempt(
                    tid, seq, attempt, "LOST" if kind == "lost" else "RETRIED", data.get("host"), data.get("gpus"),
                    data.get("queue"), _ts(began) or 0.0, _ts(at) or 0.0))

    def _agrees(self) -> bool:
        """Whether the snapshot counts as many trials in each state as the record."""
        counts = self.storage.select(select(T.c.state, func.count()).where(T.c.experiment_id == self.exp_id)
                                     .group_by(T.c.state))
        return Counter({TrialState(s): n for s, n in counts}) == Counter(t.state for t in self.trials.values())


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _json(texts: list[str | None]) -> list[Any]:
    """JSON texts (None: SQL NULL) parsed in one call: a json.loads per value was a third of a full read."""
    return json.loads("[" + ",".join("null" if t is None else t for t in texts) + "]")
