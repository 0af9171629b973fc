"""NNI's Curvefitting assessor: extrapolate the learning curve and stop trials that cannot catch up."""

from __future__ import annotations

from collections.abc import Sequence

from hpoqueue.assessors._base import BaseAssessor, Decision, OptimizeMode
from hpoqueue.assessors._common import best_of, check_float, check_int
from hpoqueue.assessors._curves import predict
from hpoqueue.results.records import TrialResult
from hpoqueue.states import TrialState


class CurvefittingAssessor(BaseAssessor):
    """Stop a trial whose curve, extrapolated to `epoch_num`, ends clearly worse than the best finished one.

    Rule: ``best`` is the best final result of the SUCCEEDED trials in `history` (their ``value``, else
    their last intermediate result); none -> CONTINUE. Let ``S = len(trial.intermediate)``; CONTINUE while
    ``S < start_step`` and when ``(S - start_step) % gap != 0`` (NNI judges every `gap` results).
    ``predicted`` is the median of six curve families (pow3, log-linear, exp3, ilog2, MMF, Janoschek)
    fitted by least squares, evaluated at `epoch_num`; no fit -> CONTINUE. With
    ``margin = (1 - threshold) * |best|``: maximize, STOP iff ``predicted <= best - margin`` (NNI's
    ``predicted <= best * threshold`` when best >= 0, and sign-safe when best < 0); minimize (which NNI
    refuses), STOP iff ``predicted >= best + margin``, the curve being fitted negated.
    NNI fits 12 families by MCMC; least squares on six is faster and keeps a call well under 50 ms.
    """

    def __init__(self, *, optimize_mode: OptimizeMode = "minimize", epoch_num: int = 20, start_step: int = 6,
                 threshold: float = 0.95, gap: int = 1) -> None:
        super().__init__(optimize_mode=optimize_mode)
        self.epoch_num = check_int("epoch_num", epoch_num, minimum=1)
        self.start_step = check_int("start_step", start_step, minimum=1)
        self.threshold = check_float("threshold", threshold, low=0.0, high=1.0)
        self.gap = check_int("gap", gap, minimum=1)

    def assess(self, trial: TrialResult, history: Sequence[TrialResult]) -> Decision:
        steps = len(trial.intermediate)
        if steps < self.start_step or (steps - self.start_step) % self.gap:
            return Decision.CONTINUE
        finals = [h.value if h.value is not None else h.intermediate[-1] for h in history
                  if h.state == TrialState.SUCCEEDED and (h.value is not None or h.intermediate)]
        if not finals:
            return Decision.CONTINUE
        best = best_of(finals, self.optimize_mode)
        sign = -1.0 if self.optimize_mode == "minimize" else 1.0
        predicted = predict([sign * v for v in trial.intermediate], self.epoch_num)
        if predicted is None:
            return Decision.CONTINUE
        margin = (1 - self.threshold) * abs(best)
        return Decision.STOP if predicted <= sign * best - margin else Decision.CONTINUE
