"""Stopping real trials: an assessor's early stop and `hpoqueue kill` end the trial's whole process group
promptly and are recorded as EARLY_STOPPED / USER_CANCELED (embedded Redis, real Celery workers)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hpoqueue.states import ExperimentState, TrialState
from tests.e2e.conftest import Project, alive, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CURVE_TRIAL = '''
import os, subprocess, sys, time
import hpoqueue.trial as nni

p = nni.get_next_parameter()
pids = [os.getpid()]
if p.get("child"):
    pids.append(subprocess.Popen(["sleep", "300"]).pid)
path = os.path.join(os.environ["ECHO_DIR"], nni.get_trial_id() + ".pids")
with open(path + ".tmp", "w") as fh:
    fh.write(" ".join(map(str, pids)))
os.replace(path + ".tmp", path)
for step in range(p["steps"]):
    nni.report_intermediate_result(p["x"] + 1.0 / (step + 1))
    time.sleep(p["sleep"])
'''


def start(project: Project, **fields: Any) -> tuple[subprocess.Popen[str], Path]:
    """`hpoqueue submit` in the background on a BatchTuner config running `configs` in order."""
    (project.root / "curve.py").write_text(CURVE_TRIAL)
    config = project.config(trialCommand="python curve.py", tuner={"name": "BatchTuner"}, **fields)
    proc = subprocess.Popen([sys.executable, "-m", "hpoqueue", "submit", str(config), "--quiet"],
                            cwd=project.root, env=project.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    return proc, project.echo


def pids_of(echo: Path, trial: str) -> list[int] | None:
    path = echo / f"{trial}.pids"
    return [int(p) for p in path.read_text().split()] if path.exists() else None


def gone_at(pids: list[int], timeout: float) -> float:
    """When the last of `pids` was seen gone (polled every 50 ms)."""
    wait_for(lambda: not any(alive(p) for p in pids), timeout, f"processes {pids} to end")
    return time.time()


def finish(proc: subprocess.Popen[str]) -> None:
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out


def test_assessor_stops_a_bad_trial_and_its_children_promptly(project: Project) -> None:
    good = {"steps": 4, "sleep": 0.05}
    configs = [{"x": 0.2, **good}, {"x": 0.1, **good}, {"x": 5.0, "steps": 60, "sleep": 0.3, "child": True}]
    proc, echo = start(project, trialConcurrency=2, maxTrialNumber=None,
                       assessor={"name": "Medianstop", "classArgs": {"start_step": 2}},
                       searchSpace={"combine_params": {"_type": "choice", "_value": configs}})
    exp_id = wait_for(lambda: project.storage().list_experiments(), 30, "the experiment")[0].id
    bad = f"{exp_id}-3"
    pids = wait_for(lambda: pids_of(echo, bad), 40, "the bad trial to start")
    ended = gone_at(pids, 30)
    finish(proc)

    storage = project.storage()
    assert storage.get_experiment(exp_id).state is ExperimentState.DONE
    trials = {t.seq: t for t in storage.trials(exp_id)}
    assert [trials[s].state for s in (1, 2)] == [TrialState.SUCCEEDED] * 2
    assert [m.step for m in storage.metrics(trials[1].id, kind="intermediate")] == [0, 1, 2, 3]
    stopped = trials[3]
    assert stopped.state is TrialState.EARLY_STOPPED
    values = [m.value for m in storage.metrics(stopped.id, kind="intermediate")]
    assert 2 <= len(values) < 60 and stopped.final_value == pytest.approx(values[-1])
    (decision,) = [e for e in storage.events(stopped.id) if e.kind == "assessor_stop"]
    # both processes gone long before the trial would end by itself (60 steps of 0.3 s); that the stop
    # reaches the child by SIGTERM, not by the SIGKILL after the grace, is checked without time in test_runner
    assert ended - decision.created_at.timestamp() <= 10


def test_kill_cancels_a_running_trial_and_its_children(project: Project) -> None:
    configs = [{"x": 1.0, "steps": 200, "sleep": 0.2, "child": True}]
    proc, echo = start(project, trialConcurrency=1, maxTrialNumber=None,
                       searchSpace={"combine_params": {"_type": "choice", "_value": configs}})
    exp_id = wait_for(lambda: project.storage().list_experiments(), 30, "the experiment")[0].id
    trial = f"{exp_id}-1"
    pids = wait_for(lambda: pids_of(echo, trial), 40, "the trial to start")
    asked = time.time()
    project.cli("kill", trial, check=True, timeout=30)
    ended = gone_at(pids, 30)
    finish(proc)

    storage = project.storage()
    record = storage.get_trial(trial)
    assert record.state is TrialState.USER_CANCELED
    assert ended - asked <= 10
    assert storage.get_experiment(exp_id).state is ExperimentState.DONE
