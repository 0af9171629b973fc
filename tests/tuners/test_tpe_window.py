"""hpoqueue's TPE past a long history: its model is built on a bounded window of the trials (#21)."""

from __future__ import annotations

import numpy as np
import pytest

from hpoqueue.results.records import TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.states import TrialState
from hpoqueue.tuners import TPETuner, _tpe


def test_the_window_is_every_trial_until_it_fills_then_the_best_the_newest_and_the_pending() -> None:
    n = _tpe.MODEL_BEST + _tpe.MODEL_RECENT
    losses = np.arange(n, dtype=float)[::-1].copy()  # the newest trials are the best
    losses[[3, 7]] = np.nan  # pending
    assert list(_tpe._model_window(losses, {5})) == [i for i in range(n) if i != 5]

    losses = np.concatenate([np.arange(3 * n, dtype=float), [np.nan]])  # the oldest are the best
    losses[10] = np.nan  # an old pending trial
    window = _tpe._model_window(losses, {0, len(losses) - 2})
    best = [i for i in range(1, 3 * n) if i != 10][:_tpe.MODEL_BEST]
    newest = [i for i in range(len(losses) - _tpe.MODEL_RECENT - 1, len(losses)) if i != len(losses) - 2]
    assert list(window) == sorted({*best, *newest, 10})


def test_past_its_window_tpe_still_closes_in_on_the_optimum(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the model on the 20 best and 80 newest of up to 300 trials, TPE still finds a loss under 0.01 on
    the quadratic (random search's 300 draws: about 0.1 expected), never repeats, and fits the space."""
    monkeypatch.setattr(_tpe, "MODEL_BEST", 20)
    monkeypatch.setattr(_tpe, "MODEL_RECENT", 80)
    space = SearchSpace.from_dict({"x": {"_type": "uniform", "_value": [-5, 5]},
                                   "y": {"_type": "uniform", "_value": [-5, 5]}})
    tuner, seen, best = TPETuner(space, seed=0), set(), float("inf")
    for seq in range(1, 301):
        (s,) = tuner.suggest(1)
        space.validate_params(s.params)
        seen.add(space.key(s.params))
        value = (s.params["x"] - 1.3) ** 2 + (s.params["y"] + 2.1) ** 2
        best = min(best, value)
        tuner.observe(TrialResult(seq, s.params, TrialState.SUCCEEDED, value))
    assert len(seen) == 300
    assert best < 0.01
