"""Curvefitting stops curves that extrapolate clearly below the best completed trial, in both modes."""

from __future__ import annotations

import math

from hpoqueue.assessors import CurvefittingAssessor, Decision
from hpoqueue.states import TrialState

from . import trial

RUNNING = TrialState.RUNNING


def accuracy(top: float, rate: float, steps: int) -> list[float]:
    return [top - (top - 0.1) * math.exp(-rate * (i + 1)) for i in range(steps)]


GOOD_DONE = trial(1, accuracy(0.9, 0.3, 20))


def test_stops_a_clearly_bad_curve() -> None:
    assessor = CurvefittingAssessor(optimize_mode="maximize", epoch_num=20)
    assert assessor.assess(trial(2, accuracy(0.5, 0.3, 8), RUNNING), [GOOD_DONE]) is Decision.STOP


def test_continues_a_good_or_promising_curve() -> None:
    assessor = CurvefittingAssessor(optimize_mode="maximize", epoch_num=20)
    assert assessor.assess(trial(2, accuracy(0.92, 0.3, 8), RUNNING), [GOOD_DONE]) is Decision.CONTINUE
    # slow starter, still climbing steeply, heading above the best: not stopped on its current value
    slow = accuracy(0.95, 0.15, 8)
    assert slow[-1] < 0.9 * 0.95
    assert assessor.assess(trial(2, slow, RUNNING), [GOOD_DONE]) is Decision.CONTINUE


def test_minimize_mirrors_maximize() -> None:
    assessor = CurvefittingAssessor(optimize_mode="minimize", epoch_num=20)
    done = trial(1, [1 - v for v in accuracy(0.9, 0.3, 20)])
    bad = trial(2, [1 - v for v in accuracy(0.5, 0.3, 8)], RUNNING)
    good = trial(3, [1 - v for v in accuracy(0.92, 0.3, 8)], RUNNING)
    assert assessor.assess(bad, [done]) is Decision.STOP
    assert assessor.assess(good, [done]) is Decision.CONTINUE


def test_negative_values_use_a_sign_safe_margin() -> None:
    # maximize with best = -1.0: NNI's best*threshold (-0.95) would stop a trial heading to -0.97
    assessor = CurvefittingAssessor(optimize_mode="maximize", epoch_num=20)
    done = trial(1, [-2.0 + 1.0 * (1 - math.exp(-0.5 * (i + 1))) for i in range(20)])
    close = trial(2, [-2.0 + 1.03 * (1 - math.exp(-0.5 * (i + 1))) - 0.06 for i in range(8)], RUNNING)
    far = trial(3, [-2.0 + 0.5 * (1 - math.exp(-0.5 * (i + 1))) for i in range(8)], RUNNING)
    assert assessor.assess(close, [done]) is Decision.CONTINUE
    assert assessor.assess(far, [done]) is Decision.STOP


def test_waits_for_start_step_a_completed_trial_and_the_gap() -> None:
    bad = accuracy(0.5, 0.3, 12)
    assessor = CurvefittingAssessor(optimize_mode="maximize", start_step=6, gap=3)
    assert assessor.assess(trial(2, bad[:5], RUNNING), [GOOD_DONE]) is Decision.CONTINUE
    assert assessor.assess(trial(2, bad, RUNNING), [trial(1, accuracy(0.9, 0.3, 20), TrialState.FAILED)]) \
        is Decision.CONTINUE
    judged = [n for n in range(6, 13)
              if assessor.assess(trial(2, bad[:n], RUNNING), [GOOD_DONE]) is Decision.STOP]
    assert judged == [6, 9, 12]


def test_a_flat_curve_predicts_its_value() -> None:
    assessor = CurvefittingAssessor(optimize_mode="maximize")
    assert assessor.assess(trial(2, [0.5] * 8, RUNNING), [GOOD_DONE]) is Decision.STOP
    assert assessor.assess(trial(2, [0.88] * 8, RUNNING), [GOOD_DONE]) is Decision.CONTINUE
