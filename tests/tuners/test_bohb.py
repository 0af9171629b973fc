"""BOHB: Hyperband's schedule with configurations from the KDE once a budget has enough results."""

from __future__ import annotations

import numpy as np

from hpoqueue.results.records import TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.states import TrialState
from hpoqueue.tuners import BOHBTuner
from hpoqueue.tuners._hyperband import BUDGET_KEY

SPACE = SearchSpace.from_dict({"x": {"_type": "uniform", "_value": [0, 1]},
                               "c": {"_type": "choice", "_value": ["good", "bad", "ugly"]}})


def _loss(p: dict) -> float:
    return (p["x"] - 0.8) ** 2 + (0.0 if p["c"] == "good" else 1.0)


def test_schedule_is_hyperbands() -> None:
    tuner = BOHBTuner(SPACE, seed=0, min_budget=1, max_budget=9, eta=3)
    assert [s.params[BUDGET_KEY] for s in tuner.suggest(9)] == [1] * 9


def test_model_configs_concentrate_near_the_optimum() -> None:
    tuner = BOHBTuner(SPACE, seed=0, min_budget=1, max_budget=9, eta=3, random_fraction=0.0)
    seq = 0
    first_rung = [s.params for s in tuner.suggest(9)]
    for p in first_rung:  # 9 random results at budget 1: enough for a model (min_points = 3)
        seq += 1
        tuner.observe(TrialResult(seq, p, TrialState.SUCCEEDED, _loss(p)))
    tuner.suggest(3)  # the promotions of the first bracket
    modelled = [s.params for s in tuner.suggest(30)]
    good = np.mean([p["c"] == "good" for p in modelled])
    random_good = np.mean([SPACE.sample(np.random.default_rng(i))["c"] == "good" for i in range(300)])
    assert good > random_good + 0.2
    good_x = [p["x"] for p in sorted(first_rung, key=_loss)[:3]]  # the KDE's "good" points
    near = [min(abs(p["x"] - g) for g in good_x) < 0.25 for p in modelled]
    assert np.mean(near) > 0.8
