"""Issue 17 #3 and #9: every process a trial starts dies with it, also one that calls setsid or
double-forks (each attempt in its own cgroup where the box allows it), and a local run restarts a local
worker that died, whose successor kills what the dead worker's trial left running."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from hpoqueue.states import ExperimentState, TrialState
from hpoqueue.worker.cgroup import cgroup_base
from tests.chaos.conftest import ChaosProject
from tests.e2e.conftest import alive, wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(120)]

ESCAPING_TRIAL = '''
import json, os, subprocess, sys, time
import hpoqueue.trial as nni

nni.get_next_parameter()
pids = [subprocess.Popen(["sleep", "300"], start_new_session=True).pid]  # setsid
read, write = os.pipe()
if os.fork() == 0:  # a double fork into a new session: a daemon
    os.setsid()
    if os.fork() == 0:
        os.write(write, str(os.getpid()).encode())
        time.sleep(300)
    os._exit(0)
os.wait()
pids.append(int(os.read(read, 32)))
with open(os.path.join(os.environ["ECHO_DIR"], nni.get_trial_id() + ".escaped"), "w") as fh:
    json.dump(pids, fh)
nni.report_final_result(1.0)
'''


@pytest.mark.skipif(cgroup_base() is None, reason="no writable cgroup v2 with cgroup.kill on this box "
                                                  "(the process group is all hpoqueue can reach here)")
def test_processes_that_leave_the_trials_process_group_die_with_it(chaos: ChaosProject) -> None:
    (chaos.root / "escape.py").write_text(ESCAPING_TRIAL)
    config = chaos.config(trialCommand="python escape.py", maxTrialNumber=2, trialConcurrency=2)
    chaos.cli("submit", str(config), "--quiet", timeout=90, check=True)
    escaped = [pid for path in chaos.echo.glob("*.escaped") for pid in json.loads(path.read_text())]
    assert len(escaped) == 4, escaped
    try:
        wait_for(lambda: not any(alive(pid) for pid in escaped), 5, "the escaped processes to be killed")
    finally:
        for pid in escaped:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    base = cgroup_base()
    logs = [p.read_text() for p in chaos.home.rglob("trial.log")]
    used = {word.rstrip(")") for log in logs for word in log.split() if word.startswith("hpoqueue-")}
    assert base is not None and len(used) == 2, logs  # each attempt had a cgroup of its own ...
    assert not [name for name in used if (base / name).exists()]  # ... removed with it


def test_a_local_run_restarts_a_dead_worker_whose_successor_kills_the_old_trial(chaos: ChaosProject) -> None:
    """`sleep 77 & python trial.py`: the trial is a grandchild that the death signal of the worker's
    child does not reach; the restarted worker kills it before attempt 2 runs the trial again."""
    config = chaos.chaos_config(trialCommand="sleep 77 & python chaos_trial.py", maxTrialNumber=1,
                                trialConcurrency=1, heartbeatTimeout="4s", maxTrialRetries=1,
                                searchSpace={"sleep": {"_type": "choice", "_value": [60]},
                                             "first_only": {"_type": "choice", "_value": [True]}})
    submit = chaos.background("submit", str(config))
    exp_id = chaos.wait_experiment(30)
    [first] = wait_for(lambda: chaos.executions().get(f"{exp_id}-1"), 60, "the trial to start")
    pid_file = chaos.exp_dir(exp_id) / "workers" / "cpu.pid"
    worker = int(pid_file.read_text())
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: pid_file.exists() and pid_file.read_text() != str(worker), 10, "the worker's restart")
    wait_for(lambda: not alive(first["pid"]), 15, "the new worker to kill the dead worker's trial")
    assert submit.wait(60) == 0
    storage = chaos.storage()
    trial = storage.get_trial(f"{exp_id}-1")
    assert trial.state is TrialState.SUCCEEDED and trial.attempt == 2, trial
    runs = chaos.executions()[trial.id]
    assert len(runs) == 2 and not runs[0]["ended"] and runs[1]["ended"], runs
    assert storage.get_experiment(exp_id).state is ExperimentState.DONE
    output = Path(chaos.root / "cli-0.log").read_text()
    assert "local worker cpu died; restarted it" in output, output
