"""The experiment's assessor, run inside the scheduler after each batch of worker events.

The scheduler already holds every trial's curve in memory, so nothing travels for an assessment and nothing
depends on how the workers were started. Each trial that got new intermediate results is judged once per
batch; judging stops for the batch after `budget` seconds of CPU and the rest wait for the next one, so a slow
assessor (Curvefitting over many trials) delays decisions instead of the scheduler's loop. An assessor that
raises is logged and counts as CONTINUE: no assessor can stop the scheduler.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

from hpoqueue.assessors import BaseAssessor, Decision
from hpoqueue.results.records import TrialResult
from hpoqueue.states import TrialState

log = logging.getLogger(__name__)

BUDGET = 0.05  #: seconds of assessor work per batch of events


class Assessing:
    """Which running trials await a decision, and the decisions themselves, within a time budget."""

    def __init__(self, assessor: BaseAssessor, *, budget: float = BUDGET,
                 clock: Callable[[], float] = time.process_time) -> None:
        self.assessor = assessor
        self.budget = budget
        self.clock = clock
        self.pending: dict[str, None] = {}  #: trial ids with results not judged yet, oldest first
        self.calls = 0
        self.seconds = 0.0

    def mark(self, trial: str) -> None:
        """`trial` reported a new intermediate result: judge it in the next decide()."""
        self.pending.setdefault(trial, None)

    def decide(self, in_flight: Mapping[str, TrialResult], finished: Sequence[TrialResult]
               ) -> list[tuple[str, int]]:
        """(trial id, step) of each pending trial the assessor says to STOP. `in_flight`: the trials in
        flight by id (a pending one no longer RUNNING is dropped), `finished`: every other trial's result."""
        started = self.clock()
        stops: list[tuple[str, int]] = []
        for trial in list(self.pending):
            if self.clock() - started >= self.budget:
                break
            del self.pending[trial]
            result = in_flight.get(trial)
            if result is None or result.state is not TrialState.RUNNING:
                continue
            others = [*finished, *(r for t, r in in_flight.items() if t != trial)]
            try:
                decision = self.assessor.assess(result, others)
            except Exception:  # a user's assessor: logged, never the end of the experiment
                log.exception("assessor %s failed on trial %s; it continues",
                              type(self.assessor).__name__, trial)
                continue
            finally:
                self.calls += 1
            if decision is Decision.STOP:
                stops.append((trial, len(result.intermediate)))
        self.seconds += self.clock() - started
        return stops
