"""TPE and Anneal through hyperopt: NNI value forms, nested choices, the constant liar, classArgs."""

from __future__ import annotations

import numpy as np
import pytest

from hpoqueue.errors import ConfigError
from hpoqueue.results.records import TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.states import TrialState
from hpoqueue.tuners import AnnealTuner, _hyperopt, create_tuner
from hpoqueue.tuners._hyperopt import HyperoptTPETuner
from hpoqueue.tuners._hyperopt_space import params_from_vals, vals_from_params

SPACE = SearchSpace.from_dict({
    "bs": {"_type": "randint", "_value": [3, 6]},
    "q": {"_type": "quniform", "_value": [2, 10, 5]},
    "ql": {"_type": "qloguniform", "_value": [1, 100, 10]},
    "n": {"_type": "qnormal", "_value": [0, 2, 0.5]},
    "ln": {"_type": "lognormal", "_value": [0, 1]},
    "act": {"_type": "choice", "_value": ["relu", 3, 0.5]},
    "opt": {"_type": "choice", "_value": [
        {"_name": "sgd", "momentum": {"_type": "uniform", "_value": [0, 1]},
         "nesterov": {"_type": "choice", "_value": [True, False]}},
        {"_name": "adam", "beta": {"_type": "loguniform", "_value": [0.5, 0.999]}},
        "plain"]},
})


def test_values_convert_to_hyperopt_and_back() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        params = SPACE.sample(rng)
        vals = {label: [v] for label, v in vals_from_params(SPACE, params).items()}
        assert SPACE.key(params_from_vals(SPACE, vals)) == SPACE.key(params)


@pytest.mark.parametrize("cls", [HyperoptTPETuner, AnnealTuner])
def test_suggestions_are_nni_form_values_including_nested_choices(cls: type) -> None:
    kwargs = {"n_startup_jobs": 5} if cls is HyperoptTPETuner else {}
    tuner = cls(SPACE, seed=1, **kwargs)
    names = set()
    for seq in range(1, 41):
        (s,) = tuner.suggest(1)
        p = s.params
        SPACE.validate_params(p)
        assert type(p["bs"]) is int and 3 <= p["bs"] < 6
        assert type(p["q"]) is float and p["q"] in (2.0, 5.0, 10.0)
        assert p["act"] in ("relu", 3, 0.5)
        if isinstance(p["opt"], dict):
            names.add(p["opt"]["_name"])
            expected = {"sgd": {"_name", "momentum", "nesterov"}, "adam": {"_name", "beta"}}
            assert set(p["opt"]) == expected[p["opt"]["_name"]]
        tuner.observe(TrialResult(seq, p, TrialState.SUCCEEDED, p["q"] + p["bs"]))
    assert names == {"sgd", "adam"}


def test_tpe_with_concurrent_trials_proposes_distinct_configurations_after_startup() -> None:
    space = SearchSpace.from_dict({"x": {"_type": "quniform", "_value": [0, 100, 1]}})
    tuner = HyperoptTPETuner(space, seed=0, n_startup_jobs=4)
    for seq, s in enumerate(tuner.suggest(4), 1):
        tuner.observe(TrialResult(seq, s.params, TrialState.SUCCEEDED, abs(s.params["x"] - 40)))
    xs = [s.params["x"] for s in tuner.suggest(8)]  # all pending at once: liars keep them apart
    assert len(set(xs)) == 8


@pytest.mark.parametrize("liar", ["best", "worst", "mean"])
def test_every_constant_liar_type_works(liar: str) -> None:
    tuner = HyperoptTPETuner(SPACE, seed=2, n_startup_jobs=2, constant_liar_type=liar)
    pending = tuner.suggest(3)
    tuner.observe(TrialResult(1, pending[0].params, TrialState.SUCCEEDED, 1.0))
    tuner.observe(TrialResult(2, pending[1].params, TrialState.SUCCEEDED, 2.0))
    for s in tuner.suggest(3):
        SPACE.validate_params(s.params)


def test_bad_class_args_are_config_errors_naming_tuner_class_args() -> None:
    class Algo:
        name, class_name, code_directory = "TPE", None, None
        class_args = {"constant_liar_type": "min"}

    with pytest.raises(ConfigError, match=r"tuner\.classArgs: constant_liar_type must be"):
        create_tuner(Algo(), SPACE, optimize_mode="minimize", seed=None)


def test_empty_space_gives_its_single_configuration_once() -> None:
    tuner = HyperoptTPETuner(SearchSpace.from_dict({}), seed=0)
    assert [s.params for s in tuner.suggest(3)] == [{}]
    assert tuner.exhausted


def test_tpe_proposes_exactly_what_hyperopts_tpe_suggest_would_from_the_same_trials() -> None:
    """HyperoptTPETuner feeds hyperopt's TPE from its running history instead of rescanning every trial doc;
    for the same trials (observed, pending with the liar's loss, failed) and seed, the proposal is the same."""
    from hyperopt import tpe

    tuner = HyperoptTPETuner(SPACE, seed=3, n_startup_jobs=5)
    rng = np.random.default_rng(7)
    for seq in range(1, 40):
        (s,) = tuner.suggest(1)
        if seq % 3 == 0:  # some stay pending; some fail
            continue
        value = None if seq % 7 == 0 else float(rng.normal())
        tuner.observe(TrialResult(seq, s.params, TrialState.SUCCEEDED if value is not None else TrialState.FAILED,
                                  value))
        tuner._tell_lies()
        tuner._trials.refresh()  # as the suggest functions do before reading the trials
        for seed in (1, 99):
            expected = tpe.suggest([tuner._next_tid], tuner._domain, tuner._trials, seed, n_startup_jobs=5,
                                   verbose=False)[0]["misc"]["vals"]
            got = tuner._hyperopt_suggest(tuner._domain, tuner._next_tid, seed)["misc"]["vals"]
            assert got == expected, (seq, seed)


def test_anneal_past_its_window_proposes_what_it_would_with_every_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ANNEAL_WINDOW observations Anneal's model is given only the best of them (and the pending ones),
    so a suggestion stops growing with the history; it starts from one of the few best trials and shrinks
    by the whole history's size, so its proposals stay those it makes from every trial, seed for seed."""
    sgd = {"_name": "sgd", "m": {"_type": "uniform", "_value": [0, 1]}}
    space = SearchSpace.from_dict({"x": {"_type": "uniform", "_value": [-5, 5]},
                                   "opt": {"_type": "choice", "_value": [sgd, {"_name": "adam"}]}})

    def run() -> list[dict]:
        tuner, out = AnnealTuner(space, seed=3), []
        for seq in range(1, 61):
            (s,) = tuner.suggest(1)
            out.append(s.params)
            fails = seq % 7 == 0
            value = None if fails else (s.params["x"] - 1) ** 2 + s.params["opt"].get("m", 0.5)
            tuner.observe(TrialResult(seq, s.params, TrialState.FAILED if fails else TrialState.SUCCEEDED, value))
        return out

    given: list[int] = []

    class Spy(_hyperopt._WindowedAnnealing):
        def __init__(self, domain, trials, seed, counts) -> None:  # type: ignore[no-untyped-def]
            given.append(len(trials.trials))
            super().__init__(domain, trials, seed, counts)

    monkeypatch.setattr(_hyperopt, "ANNEAL_WINDOW", 10_000)
    full = run()
    monkeypatch.setattr(_hyperopt, "ANNEAL_WINDOW", 10)
    monkeypatch.setattr(_hyperopt, "_WindowedAnnealing", Spy)
    assert run() == full
    assert given and max(given) <= 3 * 10 + 1  # each parameter's window and the pending proposal
