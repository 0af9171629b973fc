"""The worker entry point (`python -m hpoqueue.worker.main`): hpoqueue's own messages in a worker reach the
worker's log file through the handlers Celery sets up, at its --loglevel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

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
