"""The dashboard in a real headless Chromium, on a real experiment (embedded Redis, real workers and trials)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from hpoqueue.states import ExperimentState, TrialState
from hpoqueue.storage import Storage
from tests.dashboard.conftest import BIG, make_big_record, wait_js
from tests.e2e.conftest import Project, alive, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: trials of ~20 s, an intermediate result every 0.2 s: still running when killed, on a loaded machine too
SPACE = {"x": {"_type": "uniform", "_value": [0, 1]}, "sleep": {"_type": "choice", "_value": [0.2]},
         "steps": {"_type": "choice", "_value": [100]}, "opt": {"_type": "choice", "_value": ["adam", "sgd"]}}

CHARTS = {"overview": ["chart-best-seq", "chart-best-time"], "curves": ["chart-curves"],
          "params": ["chart-parcoords", "chart-params"],
          "gpus": ["chart-timeline", "chart-durations"]}

#: a chart is drawn once scrolled to (charts below the fold wait for that) and holds a trace with data
DRAWN = """const el = document.getElementById(arguments[0]);
if (el && !el._fullLayout) el.scrollIntoView();
return !!(el && el._fullLayout && el.querySelector('.main-svg') && el.data && el.data.length &&
          el.data.some(t => (t.y && t.y.some(v => v !== null)) || (t.z && t.z.length) ||
                            (t.dimensions && t.dimensions[0].values.length)));"""


#: how many intermediate results the trial page's chart (scrolled to: it is below the fold) says it shows
SHOWN = "const c = document.getElementById('chart-trial'); if (!c) return 0; c.scrollIntoView(); " \
        "const t = document.querySelector('#chart-trial .gtitle'); return t && Number(t.textContent.match(/\\d+/)[0])"


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def trials_in(project: Project, exp_id: str, state: TrialState | None = None) -> list[Any]:
    return project.storage().trials(exp_id, states=[state] if state else None)


def shot(driver: Any, directory: Path, name: str) -> None:
    directory.mkdir(exist_ok=True)
    driver.save_screenshot(str(directory / f"{name}.png"))


def test_dashboard_in_chromium_on_a_real_experiment(project: Project, browser: Any, start_dashboard: Any,
                                                     tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    config = project.config(maxTrialNumber=8, trialConcurrency=2, searchSpace=SPACE)
    exp_id = project.cli("submit", str(config), "--detach", check=True).stdout.strip()
    try:
        dash = start_dashboard(project.storage_url, env=project.env)
        running = wait_for(lambda: trials_in(project, exp_id, TrialState.RUNNING), 60, "a running trial")[0]
        wait_for(lambda: project.storage().metrics(running.id), 30, "its first intermediate result")
        browser.get(f"{dash.base}/?token={dash.token}#/experiment/{exp_id}/trials")
        assert "token" not in browser.current_url  # kept for the session, out of the address bar

        # the table shows the trials the record has
        wait_js(browser, f"return document.querySelectorAll('#trial-table tr[data-id]').length == "
                         f"{len(trials_in(project, exp_id))}", 15, "a table row per trial")
        assert browser.find_element("css selector", f"tr[data-id='{running.id}']").text.split()[:2] == [
            str(running.seq), "RUNNING"]
        shot(browser, shots, "trials")

        # the trial page picks up new results without a reload
        browser.execute_script(f"location.hash = '#/trial/{running.id}'; window.stillHere = true")
        seen = wait_js(browser, SHOWN, 15, "the trial's intermediate results")
        wait_js(browser, SHOWN + f" > {seen}", 15, "a newer intermediate result on the open page")
        wait_js(browser, "return document.getElementById('log-path').textContent.includes('trial.stdout')", 10,
                "the log panel")
        assert browser.execute_script("return window.stillHere === true")  # no reload happened
        shot(browser, shots, "trial")

        # an action without the token is refused and changes nothing
        status = browser.execute_async_script(
            "const done = arguments[1]; fetch('/api/update/' + arguments[0], {method: 'POST', headers: "
            "{'Content-Type': 'application/json'}, body: JSON.stringify({concurrency: 9})}).then(r => done(r.status))",
            exp_id)
        assert status == 403
        assert project.storage().get_experiment(exp_id).concurrency == 2

        # kill from the trial page: recorded USER_CANCELED, its process ends
        pid = project.storage().get_trial(running.id).pid
        assert pid and alive(pid)
        browser.execute_script("window.confirm = () => true")
        browser.find_element("id", "kill").click()
        wait_for(lambda: project.storage().get_trial(running.id).state is TrialState.USER_CANCELED, 30,
                 "the trial to be recorded USER_CANCELED")
        wait_for(lambda: not alive(pid), 30, f"trial process {pid} to end")
        wait_js(browser, "return document.getElementById('t-state').textContent == 'USER_CANCELED'", 10,
                "the page to show USER_CANCELED")
        shot(browser, shots, "killed")

        # each chart draws
        for tab, charts in CHARTS.items():
            browser.execute_script(f"location.hash = '#/experiment/{exp_id}/{tab}'")
            for chart in charts:
                wait_js(browser, DRAWN.replace("arguments[0]", repr(chart)), 20, f"{chart} to draw")
            shot(browser, shots, tab)

        # stop from the experiment page
        browser.execute_script(f"location.hash = '#/experiment/{exp_id}'")
        wait_js(browser, "const b = document.getElementById('stop'); return b && !b.disabled", 10, "Stop")
        browser.execute_script("window.confirm = () => true")
        browser.find_element("id", "stop").click()
        wait_for(lambda: project.storage().get_experiment(exp_id).state is ExperimentState.STOPPED, 60,
                 "the experiment to stop")
        wait_js(browser, "return document.getElementById('exp-state').textContent == 'STOPPED'", 10,
                "the page to show STOPPED")
        shot(browser, shots, "overview-stopped")
    finally:
        if project.storage().get_experiment(exp_id).state is ExperimentState.RUNNING:
            project.cli("stop", exp_id)

    # the report opens offline: every script inlined, nothing fetched
    report = tmp_path / "report.html"
    project.cli("report", exp_id, "-o", str(report), check=True)
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": True, "latency": 0,
                                                                 "downloadThroughput": -1, "uploadThroughput": -1})
    browser.get(report.as_uri())
    for tab in CHARTS:  # the same page code as above
        browser.execute_script(f"location.hash = '#/experiment/{exp_id}/{tab}'")
        for chart in CHARTS[tab]:
            wait_js(browser, DRAWN.replace("arguments[0]", repr(chart)), 20, f"{chart} to draw in the report")
    browser.execute_script(f"location.hash = '#/experiment/{exp_id}/trials'")
    wait_js(browser, f"return document.querySelectorAll('#trial-table tr[data-id]').length == "
                     f"{len(trials_in(project, exp_id))}", 10, "the report's table")
    shot(browser, shots, "report")


def test_pages_of_a_big_experiment_draw_reduced_charts_and_say_so(sqlite_url: str, tmp_path: Path, browser: Any,
                                                                   start_dashboard: Any) -> None:
    """600 trials, past each chart's threshold: the pages still name the right best trial, every chart draws,
    and each reduced chart says what it left out. (How fast: benchmarks/dashboard.py.)"""
    shots = tmp_path / "screenshots"
    make_big_record(sqlite_url, tmp_path / "work", 600)
    with Storage(sqlite_url) as storage:
        succeeded = [t for t in storage.trials(BIG, states=[TrialState.SUCCEEDED]) if t.final_value is not None]
    best = min(succeeded, key=lambda t: t.final_value or 0)
    dash = start_dashboard(sqlite_url, "--read-only")

    browser.get(f"{dash.base}/#/experiment/{BIG}")
    wait_js(browser, f"return document.querySelector('#ov-cards a[href=\"#/trial/{best.id}\"]')", 20,
            "the best trial on the overview")
    for chart in CHARTS["overview"]:
        wait_js(browser, DRAWN.replace("arguments[0]", repr(chart)), 30, f"{chart} to draw")
    assert browser.execute_script(TRACES, "chart-best-seq")[-1] == ["scatter", f"best: {best.id}"]
    assert note(browser, "note-progress").startswith(f"{len(succeeded):,} succeeded trials: the 300 best")
    shot(browser, shots, "big-overview")

    for tab, words in (("curves", "the 50 best"), ("params", "the 100 best as dots"), ("gpus", "600 trials")):
        browser.execute_script(f"location.hash = '#/experiment/{BIG}/{tab}'")
        for chart in CHARTS[tab]:
            wait_js(browser, DRAWN.replace("arguments[0]", repr(chart)), 30, f"{chart} to draw")
        shown = " ".join(note(browser, n) for n in ("note-curves", "note-params", "note-durations"))
        assert words in shown, shown
        shot(browser, shots, f"big-{tab}")
        if tab == "curves":
            kinds = [name for _, name in browser.execute_script(TRACES, "chart-curves")]
            assert "10–90 % of trials" in kinds and "early stopped at this step" in kinds
        if tab == "params":
            # this headless Chromium draws WebGL in software: parallel coordinates as SVG lines, the best on top
            assert browser.execute_script("return webglIsSoftware()") is True
            traces = browser.execute_script(TRACES, "chart-parcoords")
            assert {kind for kind, _ in traces} == {"scatter"} and ["scatter", f"best: {best.id}"] in traces
            assert not browser.execute_script("return document.querySelector('#chart-parcoords canvas')")
            # past 250 trials: the 100 best and a sample of the others, as many lines as the title says
            _, data = dash.get(f"/api/experiments/{BIG}/params")
            lines, every = len(data["lines"]["id"]), data["sample"]["every"]
            said = f"Parameters of {lines} of {data['total']} trials with a value (the 100 best, every {every}th of"
            assert title(browser, "chart-parcoords").startswith(said)
            assert browser.execute_script(LINES, "chart-parcoords") == lines
            # where WebGL runs on a GPU, Plotly's parcoords draw the same lines (forced here: slow, in software)
            browser.execute_script("sessionStorage.setItem('hpoq-software-gl', '0'); location.reload()")
            wait_js(browser, "const el = document.getElementById('chart-parcoords'); return el && el.data && "
                             "el.data[0].type === 'parcoords'", 60, "Plotly's parcoords")
            dims = browser.execute_script("return document.getElementById('chart-parcoords').data[0].dimensions"
                                          ".map(d => [d.label, d.values.length])")
            assert dims == [[name, lines] for name in data["names"]] + [["value", lines]]
            browser.execute_script("sessionStorage.removeItem('hpoq-software-gl')")


#: each trace of a chart as [type, name]
TRACES = "return document.getElementById(arguments[0]).data.map(t => [t.type, t.name || ''])"
#: how many trials the SVG parallel coordinates draw as lines: the polylines of the colour groups (each ended by a
#: null), and the best trial's
LINES = "const d = document.getElementById(arguments[0]).data; return d.filter(t => t.mode === 'lines')" \
        ".reduce((n, t) => n + t.x.filter(x => x === null).length, 0) + d.filter(t => t.name && " \
        "t.name.startsWith('best: ')).length"


def title(driver: Any, element_id: str) -> str:
    """A chart's title as drawn."""
    return str(driver.execute_script(
        "const t = document.querySelector(`#${arguments[0]} .gtitle`); return t ? t.textContent : ''", element_id))


