"""The dashboard's JSON API on a real server process over a real record (SQLite, and PostgreSQL where present)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from hpoqueue.dashboard.server import PLOTLY_JS
from hpoqueue.states import ExperimentState, TrialState
from hpoqueue.storage import Storage
from tests.dashboard.conftest import Dashboard

pytestmark = pytest.mark.slow  # each test talks to a dashboard process of its own or the module's

EXP = "dashexp1"
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def make_record(storage_url: str, work_dir: Path) -> None:
    """30 trials: 27 succeeded (value seq/100, extra metric acc), one failed, one early stopped, one running."""
    with Storage(storage_url) as storage:
        storage.create_experiment(EXP, name="demo", config={"trialCommand": "python t.py",
                                                             "tuner": {"name": "Random"}},
                                  work_dir=str(work_dir), optimize_mode="minimize", concurrency=2,
                                  max_trial_number=40, max_duration=3600.0)
        params = [{"lr": 10.0 ** -(i % 5), "opt": "sgd" if i % 3 else "adam", "layers": i % 4 + 1}
                  for i in range(30)]
        trials = storage.create_trials(EXP, params)
        for i, t in enumerate(trials):
            start = T0 + timedelta(seconds=10 * i)
            state = {27: TrialState.FAILED, 28: TrialState.EARLY_STOPPED, 29: TrialState.RUNNING}.get(
                i, TrialState.SUCCEEDED)
            storage.transition(t.id, TrialState.RUNNING, expected=[TrialState.WAITING], host="box1",
                               gpus=[i % 2], pid=1000 + i, started_at=start)
            storage.add_event(t.id, 1, "started", {"host": "box1", "gpus": [i % 2], "pid": 1000 + i})
            for step in range(5):
                storage.add_metric(t.id, 1, "intermediate", step, 1.0 + i / 100 - step / 10)
            if state is TrialState.SUCCEEDED:
                value = (30 - i) / 100  # the last succeeded (seq 27) is the best
                storage.add_metric(t.id, 1, "final", 0, value, {"default": value, "acc": 1 - value})
                storage.update_trial(t.id, final_value=value, final_data={"default": value, "acc": 1 - value})
            if state is not TrialState.RUNNING:
                storage.transition(t.id, state, expected=[TrialState.RUNNING], ended_at=start + timedelta(seconds=8),
                                   exit_code=0 if state is TrialState.SUCCEEDED else 1, exit_reason=state.value.lower())
                storage.add_event(t.id, 1, "finished", {"exit_code": 0, "message": state.value.lower()})


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Dashboard]]:
    """One SQLite record and one dashboard on it for the tests that only read."""
    root = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{root / 'hpoqueue.db'}"
    make_record(url, root / "work")
    dash = Dashboard(url)
    yield url, dash
    dash.close()


@pytest.fixture
def dash(shared: tuple[str, Dashboard]) -> Dashboard:
    return shared[1]


@pytest.fixture
def record(shared: tuple[str, Dashboard]) -> str:
    return shared[0]


@pytest.fixture
def own_record(sqlite_url: str, tmp_path: Path) -> str:
    """A record of the test's own, for tests that change it."""
    make_record(sqlite_url, tmp_path / "work")
    return sqlite_url


