"""The worker command line is written once (hpoqueue.worker.main): workers/launch.sh runs `hpoqueue workers`,
whose workers live where `hpoqueue workers status` looks, and no script or doc spells the worker's options."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from hpoqueue.broker.capacity import live_workers
from hpoqueue.broker.client import connect
from tests.e2e.conftest import wait_for

ROOT = Path(__file__).parents[2]
LAUNCH = ROOT / "workers" / "launch.sh"


def _launch(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(LAUNCH), "--python", sys.executable, *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_launch_sh_starts_the_worker_that_workers_status_and_stop_see(tmp_path: Path, redis_url: str) -> None:
    env = {**os.environ, "HPOQUEUE_HOME": str(tmp_path), "HPOQUEUE_BROKER_URL": redis_url, "HPOQUEUE_FAKE_GPUS": "2"}
    try:
        started = _launch("--gpus", "1", "--cap", "2", env=env)
        assert started.returncode == 0, started.stderr
        pid = int((tmp_path / "workers" / "gpu1.pid").read_text())  # where `hpoqueue workers start` keeps it
        client = connect(redis_url)
        [worker] = wait_for(lambda: live_workers(client) or None, 90, "the worker's announcement")
        assert (worker.name, worker.queues, worker.concurrency) == (f"gpu1@{socket.gethostname()}", ("gpu1",), 2)
        status = subprocess.run([sys.executable, "-m", "hpoqueue", "workers", "status"], env=env,
                                capture_output=True, text=True, timeout=60, check=True).stdout
        assert re.search(rf"gpu1\s.*{pid}\s.*running", status), status
        assert "gpu1" in _launch("--status", env=env).stdout
    finally:
        stopped = _launch("--stop", env=env)
    assert stopped.returncode == 0 and "gpu1" in stopped.stdout, stopped
    assert not (tmp_path / "workers" / "gpu1.pid").exists()


def test_a_bad_option_is_one_line_and_exit_status_2(tmp_path: Path) -> None:
    env = {**os.environ, "HPOQUEUE_HOME": str(tmp_path), "HPOQUEUE_BROKER_URL": "redis://127.0.0.1:1/0",
           "HPOQUEUE_FAKE_GPUS": "1"}
    result = _launch("--gpus", "0", "--cap", "0", env=env)
    assert result.returncode == 2 and "--cap" in result.stderr and "Traceback" not in result.stderr, result


def test_no_script_or_doc_spells_out_the_worker_options() -> None:
    """The pool, mingle, gossip and log level are hpoqueue.worker.main's defaults (and the app's): a copy of
    them elsewhere drifts (the README once lacked -P threads)."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "workers").iterdir())]
    spelled = [(f.name, m.group(0)) for f in files if f.is_file()
               for m in re.finditer(r"celery -A hpoqueue worker -[^\n`']*|-P threads|--without-(mingle|gossip)",
                                    f.read_text())]
    assert spelled == []
