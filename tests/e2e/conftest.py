"""End-to-end helpers: run the real `hpoqueue` CLI (embedded Redis, real Celery workers, real trials)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpoqueue.storage import Storage

ECHO_TRIAL = '''
import json, os, sys, time
import hpoqueue.trial as nni

params = nni.get_next_parameter()
out = os.environ["ECHO_DIR"]
record = {"params": params, "start": time.time(), "pid": os.getpid(),
          "trial": nni.get_trial_id(), "seq": nni.get_sequence_id(), "experiment": nni.get_experiment_id()}
steps = int(params.get("steps", 3))
for step in range(steps):
    nni.report_intermediate_result(float(params.get("x", 0)) + step)
    time.sleep(float(params.get("sleep", 0.05)))
nni.report_final_result({"default": float(params.get("x", 0)) * 10, "extra": 1})
record["end"] = time.time()
path = os.path.join(out, record["trial"])
with open(path + ".tmp", "w") as fh:  # renamed into place, so a reader never sees half a record
    json.dump(record, fh)
os.replace(path + ".tmp", path + ".json")
sys.exit(int(params.get("exit", 0)))
'''


@dataclass
class Run:
    """The result of one CLI call."""

    code: int
    stdout: str
    stderr: str


class Project:
    """A scratch experiment folder with its own HPOQUEUE_HOME, driven through the CLI."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.echo = root / "echo"
        self.echo.mkdir(parents=True)
        (root / "trial.py").write_text(ECHO_TRIAL)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HPOQUEUE_")}
        self.env.update({"HPOQUEUE_HOME": str(self.home), "ECHO_DIR": str(self.echo),
                         "HPOQUEUE_RUN_DIR": str(root / "running")})

    @property
    def storage_url(self) -> str:
        return f"sqlite:///{self.home / 'hpoqueue.db'}"

    def config(self, name: str = "config.yml", **fields: Any) -> Path:
        raw: dict[str, Any] = {"trialCommand": "python trial.py", "trialConcurrency": 2,
                               "maxTrialNumber": 4, "tuner": {"name": "Random", "classArgs": {"seed": 1}},
                               "searchSpace": {"x": {"_type": "uniform", "_value": [0, 1]}}}
        raw.update(fields)
        path = self.root / name
        path.write_text(yaml.safe_dump(raw))
        return path

    def cli(self, *args: str, timeout: float = 180, check: bool = False) -> Run:
        proc = subprocess.run([sys.executable, "-m", "hpoqueue", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        run = Run(proc.returncode, proc.stdout, proc.stderr)
        if check and run.code != 0:
            raise AssertionError(f"hpoqueue {' '.join(args)} exited {run.code}\n{run.stdout}\n{run.stderr}")
        return run

    def storage(self) -> Storage:
        return Storage(self.storage_url)

    def only_experiment(self) -> str:
        exps = self.storage().list_experiments()
        assert len(exps) == 1, exps
        return exps[0].id

    def echoes(self) -> dict[str, dict[str, Any]]:
        return {p.stem: json.loads(p.read_text()) for p in self.echo.glob("*.json")}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def processes_under(path: Path) -> list[str]:
    """Live processes whose command line names `path` (a local worker's --logfile) or whose working
    directory is under it (the embedded Redis, which runs in its --dir and rewrites its command line)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        if proc.name == str(os.getpid()) or not alive(int(proc.name)):
            continue
        try:
            text = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if str(path) in text or cwd.startswith(str(path)):
            found.append(text)
    return found


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, poll: float = 0.2) -> Any:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals open at one moment."""
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = now = 0
    for _, delta in points:
        now += delta
        best = max(best, now)
    return best
