"""GP: converges on a smooth function, handles mixed spaces, keeps concurrent suggestions apart."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from benchmarks.problems import NESTED_SPACE, nested
from hpoqueue.results.records import TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.states import TrialState
from hpoqueue.tuners import GPTuner, _gp
from hpoqueue.tuners._gp_model import Acquisition, LocalPenalty, Objective, Posterior, default_raw

QUAD = SearchSpace.from_dict({"x": {"_type": "uniform", "_value": [-5, 5]},
                              "y": {"_type": "uniform", "_value": [-5, 5]}})
MIXED = SearchSpace.from_dict({"opt": {"_type": "choice", "_value": ["sgd", "adam", "rms"]},
                               "lr": {"_type": "loguniform", "_value": [1e-5, 1.0]},
                               "layers": {"_type": "randint", "_value": [1, 6]}})


def _quad(p: dict) -> float:
    return (p["x"] - 1.3) ** 2 + (p["y"] + 2.1) ** 2


def _mixed(p: dict) -> float:
    return ((math.log10(p["lr"]) + 3) ** 2 + (p["layers"] - 3) ** 2
            + {"sgd": 2.0, "adam": 0.0, "rms": 1.0}[p["opt"]])


def _optimize(tuner: GPTuner, fn, evals: int) -> float:
    best = math.inf
    for seq in range(1, evals + 1):
        params = tuner.suggest(1)[0].params
        value = fn(params)
        best = min(best, value)
        tuner.observe(TrialResult(seq, params, TrialState.SUCCEEDED, value))
    return best


@pytest.mark.parametrize("utility", ["ei", "ucb", "poi"])
def test_finds_a_quadratic_minimum_within_30_evaluations(utility: str) -> None:
    assert _optimize(GPTuner(QUAD, seed=0, utility=utility), _quad, 30) < 0.05


def test_maximize_mode_finds_the_maximum() -> None:
    tuner = GPTuner(QUAD, seed=1, optimize_mode="maximize")
    assert -_optimize_max(tuner) < 0.05


def _optimize_max(tuner: GPTuner) -> float:
    best = -math.inf
    for seq in range(1, 31):
        params = tuner.suggest(1)[0].params
        value = -_quad(params)
        best = max(best, value)
        tuner.observe(TrialResult(seq, params, TrialState.SUCCEEDED, value))
    return best


def test_mixed_choice_loguniform_randint_space() -> None:
    tuner = GPTuner(MIXED, seed=0)
    assert _optimize(tuner, _mixed, 30) < 0.2


def test_pending_suggestions_differ_and_valid() -> None:
    tuner = GPTuner(QUAD, seed=0, cold_start_num=3)
    _optimize(tuner, _quad, 6)
    batch = [s.params for s in tuner.suggest(4)]
    for p in batch:
        QUAD.validate_params(p)
    points = [(p["x"], p["y"]) for p in batch]
    assert min(math.dist(a, b) for i, a in enumerate(points) for b in points[i + 1:]) > 1e-3


def test_finite_space_is_exhausted_without_repeats() -> None:
    space = SearchSpace.from_dict({"a": {"_type": "choice", "_value": [1, 2, 3]},
                                   "b": {"_type": "randint", "_value": [0, 4]}})
    tuner = GPTuner(space, seed=0, cold_start_num=2)
    keys = []
    for seq in range(1, 13):
        params = tuner.suggest(1)[0].params
        keys.append(space.key(params))
        tuner.observe(TrialResult(seq, params, TrialState.SUCCEEDED, params["a"] * params["b"]))
    assert len(set(keys)) == 12 and tuner.exhausted and tuner.suggest(1) == []


def test_failed_trials_are_ignored_by_the_model() -> None:
    tuner = GPTuner(QUAD, seed=0, cold_start_num=3)
    for seq in range(1, 6):
        params = tuner.suggest(1)[0].params
        tuner.observe(TrialResult(seq, params, TrialState.FAILED, None))
    assert len(tuner.suggest(2)) == 2


@pytest.mark.parametrize("utility", ["ei", "ucb", "poi"])
def test_acquisition_gradients_match_finite_differences(utility: str) -> None:
    """The refinement climbs the acquisition only if its batched gradient is right."""
    rng = np.random.default_rng(0)
    x = rng.random((15, 3))
    y = np.sin(4 * x).sum(1)
    post = Posterior(x, (y - y.mean()) / y.std(), default_raw(3))
    acq = Acquisition(utility, best=float(post.y.min()), kappa=2.0, xi=0.0)
    xq = rng.random((4, 3))
    _, grad = acq.value_grad(*post.predict_grad(xq))
    eps = 1e-6
    for j in range(3):
        step = np.zeros(3)
        step[j] = eps
        numeric = (acq.value(*post.predict(xq + step)) - acq.value(*post.predict(xq - step))) / (2 * eps)
        np.testing.assert_allclose(grad[:, j], numeric, rtol=1e-4, atol=1e-6)


def test_resumes_from_a_long_history_with_valid_new_suggestions() -> None:
    """Past a few hundred trials (fewer candidates per suggestion) it still proposes unseen, valid points."""
    rng = np.random.default_rng(1)
    history = []
    for seq in range(1, 201):
        params = MIXED.sample(rng)
        history.append(TrialResult(seq, params, TrialState.SUCCEEDED, _mixed(params)))
    tuner = GPTuner(MIXED, seed=0)
    tuner.rebuild(history)
    batch = [s.params for s in tuner.suggest(3)]
    keys = {MIXED.key(p) for p in batch}
    assert len(keys) == 3 and not keys & {MIXED.key(t.params) for t in history}
    for p in batch:
        MIXED.validate_params(p)



@pytest.mark.parametrize("history_seed", [0, 1])
def test_failed_trials_are_never_taken_as_good(history_seed: int) -> None:
    """Ten trials failed in the quadrant x < -2, y > 2, far from the optimum (1.3, -2.1); twelve others
    succeeded anywhere. The next six suggestions stay out of that quadrant and close in on the optimum (a
    model that took the failures for good results goes back there and loses its way: measured, it
    visits the quadrant and its third best suggestion scores 0.4 to 40; here 0.002 to 0.009)."""
    rng = np.random.default_rng(history_seed)
    history = []
    for seq in range(1, 13):
        params = QUAD.sample(rng)
        history.append(TrialResult(seq, params, TrialState.SUCCEEDED, _quad(params)))
    for seq in range(13, 23):
        failed = {"x": rng.uniform(-5, -2), "y": rng.uniform(2, 5)}
        history.append(TrialResult(seq, failed, TrialState.FAILED, None))
    tuner = GPTuner(QUAD, seed=0, cold_start_num=3)
    tuner.rebuild(history)
    values = []
    for seq in range(23, 29):
        params = tuner.suggest(1)[0].params
        assert not (params["x"] < -2 and params["y"] > 2), params
        values.append(_quad(params))
        tuner.observe(TrialResult(seq, params, TrialState.SUCCEEDED, values[-1]))
    assert sorted(values)[2] < 0.1, values


def test_the_model_keeps_the_best_half_and_the_rest_spread_over_the_history() -> None:
    y = np.random.default_rng(0).normal(size=3 * _gp.MODEL_CAP)
    keep = _gp._model_points(y)
    assert len(keep) == len(set(keep)) == _gp.MODEL_CAP and list(keep) == sorted(keep)
    assert set(np.argsort(y)[:_gp.MODEL_CAP // 2]) <= set(keep)
    assert keep[0] < 10 and keep[-1] > len(y) - 10  # the oldest and the newest regions stay in the model


def test_a_model_capped_far_below_the_history_still_finds_the_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the posterior on 16 of up to 60 observations (a long experiment's bounded model, small here),
    the search still closes in on the quadratic's minimum."""
    monkeypatch.setattr(_gp, "MODEL_CAP", 16)
    assert _optimize(GPTuner(QUAD, seed=0), _quad, 60) < 0.05


