"""ASHA (stopping variant) follows Ray's cutoff rule at the largest rung reached, on crafted rungs."""

from __future__ import annotations

import pytest

from hpoqueue.assessors import AshaAssessor, Decision
from hpoqueue.states import TrialState

from . import trial

RUNNING = TrialState.RUNNING


def test_rung_levels() -> None:
    assessor = AshaAssessor(min_resource=2, eta=3, max_resource=20)
    assert [assessor.rung_at(s) for s in (1, 2, 5, 6, 17, 18, 100)] == [None, 2, 2, 6, 6, 18, 18]
    assert AshaAssessor(eta=2).rung_at(1000) == 512


def test_maximize_cutoff_at_eta_3() -> None:
    # rung 1 holds 0.1, 0.2, 0.3 (any state); cutoff = percentile 66.7 of them = 0.2333
    history = [trial(1, [0.1], TrialState.FAILED), trial(2, [0.2, 0.5], RUNNING),
               trial(3, [0.3], TrialState.EARLY_STOPPED)]
    assessor = AshaAssessor(optimize_mode="maximize", eta=3)
    assert assessor.assess(trial(9, [0.23], RUNNING), history) is Decision.STOP
    assert assessor.assess(trial(9, [0.24], RUNNING), history) is Decision.CONTINUE


def test_minimize_cutoff_at_eta_2() -> None:
    # rung 1 holds 1, 2, 3, 4; minimize: cutoff on negated values = -percentile(values, 50) = -2.5
    history = [trial(i, [float(i)]) for i in (1, 2, 3, 4)]
    assessor = AshaAssessor(optimize_mode="minimize", eta=2)
    assert assessor.assess(trial(9, [2.5], RUNNING), history) is Decision.CONTINUE
    assert assessor.assess(trial(9, [2.6], RUNNING), history) is Decision.STOP


def test_judges_the_value_at_the_latest_rung_until_the_next() -> None:
    # eta=2 rungs 1, 2, 4; at S=3 the rung is 2 and the value at step 2 (index 1) is judged
    history = [trial(1, [5.0, 1.0, 1.0, 1.0]), trial(2, [5.0, 2.0, 2.0, 2.0])]
    assessor = AshaAssessor(optimize_mode="minimize", eta=2)
    assert assessor.assess(trial(9, [0.0, 3.0, 0.0], RUNNING), history) is Decision.STOP
    assert assessor.assess(trial(9, [9.0, 1.2, 9.0], RUNNING), history) is Decision.CONTINUE


def test_empty_rung_continues_and_min_resource_delays_judging() -> None:
    history = [trial(1, [0.0, 0.0, 0.0])]
    assert AshaAssessor(optimize_mode="minimize").assess(trial(9, [1.0, 1.0], RUNNING), history) \
        is Decision.STOP
    late = AshaAssessor(optimize_mode="minimize", min_resource=3)
    assert late.assess(trial(9, [1.0, 1.0], RUNNING), history) is Decision.CONTINUE
    assert late.assess(trial(9, [1.0, 1.0, 1.0], RUNNING), history) is Decision.STOP
    assert late.assess(trial(9, [1.0] * 5, RUNNING), [trial(2, [0.0, 0.0])]) is Decision.CONTINUE


def test_max_resource_caps_the_rungs() -> None:
    history = [trial(1, [0.0] * 9 + [5.0] * 20)]
    capped = AshaAssessor(optimize_mode="minimize", max_resource=8)
    # rungs 1, 3 only: the value at step 3 (1.0 vs 0.0) is judged even at step 9 -> stopped
    assert capped.assess(trial(9, [0.0, 0.0, 1.0] + [0.0] * 6, RUNNING), history) is Decision.STOP
    assert capped.assess(trial(9, [0.0] * 3 + [9.0] * 6, RUNNING), history) is Decision.CONTINUE


@pytest.mark.parametrize("args", [{"eta": 1}, {"min_resource": 0}, {"min_resource": 4, "max_resource": 3}])
def test_rejects_bad_args(args: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        AshaAssessor(**args)
