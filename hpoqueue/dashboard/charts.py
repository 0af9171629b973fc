"""What each chart of an experiment draws, read from the record and reduced so that a browser draws it in well
under a second at 10,000 trials: a few hundred individual marks at most, the rest as a density or a band,
and a `note` that says so whenever something was reduced."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select

from hpoqueue.dashboard import reduce
from hpoqueue.results.optimize_mode import best_first, better
from hpoqueue.states import TrialState
from hpoqueue.storage import EventRow, ExperimentRecord, MetricRow, Storage, TrialRow

MARKS = 300  #: trials drawn one by one on a chart of every trial; past that, a density and the MARKS best
PARAM_MARKS = 100  #: trials drawn one by one on each value-against-parameter chart (past MARKS trials)
CURVES = 50  #: curves drawn one by one (the best, and each running or chosen trial); past that, a band
BAND_TRIALS = 1000  #: trials, spread evenly over the experiment, whose intermediate results make the band
PARCOORDS = 500  #: lines of the parallel coordinates: the best trials (more only hide each other, and cost time)
TIMELINE_COLUMNS = 400  #: time columns of the GPU-slot timeline (2-3 pixels each on a wide screen)
LOG_TYPES = {"loguniform", "qloguniform"}  #: search-space types whose axis is logarithmic
CATEGORIES = 12  #: numbers of at most this many distinct values (a choice) are drawn as categories
T = TrialRow.__table__  #: the tables themselves: Core rows, without the ORM's per-row cost on big reads
M = MetricRow.__table__


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _columns(rows: list[Any], names: tuple[str, ...]) -> dict[str, list[Any]]:
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}


def progress(storage: Storage, exp_id: str) -> dict[str, Any]:
    """Best value so far by trial number and over time (the steps where it improved), and each succeeded
    trial's value: every one as a mark up to MARKS trials, else a density of all and the MARKS best."""
    exp = storage.get_experiment(exp_id)
    mode = exp.optimize_mode
    rows = storage.select(select(T.c.seq, T.c.id, T.c.final_value, T.c.ended_at).where(
        T.c.experiment_id == exp.id, T.c.state == TrialState.SUCCEEDED, T.c.final_value.is_not(None))
        .order_by(T.c.seq))
    by_seq = _improvements([(r[0], r[2]) for r in rows], mode)
    by_time = _improvements(sorted(((_ts(r[3]), r[2]) for r in rows if r[3] is not None), key=lambda p: p[0]),
                            mode)
    marked = sorted(rows, key=lambda r: r[2] if mode == "minimize" else -r[2])[:MARKS]
    reduced = len(rows) > MARKS
    return {"optimize_mode": mode, "total": len(rows), "best": marked[0][1] if marked else None,
            "marks": _columns(sorted(marked), ("seq", "id", "value")),
            "density": reduce.density([r[0] for r in rows], [r[2] for r in rows]) if reduced else None,
            "by_seq": by_seq, "by_time": by_time,
            "note": (f"{len(rows):,} succeeded trials: the {MARKS} best drawn as dots, all of them as the shaded "
                     "density (darker: more trials)") if reduced else ""}


def _improvements(points: list[tuple[Any, float]], mode: str) -> dict[str, list[Any]]:
    """The points where the best value so far improved, and the last x, for a step line."""
    out: dict[str, list[Any]] = {"x": [], "y": []}
    best: float | None = None
    for x, value in points:
        if best is None or better(value, best, mode):
            best = value
            out["x"].append(x)
            out["y"].append(best)
    if points and out["x"][-1] != points[-1][0]:
        out["x"].append(points[-1][0])
        out["y"].append(best)
    return out


