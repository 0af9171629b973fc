"""Medianstop follows NNI's rule exactly, checked on hand-computed histories."""

from __future__ import annotations

from hpoqueue.assessors import Decision, MedianstopAssessor
from hpoqueue.states import TrialState

from . import trial

RUNNING = TrialState.RUNNING


def test_nni_verified_example_stops() -> None:
    # best 0.3; running averages at step 2: 0.55 and 0.45; median (maximize) = sorted[(2-1)//2] = 0.45
    history = [trial(1, [0.5, 0.6, 0.7]), trial(2, [0.4, 0.5, 0.6])]
    assert MedianstopAssessor(optimize_mode="maximize").assess(trial(3, [0.2, 0.3], RUNNING), history) \
        is Decision.STOP


def test_maximize_continues_at_the_median() -> None:
    history = [trial(1, [0.5, 0.6, 0.7]), trial(2, [0.4, 0.5, 0.6])]
    assessor = MedianstopAssessor(optimize_mode="maximize")
    assert assessor.assess(trial(3, [0.2, 0.45], RUNNING), history) is Decision.CONTINUE
    assert assessor.assess(trial(3, [0.2, 0.449], RUNNING), history) is Decision.STOP


def test_minimize_mirrors_the_example_with_the_upper_median() -> None:
    # averages at step 2: 0.45, 0.55; median (minimize) = sorted[2//2] = 0.55; best = min = 0.6
    history = [trial(1, [0.5, 0.6, 0.7]), trial(2, [0.4, 0.5, 0.6])]
    assessor = MedianstopAssessor(optimize_mode="minimize")
    assert assessor.assess(trial(3, [0.8, 0.6], RUNNING), history) is Decision.STOP
    assert assessor.assess(trial(3, [0.8, 0.55], RUNNING), history) is Decision.CONTINUE


def test_best_so_far_not_last_value_counts() -> None:
    history = [trial(1, [0.5, 0.5, 0.5])]
    assert MedianstopAssessor(optimize_mode="maximize").assess(trial(2, [0.9, 0.1, 0.1], RUNNING), history) \
        is Decision.CONTINUE


def test_start_step_is_respected() -> None:
    history = [trial(1, [0.5, 0.6, 0.7]), trial(2, [0.4, 0.5, 0.6])]
    assessor = MedianstopAssessor(optimize_mode="maximize", start_step=3)
    assert assessor.assess(trial(3, [0.2, 0.3], RUNNING), history) is Decision.CONTINUE
    assert assessor.assess(trial(3, [0.2, 0.3, 0.3], RUNNING), history) is Decision.STOP


def test_only_succeeded_trials_long_enough_count() -> None:
    running = trial(9, [0.2, 0.3], RUNNING)
    assessor = MedianstopAssessor(optimize_mode="maximize")
    ignored = [trial(1, [0.9, 0.9, 0.9], state) for state in
               (TrialState.FAILED, TrialState.LOST, TrialState.RUNNING, TrialState.EARLY_STOPPED,
                TrialState.USER_CANCELED, TrialState.TIMEOUT)]
    assert assessor.assess(running, [*ignored, trial(2, [0.9])]) is Decision.CONTINUE
    # with one succeeded trial of 0.1s alongside, the ignored 0.9s would have pulled the median up
    assert assessor.assess(running, [*ignored, trial(2, [0.1, 0.1, 0.1])]) is Decision.CONTINUE
