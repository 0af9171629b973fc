"""Evolution: random first population, then one-parameter mutants of tournament winners."""

from __future__ import annotations

from typing import Any

from hpoqueue.results.records import TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.states import TrialState
from hpoqueue.tuners import EvolutionTuner

SPACE = SearchSpace.from_dict({
    "x": {"_type": "uniform", "_value": [0, 1]},
    "y": {"_type": "normal", "_value": [0, 1]},
    "opt": {"_type": "choice", "_value": [
        {"_name": "sgd", "m": {"_type": "uniform", "_value": [0, 1]},
         "n": {"_type": "uniform", "_value": [0, 1]}},
        {"_name": "adam", "b": {"_type": "loguniform", "_value": [0.5, 0.999]}}]},
})


def differences(a: dict[str, Any], b: dict[str, Any]) -> int:
    """Top-level parameters in which two configurations differ (a nested choice counts as one: mutating
    it, or one parameter inside it, changes only that entry)."""
    return sum(a[k] != b[k] for k in a)


def test_offspring_differ_from_a_population_member_in_exactly_one_parameter() -> None:
    tuner = EvolutionTuner(SPACE, seed=4, population_size=5)
    first = [s.params for s in tuner.suggest(5)]
    for i, p in enumerate(first):
        tuner.observe(TrialResult(i + 1, p, TrialState.SUCCEEDED, p["x"]))
    observed = list(first)
    for seq in range(6, 40):
        (child,) = [s.params for s in tuner.suggest(1)]
        SPACE.validate_params(child)
        assert min(differences(child, p) for p in observed) == 1, child
        tuner.observe(TrialResult(seq, child, TrialState.SUCCEEDED, child["x"]))
        observed.append(child)


def test_failed_trials_never_join_the_population() -> None:
    tuner = EvolutionTuner(SPACE, seed=5, population_size=2)
    good, bad = (s.params for s in tuner.suggest(2))
    tuner.observe(TrialResult(1, bad, TrialState.FAILED, None))
    tuner.observe(TrialResult(2, good, TrialState.SUCCEEDED, 0.5))
    for s in tuner.suggest(10):  # no results yet: every child is a mutant of the only member
        assert differences(s.params, good) == 1


def test_the_better_of_a_tournament_is_the_one_mutated() -> None:
    """Two members, one better by the optimize_mode: the tournament drops the worse, so every child is a
    mutant of the better one."""
    for mode, values in (("minimize", (0.1, 0.9)), ("maximize", (0.9, 0.1))):
        tuner = EvolutionTuner(SPACE, seed=6, population_size=2, optimize_mode=mode)
        better, worse = (s.params for s in tuner.suggest(2))
        assert differences(better, worse) == 3
        tuner.observe(TrialResult(1, worse, TrialState.SUCCEEDED, values[1]))
        tuner.observe(TrialResult(2, better, TrialState.SUCCEEDED, values[0]))
        for s in tuner.suggest(5):
            assert differences(s.params, better) == 1, (mode, s.params)
