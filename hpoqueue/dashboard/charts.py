"""What each chart of an experiment draws, read from its snapshot (snapshot.py) and reduced so that a browser
draws it in well under a second at 10,000 trials: a few hundred individual marks at most, the rest as a
density or a band, and a `note` that says so whenever something was reduced."""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np

from hpoqueue.dashboard import reduce
from hpoqueue.dashboard.snapshot import Snapshot, Trial
from hpoqueue.results.optimize_mode import better
from hpoqueue.states import TrialState

MARKS = 300  #: trials drawn one by one on a chart of every trial; past that, a density and the MARKS best
PARAM_MARKS = 100  #: trials drawn one by one on each value-against-parameter chart (past PARCOORDS trials)
CURVES = 50  #: curves drawn one by one (the best, and each running or chosen trial); past that, a band
#: at most this many trials, spread evenly over the experiment, make the band: past it, every 2nd, 4th, 8th...
#: trial (a power of two, so the sample stays put, and read once, while trials are added)
BAND_TRIALS = 1000
#: lines of the parallel coordinates, at most: every trial up to it; past it the PARCOORDS_BEST best and, of the
#: others, every 2nd, 4th, 8th... trial (a power of two: the sample stays put while trials are added), so the lines
#: span every value, not only the best (more lines only hide each other, and cost time to draw)
PARCOORDS = 250
PARCOORDS_BEST = PARAM_MARKS  # the head of the lines is also what the value-against-parameter charts draw as dots
TIMELINE_COLUMNS = 400  #: time columns of the GPU-slot timeline (2-3 pixels each on a wide screen)
LOG_TYPES = {"loguniform", "qloguniform"}  #: search-space types whose axis is logarithmic
CATEGORIES = 12  #: numbers of at most this many distinct values (a choice) are drawn as categories


def _columns(rows: list[Any], names: tuple[str, ...]) -> dict[str, list[Any]]:
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}


def _best_first(trials: list[Trial], mode: str) -> list[Trial]:
    """The trials (in creation order) with a value, best first (a stable sort: in creation order among equals)."""
    return sorted((t for t in trials if t.value is not None), key=attrgetter("value"), reverse=mode != "minimize")


def progress(snapshot: Snapshot) -> dict[str, Any]:
    """Best value so far by trial number and over time (the steps where it improved), and each succeeded
    trial's value: every one as a mark up to MARKS trials, else a density of all and the MARKS best."""
    mode = snapshot.experiment.optimize_mode
    rows = [(t.seq, t.id, t.value, t.ended) for t in snapshot.by_seq()
            if t.state is TrialState.SUCCEEDED and t.value is not None]
    by_seq = _improvements([(r[0], r[2]) for r in rows], mode)
    by_time = _improvements(sorted(((r[3], r[2]) for r in rows if r[3] is not None), key=lambda p: p[0]), mode)
    marked = sorted(rows, key=itemgetter(2), reverse=mode != "minimize")[:MARKS]  # stable: in seq order among equals
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


def curves(snapshot: Snapshot, chosen: list[str]) -> dict[str, Any]:
    """Intermediate results of the current attempts. Up to CURVES trials: every curve. Past that: the CURVES
    best and every running and chosen trial as curves, and a band (quantiles per step) over at most BAND_TRIALS
    trials spread evenly over all; early-stopped trials' curves dotted, and how many stopped at each step."""
    trials = snapshot.by_seq()
    total = len(trials)
    reduced = total > CURVES
    if reduced:
        drawn = {t.id for t in _best_first(trials, snapshot.experiment.optimize_mode)[:CURVES]}
        drawn |= {t.id for t in trials if t.state is TrialState.RUNNING} | (set(chosen) & snapshot.trials.keys())
    else:
        drawn = {t.id for t in trials}
    series = snapshot.series(t.id for t in trials if t.id in drawn)
    lines: dict[str, dict[str, list[Any]]] = {}
    ends: dict[str, list[Any]] = {"x": [], "y": [], "id": []}
    for tid, (steps, values) in series.items():  # in creation order
        if not steps:
            continue
        stopped = snapshot.trials[tid].state is TrialState.EARLY_STOPPED
        line = lines.setdefault(tid if tid in chosen else "EARLY_STOPPED" if stopped else "other",
                                {"x": [], "y": [], "id": []})
        line["x"] += [*steps, None]  # None: a gap between two curves of one line
        line["y"] += [*values, None]
        line["id"] += [tid] * len(steps) + [None]
        if stopped:  # chosen ones too
            ends["x"].append(steps[-1])
            ends["y"].append(values[-1])
            ends["id"].append(tid)
    stops = sorted(Counter(snapshot.stopped_at.values()).items())
    out = {"lines": lines, "early_stopped_ends": ends, "total": total, "shown": len(drawn), "chosen": chosen,
           "band": None, "stopped_at": {"step": [r[0] for r in stops], "n": [r[1] for r in stops]}, "note": ""}
    if reduced:
        stride = 1 << max(0, math.ceil(math.log2(total / BAND_TRIALS))) if total > BAND_TRIALS else 1
        sample = snapshot.series(t.id for t in trials if t.seq % stride == 0)
        out["band"] = reduce.band(np.fromiter((x for xs, _ in sample.values() for x in xs), dtype=float),
                                  np.fromiter((y for _, ys in sample.values() for y in ys), dtype=float))
        spread = f"every {stride}th trial ({len(sample)})" if stride > 1 else "every trial"
        out["note"] = (f"{total:,} trials: the {CURVES} best, the running and the chosen ones drawn as curves "
                       f"({len(drawn)}); the band is the 10–90 % range of {spread} at each step, its line the "
                       "median; the bars count the early-stopped trials by the step they stopped at")
    return out