def note(driver: Any, element_id: str) -> str:
    """The text of a chart's note on what it left out, '' where the page has none or it is hidden."""
    return str(driver.execute_script(
        "const el = document.getElementById(arguments[0]); return el && !el.hidden ? el.textContent : ''",
        element_id))


def test_a_page_opened_during_a_poll_is_drawn(sqlite_url: str, tmp_path: Path, browser: Any,
                                              start_dashboard: Any) -> None:
    """Following a link while the page's poll of the record's version is under way (slow on a busy server)
    must not leave the next page on "loading…" until the record changes (a finished one's never does)."""
    make_big_record(sqlite_url, tmp_path / "work", 40)
    dash = start_dashboard(sqlite_url, "--read-only")
    browser.get(f"{dash.base}/#/experiment/{BIG}/params")
    wait_js(browser, DRAWN.replace("arguments[0]", "'chart-parcoords'"), 30, "the parameters tab")
    browser.execute_script("""const fetched = window.fetch;  // the next poll's answer comes 3 s late
        window.fetch = (url, opts) => { if (!String(url).includes('/api/version')) return fetched(url, opts);
          window.polling = true; window.fetch = fetched;
          return new Promise(r => setTimeout(r, 3000)).then(() => fetched(url, opts)); };""")
    wait_js(browser, "return window.polling", 10, "the page's next poll")
    browser.execute_script("location.hash = '#/'")
    wait_js(browser, "return document.querySelectorAll('#experiments tbody tr').length", 10,
            "the experiments list, with no change to the record")


