"""Trials that ignore SIGTERM or leave children behind: `hpoqueue kill` ends them after the grace period,
and no process of a finished trial survives."""

from __future__ import annotations

import pytest

from hpoqueue.states import TrialState
from tests.chaos.conftest import ChaosProject
from tests.e2e.conftest import alive, wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(120)]

#: "stubborn" traps SIGTERM in itself and a child and sleeps; "forker" starts two children and exits 0.
STUBBORN_TRIAL = '''
import json, os, signal, subprocess, sys, time
import hpoqueue.trial as nni

mode = nni.get_next_parameter()["mode"]
ignore = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    children = [subprocess.Popen([sys.executable, "-c", ignore]).pid]
else:
    children = [subprocess.Popen(["sleep", "300"]).pid, subprocess.Popen([sys.executable, "-c", ignore]).pid]
base = os.path.join(os.environ["ECHO_DIR"], f"{nni.get_trial_id()}.{os.getpid()}")
with open(base + ".tmp", "w") as fh:  # renamed into place, so a reader never sees half a record
    json.dump({"pid": os.getpid(), "children": children, "params": {"mode": mode}}, fh)
os.replace(base + ".tmp", base + ".start")
if mode == "stubborn":
    time.sleep(300)
nni.report_final_result(1.0)
'''


def test_kill_sigkills_a_trial_that_ignores_sigterm_and_no_child_survives(chaos: ChaosProject) -> None:
    (chaos.root / "stubborn.py").write_text(STUBBORN_TRIAL)
    config = chaos.config(trialCommand="python stubborn.py", maxTrialNumber=2, trialConcurrency=2,
                          tuner={"name": "GridSearch"},
                          searchSpace={"mode": {"_type": "choice", "_value": ["stubborn", "forker"]}})
    submit = chaos.background("submit", str(config), "--quiet")
    chaos.wait_experiment(30)

    def started() -> dict[str, dict]:
        return {r["params"]["mode"]: {**r, "trial": t} for t, rs in chaos.executions().items() for r in rs}

    runs = wait_for(lambda: len(started()) == 2 and started(), 60, "both trials to start")
    stubborn = runs["stubborn"]
    wait_for(lambda: chaos.storage().get_trial(stubborn["trial"]).state is TrialState.RUNNING, 30,
             "the stubborn trial to be RUNNING")
    chaos.cli("kill", stubborn["trial"], check=True)
    assert submit.wait(60) == 0
    storage = chaos.storage()
    killed, forker = storage.get_trial(stubborn["trial"]), storage.get_trial(runs["forker"]["trial"])
    assert killed.state is TrialState.USER_CANCELED
    assert "SIGKILL" in (killed.exit_reason or ""), killed.exit_reason
    assert forker.state is TrialState.SUCCEEDED
    for run in runs.values():
        for pid in [run["pid"], *run["children"]]:
            assert not alive(pid), f"process {pid} of the {run['params']['mode']} trial survived"
