"""The assessor interface: look at a running trial's curve and decide whether it is worth continuing."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from enum import Enum

from hpoqueue.results import optimize_mode as modes
from hpoqueue.results.optimize_mode import OptimizeMode
from hpoqueue.results.records import TrialResult


class Decision(str, Enum):
    """An assessor's verdict on a running trial."""

    CONTINUE = "CONTINUE"
    STOP = "STOP"


class BaseAssessor(ABC):
    """Decides CONTINUE or STOP for a running trial from its intermediate results and the others'.

    Assessors are pure functions of their inputs: no state between calls, so they run as stateless
    Celery tasks and survive scheduler restarts for free.
    """

    def __init__(self, *, optimize_mode: OptimizeMode = "minimize") -> None:
        if optimize_mode not in modes.MODES:
            raise ValueError(f"optimize_mode must be 'minimize' or 'maximize', not {optimize_mode!r}")
        self.optimize_mode: OptimizeMode = optimize_mode

    def better(self, a: float, b: float) -> bool:
        """True when `a` is strictly better than `b` under optimize_mode."""
        return modes.better(a, b, self.optimize_mode)

    @abstractmethod
    def assess(self, trial: TrialResult, history: Sequence[TrialResult]) -> Decision:
        """`trial` is RUNNING with ``intermediate`` holding its results so far (called after each new
        one); `history` is every other trial of the experiment with its state and intermediate results."""