def test_page_and_scripts_come_from_installed_packages(dash: Dashboard) -> None:
    status, page = dash.get("/")
    assert status == 200
    assert b'src="/static/app.js"' in page
    assert b"http://" not in page and b"https://" not in page  # no CDN: works offline
    status, info = dash.get("/api/info")
    # loaded by the first page that draws a chart, from a URL that changes with its content: kept for good
    digest = hashlib.sha256(PLOTLY_JS.read_bytes()).hexdigest()
    assert info["plotly"] == f"/static/plotly-hpoqueue.min.js?v={digest[:16]}"
    with urllib.request.urlopen(dash.base + info["plotly"], timeout=30) as resp:
        assert resp.read() == PLOTLY_JS.read_bytes()
        assert int(resp.headers["Cache-Control"].split("max-age=")[1].split(",")[0]) >= 365 * 86400
    gzipped = urllib.request.Request(dash.base + info["plotly"], headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(gzipped, timeout=30) as resp:  # compressed once, not on every fetch
        assert resp.headers["Content-Encoding"] == "gzip" and gzip.decompress(resp.read()) == PLOTLY_JS.read_bytes()
    assert dash.printed.startswith("hpoqueue dashboard on http://127.0.0.1:") and dash.token


def test_experiments_and_overview(dash: Dashboard) -> None:
    status, exps = dash.get("/api/experiments")
    assert status == 200 and [e["id"] for e in exps] == [EXP]
    exp = exps[0]
    assert exp["counts"]["SUCCEEDED"] == 27 and exp["counts"]["RUNNING"] == 1 and exp["trials"] == 30
    assert exp["finished"] == 29 and exp["max_trials"] == 40 and exp["max_duration"] == 3600.0
    assert exp["best"]["id"] == f"{EXP}-27" and exp["best"]["value"] == pytest.approx(0.04)
    status, ov = dash.get(f"/api/experiments/{EXP}")
    assert ov["best"]["params"] == {"lr": 10.0 ** -(26 % 5), "opt": "sgd", "layers": 26 % 4 + 1}
    assert ov["hosts"] == [{"host": "box1", "trials": [{"trial": f"{EXP}-30", "gpus": [1]}]}]
    assert ov["concurrency"] == 2 and ov["tuner"] == "Random"
    assert dash.get("/api/experiments/nope")[0] == 404


def table(dash: Dashboard, query: str) -> dict:  # type: ignore[type-arg]
    status, data = dash.get(f"/api/experiments/{EXP}/trials?{query}")
    assert status == 200, data
    return data


def test_trial_table_sorts_filters_and_pages_in_the_database(dash: Dashboard) -> None:
    check_table(dash)


@pytest.mark.postgres
def test_trial_table_on_postgresql(postgres_url: str, tmp_path: Path, start_dashboard) -> None:  # type: ignore[no-untyped-def]
    """JSON paths, casts and NULL ordering differ between the databases: the same answers on PostgreSQL."""
    make_record(postgres_url, tmp_path / "work")
    check_table(start_dashboard(postgres_url))


def check_table(dash: Dashboard) -> None:
    data = table(dash, "limit=10")
    assert data["total"] == 30 and [r["seq"] for r in data["rows"]] == list(range(1, 11))
    assert data["params"] == ["lr", "opt", "layers"] and data["metrics"] == ["acc"]
    values = [r["value"] for r in table(dash, "sort=value&limit=100")["rows"]]
    assert values[:27] == sorted(values[:27]) and values[27:] == [None] * 3  # no value: last
    assert [r["seq"] for r in table(dash, "sort=metric:acc&desc=1&limit=3")["rows"]] == [27, 26, 25]
    by_opt = [r["params"]["opt"] for r in table(dash, "sort=param:opt&limit=100")["rows"]]
    assert by_opt == sorted(by_opt)
    small = table(dash, "filter=lr<=0.001&limit=100")
    assert small["total"] == 12 and all(r["params"]["lr"] <= 0.001 for r in small["rows"])
    both = table(dash, "filter=opt%20=%20adam&filter=metric:acc>=0.8&limit=100")
    assert both["total"] and all(r["params"]["opt"] == "adam" and r["metrics"]["acc"] >= 0.8 for r in both["rows"])
    assert table(dash, "state=running")["total"] == 1
    assert table(dash, "state=SUCCEEDED&state=FAILED")["total"] == 28
    assert table(dash, "filter=opt~gd")["total"] == 20
    page3 = table(dash, "sort=seq&desc=1&offset=20&limit=7")
    assert [r["seq"] for r in page3["rows"]] == list(range(10, 3, -1)) and page3["total"] == 30
    for bad, words in (("filter=lr%20<%20big", "is a number"), ("sort=param:nope", "unknown column"),
                       ("filter=lr", "COLUMN OP VALUE"), ("state=SLEEPING", "unknown state")):
        status, error = dash.get(f"/api/experiments/{EXP}/trials?{bad}")
        assert status == 400 and words in error["error"], (bad, error)


def test_chart_timeline_and_trial_data(dash: Dashboard, record: str) -> None:
    status, pts = dash.get(f"/api/experiments/{EXP}/points")
    assert pts["seq"] == list(range(1, 31)) and set(pts["params"]) == {"lr", "opt", "layers"}
    _, curves = dash.get(f"/api/experiments/{EXP}/curves?chosen={EXP}-3")
    assert curves["lines"][f"{EXP}-3"]["y"][:5] == pytest.approx([1.02, 0.92, 0.82, 0.72, 0.62])
    assert curves["early_stopped_ends"]["id"] == [f"{EXP}-29"]
    assert len([y for y in curves["lines"]["other"]["y"] if y is not None]) == 28 * 5  # not chosen, not stopped
    assert curves["band"] is None and curves["note"] == ""  # 30 trials: every curve drawn, nothing reduced
    _, progress = dash.get(f"/api/experiments/{EXP}/progress")
    assert progress["best"] == f"{EXP}-27" and progress["marks"]["seq"] == list(range(1, 28))
    assert progress["by_seq"]["x"] == list(range(1, 28)) and progress["density"] is None  # each one improved
    _, params = dash.get(f"/api/experiments/{EXP}/params")
    assert params["lines"]["id"][0] == f"{EXP}-27" and len(params["lines"]["id"]) == 27  # every one, best first
    assert params["sample"] is None
    assert params["kinds"] == {"lr": "category", "opt": "category", "layers": "category"}  # few distinct values
    _, tl = dash.get(f"/api/experiments/{EXP}/timeline")
    assert tl["attempts"] == 30 and tl["lanes"] == ["box1 / GPU 0", "box1 / GPU 1"]
    assert tl["states"][tl["z"][1][-1]] == "RUNNING" and tl["seq"][1][-1] == 30  # up to now
    assert {s % 2 for s in tl["seq"][0] if s} == {1}  # GPU 0 ran the trials of odd seq
    assert tl["durations"]["marks"]["seconds"][0] == pytest.approx(8)
    _, trial = dash.get(f"/api/trials/{EXP}-28")
    assert trial["state"] == "FAILED" and len(trial["metrics"]) == 5
    assert trial["attempts"] == [{"attempt": 1, "host": "box1", "gpus": [1], "pid": 1027, "queue": None,
                                  "started": trial["started"], "ended": trial["ended"], "exit_code": 1,
                                  "exit_reason": "failed", "state": "FAILED"}]
    with Storage(record) as storage:
        log = Path(storage.get_experiment(EXP).work_dir) / "trials" / "30" / "attempt-1" / "trial.stdout"
    log.parent.mkdir(parents=True)
    log.write_text("epoch 1\n")
    _, tail = dash.get(f"/api/trials/{EXP}-30/log?name=stdout&offset=-1")
    assert tail["text"] == "epoch 1\n" and tail["active"]
    with open(log, "a") as fh:
        fh.write("epoch 2\n")
    _, more = dash.get(f"/api/trials/{EXP}-30/log?name=stdout&offset={tail['offset']}")
    assert more["text"] == "epoch 2\n"
    assert dash.get(f"/api/trials/{EXP}-30/log?name=passwd")[0] == 400


def test_actions_need_the_token_and_change_nothing_without_it(own_record: str, start_dashboard) -> None:  # type: ignore[no-untyped-def]
    record = own_record
    dash = start_dashboard(record)
    running = f"{EXP}-30"
    for token in (None, "", "wrong" + (dash.token or "")):
        assert dash.post(f"/api/update/{EXP}", {"concurrency": 7}, token=token)[0] == 403
        assert dash.post(f"/api/kill/{running}", token=token)[0] == 403
        assert dash.post(f"/api/stop/{EXP}", token=token)[0] == 403
    assert dash.get(f"/api/kill/{running}")[0] == 405
    with Storage(record) as storage:
        exp = storage.get_experiment(EXP)
        assert exp.concurrency == 2 and exp.max_trial_number == 40 and exp.state is ExperimentState.RUNNING
        assert storage.get_trial(running).state is TrialState.RUNNING
    status, reply = dash.post(f"/api/update/{EXP}", {"concurrency": 7, "max_trials": 50, "duration": "2h"},
                              token=dash.token)
    assert status == 200 and "updated" in reply["message"], reply
    status, reply = dash.post(f"/api/update/{EXP}", {"concurrency": 0}, token=dash.token)
    assert status == 400 and "--concurrency must be between 1 and 10000" in reply["error"]
    status, reply = dash.post(f"/api/kill/{running}", token=dash.token)
    assert status == 200 and "USER_CANCELED" in reply["message"], reply
    with Storage(record) as storage:
        exp = storage.get_experiment(EXP)
        assert (exp.concurrency, exp.max_trial_number, exp.max_duration) == (7, 50, 7200.0)
        assert storage.get_trial(running).state is TrialState.USER_CANCELED
    assert dash.post(f"/api/kill/{EXP}-999", token=dash.token)[0] == 404


def test_read_only_turns_actions_off(record: str, start_dashboard) -> None:  # type: ignore[no-untyped-def]
    dash = start_dashboard(record, "--read-only")
    assert dash.token is None
    status, info = dash.get("/api/info")
    assert info["read_only"] is True
    status, reply = dash.post(f"/api/update/{EXP}", {"concurrency": 9}, token="anything")
    assert status == 403 and "read-only" in reply["error"]
    with Storage(record) as storage:
        assert storage.get_experiment(EXP).concurrency == 2


def test_only_its_own_host_names_are_answered(dash: Dashboard) -> None:
    """A page of another site whose name resolves to 127.0.0.1 (DNS rebinding) gets nothing."""
    assert dash.get("/api/experiments", headers={"Host": "evil.example:80"})[0] == 403
    port = dash.base.rsplit(":", 1)[1]
    assert dash.get("/api/experiments", headers={"Host": f"localhost:{port}"})[0] == 200


@pytest.fixture
def flower_stand_in() -> Iterator[str]:
    """An HTTP server answering Flower's /healthcheck, as a running Flower does."""

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            self.send_response(200 if self.path == "/healthcheck" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_links_to_flower_only_when_it_answers(record: str, start_dashboard, flower_stand_in: str) -> None:  # type: ignore[no-untyped-def]
    assert start_dashboard(record, "--flower", flower_stand_in).get("/api/info")[1]["flower"] == flower_stand_in
    closed = flower_stand_in.rsplit(":", 1)[0] + ":1"
    assert start_dashboard(record, "--flower", closed).get("/api/info")[1]["flower"] is None


def test_report_is_one_self_contained_file(record: str, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    run = subprocess.run([sys.executable, "-m", "hpoqueue", "--storage", record, "report", EXP, "-o", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    html = out.read_text()
    assert not re.search(r"<(script|link|img)[^>]*(src|href)=\"(?!data:)", html)  # everything inlined
    assert PLOTLY_JS.read_text()[:2000] in html and "window.HPOQ_REPORT = {" in html
    assert f'"/api/experiments/{EXP}/trials"' in html and f"{EXP}-27" in html
    for chart in ("progress", "curves", "params", "timeline"):  # what the pages' charts read
        assert f'"/api/experiments/{EXP}/{chart}"' in html


def test_bad_input_is_one_line(record: str) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hpoqueue", "--storage", record, *args], capture_output=True,
                              text=True, timeout=60)

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for args, words in ((("dashboard", "nope"), "no experiment 'nope'"),
                            (("dashboard", "--port", port), f"cannot listen on 127.0.0.1:{port}"),
                            (("report", "nope"), "no experiment 'nope'")):
            run = cli(*args)
            assert run.returncode == 2 and run.stderr.startswith("hpoqueue: error: ") and words in run.stderr, run
            assert len(run.stderr.strip().splitlines()) == 1


def test_experiments_are_read_as_the_dashboard_starts(record: str, start_dashboard) -> None:  # type: ignore[no-untyped-def]
    """Opened on the list (no experiment named), the dashboard still reads the newest experiments for their charts
    in the background, so the first chart page opened does not wait for a full read of the record."""
    dash = start_dashboard(record, "--read-only")
    assert dash.get("/api/experiments")[0] == 200  # answered while the read goes on
    seen, deadline = b"", time.monotonic() + 60
    while f"read experiment {EXP} for its charts".encode() not in seen:
        assert select.select([dash.proc.stderr], [], [], max(0.0, deadline - time.monotonic()))[0], \
            f"{EXP} not read within 60 s of the start: {seen!r}"
        chunk = os.read(dash.proc.stderr.fileno(), 65536)
        assert chunk, f"the dashboard ended: {seen!r}"
        seen += chunk