def params(snapshot: Snapshot) -> dict[str, Any]:
    """The parameters of the trials with a value: the trials drawn as parallel-coordinate lines as columns (best
    first, categories as labels; past PARCOORDS trials the PARCOORDS_BEST best and a sample of the others) and,
    then, the density of value against each parameter over all of them."""
    exp = snapshot.experiment
    rows = [(t.id, t.value, t.params, t.seq) for t in _best_first(snapshot.by_seq(), exp.optimize_mode)
            if t.value is not None]
    names = list(dict.fromkeys(k for r in rows for k in r[2]))
    space = exp.config.get("searchSpace") or {}
    columns = {n: [r[2].get(n) for r in rows] for n in names}
    kinds = {n: _kind(columns[n], space.get(n)) for n in names}
    labels = {n: [reduce.label(v) for v in columns[n]] for n in names if kinds[n] == "category"}
    order = {n: _categories(columns[n]) for n in labels}
    drawn, every = _parcoords_lines(rows)
    reduced = bool(every)  # the lines are a sample: the value-against-parameter dots are the best, over a density
    values = [r[1] for r in rows]
    line_params = {n: labels.get(n, columns[n]) for n in names}
    return {
        "optimize_mode": exp.optimize_mode, "total": len(rows), "names": names, "kinds": kinds,
        "lines": {"id": [rows[i][0] for i in drawn], "value": [rows[i][1] for i in drawn],
                  "params": {n: [line_params[n][i] for i in drawn] for n in names}},
        "sample": {"best": PARCOORDS_BEST, "every": every} if every else None,
        "categories": order, "marked": PARAM_MARKS if reduced else len(rows),
        "density": {n: reduce.density(labels.get(n, columns[n]), values, x_log=kinds[n] == "log",
                                      x_categories=order.get(n)) for n in names} if reduced else None,
        "note": (f"{len(rows):,} trials with a value: the parallel coordinates draw the {PARCOORDS_BEST} best and "
                 f"every {every}th of the other trials ({len(drawn) - PARCOORDS_BEST} of "
                 f"{len(rows) - PARCOORDS_BEST:,}); the value-against-parameter charts draw the {PARAM_MARKS} best as "
                 "dots and all of them as the shaded density") if reduced else ""}


def _parcoords_lines(rows: list[tuple[str, float, dict[str, Any], int]]) -> tuple[list[int], int]:
    """Which of `rows` (best first) the parallel coordinates draw, best first: all of them up to PARCOORDS; past it
    the PARCOORDS_BEST best and, of the others, those whose trial number is a multiple of the smallest power of
    two that leaves at most PARCOORDS - PARCOORDS_BEST (returned: 0 when every row is drawn)."""
    if len(rows) <= PARCOORDS:
        return list(range(len(rows))), 0
    seqs = np.fromiter((r[3] for r in rows[PARCOORDS_BEST:]), dtype=np.int64, count=len(rows) - PARCOORDS_BEST)
    every = 2
    while np.count_nonzero(seqs % every == 0) > PARCOORDS - PARCOORDS_BEST:
        every *= 2
    return [*range(PARCOORDS_BEST), *(PARCOORDS_BEST + int(i) for i in np.flatnonzero(seqs % every == 0))], every


def _kind(values: list[Any], spec: Any) -> str:
    """How a parameter's axis is drawn: "category" (anything not a number, and numbers of at most CATEGORIES
    distinct values), "log" (a log-uniform type; without a type, positive numbers spanning 100x or more whose
    median lies low, as log-uniform ones do) or "number"."""
    if not reduce.numbers(values):
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
    if reduce.numbers(distinct):
        distinct.sort()
    return list(dict.fromkeys(reduce.label(v) for v in distinct))


def timeline(snapshot: Snapshot, now: float | None = None) -> dict[str, Any]:
    """Which box and GPU ran which attempt when, as a grid of lanes x TIMELINE_COLUMNS time columns (each
    cell: the state and trial of the attempt that held the slot then, None when idle), and the trials'
    durations: each as a mark up to MARKS trials, else a density and the MARKS longest. Running attempts
    last until `now` (the present unless given)."""
    now = time.time() if now is None else now
    bars = _bars(snapshot, now)
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


def _bars(snapshot: Snapshot, now: float) -> list[dict[str, Any]]:
    """Every attempt that started, sorted by start: the current ones and the earlier (lost, retried) ones,
    each with its lane (box / GPU, slot)."""
    bars = [_bar(t.id, t.seq, t.attempt, t.state.value, t.host, t.gpus, t.queue, t.started, t.ended, current=True)
            for t in snapshot.by_seq() if t.started is not None]
    bars += [_bar(a.trial, a.seq, a.attempt, a.state, a.host, a.gpus, a.queue, a.start, a.end)
             for attempts in snapshot.earlier.values() for a in attempts]
    bars.sort(key=lambda b: (b["start"], b["seq"], b["attempt"]))
    _slots(bars, now)
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
         queue: str | None, started: float, ended: float | None, current: bool = False) -> dict[str, Any]:
    where = f"GPU {','.join(map(str, gpus))}" if gpus else (queue or "cpu")
    return {"trial": tid, "seq": seq, "attempt": attempt, "state": state, "lane": f"{host or '?'} / {where}",
            "start": started, "end": ended, "current": current}
