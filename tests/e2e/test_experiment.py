"""`hpoqueue submit` end to end: embedded Redis, real Celery workers, real trial processes, SQLite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpoqueue.states import ExperimentState, TrialState
from tests.e2e.conftest import Project, alive, max_overlap

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_every_trial_runs_exactly_its_recorded_parameters(project: Project) -> None:
    config = project.config(maxTrialNumber=8, trialConcurrency=3, searchSpace={
        "x": {"_type": "uniform", "_value": [0, 1]},
        "opt": {"_type": "choice", "_value": ["sgd", {"_name": "adam", "beta": {"_type": "uniform",
                                                                                 "_value": [0.8, 0.99]}}]},
        "sleep": {"_type": "choice", "_value": [0.05, 0.2]}})
    run = project.cli("submit", str(config), check=True)
    exp_id = project.only_experiment()
    storage = project.storage()
    assert storage.get_experiment(exp_id).state is ExperimentState.DONE
    trials = storage.trials(exp_id)
    assert [t.seq for t in trials] == list(range(1, 9))
    echoes = project.echoes()
    assert set(echoes) == {t.id for t in trials}
    for trial in trials:
        echo = echoes[trial.id]
        assert trial.state is TrialState.SUCCEEDED, trial
        assert echo["params"] == trial.params  # what the trial received is what was recorded
        assert echo["seq"] == trial.seq and echo["experiment"] == exp_id
        assert trial.exit_code == 0 and trial.attempt == 1
        assert trial.final_value == pytest.approx(trial.params["x"] * 10)
        steps = [m for m in storage.metrics(trial.id, kind="intermediate")]
        assert [m.step for m in steps] == [0, 1, 2]
        assert [m.value for m in steps] == pytest.approx([trial.params["x"] + i for i in range(3)])
        final = storage.metrics(trial.id, kind="final")
        assert len(final) == 1 and final[0].data == {"default": trial.params["x"] * 10, "extra": 1}
        log_dir = Path(storage.get_experiment(exp_id).work_dir) / "trials" / str(trial.seq) / "attempt-1"
        assert (log_dir / "trial.stdout").exists() and (log_dir / "trial.stderr").exists()
    assert max_overlap([(e["start"], e["end"]) for e in echoes.values()]) <= 3
    assert "best:" in run.stdout


def test_stdout_metrics_failures_and_missing_commands_are_recorded(project: Project) -> None:
    (project.root / "printer.py").write_text(
        "import json, os, sys\np = json.loads(os.environ['HPOQUEUE_PARAMETERS'])\n"
        "for i in range(3):\n    print(f'epoch {i} loss={p[\"x\"] + i}', flush=True)\n"
        "sys.exit(3 if p['x'] > 0.5 else 0)\n")
    config = project.config(trialCommand="python printer.py", metricName="loss", maxTrialNumber=6,
                            trialConcurrency=2)
    project.cli("submit", str(config), "--quiet")
    exp_id = project.only_experiment()
    storage = project.storage()
    for trial in storage.trials(exp_id):
        values = [m.value for m in storage.metrics(trial.id, kind="intermediate")]
        assert values == pytest.approx([trial.params["x"] + i for i in range(3)])
        if trial.params["x"] > 0.5:
            assert trial.state is TrialState.FAILED and trial.exit_code == 3
        else:
            assert trial.state is TrialState.SUCCEEDED
            assert trial.final_value == pytest.approx(values[-1])  # last result stands in as final

    missing = project.config("missing.yml", trialCommand="no-such-command --flag", maxTrialNumber=2)
    run = project.cli("submit", str(missing), "--quiet")
    exp = [e for e in storage.list_experiments() if e.id != exp_id][0]
    for trial in storage.trials(exp.id):
        assert trial.state is TrialState.FAILED and trial.exit_code == 127
        assert "command not found" in (trial.exit_reason or "")
    # no best to show: `submit` says why, quoting the end of the first failure's stderr
    assert f"no result: 2 trial(s) failed; `hpoqueue logs {exp.id}-1 --stderr` shows why (it ends: " in run.stderr
    assert "no-such-command" in run.stderr.splitlines()[-1]


def test_a_run_without_any_result_says_how_to_report_one(project: Project) -> None:
    config = project.config(trialCommand="echo val_accuracy=0.9", metricName="accuracy", maxTrialNumber=2)
    run = project.cli("submit", str(config), "--quiet", check=True)
    assert run.stderr.splitlines()[-1] == (  # a warning, so shown with --quiet too
        "hpoqueue: warning: no result: 2 trial(s) succeeded but reported none; print `accuracy=<number>` lines or call "
        "hpoqueue.trial.report_final_result(value)")


def test_max_trial_duration_kills_the_trial_and_its_children(project: Project) -> None:
    (project.root / "slow.py").write_text(
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen(['sleep', '300'])\n"
        "open(os.path.join(os.environ['ECHO_DIR'], f\"{os.environ['NNI_TRIAL_JOB_ID']}.pids\"), 'w')"
        ".write(f'{os.getpid()} {child.pid}')\n"
        "time.sleep(300)\n")
    config = project.config(trialCommand="python slow.py", maxTrialNumber=1, maxTrialDuration="2s")
    project.cli("submit", str(config), "--quiet", timeout=120)
    exp_id = project.only_experiment()
    [trial] = project.storage().trials(exp_id)
    assert trial.state is TrialState.TIMEOUT
    pids = [int(p) for p in (project.echo / f"{trial.id}.pids").read_text().split()]
    for pid in pids:
        assert not alive(pid), f"process {pid} of the trial survived"


def test_max_experiment_duration_stops_creating_trials(project: Project) -> None:
    config = project.config(maxTrialNumber=None, maxExperimentDuration="3s", trialConcurrency=2,
                            searchSpace={"x": {"_type": "uniform", "_value": [0, 1]},
                                         "sleep": {"_type": "choice", "_value": [0.5]}})
    project.cli("submit", str(config), "--quiet", check=True)
    exp_id = project.only_experiment()
    trials = project.storage().trials(exp_id)
    assert 2 <= len(trials) < 40
    assert all(t.state is TrialState.SUCCEEDED for t in trials)  # running ones were allowed to finish


def test_export_trials_best_and_status_read_the_record(project: Project) -> None:
    config = project.config(maxTrialNumber=3)
    project.cli("submit", str(config), "--quiet", check=True)
    exp_id = project.only_experiment()
    exported = json.loads(project.cli("export", exp_id, "--format", "json", "--intermediate", check=True).stdout)
    assert len(exported) == 3 and all(len(t["intermediate"]) == 3 for t in exported)
    best = json.loads(project.cli("best", exp_id, check=True).stdout)
    assert best["value"] == min(t["value"] for t in exported)
    csv_text = project.cli("export", exp_id, check=True).stdout
    assert csv_text.splitlines()[0].startswith("trial,seq,state,value") and len(csv_text.splitlines()) == 4
    status = project.cli("status", exp_id, check=True).stdout
    assert "DONE" in status and "succeeded 3" in status and "tuner       Random" in status
    table = project.cli("trials", exp_id, "--sort", "value", "--top", "2", check=True).stdout
    assert len(table.splitlines()) == 4 and best["trial"] in table.splitlines()[2]
    project.cli("logs", f"{exp_id}-1", check=True)  # what it prints: tests/e2e/test_long_trial.py


@pytest.mark.postgres
def test_an_experiment_records_into_postgresql(project: Project, postgres_url: str) -> None:
    config = project.config(maxTrialNumber=3, storage=postgres_url)
    project.cli("submit", str(config), "--quiet", check=True)
    from hpoqueue.storage import Storage

    storage = Storage(postgres_url)
    [exp] = storage.list_experiments()
    trials = storage.trials(exp.id)
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 3
    assert all(len(storage.metrics(t.id, kind="intermediate")) == 3 for t in trials)
    listed = project.cli("--storage", postgres_url, "list", check=True).stdout
    assert exp.id in listed
