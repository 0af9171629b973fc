"""`hpoqueue update EXP --search-space FILE`: a new search space for the trials still to come, for tuners
that can take one. A tuner written for NNI gets it through its update_search_space; the built-in tuners
that model only the trials they observe are rebuilt on the new space from the trials that fit it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hpoqueue.config.experiment_config import ExperimentConfig
from hpoqueue.errors import ConfigError
from hpoqueue.experiment.manual_trials import experiment_tuner, fit_problem
from hpoqueue.results.records import TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.tuners import BaseTuner

#: the built-in tuners rebuilt on a new space (the others keep brackets, generations or a fixed batch)
REBUILT = ("RandomTuner", "GridSearchTuner", "TPETuner", "AnnealTuner", "EvolutionTuner", "GPTuner")


def _takes_new_space(tuner: BaseTuner) -> bool:
    return hasattr(tuner, "update_space") or type(tuner).__name__ in REBUILT


def check(config: ExperimentConfig, raw: Any, running: Sequence[dict[str, Any]], source: str) -> ExperimentConfig:
    """`config` with the new space `raw`, refused in one line when its tuner cannot take a new space or a
    running trial's parameters do not fit it (they are observed when they finish)."""
    space = SearchSpace.from_dict(raw, source=source)
    new = config.with_overrides(search_space=space)
    tuner = experiment_tuner(new)
    if not _takes_new_space(tuner):
        name = config.tuner.name or config.tuner.class_name
        raise ConfigError(f"tuner {name} cannot take a new search space while it runs", source=source,
                          hint="Random, GridSearch, TPE, Anneal, Evolution, GP and tuners written for NNI can")
    for params in running:
        problem = fit_problem(tuner, params)
        if problem is not None:
            raise ConfigError(f"a running trial's parameters {params} do not fit it: {problem}", source=source,
                              hint="wait for the trial to end, or `hpoqueue kill` it, then update")
    return new


def fitting(tuner: BaseTuner, trials: Sequence[TrialResult]) -> list[TrialResult]:
    """The trials a built-in tuner that may have had its space changed is rebuilt from: those that fit
    it (all, for the others: a tuner written for NNI was told of the new space itself)."""
    if type(tuner).__name__ not in REBUILT:
        return list(trials)
    return [t for t in trials if fit_problem(tuner, t.params) is None]


def retune(config: ExperimentConfig, tuner: BaseTuner, raw: Any,
           trials: Sequence[TrialResult]) -> tuple[ExperimentConfig, BaseTuner]:
    """The scheduler's config and tuner on the new space `raw`, the tuner having seen `trials` that fit."""
    new = config.with_overrides(search_space=SearchSpace.from_dict(raw, source=config.source))
    if hasattr(tuner, "update_space"):
        tuner.update_space(new.search_space)
        return new, tuner
    rebuilt = experiment_tuner(new)
    rebuilt.rebuild(sorted(fitting(rebuilt, trials), key=lambda t: t.seq))
    return new, rebuilt
