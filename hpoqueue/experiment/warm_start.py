"""Warm start (`submit --warm-start EXP`): the tuner first observes the finished trials of an earlier
experiment whose parameters fit this one's search space. They are copied into the new experiment's
directory at submit, so a resume replays the same ones even if the earlier experiment is gone."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpoqueue.results.records import TrialResult
from hpoqueue.states import TrialState

if TYPE_CHECKING:
    from hpoqueue.config.experiment_config import ExperimentConfig
    from hpoqueue.storage import Storage
    from hpoqueue.tuners import BaseTuner

WARM_FILE = "warm_start.json"


def select(storage: Storage, source_exp: str, config: ExperimentConfig) -> tuple[list[dict[str, Any]], int]:
    """The succeeded trials of `source_exp` with a result that fit `config`'s space (as
    {'params', 'value', 'data'}), and how many were skipped because they do not fit."""
    from hpoqueue.experiment.manual_trials import experiment_tuner, fit_problem, refuse_self_managed

    storage.get_experiment(source_exp)  # an unknown id is refused by name
    tuner = experiment_tuner(config)
    refuse_self_managed(tuner, config, "a warm start")
    done = [t for t in storage.trials(source_exp, states=[TrialState.SUCCEEDED]) if t.final_value is not None]
    fitting = [{"params": t.params, "value": t.final_value, "data": t.final_data} for t in done
               if fit_problem(tuner, t.params) is None]
    return fitting, len(done) - len(fitting)


def save(work_dir: Path, source_exp: str, trials: list[dict[str, Any]]) -> None:
    """Keep the trials to replay in the experiment's directory (the owner's alone)."""
    fd = os.open(Path(work_dir) / WARM_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"from": source_exp, "trials": trials}, out)


def replay(tuner: BaseTuner, work_dir: Path) -> int:
    """Have `tuner` observe the saved trials (as trials it was told of, then saw finish); returns how many."""
    path = Path(work_dir) / WARM_FILE
    if not path.exists():
        return 0
    trials = json.loads(path.read_text())["trials"]
    for trial in trials:
        tuner.mark_pending(trial["params"])
        tuner.observe(TrialResult(seq=0, params=trial["params"], state=TrialState.SUCCEEDED, value=trial["value"],
                                  data=trial.get("data")))
    return len(trials)