#: words app.js gives as `type:` that name no trace: axis types ("-": Plotly's automatic) and shapes
NOT_TRACES = {"category", "date", "log", "-", "line", "rect"}


def test_the_bundled_plotly_holds_every_trace_type_the_pages_use(sqlite_url: str, tmp_path: Path, browser: Any,
                                                                  start_dashboard: Any) -> None:
    """The dashboard ships plotly.js with only some trace types (tools/build_plotly.sh): each type app.js asks
    for must be in it, and draw (parcoords too, which this headless Chromium's pages replace with SVG lines)."""
    app = (Path(__file__).parents[2] / "hpoqueue" / "dashboard" / "static" / "app.js").read_text()
    asked = {word for value in re.findall(r"\btype: ([^,}]+)", app) for word in re.findall(r'"([\w-]+)"', value)}
    traces = sorted(asked - NOT_TRACES)
    assert {"scatter", "heatmap", "bar", "parcoords"} <= set(traces)
    make_big_record(sqlite_url, tmp_path / "work", 3)
    dash = start_dashboard(sqlite_url, "--read-only")
    browser.get(f"{dash.base}/#/experiment/{BIG}/trials")
    wait_js(browser, "return document.querySelectorAll('#trial-table tr[data-id]').length == 3", 20, "the table")
    browser.set_script_timeout(60)
    drawn = browser.execute_async_script("""const [types, done] = arguments;
        loadPlotly().then(async () => {
          const known = Object.keys(Plotly.PlotSchema.get().traces), out = {};
          for (const type of types) {
            if (!known.includes(type)) { out[type] = 'not in the bundle'; continue; }
            const el = document.createElement('div');
            document.body.appendChild(el);
            const trace = type === 'parcoords' ? { type, dimensions: [{ values: [1, 2, 3] }, { values: [3, 1, 2] }] }
              : type === 'heatmap' ? { type, z: [[1, 2], [3, 4]] } : { type, x: [1, 2, 3], y: [2, 1, 3] };
            try { await Plotly.newPlot(el, [trace]); out[type] = el._fullData[0].type; }
            catch (e) { out[type] = String(e); }
          }
          done(out);
        }).catch((e) => done({ error: String(e) }));""", traces)
    assert drawn == {t: t for t in traces}


