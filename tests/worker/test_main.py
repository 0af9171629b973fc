"""The worker entry point (`python -m hpoqueue.worker.main`): hpoqueue's own messages in a worker reach the
worker's log file through the handlers Celery sets up, at its --loglevel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hpoqueue.broker.app import CELERY_HEARTBEAT, make_app
from hpoqueue.processes import start_time
from hpoqueue.worker.runner import PGID_FILE
from tests.e2e.conftest import wait_for


def test_a_worker_says_in_its_log_what_it_killed_of_a_dead_workers_trial(tmp_path: Path, redis_url: str) -> None:
    """What a SIGKILLed worker leaves: a trial's process group (here a `sleep` in a session of its own),
    linked from the run directory. The next worker kills it on start and says so, as a warning, in its log."""
    orphan = subprocess.Popen(["sleep", "300"], start_new_session=True)
    worker = None
    try:
        trial = tmp_path / "exp" / "trials" / "1" / "attempt-1"
        trial.mkdir(parents=True)
        (trial / PGID_FILE).write_text(json.dumps({"pgid": orphan.pid, "runner_pid": 0,
                                                   "leader_start": start_time(orphan.pid)}))
        running = tmp_path / "running"
        running.mkdir()
        (running / "exp-1-a1").symlink_to(trial)
        log = tmp_path / "worker.log"
        env = {**os.environ, "HPOQUEUE_RUN_DIR": str(running), "HPOQUEUE_BROKER_URL": redis_url}
        worker = subprocess.Popen([sys.executable, "-m", "hpoqueue.worker.main", "-Q", "cpu", "-n", "reaper@%h",
                                   "--logfile", str(log), "--loglevel", "WARNING"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        line = wait_for(lambda: next((x for x in log.read_text().splitlines() if "left by a dead worker" in x), None)
                        if log.exists() else None, 90, "the worker's line about the dead worker's trial")
        assert "WARNING" in line and "killed 1 process group(s) left by a dead worker" in line, line
        assert orphan.wait(timeout=10) == -signal.SIGKILL
    finally:
        for proc in (worker, orphan):
            if proc is not None and proc.poll() is None:
                proc.terminate()  # a worker's warm shutdown
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.mark.parametrize(("options", "freq"), [([], CELERY_HEARTBEAT), (["--heartbeat-interval", "3"], 3.0)])
def test_a_bare_celery_worker_beats_seldom_unless_told(redis_url: str, options: list[str], freq: float) -> None:
    """The README's `celery -A hpoqueue worker -Q ...` announces itself with Celery's worker-heartbeat every
    CELERY_HEARTBEAT seconds (Celery's own 2 s was half of an idle worker's CPU); --heartbeat-interval still
    wins. Read from the worker-online event, which carries the period Flower expects beats at."""
    app = make_app(redis_url)
    name = f"beat-{os.getpid()}-{len(options)}"
    seen: list[dict[str, Any]] = []

    def online(event: dict[str, Any]) -> None:  # other tests' workers may share this Redis
        if event.get("type") == "worker-online" and event.get("hostname", "").startswith(f"{name}@"):
            seen.append(event)

    with app.connection_for_read() as connection:
        receiver = app.events.Receiver(connection, handlers={"*": online})
        worker = subprocess.Popen([str(Path(sys.executable).parent / "celery"), "-A", "hpoqueue", "worker", "-Q",
                                   name, "-n", f"{name}@%h", "--without-mingle",
                                   "--without-gossip", "--loglevel", "WARNING", *options],
                                  env={**os.environ, "HPOQUEUE_BROKER_URL": redis_url},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in receiver.itercapture(limit=None, timeout=90):
                if seen:
                    break
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    assert seen and seen[0]["freq"] == freq
