"""Hyperband: NNI's bracket schedule, rung barriers, promotion by loss, TRIAL_BUDGET, resume."""

from __future__ import annotations

import pytest

from hpoqueue.results.records import TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.states import TrialState
from hpoqueue.tuners import HyperbandTuner
from hpoqueue.tuners._hyperband import BUDGET_KEY, bracket_plan

SPACE = SearchSpace.from_dict({"x": {"_type": "uniform", "_value": [0, 1]},
                               "k": {"_type": "choice", "_value": ["a", "b"]}})


def test_plan_for_r81_eta3_matches_the_hyperband_paper_table() -> None:
    assert bracket_plan(81, 1, 3) == [
        [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
        [(34, 3), (11, 9), (3, 27), (1, 81)],
        [(15, 9), (5, 27), (1, 81)],
        [(8, 27), (2, 81)],
        [(5, 81)],
    ]


def test_budgets_are_whole_numbers_when_they_can_be() -> None:
    assert all(isinstance(r, int) for bracket in bracket_plan(81, 1, 3) for _, r in bracket)


def _finish(tuner: HyperbandTuner, params: dict, seq: int, value: float | None) -> None:
    state = TrialState.SUCCEEDED if value is not None else TrialState.FAILED
    tuner.observe(TrialResult(seq, params, state, value))


@pytest.mark.parametrize("mode", ["minimize", "maximize"])
def test_rung_is_a_barrier_and_promotes_the_best_third(mode: str) -> None:
    tuner = HyperbandTuner(SPACE, optimize_mode=mode, seed=0, R=9, eta=3, exec_mode="serial")
    first = [s.params for s in tuner.suggest(100)]
    assert len(first) == 9 and {p[BUDGET_KEY] for p in first} == {1}
    assert tuner.suggest(1) == [] and not tuner.exhausted  # serial: waits for the rung
    values = [float(i) for i in range(9)]
    for seq, (params, value) in enumerate(zip(first[:-1], values[:-1], strict=True), 1):
        _finish(tuner, params, seq, value)
    assert tuner.suggest(1) == []  # one result still missing
    _finish(tuner, first[-1], 9, None)  # a failed trial ranks last
    promoted = [s.params for s in tuner.suggest(100)]
    assert [p[BUDGET_KEY] for p in promoted] == [3, 3, 3]
    want = first[:3] if mode == "minimize" else first[5:8][::-1]
    assert [{k: v for k, v in p.items() if k != BUDGET_KEY} for p in promoted] == [
        {k: v for k, v in p.items() if k != BUDGET_KEY} for p in want]


def test_parallelism_starts_the_next_bracket_while_waiting() -> None:
    tuner = HyperbandTuner(SPACE, seed=0, R=9, eta=3)
    budgets = [s.params[BUDGET_KEY] for s in tuner.suggest(9 + 5)]
    assert budgets == [1] * 9 + [3] * 5  # bracket s=2 (9 @ 1), then s=1 (5 @ 3)


def test_loops_over_brackets_like_nni() -> None:
    tuner = HyperbandTuner(SPACE, seed=0, R=3, eta=3)
    seen = []
    for seq in range(1, 40):
        batch = tuner.suggest(1)
        assert batch, "Hyperband never runs out"
        seen.append(batch[0].params[BUDGET_KEY])
        _finish(tuner, batch[0].params, seq, batch[0].params["x"])
    assert seen[:8] == [1, 1, 1, 3, 3, 3, 1, 1]  # (3 @ 1 -> 1 @ 3), (2 @ 3), then again


def test_rebuild_restores_bracket_position() -> None:
    live = HyperbandTuner(SPACE, seed=1, R=9, eta=3)
    trials = []
    for seq in range(1, 12):
        params = live.suggest(1)[0].params
        done = seq <= 9
        trials.append(TrialResult(seq, params, TrialState.SUCCEEDED if done else TrialState.RUNNING,
                                  params["x"] if done else None))
        if done:
            live.observe(trials[-1])
    resumed = HyperbandTuner(SPACE, seed=2, R=9, eta=3)
    resumed.rebuild(trials)
    got, want = resumed.suggest(5), live.suggest(5)
    assert got[0] == want[0]  # the third promotion out of rung 0; then bracket s=1 at budget 3
    assert [s.params[BUDGET_KEY] for s in got] == [s.params[BUDGET_KEY] for s in want] == [3] * 5
