"""Dashboard response times on a big experiment: 10,000 trials with 50 intermediate results each.

    python benchmarks/dashboard.py [--trials 10000] [--steps 50] [--db PATH] [--repeat 5]

The record is written through the real storage path (Storage.create_trials, transition, add_metric,
add_event, as the scheduler writes it; grouped into transactions of 100 trials) into a SQLite file, kept
at --db for the next run. A real `hpoqueue dashboard` process serves it. The script times each API call
(the first call, then median and worst of --repeat, over HTTP on loopback; chart data is cached per
revision of the record: the first call on a fresh dashboard reads the experiment) and the call right after
a change of the record as a running experiment writes it (a trial ends, the next starts and reports its
first result: `change`), and, where Debian's chromium and chromium-driver are installed, each page in
headless Chromium (a fresh browser and a fresh dashboard, so the first load of the first chart page also
compiles Plotly and reads the record): time from the start of the navigation to the first chart drawn (for
the table pages: the table filled), to every chart drawn (scrolling each into view, so charts drawn lazily
count), the same right after a change, and the bytes of API data the page fetched (after gzip, from the
browser's resource timing). The times are the page's own: app.js sets a performance mark as each chart is
drawn and painted (`hpoq-drawn ID`; `hpoq-draw ID` as its drawing starts: the "drawing" column sums the
charts' drawing times) and as a page is built (`hpoq-shown`), read here through WebDriver. (Until
2026-12-03 17:00 UTC the script polled the page over WebDriver for charts laid out, timed from before the
navigation: that added WebDriver's latency, and missed a chart drawn in the 15 ms before the next one started.)
The changes go to a copy of --db, which stays as it was.
The machine's load average is printed before and after. Goal: every page within 1 s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from hpoqueue.states import TrialState
from hpoqueue.storage import MetricRow, Storage

EXP = "bench10k"
HOSTS = [f"box{b}" for b in range(4)]


def build(url: str, trials: int, steps: int, work_dir: Path) -> float:
    """Write the experiment as the scheduler would; returns the seconds it took."""
    began = time.perf_counter()
    rng = random.Random(7)
    t0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
    with Storage(url) as storage:
        storage.create_experiment(EXP, name="benchmark 10k", config={"trialCommand": "python train.py",
                                                                      "tuner": {"name": "TPE"},
                                                                      "assessor": {"name": "Medianstop"}},
                                  work_dir=str(work_dir), optimize_mode="minimize", concurrency=32,
                                  max_trial_number=trials, max_duration=86400.0)
        for block in range(0, trials, 100):
            params = [{"lr": 10 ** rng.uniform(-5, -1), "batch": rng.choice([32, 64, 128, 256]),
                       "dropout": rng.uniform(0, 0.5), "optimizer": rng.choice(["adam", "sgd", "rmsprop"])}
                      for _ in range(min(100, trials - block))]
            with storage.transaction():
                for i, t in enumerate(storage.create_trials(EXP, params)):
                    n = block + i
                    slot = n % 32  # 4 boxes of 8 GPUs, one trial per GPU at a time
                    start = t0 + timedelta(seconds=8.5 * (n // 32))
                    host, gpu = HOSTS[slot // 8], slot % 8
                    storage.transition(t.id, TrialState.RUNNING, expected=[TrialState.WAITING], host=host,
                                       gpus=[gpu], pid=10000 + n, queue=f"gpu{gpu}", started_at=start)
                    storage.add_event(t.id, 1, "started", {"host": host, "gpus": [gpu], "pid": 10000 + n})
                    base = 1 + math.log10(params[i]["lr"]) ** 2 / 10 + rng.uniform(0, 0.3)
                    stop = steps if rng.random() > 0.3 else rng.randint(5, steps - 1)
                    value = base
                    for step in range(stop):
                        value = base * (0.5 + 0.5 * math.exp(-step / 10)) + rng.uniform(0, 0.02)
                        storage.add_metric(t.id, 1, "intermediate", step, value)
                    state = TrialState.SUCCEEDED if stop == steps else TrialState.EARLY_STOPPED
                    storage.add_metric(t.id, 1, "final", 0, value, {"default": value, "acc": 1 / value})
                    storage.update_trial(t.id, final_value=value, final_data={"default": value, "acc": 1 / value})
                    storage.transition(t.id, state, expected=[TrialState.RUNNING], exit_code=0,
                                       ended_at=start + timedelta(seconds=stop * 0.16))
                    storage.add_event(t.id, 1, "finished", {"exit_code": 0, "message": "exited with 0"})
            if block % 1000 == 0:
                print(f"  wrote {block + len(params)} trials ({time.perf_counter() - began:.0f} s)", file=sys.stderr)
    return time.perf_counter() - began


def change(url: str) -> None:
    """What a running experiment writes in a moment: the trial the last change started succeeds, the next one
    is created and started, and reports its first result."""
    with Storage(url) as storage:
        for running in storage.trials(EXP, states=[TrialState.RUNNING]):
            storage.add_metric(running.id, 1, "final", 0, 1.4, {"default": 1.4})
            storage.update_trial(running.id, final_value=1.4, final_data={"default": 1.4})
            storage.transition(running.id, TrialState.SUCCEEDED, expected=[TrialState.RUNNING], exit_code=0)
            storage.add_event(running.id, 1, "finished", {"exit_code": 0, "message": "exited with 0"})
        trial = storage.create_trials(EXP, [{"lr": 0.001, "batch": 64, "dropout": 0.1, "optimizer": "adam"}])[0]
        storage.transition(trial.id, TrialState.RUNNING, expected=[TrialState.WAITING], host="box0", gpus=[0],
                           pid=99999, queue="gpu0")
        storage.add_event(trial.id, 1, "started", {"host": "box0", "gpus": [0], "pid": 99999})
        storage.add_metric(trial.id, 1, "intermediate", 0, 1.5)


def get(url: str) -> tuple[float, int]:
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as resp:
        size = len(resp.read())
    return time.perf_counter() - began, size


def api_calls(trials: int) -> list[tuple[str, str]]:
    """(name, path) of each API call a page makes, on the experiment of `trials` trials."""
    return [
        ("experiments list", "/api/experiments"),
        ("overview", f"/api/experiments/{EXP}"),
        ("version (polled)", f"/api/version/{EXP}"),
        ("table: first page", f"/api/experiments/{EXP}/trials?limit=50"),
        ("table: by value", f"/api/experiments/{EXP}/trials?sort=value&limit=50"),
        ("table: by param, last page",
         f"/api/experiments/{EXP}/trials?sort=param:lr&desc=1&offset={trials - 50}&limit=50"),
        ("table: by metric", f"/api/experiments/{EXP}/trials?sort=metric:acc&desc=1&limit=50"),
        ("table: 2 filters", f"/api/experiments/{EXP}/trials?filter=lr%3C0.001&filter=optimizer%3Dadam&sort=value"),
        ("chart: progress (overview)", f"/api/experiments/{EXP}/progress"),
        ("chart: curves", f"/api/experiments/{EXP}/curves"),
        ("chart: params", f"/api/experiments/{EXP}/params"),
        ("chart: timeline and durations", f"/api/experiments/{EXP}/timeline"),
        ("points (for scripts; no page reads it)", f"/api/experiments/{EXP}/points"),
        ("trial page", f"/api/trials/{EXP}-{trials // 2}"),
    ]


#: (page, URL fragment, the performance marks app.js sets when the page is ready: "hpoq-shown" when it is built
#: (a list or table filled), "hpoq-drawn ID" when chart ID is drawn and painted)
PAGES: list[tuple[str, str, list[str]]] = [
    ("experiments", "#/", ["hpoq-shown"]),
    ("overview", f"#/experiment/{EXP}", ["hpoq-drawn chart-best-seq", "hpoq-drawn chart-best-time"]),
    ("trial table", f"#/experiment/{EXP}/trials", ["hpoq-shown"]),
    ("intermediate results", f"#/experiment/{EXP}/curves", ["hpoq-drawn chart-curves"]),
    ("parameters", f"#/experiment/{EXP}/params", ["hpoq-drawn chart-parcoords", "hpoq-drawn chart-params"]),
    ("durations & GPUs", f"#/experiment/{EXP}/gpus", ["hpoq-drawn chart-timeline", "hpoq-drawn chart-durations"]),
    ("trial", f"#/trial/{EXP}-1", ["hpoq-drawn chart-trial"]),
]
#: ms after the page's time origin (its navigation's start) of the first of each of these marks set at or after
#: arguments[1] ms, null for one not set yet
MARKED = """const [names, after] = arguments, marks = performance.getEntriesByType('mark');
return names.map(n => { const m = marks.find(e => e.name === n && e.startTime >= after);
  return m ? m.startTime : null; });"""
API_BYTES = "return performance.getEntriesByType('resource').filter(e => e.name.includes('/api/'))" \
            ".reduce((n, e) => n + e.encodedBodySize, 0)"


def chromium() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="bench-chromium-")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-unsafe-swiftshader",
                "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def marked(driver: Any, names: list[str], after: float, limit: float) -> list[float]:
    """Seconds from the page's time origin to each of the marks `names` set at or after `after` ms, once all are
    set; charts are scrolled into view (those below the fold wait for that) as the marks come."""
    began = time.perf_counter()
    while True:
        times = driver.execute_script(MARKED, names, after)
        if all(t is not None for t in times):
            return [t / 1000 for t in times]
        if time.perf_counter() - began > limit:
            raise RuntimeError(f"not set in {limit:g} s: {[n for n, t in zip(names, times, strict=True) if t is None]}")
        for name, t in zip(names, times, strict=True):
            if t is None and name.startswith("hpoq-drawn "):
                driver.execute_script("const el = document.getElementById(arguments[0]); if (el) el.scrollIntoView()",
                                      name.split(" ", 1)[1])
        time.sleep(0.02)


def load_page(driver: Any, url: str, ready: list[str]) -> tuple[float, float, int, float]:
    """(seconds from the start of the navigation to the first chart drawn, or the table filled, as the page's own
    performance marks time it; to every chart drawn; API bytes fetched; seconds spent drawing the charts, each
    from its Plotly call to its paint, summed: NaN for a page without charts)."""
    driver.get("about:blank")
    driver.get(url)
    times = marked(driver, ready, 0, 90)
    drawn = [(name.replace("hpoq-drawn ", "hpoq-draw "), t) for name, t in zip(ready, times, strict=True)
             if name.startswith("hpoq-drawn ")]
    began = marked(driver, [name for name, _ in drawn], 0, 1)
    drawing = sum(t for _, t in drawn) - sum(began) if drawn else math.nan
    return min(times), max(times), int(driver.execute_script(API_BYTES)), drawing


def in_app(driver: Any, base: str, fragment: str, ready: list[str]) -> float:
    """Seconds from following a link inside the app (from the experiments list, Plotly already loaded; to the list:
    from the trial table) to the first chart drawn or the table filled: what moving between pages and tabs costs.
    NaN where a page did not show within 10 s (the one linked from) or 30 s (the page): the dashboard before
    2026-12-03 could stay on "loading…" after a link followed during a poll; the app is then loaded again."""
    _, origin, shown = PAGES[2] if fragment == PAGES[0][1] else PAGES[0]
    try:
        start = driver.execute_script("const t = performance.now(); location.hash = arguments[0]; return t", origin)
        marked(driver, shown, start, 10)
        start = driver.execute_script("const t = performance.now(); location.hash = arguments[0]; return t", fragment)
        return min(marked(driver, ready, start, 30)) - start / 1000
    except RuntimeError:
        driver.get(base + "/#/")
        return math.nan


PLOTLY = """const done = arguments[0], began = performance.now(), tag = document.createElement('script');
tag.src = info.plotly || '/static/plotly.min.js';
tag.onload = () => { const loaded = performance.now(), el = document.createElement('div');
  document.body.appendChild(el);
  Plotly.newPlot(el, [{x: [1, 2], y: [1, 2]}]).then(() => done([loaded - began, performance.now() - loaded])); };
