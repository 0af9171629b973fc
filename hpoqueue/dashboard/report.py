"""`hpoqueue report`: the dashboard's experiment page as one HTML file, with Plotly, the page's script and
the data inlined, so it opens offline, from a mail or beside a paper."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hpoqueue.dashboard import charts, trial_table, views
from hpoqueue.dashboard.server import PLOTLY_JS, STATIC
from hpoqueue.dashboard.snapshot import Snapshot
from hpoqueue.errors import HpoQueueError
from hpoqueue.storage import Storage

DETAILED = 200  #: trials (the best first) whose own page, with curves and attempts, the report includes


def report_data(storage: Storage, exp_id: str) -> dict[str, Any]:
    """What the page's API calls would answer, keyed by their paths; every trial in the table."""
    exp = storage.get_experiment(exp_id)
    snapshot = Snapshot.read(storage, exp_id)
    base = f"/api/experiments/{exp_id}"
    table = trial_table.page(storage, exp, sort="value", descending=exp.optimize_mode == "maximize",
                             limit=exp.next_seq)
    data: dict[str, Any] = {
        "/api/experiments": [e for e in views.experiments(storage) if e["id"] == exp_id],
        base: views.overview(storage, exp_id), f"{base}/trials": table,
        f"{base}/progress": charts.progress(snapshot), f"{base}/curves": charts.curves(snapshot, []),
        f"{base}/params": charts.params(snapshot), f"{base}/timeline": charts.timeline(snapshot)}
    for row in table["rows"][:DETAILED]:
        data[f"/api/trials/{row['id']}"] = views.trial(storage, row["id"])
    return data


def render(data: dict[str, Any], exp_id: str) -> str:
    """index.html with its stylesheet, Plotly, the data and app.js inlined."""
    payload = json.dumps({"experiment": exp_id, "data": data}, allow_nan=False, default=str)
    payload = payload.replace("</", "<\\/").replace("<!--", "<\\!--")  # cannot end the <script> early
    html = (STATIC / "index.html").read_text()
    inlined = {
        '<link rel="stylesheet" href="/static/style.css">': f"<style>\n{(STATIC / 'style.css').read_text()}</style>",
        '<script src="/static/app.js"></script>':
            f"<script>{PLOTLY_JS.read_text()}</script>\n<script>window.HPOQ_REPORT = {payload};</script>\n"
            f"<script>{(STATIC / 'app.js').read_text()}</script>",
        "<title>hpoqueue dashboard</title>": f"<title>hpoqueue report {exp_id}</title>"}
    for tag, replacement in inlined.items():
        if tag not in html:
            raise RuntimeError(f"index.html lost {tag!r}; the report inlines it")
        html = html.replace(tag, replacement)
    return html


def write_report(storage_url: str, exp_id: str, output: str | os.PathLike[str]) -> Path:
    """Write the report of experiment `exp_id` to `output` (through a temporary file: never half-written)."""
    with Storage(storage_url) as storage:
        html = render(report_data(storage, exp_id), exp_id)
    path = Path(output)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(html)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise HpoQueueError(f"cannot write {path}: {exc.strerror}; give -o a writable file") from None
    return path
