"""ASHA, stopping variant (Ray's ``AsyncHyperBandScheduler``), made stateless for hpoqueue."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hpoqueue.assessors._base import BaseAssessor, Decision, OptimizeMode
from hpoqueue.assessors._common import check_int
from hpoqueue.results.records import TrialResult


class AshaAssessor(BaseAssessor):
    """Stop a trial that is not in the top 1/eta of the trials that reached its latest rung.

    The resource is the number of intermediate results (1-based step count); rungs sit at
    ``min_resource * eta**k`` (k >= 0), capped at ``max_resource`` when given. Let ``S`` be the trial's
    step count and ``r`` the largest rung <= S (none -> CONTINUE). The others are every trial in
    `history`, in any state, with at least ``r`` results; their values at step ``r`` form the rung.
    Ray's rule (``_Bracket.on_result`` / ``cutoff``): an empty rung -> CONTINUE; else, with values
    negated when minimizing, ``cutoff = nanpercentile(rung, (1 - 1/eta) * 100)`` and STOP iff the
    trial's value at step ``r`` is below ``cutoff``. Unlike Ray, which judges each rung once against the
    trials recorded before, this is re-judged on every call until the next rung against all trials that
    reached ``r`` so far, so the verdict depends only on the inputs.
    """

    def __init__(self, *, optimize_mode: OptimizeMode = "minimize", min_resource: int = 1,
                 max_resource: int | None = None, eta: int = 3) -> None:
        super().__init__(optimize_mode=optimize_mode)
        self.min_resource = check_int("min_resource", min_resource, minimum=1)
        self.eta = check_int("eta", eta, minimum=2)
        if max_resource is not None:
            check_int("max_resource", max_resource, minimum=min_resource)
        self.max_resource = max_resource

    def rung_at(self, steps: int) -> int | None:
        """The largest rung level <= `steps`, or None before the first rung."""
        limit = steps if self.max_resource is None else min(steps, self.max_resource)
        if limit < self.min_resource:
            return None
        rung = self.min_resource
        while rung * self.eta <= limit:
            rung *= self.eta
        return rung

    def assess(self, trial: TrialResult, history: Sequence[TrialResult]) -> Decision:
        rung = self.rung_at(len(trial.intermediate))
        if rung is None:
            return Decision.CONTINUE
        sign = -1.0 if self.optimize_mode == "minimize" else 1.0
        recorded = [sign * h.intermediate[rung - 1] for h in history if len(h.intermediate) >= rung]
        if not recorded:
            return Decision.CONTINUE
        cutoff = float(np.nanpercentile(recorded, (1 - 1 / self.eta) * 100))
        value = sign * trial.intermediate[rung - 1]
        return Decision.STOP if value < cutoff else Decision.CONTINUE
