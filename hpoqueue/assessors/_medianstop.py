"""NNI's Medianstop assessor: the median stopping rule of Google Vizier, over completed trials."""

from __future__ import annotations

from collections.abc import Sequence

from hpoqueue.assessors._base import BaseAssessor, Decision, OptimizeMode
from hpoqueue.assessors._common import best_of, check_int
from hpoqueue.results.records import TrialResult
from hpoqueue.states import TrialState


class MedianstopAssessor(BaseAssessor):
    """Stop a trial whose best result so far is worse than the median running average of completed trials.

    Exact rule (NNI ``medianstop_assessor.py``): let ``S = len(trial.intermediate)``; CONTINUE when
    ``S == 0`` or ``S < start_step``. ``best`` is the trial's best intermediate result (max when
    maximizing, min when minimizing). For every SUCCEEDED trial in `history` with at least ``S`` results,
    take its running average at step S, ``mean(h[0:S])``; none -> CONTINUE. Sort them; maximize:
    ``median = avgs[(n-1)//2]``, STOP iff ``best < median``; minimize: ``median = avgs[n//2]``, STOP iff
    ``best > median``. Failed, stopped and running trials never count.
    """

    def __init__(self, *, optimize_mode: OptimizeMode = "minimize", start_step: int = 0) -> None:
        super().__init__(optimize_mode=optimize_mode)
        self.start_step = check_int("start_step", start_step, minimum=0)

    def assess(self, trial: TrialResult, history: Sequence[TrialResult]) -> Decision:
        steps = len(trial.intermediate)
        if steps == 0 or steps < self.start_step:
            return Decision.CONTINUE
        averages = sorted(sum(h.intermediate[:steps]) / steps for h in history
                          if h.state == TrialState.SUCCEEDED and len(h.intermediate) >= steps)
        if not averages:
            return Decision.CONTINUE
        best = best_of(trial.intermediate, self.optimize_mode)
        n = len(averages)
        if self.optimize_mode == "maximize":
            return Decision.STOP if best < averages[(n - 1) // 2] else Decision.CONTINUE
        return Decision.STOP if best > averages[n // 2] else Decision.CONTINUE