MODEL_CHOICE = SearchSpace.from_dict(NESTED_SPACE)  # the benchmark's nested model choice


@pytest.mark.slow
def test_a_branch_best_only_in_a_narrow_region_is_found() -> None:
    """60 evaluations of the benchmark's nested model choice, seeds 0-7: the GP picking the branch by
    Thompson sampling reaches the SVM's optimum (regret < 1e-3) in 6 of 8; with one-hot columns alone it
    stayed on the forest, found good on average, in 5 of 8 (3 found)."""
    found = 0
    for seed in range(8):
        tuner = GPTuner(MODEL_CHOICE, seed=seed)
        best = math.inf
        for seq in range(1, 61):
            (s,) = tuner.suggest(1)
            value = nested(s.params)
            best = min(best, value)
            tuner.observe(TrialResult(seq, s.params, TrialState.SUCCEEDED, value))
        found += best - 0.02 < 1e-3
    assert found >= 5, found


@pytest.mark.parametrize("seed", range(3))
def test_a_batch_closes_in_on_the_optimum_without_repeating_itself(seed: int) -> None:
    """8 asked at once after 10 results of a 2-D bowl: each pending one rules out only the small ball its
    predicted loss allows, so the batch spreads (seeds 0-5: closest two 0.02-0.04 apart in the unit square)
    and still lands mostly near the optimum (5-8 of 8 within 0.1). With no penalty the 8 are near-copies
    (1e-12-1e-9 apart); with pending trials fantasised at their mean (Kriging believer), 1e-11-7e-4."""
    space = SearchSpace.from_dict({f"x{i}": {"_type": "uniform", "_value": [0, 1]} for i in range(2)})
    centre = np.array([0.3, 0.7])
    tuner = GPTuner(space, seed=seed)
    _optimize(tuner, lambda p: float(np.sum((np.array([p["x0"], p["x1"]]) - centre) ** 2)), 10)
    points = np.array([[s.params["x0"], s.params["x1"]] for s in tuner.suggest(8)])
    gaps = np.linalg.norm(points[:, None] - points[None], axis=2)[np.triu_indices(8, 1)]
    assert gaps.min() > 0.01, np.sort(gaps)[:3]
    assert np.sum(np.linalg.norm(points - centre, axis=1) < 0.1) >= 4, points


