"""Auto: GP on small numeric spaces (then TPE past its trial budget), TPE elsewhere, and what it says."""

from __future__ import annotations

import pytest

from hpoqueue.config import config_from_dict
from hpoqueue.records import TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.states import TrialState
from hpoqueue.tuners import TUNERS, _auto
from hpoqueue.tuners._auto import AutoTuner, tuner_summary

SMALL = SearchSpace.from_dict({"x": {"_type": "uniform", "_value": [0, 1]},
                               "lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]},
                               "opt": {"_type": "choice", "_value": ["sgd", "adam"]}})
NESTED = SearchSpace.from_dict({"opt": {"_type": "choice", "_value": [
    {"_name": "sgd", "m": {"_type": "uniform", "_value": [0, 1]}}, "adam"]},
    "x": {"_type": "uniform", "_value": [0, 1]}})
CATEGORICAL = SearchSpace.from_dict({"act": {"_type": "choice", "_value": ["relu", "tanh"]},
                                     "opt": {"_type": "choice", "_value": ["sgd", "adam"]},
                                     "x": {"_type": "uniform", "_value": [0, 1]}})


def _drive(tuner, n: int, start: int = 1) -> list[dict]:  # noqa: ANN001 - any tuner
    out = []
    for seq in range(start, start + n):
        (s,) = tuner.suggest(1)
        out.append(s.params)
        tuner.observe(TrialResult(seq, s.params, TrialState.SUCCEEDED, (s.params.get("x", 0) - 0.3) ** 2))
    return out


@pytest.mark.parametrize(("space", "pick"), [(SMALL, "GP"), (NESTED, "GP"), (CATEGORICAL, "TPE")])
def test_auto_runs_its_pick_seed_for_seed(space: SearchSpace, pick: str) -> None:
    auto = AutoTuner(space, seed=5)
    assert auto.current == pick
    assert _drive(auto, 14) == _drive(TUNERS.create(name=pick, space=space, optimize_mode="minimize", seed=5), 14)


def test_auto_hands_over_to_tpe_after_the_gp_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_auto, "GP_MAX_TRIALS", 12)
    auto = AutoTuner(SMALL, seed=1)
    first = _drive(auto, 12)
    pending = [s.params for s in auto.suggest(3)]  # the switch happens here, with these left pending
    assert auto.current == "TPE"
    later = pending + _drive(auto, 10, start=16)
    keys = [SMALL.key(p) for p in first + later]
    assert len(set(keys)) == len(keys)


def test_status_and_submit_say_what_auto_runs() -> None:
    assert tuner_summary("Auto", None, SMALL).startswith("Auto: GP")
    assert tuner_summary("auto", None, SMALL, trials=500).startswith("Auto: TPE")
    assert tuner_summary("Auto", None, CATEGORICAL).startswith("Auto: TPE")
    assert tuner_summary("GP", None, SMALL) == "GP"


def test_a_config_without_a_tuner_gets_auto() -> None:
    cfg = config_from_dict({"trialCommand": "true", "searchSpace": SMALL.raw, "trialConcurrency": 1})
    assert cfg.tuner.name == "Auto"
