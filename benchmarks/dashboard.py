"""Dashboard response times on a big experiment: 10,000 trials with 50 intermediate results each.

    python benchmarks/dashboard.py [--trials 10000] [--steps 50] [--db PATH] [--repeat 5]

The record is written through the real storage path (Storage.create_trials, transition, add_metric,
add_event, as the scheduler writes it; grouped into transactions of 100 trials) into a SQLite file, kept
at --db for the next run. A real `hpoqueue dashboard` process serves it; the script times each API call
(the first call, then median and worst of --repeat, over HTTP on loopback; the charts' data is cached
until the record changes, so the first call is the one a change costs) and, where Debian's chromium and
chromium-driver are installed, each page in headless Chromium from navigation to its last chart drawn or table filled.
Goal: every page within 1 s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func, select

from hpoqueue.states import TrialState
from hpoqueue.storage import Metric, Storage

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
        ("chart points", f"/api/experiments/{EXP}/points"),
        ("curves", f"/api/experiments/{EXP}/curves"),
        ("timeline", f"/api/experiments/{EXP}/timeline"),
        ("trial page", f"/api/trials/{EXP}-{trials // 2}"),
    ]

PAGES = [
    ("experiments", "#/", "return document.querySelectorAll('#experiments tbody tr').length > 0"),
    ("overview + best charts", f"#/experiment/{EXP}", "DRAWN:chart-best-time"),
    ("trial table", f"#/experiment/{EXP}/trials", "return document.querySelectorAll('#trial-table tr').length > 50"),
    ("intermediate results", f"#/experiment/{EXP}/curves", "DRAWN:chart-curves"),
    ("parameters", f"#/experiment/{EXP}/params", "DRAWN:chart-params"),
    ("durations & GPUs", f"#/experiment/{EXP}/gpus", "DRAWN:chart-durations"),
    ("trial", f"#/trial/{EXP}-1", "DRAWN:chart-trial"),
]
DRAWN = "const el = document.getElementById('{}'); return !!(el && el._fullLayout && el.data && el.data.length)"


def browser_times(base: str, repeat: int) -> list[tuple[str, list[float]]] | str:
    if not (os.path.exists("/usr/bin/chromium") and os.path.exists("/usr/bin/chromedriver")):
        return "no /usr/bin/chromium or /usr/bin/chromedriver: page times skipped"
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return "selenium not installed: page times skipped"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="bench-chromium-")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-unsafe-swiftshader",
                "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    results = []
    try:
        for name, fragment, ready in PAGES:
            script = DRAWN.format(ready[6:]) if ready.startswith("DRAWN:") else ready
            times = []
            for _ in range(repeat):
                driver.get("about:blank")
                began = time.perf_counter()
                driver.get(base + "/" + fragment)
                while not driver.execute_script(script):
                    if time.perf_counter() - began > 60:
                        raise RuntimeError(f"page {name} did not finish in 60 s")
                    time.sleep(0.01)
                times.append(time.perf_counter() - began)
            results.append((name, times))
    finally:
        driver.quit()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--db", default=os.path.join(tempfile.gettempdir(), "hpoqueue-dashboard-bench.db"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    url = f"sqlite:///{args.db}"
    built = None
    if not Path(args.db).exists():
        print(f"writing {args.trials} trials x {args.steps} intermediate results to {args.db} ...", file=sys.stderr)
        built = build(url, args.trials, args.steps, Path(args.db).with_suffix(".work"))
    proc = subprocess.Popen([sys.executable, "-m", "hpoqueue", "--storage", url, "dashboard", "--port", "0",
                             "--read-only"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        match = re.search(r"(http://[^/]+)/", line)
        if not match:
            raise SystemExit(f"the dashboard printed no URL: {line!r}")
        base = match.group(1)
        with Storage(url) as storage:
            counts = storage.count_trials(EXP)
            metrics = storage.select(select(func.count()).select_from(Metric))[0][0]
        print(f"record: {sum(counts.values())} trials, {metrics} metric rows" +
              (f" (written in {built:.0f} s through Storage)" if built else ""))
        print()
        print("| API call | first ms | median ms | worst ms | response KiB |")
        print("|---|---|---|---|---|")
        for name, path in api_calls(args.trials):
            times, size = [], 0
            for _ in range(args.repeat):
                took, size = get(base + path)
                times.append(took)
            print(f"| {name} | {times[0] * 1000:.0f} | {statistics.median(times) * 1000:.0f} | "
                  f"{max(times) * 1000:.0f} | {size / 1024:.0f} |")
        pages = browser_times(base, max(1, args.repeat // 2))
        print()
        if isinstance(pages, str):
            print(pages)
        else:
            print("| page in headless Chromium (navigation to drawn) | median ms | worst ms |")
            print("|---|---|---|")
            for name, times in pages:
                print(f"| {name} | {statistics.median(times) * 1000:.0f} | {max(times) * 1000:.0f} |")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print()
    print(json.dumps({"trials": args.trials, "steps": args.steps, "db": args.db}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