def test_pending_penalty_gradient_matches_finite_differences() -> None:
    """L-BFGS-B climbs the penalised acquisition only if the penalty's gradient is right."""
    rng = np.random.default_rng(1)
    x = rng.random((15, 3))
    y = np.sin(4 * x).sum(1)
    post = Posterior(x, (y - y.mean()) / y.std(), default_raw(3))
    best = float(post.y.min())
    obj = Objective(post, Acquisition("ei", best, 2.0, 0.0), LocalPenalty.of(post, rng.random((4, 3)), best,
                                                                            rng.random((100, 3))))
    xq = rng.random((4, 3))
    _, grad = obj.value_grad(xq)
    eps = 1e-6
    for j in range(3):
        step = np.zeros(3)
        step[j] = eps
        numeric = (obj.value(xq + step) - obj.value(xq - step)) / (2 * eps)
        np.testing.assert_allclose(grad[:, j], numeric, rtol=1e-4, atol=1e-6)


def _bowl_with_seven_pending(seed: int, told: int | None) -> tuple[GPTuner, Callable[[dict], float]]:
    """A GP after 20 results of a 3-D bowl with 7 suggestions pending, told `told` trials are left; the
    distance to the bowl's minimum."""
    space = SearchSpace.from_dict({f"x{i}": {"_type": "uniform", "_value": [0, 1]} for i in range(3)})

    def distance(p: dict) -> float:
        return math.sqrt(sum((p[f"x{i}"] - c) ** 2 for i, c in enumerate((0.3, 0.7, 0.45))))

    tuner = GPTuner(space, seed=seed)
    for seq in range(1, 21):
        (s,) = tuner.suggest(1)
        tuner.observe(TrialResult(seq, s.params, TrialState.SUCCEEDED, distance(s.params) ** 2))
    tuner.suggest(7)  # pending
    tuner.set_trials_left(told)
    return tuner, distance