document.head.appendChild(tag);"""


def plotly_cost(driver: Any, base: str) -> tuple[float, float]:
    """Seconds to load and run plotly.min.js (from the browser's cache), and to draw a first tiny chart."""
    driver.get("about:blank")
    driver.get(base + "/#/")
    marked(driver, PAGES[0][2], 0, 90)
    loaded, first = driver.execute_async_script(PLOTLY)
    return loaded / 1000, first / 1000


FRESH = """const done = arguments[0], began = performance.now(), tag = document.createElement('script');
tag.src = info.plotly || '/static/plotly.min.js';
tag.onload = () => { const ran = performance.now(), el = document.createElement('div');
  const got = performance.getEntriesByType('resource').find(e => e.name.endsWith(tag.src)).responseEnd;
  document.body.appendChild(el);
  Plotly.newPlot(el, [{x: [1, 2], y: [1, 2]}]).then(() => done([got - began, ran - got, performance.now() - ran])); };
document.head.appendChild(tag);"""


def plotly_fresh(base: str) -> tuple[float, float, float]:
    """In a browser of its own (empty cache): seconds to fetch Plotly, to parse, compile and run it, and to draw
    a first tiny chart."""
    driver = chromium()
    driver.set_script_timeout(120)
    try:
        driver.get(base + "/#/")
        marked(driver, PAGES[0][2], 0, 90)
        fetched, ran, first = driver.execute_async_script(FRESH)
        return fetched / 1000, ran / 1000, first / 1000
    finally:
        driver.quit()


Pages = list[tuple[str, list[tuple[float, float, int, float]], list[float]]]


def browser_times(base: str, url: str, repeat: int) -> tuple[Pages, list[tuple[float, float]],
                                                            list[tuple[float, float, float]]] | str:
    """Per page: (first chart, every chart, API bytes, drawing) of each full load (the first on a fresh dashboard, the
    last two right after a change of the record), and the in-app times; Plotly's cost."""
    if not (os.path.exists("/usr/bin/chromium") and os.path.exists("/usr/bin/chromedriver")):
        return "no /usr/bin/chromium or /usr/bin/chromedriver: page times skipped"
    try:
        driver = chromium()
    except ImportError:
        return "selenium not installed: page times skipped"
    driver.set_script_timeout(120)
    try:
        def after_change(fragment: str, ready: list[str]) -> tuple[float, float, int, float]:
            change(url)
            return load_page(driver, base + "/" + fragment, ready)

        pages = [(name, [load_page(driver, base + "/" + fragment, ready) for _ in range(repeat)]
                  + [after_change(fragment, ready) for _ in range(2)],
                  [in_app(driver, base, fragment, ready) for _ in range(repeat)]) for name, fragment, ready in PAGES]
        return pages, [plotly_cost(driver, base) for _ in range(repeat)], [plotly_fresh(base) for _ in range(repeat)]
    finally:
        driver.quit()


class Server:
    """A real `hpoqueue dashboard --read-only` process on a free port."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "hpoqueue", "--storage", url, "dashboard", "--port",
                                      "0", "--read-only"], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        match = re.search(r"(http://[^/]+)/", line)
        if not match:
            self.close()
            raise SystemExit(f"the dashboard printed no URL: {line!r}")
        self.base = match.group(1)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _ms(times: list[float]) -> str:
    """The median in ms, and how many runs got stuck (NaN), if any."""
    done = [t for t in times if not math.isnan(t)]
    stuck = f" ({len(times) - len(done)} of {len(times)} stuck)" if len(done) < len(times) else ""
    return (f"{statistics.median(done) * 1000:.0f}" if done else "–") + stuck


def _drawing(times: list[float]) -> str:
    """The median in ms; "–" for a page without charts."""
    return "–" if math.isnan(times[0]) else f"{statistics.median(times) * 1000:.0f}"


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--db", default=os.path.join(tempfile.gettempdir(), "hpoqueue-dashboard-bench.db"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pages-only", action="store_true", help="skip the API table")
    args = parser.parse_args()
    built = None
    if not Path(args.db).exists():
        print(f"writing {args.trials} trials x {args.steps} intermediate results to {args.db} ...", file=sys.stderr)
        built = build(f"sqlite:///{args.db}", args.trials, args.steps, Path(args.db).with_suffix(".work"))
    scratch = tempfile.mkdtemp(prefix="dashboard-bench-")
    shutil.copy(args.db, os.path.join(scratch, "record.db"))  # the changes go here
    url = f"sqlite:///{os.path.join(scratch, 'record.db')}"
    with Storage(url) as storage:
        counts = storage.count_trials(EXP)
        metrics = storage.select(select(func.count()).select_from(MetricRow))[0][0]
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {load()}")
    print(f"record: {sum(counts.values())} trials, {metrics} metric rows" +
          (f" (written in {built:.0f} s through Storage)" if built else ""))
    if not args.pages_only:
        server = Server(url)
        try:
            print()
            print("| API call | first ms | after a change ms | median ms | worst ms | response KiB (before gzip) |")
            print("|---|---|---|---|---|---|")
            for name, path in api_calls(args.trials):
                times, size = [], 0
                for _ in range(args.repeat):
                    took, size = get(server.base + path)
                    times.append(took)
                changed = []
                for _ in range(3):
                    change(url)
                    changed.append(get(server.base + path)[0])
                print(f"| {name} | {times[0] * 1000:.0f} | {statistics.median(changed) * 1000:.0f} | "
                      f"{statistics.median(times) * 1000:.0f} | {max(times) * 1000:.0f} | {size / 1024:.0f} |",
                      flush=True)
        finally:
            server.close()
    server = Server(url)  # a fresh one: the first chart page reads the experiment
    try:
        pages = browser_times(server.base, url, max(2, args.repeat // 2 + 1))
    finally:
        server.close()
    print()
    if isinstance(pages, str):
        print(pages)
    else:
        print("| page (headless Chromium) | trials | first chart ms: first load | median of loads | after a change "
              "| every chart ms: first load | median of loads | after a change | in the app ms: median "
              "| drawing the charts ms: median of loads | API data KiB (gzip) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for name, runs, moves in pages[0]:
            firsts, everys = [r[0] for r in runs], [r[1] for r in runs]
            print(f"| {name} | {args.trials} | {firsts[0] * 1000:.0f} | {statistics.median(firsts[1:-2]) * 1000:.0f} "
                  f"| {statistics.median(firsts[-2:]) * 1000:.0f} | {everys[0] * 1000:.0f} "
                  f"| {statistics.median(everys[1:-2]) * 1000:.0f} | {statistics.median(everys[-2:]) * 1000:.0f} "
                  f"| {_ms(moves)} | {_drawing([r[3] for r in runs[1:-2]])} | {runs[-1][2] / 1024:.0f} |")
        loaded = statistics.median(c[0] for c in pages[1])
        first = statistics.median(c[1] for c in pages[1])
        print(f"\nplotly.min.js from the browser's cache: {loaded * 1000:.0f} ms to load and run, then "
              f"{first * 1000:.0f} ms to draw a first 2-point chart (medians): in every full load of a chart page")
        fresh = [statistics.median(c[i] for c in pages[2]) * 1000 for i in range(3)]
        print(f"Plotly in a fresh browser (empty cache): {fresh[0]:.0f} ms to fetch, {fresh[1]:.0f} ms to parse, "
              f"compile and run, {fresh[2]:.0f} ms to draw a first 2-point chart (medians): the first chart page's "
              "first load")
    print()
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {load()}")
    print(json.dumps({"trials": args.trials, "steps": args.steps, "db": args.db}))
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