def test_the_overview_names_a_few_running_trials_and_links_to_the_rest(sqlite_url: str, tmp_path: Path,
                                                                       browser: Any, start_dashboard: Any) -> None:
    """30 trials running on 4 boxes (and 10 ended): the overview names 12 of them, box by box, so its charts stay in
    view, and links to the table of every running trial."""
    with Storage(sqlite_url) as storage:
        storage.create_experiment(BIG, name="many running", config={"trialCommand": "true"}, work_dir=str(tmp_path),
                                  optimize_mode="minimize", concurrency=40, max_trial_number=None, max_duration=None)
        for n, t in enumerate(storage.create_trials(BIG, [{"x": i} for i in range(40)])):
            storage.transition(t.id, TrialState.RUNNING, expected=[TrialState.WAITING], host=f"box{n % 4}",
                               gpus=[n // 4 % 8], pid=1000 + n)
            if n >= 30:
                storage.transition(t.id, TrialState.SUCCEEDED, expected=[TrialState.RUNNING], exit_code=0)
    dash = start_dashboard(sqlite_url, "--read-only")
    browser.get(f"{dash.base}/#/experiment/{BIG}")
    more = wait_js(browser, "return document.getElementById('running-more')", 20, "the running trials' card")
    assert more.text == "18 more running trials in the table"
    assert len(browser.find_elements("css selector", "#ov-cards .hosts a")) == 12
    boxes = [li.text for li in browser.find_elements("css selector", "#ov-cards .hosts li")]
    assert [b.split(":")[0] for b in boxes] == ["box0", "box1"] and boxes[1].endswith(" and 4 more")  # 8 run on each
    more.click()
    wait_js(browser, "return document.querySelectorAll('#trial-table tr[data-id]').length == 30", 20,
            "the table of the running trials")
    states = browser.execute_script("return [...document.querySelectorAll('#trial-table tr[data-id] .badge')]"
                                    ".map(b => b.textContent)")
    assert states == ["RUNNING"] * 30
    assert browser.execute_script("return document.getElementById('f-state').value") == "RUNNING"
