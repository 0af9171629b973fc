"""Trials by hand and from earlier runs: enqueue, update --search-space, submit --warm-start, import and
delete, on the real stack (embedded Redis, real workers, a custom tuner written for NNI that logs calls)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from hpoqueue.states import ExperimentState, TrialState
from tests.e2e.conftest import Project, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TUNER_DIR = Path(__file__).parent.parent / "data" / "nni" / "custom_tuner"
#: the first trial waits for the test to open the gate, so what the test does meanwhile lands before trial 2
GATED_TRIAL = '''
import os, time
import nni
params = nni.get_next_parameter()
while not os.path.exists("gate"):
    time.sleep(0.05)
nni.report_final_result(params["x"] * 10)
'''


def list_tuner(project: Project, log: str, values: list[float], **fields: object) -> Path:
    """A config whose tuner (my_tuner.ListTuner, written for NNI) proposes `values` in order."""
    return project.config(searchSpace={"x": {"_type": "choice", "_value": values}}, **{
        "tuner": {"className": "my_tuner.ListTuner", "codeDirectory": str(TUNER_DIR),
                  "classArgs": {"log": str(project.root / log)}}, **fields})


def calls(project: Project, log: str, kind: str) -> list[list]:
    return [c for c in map(json.loads, (project.root / log).read_text().splitlines()) if c[0] == kind]


def test_enqueued_configurations_run_next_and_a_new_space_reaches_the_tuner(project: Project) -> None:
    (project.root / "gated.py").write_text(GATED_TRIAL)
    config = list_tuner(project, "calls.jsonl", [0.25, 0.75], trialCommand="python gated.py", trialConcurrency=1,
                        maxTrialNumber=5)
    exp_id = project.cli("submit", str(config), "--detach", check=True).stdout.strip()
    try:
        _enqueue_and_update(project, exp_id)
    finally:
        (project.root / "gate").touch()  # a failed check never leaves the experiment waiting


def _enqueue_and_update(project: Project, exp_id: str) -> None:
    storage = project.storage()
    wait_for(lambda: storage.trials(exp_id, states=[TrialState.RUNNING]), 30, "the first trial to run")

    bad = project.cli("enqueue", exp_id, '{"x": 0.3}')
    assert bad.code == 2 and bad.stderr.count("\n") == 1 and "does not fit the experiment's search space" in bad.stderr
    (project.root / "more.json").write_text(json.dumps([{"x": 0.75}, {"x": 0.25}]))
    queued = project.cli("enqueue", exp_id, str(project.root / "more.json"), check=True)
    assert "queued 2 configuration(s)" in queued.stdout and "next free slots" in queued.stdout

    (project.root / "space.json").write_text(json.dumps({"x": {"_type": "choice", "_value": [0.25, 0.5]}}))
    running = project.cli("delete", exp_id, "--yes")
    assert running.code == 2 and "is running; stop it first" in running.stderr
    project.cli("update", exp_id, "--search-space", str(project.root / "space.json"), check=True)
    # the scheduler reads control messages between batches: open the gate once the new space reached its tuner,
    # the one process that is told of a space twice (submit's and update's checks build tuners of their own)
    wait_for(lambda: max(Counter(c[2] for c in calls(project, "calls.jsonl", "space")).values()) >= 2, 30,
             "the new space to reach the scheduler's tuner")
    (project.root / "gate").touch()
    wait_for(lambda: storage.get_experiment(exp_id).state is ExperimentState.DONE, 60, "the experiment to end")

    trials = storage.trials(exp_id)
    # trial 1 was the tuner's; the two enqueued ran next; then the tuner went on in the new space
    assert [t.params["x"] for t in trials] == [0.25, 0.75, 0.25, 0.25, 0.5]
    assert all(t.state is TrialState.SUCCEEDED for t in trials)
    results = calls(project, "calls.jsonl", "result")
    assert [(c[2]["x"], c[3], c[4]) for c in results[:3]] == [(0.25, 2.5, False), (0.75, 7.5, True),
                                                              (0.25, 2.5, True)]
    assert [c[1] for c in calls(project, "calls.jsonl", "space")][-1] == ["x"]


def test_warm_start_import_and_delete(project: Project) -> None:
    first = project.config("first.yml", maxTrialNumber=3, trialConcurrency=3,
                           searchSpace={"x": {"_type": "choice", "_value": [0.25, 0.5, 0.75]}})
    project.cli("submit", str(first), "--quiet", check=True)
    first_id = project.only_experiment()
    export = project.root / "first.json"
    project.cli("export", first_id, "--format", "json", "--intermediate", "-o", str(export), check=True)

    imported = project.cli("import", str(export), "--name", "from-elsewhere", check=True).stdout.strip()
    storage = project.storage()
    assert storage.get_experiment(imported).state is ExperimentState.DONE
    assert json.loads(project.cli("export", imported, "--format", "json", "--intermediate", check=True).stdout) == [
        {**row, "trial": f"{imported}-{row['seq']}"} for row in json.loads(export.read_text())]
    broken = project.root / "broken.json"
    broken.write_text(json.dumps([{"parameters": {"x": 1}, "state": "SUCCEEDED", "value": "high"}]))
    refused = project.cli("import", str(broken))
    assert refused.code == 2 and f"{broken}: [0].value: must be a finite number" in refused.stderr
    assert len(storage.list_experiments()) == 2  # nothing half-written

    second = list_tuner(project, "warm.jsonl", [0.25, 0.5], maxTrialNumber=2)
    run = project.cli("submit", str(second), "--warm-start", imported, check=True)  # not --quiet: notes too
    assert f"observes 2 finished trial(s) of {imported}; 1 skipped" in run.stderr
    results = calls(project, "warm.jsonl", "result")
    # the earlier trials first (0.75 does not fit), then its own two (in the order they finish)
    observed = [(c[2]["x"], c[4]) for c in results]
    assert sorted(observed[:2]) == [(0.25, True), (0.5, True)] and sorted(observed[2:]) == [(0.25, False),
                                                                                            (0.5, False)]

    asked = project.cli("delete", first_id)  # no terminal to confirm in
    assert asked.code == 2 and "add --yes" in asked.stderr
    work_dir = Path(storage.get_experiment(first_id).work_dir)
    project.cli("delete", first_id, "--yes", check=True)
    assert first_id not in {e.id for e in storage.list_experiments()} and not work_dir.exists()
    gone = project.cli("trials", first_id)
    assert gone.code == 2 and f"no experiment '{first_id}'" in gone.stderr