@pytest.mark.parametrize("seed", range(3))
def test_in_the_budgets_last_rounds_a_batch_closes_in_on_the_optimum(seed: int) -> None:
    """Told that only 16 trials are left while 7 are pending (2 rounds of 8, not yet the last), GP believes
    the pending trials (each at its predicted mean) instead of penalising a ball around each: the batch
    gathers at the optimum rather than keeping its members apart. Measured (seeds 0-5, 4 asked): the
    batch's median distance to the optimum 0.34-0.94x what it is when not told (0.0026 against 0.0077 for
    seed 0)."""
    median = {}
    for told in (None, 16):
        tuner, distance = _bowl_with_seven_pending(seed, told)
        median[told] = float(np.median([distance(s.params) for s in tuner.suggest(4)]))
    assert median[16] < 0.8 * median[None], median


@pytest.mark.parametrize("seed", range(3))
def test_three_rounds_before_the_budgets_end_pending_trials_are_still_penalised(seed: int) -> None:
    """The believer takes over only in the last END_ROUNDS = 2 rounds: told 24 trials are left while 7 are
    pending (3 rounds of 8), the suggestion is the penalised one, the same as when not told; told 16, the
    believer's. Why 2 and not 3 (benchmarks/results/tuners.md, round eight): at 16 in flight, 100 seeds,
    the penalty in the third round from the end finds better basins (median regret levy6 2.93 -> 2.34,
    nested 5.6e-8 -> 1.1e-8, branin 1.2e-5 -> 3.9e-6; styblinski5 39.9 -> 42.3). Fails with END_ROUNDS = 3."""
    picks = {told: _bowl_with_seven_pending(seed, told)[0].suggest(1)[0].params for told in (None, 24, 16)}
    assert picks[24] == picks[None]
    assert picks[16] != picks[None]


@pytest.mark.parametrize("seed", range(3))
def test_in_the_budgets_last_round_the_candidates_only_refine_the_best_points(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """In the budget's very last round with trials pending, every candidate the GP scores is a small
    perturbation of one of its 5 best points (_last_round_candidates: numeric columns within 0.2, over 6
    sigma of the largest scale, choice columns kept); in the round before, its random and wide local
    candidates are not. The final pick is not tested: L-BFGS-B from the incumbent often gives the
    believer's own. Measured (3-D bowl plus a choice, after 14 results, seeds 0-11): largest distance of a
    scored candidate to the nearest best point (largest difference of an encoded column) 0.073-0.092 in
    the last round; 1.0 (another option of the choice) in the round before, and in the last round
    without the rule."""
    space = SearchSpace.from_dict({**{f"x{i}": {"_type": "uniform", "_value": [0, 1]} for i in range(3)},
                                   "opt": {"_type": "choice", "_value": ["a", "b", "c"]}})
    centre = np.array([0.3, 0.7, 0.45])

    def loss(p: dict) -> float:
        x = np.array([p[f"x{i}"] for i in range(3)])
        return float(np.sum((x - centre) ** 2)) + {"a": 0.0, "b": 0.1, "c": 0.2}[p["opt"]]

    tuner = GPTuner(space, seed=seed)
    _optimize(tuner, loss, 14)
    best = np.array(tuner._x)[np.argsort(tuner._y)[:_gp.LAST_ROUND_CENTRES]]
    scored: list[np.ndarray] = []
    value = Objective.value

    def spy(self: Objective, x: np.ndarray) -> np.ndarray:
        if len(x) > 100:  # the candidates (the refined and snapped points are at most 26)
            scored.append(x.copy())
        return value(self, x)

    monkeypatch.setattr(Objective, "value", spy)

    def farthest() -> float:
        cand = np.vstack(scored)
        scored.clear()
        return float(np.abs(cand[:, None] - best[None]).max(axis=2).min(axis=1).max())

    tuner.suggest(7)  # pending
    tuner.set_trials_left(16)  # two rounds of 8 left: the believer, not yet the last round
    tuner.suggest(1)
    before = farthest()
    tuner.set_trials_left(8)  # 8 pending: the last round
    tuner.suggest(8)
    last = farthest()
    assert last < 0.2 < before, (last, before)
