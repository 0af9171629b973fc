"""Dashboard helpers: a real `hpoqueue dashboard` process on a free port, and a real headless Chromium."""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from hpoqueue.states import TrialState
from hpoqueue.storage import Storage

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


class Dashboard:
    """`hpoqueue dashboard --port 0` as a subprocess; the URL and token read from what it prints."""

    def __init__(self, storage_url: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "hpoqueue", "--storage", storage_url, "dashboard",
                                      "--port", "0", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.match(r"hpoqueue dashboard on (http://[^/]+)/(\?token=([\w-]+))?", line)
        if not match:
            self.proc.kill()
            raise AssertionError(f"no URL printed: {line!r} {self.proc.stderr.read()!r}")  # type: ignore[union-attr]
        self.base = match.group(1)
        self.token = match.group(3)
        self.printed = line.strip()

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        return self._request(urllib.request.Request(self.base + path, headers=headers or {}))

    def post(self, path: str, body: dict[str, Any] | None = None, token: str | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["X-Hpoqueue-Token"] = token
        return self._request(urllib.request.Request(self.base + path, data=json.dumps(body or {}).encode(),
                                                    headers=headers, method="POST"))

    @staticmethod
    def _request(request: urllib.request.Request) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(request, timeout=130) as resp:
                raw = resp.read()
                status = resp.status
                kind = resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            raw, status, kind = exc.read(), exc.code, exc.headers.get("Content-Type", "")
        return status, json.loads(raw) if "json" in kind else raw

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def start_dashboard() -> Iterator[Any]:
    """Start dashboards (stopped after the test): start_dashboard(storage_url, *options)."""
    started: list[Dashboard] = []

    def start(storage_url: str, *args: str, env: dict[str, str] | None = None) -> Dashboard:
        started.append(Dashboard(storage_url, *args, env=env))
        return started[-1]

    yield start
    for dash in started:
        dash.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Debian's chromium, headless, through chromium-driver; skipped (with the reason) where either is not
    installed, failing where it is installed but does not start."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            pytest.skip(f"{path} is not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path / "chromium-profile"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--enable-unsafe-swiftshader", "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_js(driver: Any, script: str, timeout: float, what: str) -> Any:
    """Run `script` (returning a value) in the page until it gives something truthy."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {value!r})")


BIG = "dashbig"
#: the big record's search space: a log-uniform, a uniform, a numeric choice and a categorical parameter
BIG_SPACE = {"lr": {"_type": "loguniform", "_value": [1e-5, 1e-1]}, "dropout": {"_type": "uniform", "_value": [0, 0.5]},
             "batch": {"_type": "choice", "_value": [32, 64, 128, 256]},
             "opt": {"_type": "choice", "_value": ["adam", "sgd", "rmsprop"]}}


def make_big_record(storage_url: str, work_dir: Path, trials: int, steps: int = 10) -> None:
    """`trials` trials of experiment BIG on 2 boxes x 4 GPUs, written as the scheduler writes them: about 70 %
    succeeded with a curve of `steps` results, the rest early stopped part way (with a value) or failed (without
    one), the last two still running (so the record ends now)."""
    rng = random.Random(3)
    t0 = datetime.now(timezone.utc) - timedelta(seconds=10 * (trials // 8) + 30)
    with Storage(storage_url) as storage:
        storage.create_experiment(BIG, name="big", config={"trialCommand": "python t.py", "searchSpace": BIG_SPACE,
                                                            "tuner": {"name": "TPE"}},
                                  work_dir=str(work_dir), optimize_mode="minimize", concurrency=8,
                                  max_trial_number=trials + 10, max_duration=None)
        params = [{"lr": 10 ** rng.uniform(-5, -1), "dropout": rng.uniform(0, 0.5),
                   "batch": rng.choice([32, 64, 128, 256]), "opt": rng.choice(["adam", "sgd", "rmsprop"])}
                  for _ in range(trials)]
        with storage.transaction():
            for n, t in enumerate(storage.create_trials(BIG, params)):
                host, gpu = f"box{n % 8 // 4}", n % 4
                start = t0 + timedelta(seconds=10 * (n // 8))
                storage.transition(t.id, TrialState.RUNNING, expected=[TrialState.WAITING], host=host, gpus=[gpu],
                                   pid=1000 + n, started_at=start)
                storage.add_event(t.id, 1, "started", {"host": host, "gpus": [gpu], "pid": 1000 + n})
                roll = rng.random()
                state = (TrialState.RUNNING if n >= trials - 2 else TrialState.SUCCEEDED if roll < 0.7
                         else TrialState.EARLY_STOPPED if roll < 0.95 else TrialState.FAILED)
                last = steps if state is not TrialState.EARLY_STOPPED else rng.randint(2, steps - 1)
                base = 1 + (5 + math.log10(params[n]["lr"])) ** 2 / 10 + rng.uniform(0, 0.3)
                value = base
                for step in range(last):
                    value = base * (0.5 + 0.5 * math.exp(-step / 3)) + rng.uniform(0, 0.02)
                    storage.add_metric(t.id, 1, "intermediate", step, value)
                if state is TrialState.RUNNING:
                    continue
                if state is not TrialState.FAILED:
                    storage.add_metric(t.id, 1, "final", 0, value, {"default": value})
                    storage.update_trial(t.id, final_value=value, final_data={"default": value})
                storage.transition(t.id, state, expected=[TrialState.RUNNING], exit_code=0,
                                   ended_at=start + timedelta(seconds=last))
                storage.add_event(t.id, 1, "finished", {"exit_code": 0, "message": state.value.lower()})
