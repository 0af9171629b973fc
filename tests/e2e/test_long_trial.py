"""One experiment of long, healthy trials through `hpoqueue submit`: the parameters each trial reads from
every channel, heartbeats all through trials longer than several heartbeatTimeouts, `hpoqueue logs`."""

from __future__ import annotations

import pytest

from hpoqueue.states import TrialState
from hpoqueue.storage import TrialRecord
from tests.e2e.conftest import Project

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HEARTBEAT_TIMEOUT = 6.0  # three heartbeat intervals (2 s): a margin for a loaded machine
TRIAL_SECONDS = 13.0  # more than two heartbeatTimeouts

#: Records what it read from the variable, the file and the API (from the variable, then from the file
#: alone), prints a line to each stream, and sleeps.
LONG_TRIAL = '''
import json, os, sys, time
import hpoqueue.trial as nni

seen = {"variable": json.loads(os.environ["HPOQUEUE_PARAMETERS"]), "api": nni.get_next_parameter()}
with open(os.environ["HPOQUEUE_PARAMETER_FILE"], encoding="utf-8") as fh:
    seen["file"] = json.load(fh)
del os.environ["HPOQUEUE_PARAMETERS"]
seen["api_from_file"] = nni.get_next_parameter()
trial = nni.get_trial_id()
print(f"out-line of {trial}: name={seen['api']['name']!r}", flush=True)
print(f"err-line of {trial}", file=sys.stderr, flush=True)
start = time.time()
time.sleep(float(os.environ["TRIAL_SECONDS"]))
seen["seconds"] = time.time() - start
with open(os.path.join(os.environ["ECHO_DIR"], trial + ".json"), "w") as fh:
    json.dump(seen, fh)
nni.report_final_result(seen["api"]["x"])
'''


@pytest.fixture(scope="module")
def long_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, list[TrialRecord]]:
    project = Project(tmp_path_factory.mktemp("long"))
    (project.root / "long_trial.py").write_text(LONG_TRIAL)
    project.env["TRIAL_SECONDS"] = str(TRIAL_SECONDS)
    config = project.config(
        trialCommand="python long_trial.py", maxTrialNumber=2, trialConcurrency=2, maxTrialRetries=1,
        heartbeatTimeout=f"{HEARTBEAT_TIMEOUT:g}s",
        searchSpace={"x": {"_type": "uniform", "_value": [0, 1]},
                     "name": {"_type": "choice", "_value": ["a b'$(touch pwned)\"", "c;d|e"]},
                     "opt": {"_type": "choice", "_value": [
                         {"_name": "adam", "beta": {"_type": "uniform", "_value": [0.8, 0.99]}}]}})
    project.cli("submit", str(config), "--quiet", timeout=150, check=True)
    return project, project.storage().trials(project.only_experiment())


def test_every_channel_gives_the_trial_its_recorded_parameters(long_run: tuple[Project, list[TrialRecord]]
                                                               ) -> None:
    project, trials = long_run
    echoes = project.echoes()
    assert len(trials) == 2 and set(echoes) == {t.id for t in trials}
    for trial in trials:
        seen = echoes[trial.id]
        assert {k: seen[k] for k in ("variable", "file", "api", "api_from_file")} == {
            "variable": trial.params, "file": trial.params, "api": trial.params, "api_from_file": trial.params}
    assert not (project.root / "pwned").exists()


def test_a_healthy_trial_longer_than_its_heartbeat_timeout_is_not_lost(
        long_run: tuple[Project, list[TrialRecord]]) -> None:
    project, trials = long_run
    storage = project.storage()
    for trial in trials:
        assert not [e for e in storage.events(trial.id) if e.kind == "lost"], trial
        assert (trial.state, trial.attempt) == (TrialState.SUCCEEDED, 1), trial
        assert project.echoes()[trial.id]["seconds"] >= 2 * HEARTBEAT_TIMEOUT


def test_logs_prints_the_trial_output_and_stderr_prints_its_errors(
        long_run: tuple[Project, list[TrialRecord]]) -> None:
    project, trials = long_run
    for trial in trials:
        out = project.cli("logs", trial.id, check=True).stdout
        err = project.cli("logs", trial.id, "--stderr", check=True).stdout
        assert f"out-line of {trial.id}: name={trial.params['name']!r}" in out.splitlines()
        assert f"err-line of {trial.id}" in err.splitlines()
        assert "err-line" not in out and "out-line" not in err
