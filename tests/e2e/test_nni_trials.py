"""NNI trial code runs unchanged (`import nni` with NNI not installed), and every metric key is shown."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpoqueue.nni_compat.shim_path import SHIM_DIR
from hpoqueue.states import TrialState
from tests.e2e.conftest import Project

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: the NNI tutorial's style of trial: only `nni` is imported, hpoqueue is never named
NNI_TRIAL = '''
import json, os
import nni
from nni.trial import get_sequence_id

params = nni.get_next_parameter()
for epoch in range(3):
    nni.report_intermediate_result({"default": params["x"] + epoch, "epoch": epoch})
nni.report_final_result({"default": params["x"] * 10, "precision": params["x"] / 2, "recall": 1 - params["x"]})
with open(os.path.join(os.environ["ECHO_DIR"], nni.get_trial_id() + ".json"), "w") as fh:
    json.dump({"experiment": nni.get_experiment_id(), "seq": get_sequence_id(), "nni": nni.__file__}, fh)
'''

#: a MLhub-style trial: a loss each epoch, accuracy at the end, then killed by maxTrialDuration
LOSS_TRIAL = '''
import time
import hpoqueue.trial as nni
params = nni.get_next_parameter()
for epoch in range(3):
    nni.report_loss(5.0 - epoch)
nni.report_final_result(params["x"])
time.sleep(60)
'''


def test_a_trial_that_imports_only_nni_runs_unchanged_and_shows_every_key(project: Project) -> None:
    (project.root / "nni_trial.py").write_text(NNI_TRIAL)
    config = project.config(trialCommand="python nni_trial.py", maxTrialNumber=3, trialConcurrency=3)
    project.cli("submit", str(config), "--quiet", check=True)
    exp_id = project.only_experiment()
    storage = project.storage()
    trials = storage.trials(exp_id)
    echoes = project.echoes()
    for trial in trials:
        assert trial.state is TrialState.SUCCEEDED, trial.exit_reason
        assert echoes[trial.id]["experiment"] == exp_id and echoes[trial.id]["seq"] == trial.seq
        assert echoes[trial.id]["nni"].startswith(str(SHIM_DIR))
        assert trial.final_value == pytest.approx(trial.params["x"] * 10)

    # the extra keys are columns of `trials` and of both exports; intermediate dicts keep their keys
    table = project.cli("trials", exp_id, "--sort", "recall", check=True).stdout.splitlines()
    assert table[0].split()[:5] == ["trial", "state", "value", "precision", "recall"]
    by_recall = sorted(trials, key=lambda t: 1 - t.params["x"])  # minimize: the lowest recall first
    assert [line.split()[0] for line in table[2:]] == [t.id for t in by_recall]
    rows = list(csv.DictReader(io.StringIO(project.cli("export", exp_id, "--intermediate", check=True).stdout)))
    assert {r["trial"]: float(r["precision"]) for r in rows} == pytest.approx(
        {t.id: t.params["x"] / 2 for t in trials})
    exported = json.loads(project.cli("export", exp_id, "--format", "json", "--intermediate", check=True).stdout)
    assert exported[0]["metrics"] == {"precision": pytest.approx(trials[0].params["x"] / 2),
                                      "recall": pytest.approx(1 - trials[0].params["x"])}
    assert [step["epoch"] for step in exported[0]["intermediate"]] == [0, 1, 2]

    best = json.loads(project.cli("best", exp_id, "--metric", "precision", "--mode", "maximize", check=True).stdout)
    assert best["trial"] == max(trials, key=lambda t: t.params["x"]).id
    assert best["metrics"]["recall"] == pytest.approx(1 - max(t.params["x"] for t in trials))
    wrong = project.cli("best", exp_id, "--metric", "f1")
    assert wrong.code == 2 and wrong.stderr.count("\n") == 1 and "known: value, precision, recall" in wrong.stderr


def test_report_loss_is_a_curve_of_its_own_never_the_result(project: Project) -> None:
    (project.root / "loss_trial.py").write_text(LOSS_TRIAL)
    config = project.config(trialCommand="python loss_trial.py", maxTrialNumber=1, maxTrialDuration="3s")
    project.cli("submit", str(config), "--quiet")
    exp_id = project.only_experiment()
    trial = project.storage().trials(exp_id)[0]
    assert trial.state is TrialState.TIMEOUT
    assert trial.final_value == pytest.approx(trial.params["x"])  # the accuracy, not the last loss
    exported = json.loads(project.cli("export", exp_id, "--format", "json", "--intermediate", check=True).stdout)
    assert exported[0]["loss"] == [5.0, 4.0, 3.0] and exported[0]["intermediate"] == []


def test_a_real_nni_install_wins_over_the_shim(tmp_path: Path) -> None:
    real = tmp_path / "site" / "nni"
    real.mkdir(parents=True)
    (real / "__init__.py").write_text("REAL = True\n")
    (real / "trial.py").write_text("REAL_TRIAL = True\n")
    # the shim comes first on the path, as when a user's PYTHONPATH leads and NNI is in site-packages
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SHIM_DIR), str(tmp_path / "site")])}
    code = "import nni, nni.trial; print(nni.REAL, nni.trial.REAL_TRIAL, nni.__file__)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split()[:2] == ["True", "True"] and out.split()[2].startswith(str(real))


NNI_DATA = Path(__file__).parent.parent / "data" / "nni"


def test_a_custom_tuner_written_for_nni_drives_an_experiment(project: Project) -> None:
    log = project.root / "tuner_calls.jsonl"
    config = project.config(
        maxTrialNumber=10, trialConcurrency=1, searchSpace={"x": {"_type": "choice", "_value": [0.25, 0.5, 0.75]}},
        tuner={"className": "my_tuner.ListTuner", "codeDirectory": str(NNI_DATA / "custom_tuner"),
               "classArgs": {"optimize_mode": "maximize", "log": str(log)}})
    project.cli("submit", str(config), "--quiet", check=True)
    trials = project.storage().trials(project.only_experiment())
    assert [t.params for t in trials] == [{"x": 0.25}, {"x": 0.5}, {"x": 0.75}]  # then NoMoreTrialError ended it
    calls = [json.loads(line) for line in log.read_text().splitlines() if '"space"' not in line]
    assert calls == [c for i, t in enumerate(trials) for c in (["result", i, t.params, t.params["x"] * 10, False],
                                                               ["end", i, True])]


def test_a_config_for_another_platform_is_one_line_naming_it(project: Project) -> None:
    run = project.cli("submit", str(NNI_DATA / "kubeflow_v1.yml"))
    assert run.code == 2 and run.stderr.count("\n") == 1
    assert "trainingServicePlatform: platform 'kubeflow' is not supported" in run.stderr
    # a range with low == high is a one-line warning, as NNI gives one (the update then fails: no such experiment)
    run = project.cli("update", "nosuchexp", "--search-space", str(NNI_DATA / "constant_ranges.json"))
    assert run.code == 2 and "hpoqueue: warning: " in run.stderr and "low == high, so layers is always 3" in run.stderr
