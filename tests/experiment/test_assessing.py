"""The assessor in the scheduler: each pending trial judged once, CPU bounded per batch, a failing assessor
never the end of the experiment."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from hpoqueue.assessors import BaseAssessor, Decision
from hpoqueue.experiment.assessing import Assessing
from hpoqueue.results.records import TrialResult
from hpoqueue.states import TrialState


class Over(BaseAssessor):
    """STOP when the latest value is over 1; counts what it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, int]] = []

    def assess(self, trial: TrialResult, history: Sequence[TrialResult]) -> Decision:
        self.seen.append((trial.seq, len(history)))
        if trial.intermediate[-1] < 0:
            raise ValueError("a bug in a user's assessor")
        return Decision.STOP if trial.intermediate[-1] > 1 else Decision.CONTINUE


def result(seq: int, *values: float, state: TrialState = TrialState.RUNNING) -> TrialResult:
    return TrialResult(seq=seq, params={}, state=state, value=None, intermediate=values)


def test_each_marked_running_trial_is_judged_once_against_all_the_others() -> None:
    assessor = Over()
    assessing = Assessing(assessor)
    flights = {"e-1": result(1, 0.5), "e-2": result(2, 3.0), "e-3": result(3, 2.0, state=TrialState.WAITING)}
    for trial in ("e-1", "e-2", "e-2", "e-3", "e-9"):
        assessing.mark(trial)
    finished = [result(4, 0.1, state=TrialState.SUCCEEDED)]
    assert assessing.decide(flights, finished) == [("e-2", 1)]
    assert assessor.seen == [(1, 3), (2, 3)]  # e-3 is not running, e-9 is gone
    assert assessing.decide(flights, finished) == [] and assessor.seen == [(1, 3), (2, 3)]


def test_a_batch_stops_judging_when_its_budget_is_spent_and_the_rest_wait() -> None:
    ticks = iter(range(100))
    assessing = Assessing(Over(), budget=2, clock=lambda: next(ticks))
    flights = {f"e-{i}": result(i, 2.0) for i in range(5)}
    for trial in flights:
        assessing.mark(trial)
    first = assessing.decide(flights, [])
    assert 0 < len(first) < 5 and len(assessing.pending) == 5 - len(first)
    rest: list[tuple[str, int]] = []
    while assessing.pending:
        rest += assessing.decide(flights, [])
    assert sorted(first + rest) == [(t, 1) for t in flights]


def test_an_assessor_that_raises_counts_as_continue(caplog: pytest.LogCaptureFixture) -> None:
    assessing = Assessing(Over())
    assessing.mark("e-1")
    assessing.mark("e-2")
    assert assessing.decide({"e-1": result(1, -1.0), "e-2": result(2, 5.0)}, []) == [("e-2", 1)]
    assert "a bug in a user's assessor" in caplog.text and assessing.calls == 2
