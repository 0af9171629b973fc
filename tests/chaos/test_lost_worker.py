"""A worker SIGKILLed mid-trial: the attempt is LOST after heartbeatTimeout and retried (or not), and the
killed trial's process dies with its worker."""

from __future__ import annotations

import os
import signal

import pytest

from hpoqueue.states import ExperimentState, TrialState
from tests.chaos.conftest import ChaosProject, parent_pid
from tests.e2e.conftest import alive, wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(150)]


@pytest.mark.parametrize("retries", [1, 0])
def test_a_killed_worker_loses_its_attempt_and_the_trial_is_retried(chaos: ChaosProject, redis_url: str,
                                                                  retries: int) -> None:
    config = chaos.chaos_config(maxTrialNumber=1, trialConcurrency=1, heartbeatTimeout="5s",
                                maxTrialRetries=retries,
                                searchSpace={"sleep": {"_type": "choice", "_value": [60]},
                                             "first_only": {"_type": "choice", "_value": [True]}})
    workers = [chaos.worker(redis_url, "one"), chaos.worker(redis_url, "two")]
    submit = chaos.background("submit", str(config), "--broker", redis_url, "--quiet")
    exp_id = chaos.wait_experiment(30)
    trial_id = f"{exp_id}-1"
    [first] = wait_for(lambda: chaos.executions().get(trial_id), 60, "the trial to start")
    victim = parent_pid(first["pid"])
    assert victim in {w.pid for w in workers}
    os.kill(victim, signal.SIGKILL)

    assert submit.wait(90) == 0  # the experiment is DONE either way
    wait_for(lambda: not alive(first["pid"]), 10, "the killed worker's trial to die with it")
    storage = chaos.storage()
    trial = storage.get_trial(trial_id)
    runs = chaos.executions()[trial_id]
    assert not any(alive(r["pid"]) for r in runs)
    lost = [e for e in storage.events(trial_id) if e.kind == "lost"]
    assert len(lost) == 1 and lost[0].attempt == 1
    if retries:
        assert trial.state is TrialState.SUCCEEDED and trial.attempt == 2
        assert len(runs) == 2 and runs[1]["ended"] and not runs[0]["ended"]
        assert storage.get_experiment(exp_id).state is ExperimentState.DONE
    else:
        assert trial.state is TrialState.LOST and trial.attempt == 1
        assert len(runs) == 1 and "no heartbeat" in (trial.exit_reason or "")
    table = chaos.cli("trials", exp_id, check=True).stdout.splitlines()
    header, row = table[0].split(), table[2].split()
    assert row[header.index("attempt")] == str(trial.attempt) and row[header.index("state")] == trial.state.value


def test_the_next_worker_kills_what_a_sigkilled_worker_left_behind(chaos: ChaosProject, redis_url: str) -> None:
    config = chaos.chaos_config(maxTrialNumber=1, trialConcurrency=1, heartbeatTimeout="5s", maxTrialRetries=0,
                                searchSpace={"sleep": {"_type": "choice", "_value": [60]},
                                             "children": {"_type": "choice", "_value": [1]}})
    first_worker = chaos.worker(redis_url, "one")
    submit = chaos.background("submit", str(config), "--broker", redis_url, "--quiet")
    exp_id = chaos.wait_experiment(30)
    [run] = wait_for(lambda: chaos.executions().get(f"{exp_id}-1"), 60, "the trial to start")
    [grandchild] = run["children"]
    os.kill(first_worker.pid, signal.SIGKILL)
    wait_for(lambda: not alive(run["pid"]), 10, "the trial to die with its worker")
    assert alive(grandchild)  # PR_SET_PDEATHSIG reaches the trial, not the processes it started
    chaos.worker(redis_url, "two")
    wait_for(lambda: not alive(grandchild), 30, "the next worker on the box to kill the trial's leftovers")
    assert submit.wait(90) == 0
