"""`hpoqueue export`: an experiment's trials as CSV or JSON, streamed page by page in constant memory, with
every key of their final results (not only 'default') and, with --intermediate, their per-step curves."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any, TextIO

from hpoqueue.results import metric_keys
from hpoqueue.storage import Storage

PAGE = 1000  #: trials read per query; memory stays that of one page, whatever the experiment's length
BASE = ["trial", "seq", "state", "value", "attempt", "started_at", "ended_at"]


def export(storage: Storage, exp_id: str, fmt: str, intermediate: bool, out: TextIO, *, newline: bool) -> None:
    """Write every trial of `exp_id` to `out` as `fmt` (csv or json), with the curves of its current attempt
    when `intermediate`; `newline`: end JSON with one (a terminal)."""
    if fmt == "json":
        _json(_rows(storage, exp_id, intermediate), out, newline)
    else:
        _csv(storage, exp_id, intermediate, out)


def _rows(storage: Storage, exp_id: str, intermediate: bool) -> Iterator[dict[str, Any]]:
    for page in storage.trial_pages(exp_id, PAGE):
        curves = storage.curves(exp_id, seqs=(page[0].seq, page[-1].seq)) if intermediate else {}
        for t in page:
            row: dict[str, Any] = {"trial": t.id, "seq": t.seq, "state": t.state.value, "value": t.final_value,
                                   "metrics": metric_keys.extras(t), "attempt": t.attempt, "parameters": t.params,
                                   "started_at": t.started_at.isoformat() if t.started_at else None,
                                   "ended_at": t.ended_at.isoformat() if t.ended_at else None}
            if intermediate:
                metrics = curves.get(t.id, [])
                # a dict keeps its keys; report_loss's curve is a list of its own
                row["intermediate"] = [m.data if isinstance(m.data, dict) else m.value for m in metrics
                                       if m.kind == "intermediate"]
                row["loss"] = [m.value for m in metrics if m.kind == "loss"]
            yield row


def _json(rows: Iterator[dict[str, Any]], out: TextIO, newline: bool) -> None:
    """The same text as ``json.dumps(list(rows), indent=2)``, one row at a time."""
    first = True
    for row in rows:
        out.write("[\n  " if first else ",\n  ")
        out.write(json.dumps(row, indent=2).replace("\n", "\n  "))
        first = False
    out.write("[]" if first else "\n]")
    if newline:
        out.write("\n")


def _csv(storage: Storage, exp_id: str, intermediate: bool, out: TextIO) -> None:
    """A header naming every parameter and metric key any trial has (a first pass over the pages), then one
    row a trial. A metric key that is also a base column or a parameter's name is written as metric.<key>."""
    names: dict[str, None] = {}
    keys: dict[str, None] = {}
    for page in storage.trial_pages(exp_id, PAGE):
        names.update((k, None) for t in page for k in t.params)
        keys.update((k, None) for k in metric_keys.extra_keys(page))
    extra = ["intermediate", "loss"] if intermediate else []
    taken = {*BASE, *names, *extra}
    writer = csv.writer(out)
    writer.writerow(BASE + [f"metric.{k}" if k in taken else k for k in keys] + list(names) + extra)

    def value(v: Any) -> Any:
        return json.dumps(v) if isinstance(v, dict | list) else v

    for r in _rows(storage, exp_id, intermediate):
        writer.writerow([r[k] for k in BASE] + [value(r["metrics"].get(k)) for k in keys]
                        + [value(r["parameters"].get(n)) for n in names] + [json.dumps(r[k]) for k in extra])
