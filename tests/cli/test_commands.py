"""The reading commands rank trials by the experiment's optimize_mode: `best` and `trials --sort value`."""

from __future__ import annotations

import json

import pytest

from hpoqueue.cli.commands import main
from hpoqueue.states import TrialState
from hpoqueue.storage import Storage

VALUES = [0.5, None, 0.9, 0.1]  #: final values of trials 1..4 (trial 2 FAILED, without one)


def experiment(url: str, exp_id: str, mode: str) -> None:
    with Storage(url) as store:
        store.create_experiment(exp_id, name=None, config={}, work_dir="/tmp/none", optimize_mode=mode,
                                concurrency=1, max_trial_number=None, max_duration=None)
        for trial, value in zip(store.create_trials(exp_id, [{"i": i} for i in range(4)]), VALUES, strict=True):
            state = TrialState.FAILED if value is None else TrialState.SUCCEEDED
            store.transition(trial.id, state, expected=[TrialState.WAITING], final_value=value)


@pytest.mark.parametrize(("mode", "best", "order"), [("minimize", "m-4", ["m-4", "m-1", "m-3", "m-2"]),
                                                     ("maximize", "m-3", ["m-3", "m-1", "m-4", "m-2"])])
def test_best_and_sort_follow_optimize_mode(sqlite_url: str, capsys: pytest.CaptureFixture[str], mode: str,
                                            best: str, order: list[str]) -> None:
    experiment(sqlite_url, "m", mode)
    assert main(["--storage", sqlite_url, "best", "m"]) == 0
    assert json.loads(capsys.readouterr().out)["trial"] == best
    assert main(["--storage", sqlite_url, "trials", "m", "--sort", "value"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [row.split()[0] for row in rows] == order
