"""Chaos helpers: a trial that records every execution, background CLI runs, workers started by hand, and
cleanup of every process a test started (so a failing test leaves nothing running)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hpoqueue.errors import StorageError
from hpoqueue.storage import ExperimentRecord, Storage
from tests.e2e.conftest import Project, wait_for

#: One `<trial>.<pid>.start` file per execution (with the pids it started) and `.end` when it finishes.
#: With `first_only`, only the first execution of a trial sleeps; a retry finishes at once.
CHAOS_TRIAL = '''
import json, os, subprocess, sys, time
import hpoqueue.trial as nni

p = nni.get_next_parameter()
out = os.environ["ECHO_DIR"]
trial = nni.get_trial_id()
first = not any(n.startswith(trial + ".") for n in os.listdir(out))
children = [subprocess.Popen(["sleep", "300"]).pid for _ in range(int(p.get("children", 0)))]
base = os.path.join(out, f"{trial}.{os.getpid()}")
with open(base + ".tmp", "w") as fh:  # renamed into place, so a reader never sees half a record
    json.dump({"pid": os.getpid(), "children": children, "t": time.time(), "params": p}, fh)
os.replace(base + ".tmp", base + ".start")
time.sleep(float(p.get("sleep", 0.5)) if first or not p.get("first_only") else 0.1)
nni.report_final_result(float(p.get("x", 1.0)))
open(base + ".end", "w").close()
'''


def parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


class ChaosProject(Project):
    """A Project whose trial records executions, with processes started in the background and tracked."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        (root / "chaos_trial.py").write_text(CHAOS_TRIAL)
        self.procs: list[subprocess.Popen[bytes]] = []
        self._storage: Storage | None = None

    def chaos_config(self, name: str = "config.yml", **fields: Any) -> Path:
        fields.setdefault("trialCommand", "python chaos_trial.py")
        return self.config(name, **fields)

    def background(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """`hpoqueue ARGS` in the background; output goes to <root>/cli-<n>.log."""
        log = open(self.root / f"cli-{len(self.procs)}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, "-m", "hpoqueue", *args], cwd=self.root,
                                env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def worker(self, broker_url: str, name: str, concurrency: int = 1,
               env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """A Celery worker on queue `cpu`, as `hpoqueue workers` starts one; returns once it is ready."""
        log = self.root / f"worker-{name}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "hpoqueue", "worker", "-Q", "cpu", "-c", str(concurrency),
             "-P", "threads", "-n", f"{name}@%h", "--without-mingle", "--without-gossip",
             "--loglevel", "INFO", "--logfile", str(log)],
            cwd=self.root, env={**self.env, "HPOQUEUE_BROKER_URL": broker_url, **(env or {})},
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        wait_for(lambda: log.exists() and "ready." in log.read_text(), 60, f"worker {name} to be ready")
        return proc

    def executions(self) -> dict[str, list[dict[str, Any]]]:
        """Per trial id, what each execution recorded, with `ended` telling whether it finished."""
        runs: dict[str, list[dict[str, Any]]] = {}
        for path in sorted(self.echo.glob("*.start")):
            trial = path.name.rsplit(".", 2)[0]
            record = json.loads(path.read_text())
            record["ended"] = path.with_suffix(".end").exists()
            runs.setdefault(trial, []).append(record)
        return runs

    def exp_dir(self, exp_id: str) -> Path:
        return Path(self.storage().get_experiment(exp_id).work_dir)

    def storage(self) -> Storage:
        """One Storage per test (opened once the CLI has created the database)."""
        if self._storage is None:
            self._storage = super().storage()
        return self._storage

    def wait_experiment(self, timeout: float) -> str:
        """The id of the experiment a background `submit` records."""
        def recorded() -> list[ExperimentRecord] | None:
            if not (self.home / "hpoqueue.db").exists():
                return None
            try:
                return self.storage().list_experiments()
            except StorageError:  # the CLI is still creating the tables
                return None

        return wait_for(recorded, timeout, "the experiment to be recorded")[0].id

    def cleanup(self) -> None:
        """Kill whatever this test started and left behind: CLI runs, workers, embedded Redis, trials."""
        if self._storage is not None:
            self._storage.close()
        pids = [p.pid for p in self.procs if p.poll() is None]
        for pid_file in [*self.home.rglob("workers/*.pid"), *self.home.rglob("broker/redis.pid")]:
            try:
                pids.append(int(pid_file.read_text()))
            except (OSError, ValueError):
                pass
        for runs in self.executions().values():
            for run in runs:
                pids += [run["pid"], *run["children"]]
        for pid in pids:
            try:
                if not Path(f"/proc/{pid}/cwd").resolve().is_relative_to(self.root):
                    continue  # not ours (the pid was reused): leave it alone
                os.kill(pid, signal.SIGKILL)
            except OSError:  # gone meanwhile, or not ours to read
                pass
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def chaos(tmp_path: Path) -> Iterator[ChaosProject]:
    project = ChaosProject(tmp_path)
    try:
        yield project
    finally:
        project.cleanup()