def curves(storage: Storage, exp_id: str, chosen: list[str]) -> dict[str, Any]:
    """Intermediate results of the current attempts. Up to CURVES trials: every curve. Past that: the CURVES
    best and every running and chosen trial as curves, and a band (quantiles per step) over BAND_TRIALS
    trials spread evenly over all; early-stopped trials' curves dotted, and how many stopped at each step."""
    exp = storage.get_experiment(exp_id)
    trials = storage.select(select(T.c.id, T.c.seq, T.c.state).where(T.c.experiment_id == exp.id))
    total = len(trials)
    reduced = total > CURVES
    if reduced:
        order = best_first(T.c.final_value, exp.optimize_mode).nulls_last()
        best = storage.select(select(T.c.id).where(T.c.experiment_id == exp.id, T.c.final_value.is_not(None))
                              .order_by(order).limit(CURVES))
        drawn = {r[0] for r in best} | {tid for tid, _, state in trials if state is TrialState.RUNNING}
        drawn |= set(chosen) & {tid for tid, _, _ in trials}
    else:
        drawn = {tid for tid, _, _ in trials}
    state_of = {tid: state for tid, _, state in trials}
    group_of = {tid: tid if tid in chosen else "EARLY_STOPPED" if state_of[tid] is TrialState.EARLY_STOPPED
                else "other" for tid in drawn}
    current = M.c.attempt == T.c.attempt
    rows = storage.select(select(M.c.trial_id, M.c.step, M.c.value).join(T, T.c.id == M.c.trial_id)
                          .where(T.c.id.in_(drawn), M.c.kind == "intermediate", current)
                          .order_by(T.c.seq, M.c.step)) if drawn else []
    lines: dict[str, dict[str, list[Any]]] = {}
    ends: dict[str, list[Any]] = {"x": [], "y": [], "id": []}
    for i, (tid, step, value) in enumerate(rows):
        line = lines.setdefault(group_of[tid], {"x": [], "y": [], "id": []})
        line["x"].append(step)
        line["y"].append(value)
        line["id"].append(tid)
        if i + 1 == len(rows) or rows[i + 1][0] != tid:  # a gap between two curves of one line
            for key in ("x", "y", "id"):
                line[key].append(None)
            if state_of[tid] is TrialState.EARLY_STOPPED:  # chosen ones too
                ends["x"].append(step)
                ends["y"].append(value)
                ends["id"].append(tid)
    last = (select(func.max(M.c.step).label("step")).join(T, T.c.id == M.c.trial_id)
            .where(T.c.experiment_id == exp.id, T.c.state == TrialState.EARLY_STOPPED, M.c.kind == "intermediate",
                   current).group_by(M.c.trial_id).subquery())
    stopped = storage.select(select(last.c.step, func.count()).group_by(last.c.step).order_by(last.c.step))
    out = {"lines": lines, "early_stopped_ends": ends, "total": total, "shown": len(drawn), "chosen": chosen,
           "band": None, "stopped_at": {"step": [r[0] for r in stopped], "n": [r[1] for r in stopped]},
           "note": ""}
    if reduced:
        stride = max(1, -(-total // BAND_TRIALS))
        sample = [tid for tid, seq, _ in trials if seq % stride == 0] if stride > 1 else None
        where = T.c.id.in_(sample) if sample is not None else T.c.experiment_id == exp.id
        points = storage.select(select(M.c.step, M.c.value).join(T, T.c.id == M.c.trial_id)
                                .where(where, M.c.kind == "intermediate", current))
        steps = np.fromiter((p[0] for p in points), dtype=float, count=len(points))
        values = np.fromiter((p[1] for p in points), dtype=float, count=len(points))
        out["band"] = reduce.band(steps, values)
        spread = f"every {stride}th trial ({len(sample)})" if sample is not None else "every trial"
        out["note"] = (f"{total:,} trials: the {CURVES} best, the running and the chosen ones drawn as curves "
                       f"({len(drawn)}); the band is the 10–90 % range of {spread} at each step, its line the "
                       "median; the bars count the early-stopped trials by the step they stopped at")
    return out


def params(storage: Storage, exp_id: str) -> dict[str, Any]:
    """The parameters of the trials with a value: the PARCOORDS best as columns (best first, categories as
    labels) and, past MARKS trials, the density of value against each parameter over all of them."""
    exp = storage.get_experiment(exp_id)
    rows = storage.select(select(T.c.id, T.c.final_value, T.c.params).where(
        T.c.experiment_id == exp.id, T.c.final_value.is_not(None))
        .order_by(best_first(T.c.final_value, exp.optimize_mode), T.c.seq))
    names = list(dict.fromkeys(k for r in rows for k in (r[2] or {})))
    space = exp.config.get("searchSpace") or {}
    columns = {n: [(r[2] or {}).get(n) for r in rows] for n in names}
    kinds = {n: _kind(columns[n], space.get(n)) for n in names}
    labels = {n: [reduce.label(v) for v in columns[n]] for n in names if kinds[n] == "category"}
    order = {n: _categories(columns[n]) for n in labels}
    reduced = len(rows) > MARKS
    values = [r[1] for r in rows]
    best = rows[:PARCOORDS]
    return {
        "optimize_mode": exp.optimize_mode, "total": len(rows), "names": names, "kinds": kinds,
        "best": {"id": [r[0] for r in best], "value": [r[1] for r in best],
                 "params": {n: labels.get(n, columns[n])[:PARCOORDS] for n in names}},
        "categories": order, "marked": PARAM_MARKS if reduced else len(rows),
        "density": {n: reduce.density(labels.get(n, columns[n]), values, x_log=kinds[n] == "log",
                                      x_categories=order.get(n)) for n in names} if reduced else None,
        "note": (f"{len(rows):,} trials with a value: the parallel coordinates draw "
                 f"{f'the {len(best):,} best' if len(best) < len(rows) else 'every one'}; the value-against-parameter "
                 f"charts draw the {PARAM_MARKS} best as dots and all of them as the shaded density")
        if reduced else ""}


def _kind(values: list[Any], spec: Any) -> str:
    """How a parameter's axis is drawn: "category" (anything not a number, and numbers of at most CATEGORIES
    distinct values), "log" (a log-uniform type; without a type, positive numbers spanning 100x or more whose
    median lies low, as log-uniform ones do) or "number"."""
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "category"
    if len(set(values)) <= CATEGORIES:
        return "category"
    if isinstance(spec, dict) and "_type" in spec:
        return "log" if spec["_type"] in LOG_TYPES else "number"
    low, high, middle = min(values), max(values), float(np.median(values))
    return "log" if low > 0 and high / low >= 100 and middle < (low + high) / 20 else "number"


def _categories(values: list[Any]) -> list[str]:
    """A category axis's labels: numbers in numeric order, anything else in order of first appearance."""
    distinct = list(dict.fromkeys(values))
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in distinct):
        distinct.sort()
    return list(dict.fromkeys(reduce.label(v) for v in distinct))


def timeline(storage: Storage, exp_id: str) -> dict[str, Any]:
    """Which box and GPU ran which attempt when, as a grid of lanes x TIMELINE_COLUMNS time columns (each
    cell: the state and trial of the attempt that held the slot then, None when idle), and the trials'
    durations: each as a mark up to MARKS trials, else a density and the MARKS longest."""
    exp = storage.get_experiment(exp_id)
    now = time.time()
    bars = _bars(storage, exp)
    lanes = sorted({b["lane"] for b in bars})
    states = sorted({b["state"] for b in bars})
    start = min((b["start"] for b in bars), default=now)
    end = max((b["end"] if b["end"] is not None else now for b in bars), default=now)
    width = max(end - start, 1e-3) / TIMELINE_COLUMNS
    row_of = {lane: i for i, lane in enumerate(lanes)}
    code_of = {state: i for i, state in enumerate(states)}
    z: list[list[int | None]] = [[None] * TIMELINE_COLUMNS for _ in lanes]
    seq: list[list[int | None]] = [[None] * TIMELINE_COLUMNS for _ in lanes]
    for b in bars:  # sorted by start: a later attempt in a shared column wins it
        first = min(TIMELINE_COLUMNS - 1, int((b["start"] - start) / width))
        last = min(TIMELINE_COLUMNS, max(first + 1, -int(-((b["end"] or now) - start) // width)))
        row = row_of[b["lane"]]
        for col in range(first, last):
            z[row][col] = code_of[b["state"]]
            seq[row][col] = b["seq"]
    return {"lanes": lanes, "states": states, "start": start, "width": width, "z": z, "seq": seq,
            "attempts": len(bars), "now": now, "durations": _durations(bars, now)}


def _durations(bars: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """Each started trial's current attempt: how long it ran (or has run so far)."""
    points = sorted((b["seq"], b["trial"], b["state"], (b["end"] or now) - b["start"]) for b in bars if b["current"])
    reduced = len(points) > MARKS
    marked = sorted(sorted(points, key=lambda p: -p[3])[:MARKS]) if reduced else points
    return {"total": len(points), "marks": _columns(marked, ("seq", "id", "state", "seconds")),
            "density": reduce.density([p[0] for p in points], [p[3] for p in points]) if reduced else None,
            "note": (f"{len(points):,} trials: the {MARKS} longest drawn as dots, all of them as the shaded "
                     "density") if reduced else ""}


def _bars(storage: Storage, exp: ExperimentRecord) -> list[dict[str, Any]]:
    """Every attempt that started, sorted by start: the current ones from the trials, earlier (lost, retried)
    ones from their `started` and `lost`/`finished` events; each with its lane (box / GPU, slot)."""
    bars = []
    rows = storage.select(select(T.c.id, T.c.seq, T.c.attempt, T.c.state, T.c.host, T.c.gpus, T.c.queue,
                                 T.c.started_at, T.c.ended_at)
                          .where(T.c.experiment_id == exp.id, T.c.started_at.is_not(None)))
    for tid, seq, attempt, state, host, gpus, queue, started, ended in rows:
        bars.append(_bar(tid, seq, attempt, TrialState(state).value, host, gpus, queue, started, ended, current=True))
    events = storage.select(select(EventRow.trial_id, TrialRow.seq, EventRow.attempt, EventRow.kind, EventRow.data,
                                   EventRow.created_at).join(TrialRow, TrialRow.id == EventRow.trial_id)
                            .where(TrialRow.experiment_id == exp.id, EventRow.attempt < TrialRow.attempt,
                                   EventRow.kind.in_(["started", "lost", "finished"])).order_by(EventRow.id))
    starts: dict[tuple[str, int], tuple[Any, ...]] = {}
    for tid, seq, attempt, kind, data, at in events:
        if kind == "started":
            starts[(tid, attempt)] = (seq, data or {}, at)
        elif (tid, attempt) in starts:
            seq, data, began = starts.pop((tid, attempt))
            bars.append(_bar(tid, seq, attempt, "LOST" if kind == "lost" else "RETRIED", data.get("host"),
                             data.get("gpus"), data.get("queue"), began, at))
    bars.sort(key=lambda b: b["start"])
    _slots(bars, time.time())
    return bars


def _slots(bars: list[dict[str, Any]], now: float) -> None:
    """Trials sharing a GPU (maxTrialNumberPerGpu) or a cpu queue overlap: give each a slot of its lane,
    the lowest one free when it started, so the timeline shows them side by side (bars sorted by start)."""
    ends: dict[str, list[float]] = defaultdict(list)  # lane -> end time of each slot's last bar
    for bar in bars:
        slots = ends[bar["lane"]]
        free = next((i for i, end in enumerate(slots) if end <= bar["start"]), None)
        if free is None:
            free = len(slots)
            slots.append(0.0)
        slots[free] = bar["end"] if bar["end"] is not None else now
        bar["slot"] = free
    for bar in bars:
        if len(ends[bar["lane"]]) > 1:
            bar["lane"] = f"{bar['lane']} · slot {bar['slot'] + 1}"


def _bar(tid: str, seq: int, attempt: int, state: str, host: str | None, gpus: list[int] | None,
         queue: str | None, started: datetime | None, ended: datetime | None, current: bool = False) -> dict[str, Any]:
    where = f"GPU {','.join(map(str, gpus))}" if gpus else (queue or "cpu")
    return {"trial": tid, "seq": seq, "attempt": attempt, "state": state, "lane": f"{host or '?'} / {where}",
            "start": _ts(started), "end": _ts(ended), "current": current}
