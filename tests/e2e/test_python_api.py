"""hpoqueue.Experiment on the real stack (embedded Redis, real workers), and Python functions as trials."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hpoqueue import Experiment
from hpoqueue.states import TrialState
from tests.e2e.conftest import Project, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FUNCTIONS = '''
import os, time
import hpoqueue.trial as nni

def train(params):
    if params["x"] > 0.8:
        raise RuntimeError("diverged")
    nni.report_intermediate_result(params["x"] / 2)
    return {"default": params["x"], "pid": os.getpid()}

def slow(params):
    time.sleep(30)
'''


@pytest.fixture
def api_home(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    for key in [k for k in __import__("os").environ if k.startswith("HPOQUEUE_")]:
        monkeypatch.delenv(key)
    for key, value in project.env.items():
        if key.startswith("HPOQUEUE_"):
            monkeypatch.setenv(key, value)
    (project.root / "fns.py").write_text(FUNCTIONS)
    return project


def test_keyword_experiment_runs_a_function_trial_and_reads_back_as_plain_objects(api_home: Project) -> None:
    experiment = Experiment(search_space={"x": {"_type": "choice", "_value": [0.2, 0.4, 0.9]}},
                            trial_function="fns:train", trial_code_directory=api_home.root, trial_concurrency=3,
                            max_trial_number=3, tuner="GridSearch", optimize_mode="maximize")
    assert experiment.run(quiet=True) == "DONE"
    trials = experiment.trials()
    by_x = {t.parameters["x"]: t for t in trials}
    assert by_x[0.9].state == "FAILED" and by_x[0.2].state == by_x[0.4].state == "SUCCEEDED"
    assert by_x[0.4].value == 0.4 and by_x[0.4].metrics["pid"] != by_x[0.2].metrics["pid"]  # own processes
    assert experiment.best().parameters == {"x": 0.4}  # maximize
    assert experiment.best(mode="minimize").parameters == {"x": 0.2}
    with api_home.storage() as store:
        assert [m.value for m in store.metrics(by_x[0.4].id, kind="intermediate")] == [0.2]
        work_dir = Path(store.get_experiment(experiment.id).work_dir)
    again = Experiment.open(experiment.id)  # any recorded experiment, by id
    assert again.trials() == trials and again.state() == "DONE"
    stderr = (work_dir / "trials" / str(by_x[0.9].seq) / "attempt-1" / "trial.stderr").read_text()
    assert "RuntimeError: diverged" in stderr


def test_a_yaml_experiment_starts_waits_and_stops(api_home: Project) -> None:
    config = api_home.config(trialCommand="python -m hpoqueue.function_trial fns:slow", maxTrialNumber=4)
    experiment = Experiment(config)
    exp_id = experiment.start()
    with api_home.storage() as store:
        wait_for(lambda: store.trials(exp_id, states=[TrialState.RUNNING]), 30, "a trial to run")
    assert experiment.wait(timeout=0.1) == "RUNNING"
    experiment.stop()
    assert experiment.wait(timeout=60) == "STOPPED"
    assert {t.state for t in experiment.trials()} == {"USER_CANCELED"}


def test_bad_keyword_fields_and_targets_are_one_line_errors(api_home: Project) -> None:
    from hpoqueue.errors import ConfigError

    with pytest.raises(ConfigError, match="Experiment\\(...\\): trial_concurency: unknown field 'trial_concurency' "
                                          ".did you mean 'trialConcurrency'"):
        Experiment(search_space={}, trial_command="true", trial_concurency=2)
    with pytest.raises(ConfigError, match="trial_function: 'rm -rf' is not module:function"):
        Experiment(search_space={}, trial_function="rm -rf")
    run = subprocess.run([sys.executable, "-m", "hpoqueue.function_trial", "no_such_module:f"], capture_output=True,
                         text=True, cwd=api_home.root)
    assert run.returncode == 2 and "cannot load no_such_module:f" in run.stderr
