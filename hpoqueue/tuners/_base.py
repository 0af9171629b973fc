"""The tuner interface: suggest configurations, observe finished trials, rebuild after a resume."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from hpoqueue.results import optimize_mode as modes
from hpoqueue.results.optimize_mode import OptimizeMode
from hpoqueue.results.records import Suggestion, TrialResult
from hpoqueue.space import SearchSpace


class BaseTuner(ABC):
    """A tuner proposes parameters; the scheduler runs them and reports back.

    The scheduler guarantees: `suggest` is called only when a trial slot is free; `observe` is called
    exactly once per trial it suggested, when that trial reaches a finished state (any state: its
    ``value`` is None when the trial produced no final result); `rebuild` is called once, on a fresh
    instance, before any other call when an experiment is resumed.
    """

    #: keys a member adds to the parameters besides the space's own (Hyperband's TRIAL_BUDGET, ...)
    extra_params: frozenset[str] = frozenset()
    #: never proposes a configuration twice, and becomes `exhausted` on a finite space
    dedups: bool = True
    #: learns from results (the contract suite checks it beats random search)
    model_based: bool = False
    #: reads TrialResult.intermediate in `observe`/`rebuild`; when False a resume reads no finished curve
    #: for it (the built-in tuners: 100,000 curves of 20 values are about 70 MiB)
    reads_curves: bool = True

    def __init__(self, space: SearchSpace, *, optimize_mode: OptimizeMode = "minimize",
                 seed: int | None = None) -> None:
        if optimize_mode not in modes.MODES:
            raise ValueError(f"optimize_mode must be 'minimize' or 'maximize', not {optimize_mode!r}")
        self.space = space
        self.optimize_mode: OptimizeMode = optimize_mode
        self.seed = seed

    def loss(self, value: float) -> float:
        """`value` turned into a quantity to minimise, whatever the optimize_mode."""
        return modes.loss(value, self.optimize_mode)

    @abstractmethod
    def suggest(self, n: int) -> list[Suggestion]:
        """Up to `n` new configurations. Fewer (even none) when the tuner waits for results (Hyperband
        between rungs) or the space is exhausted; `exhausted` tells the two apart. Suggestions handed out
        and not yet observed are pending: a tuner must not propose near-duplicates of them."""

    def observe(self, result: TrialResult) -> None:
        """A trial this tuner suggested has finished (see TrialResult.value for its final result)."""

    @property
    def exhausted(self) -> bool:
        """True once `suggest` will never return anything again (finite space fully tried)."""
        return False

    def rebuild(self, trials: Sequence[TrialResult]) -> None:
        """Restore state on resume from every trial created so far, in sequence order.

        Unfinished trials (WAITING/RUNNING) are pending suggestions; finished ones are observed. The
        default replays them through `mark_pending` and `observe`.
        """
        for trial in trials:
            self.mark_pending(trial.params)
        for trial in trials:
            if trial.state.is_finished():
                self.observe(trial)

    def mark_pending(self, params: dict) -> None:
        """Record that `params` was handed out (used by `rebuild`); tuners that track what they proposed
        override this."""

    def set_trials_left(self, n: int | None) -> None:
        """The experiment may create `n` more trials (its maxTrialNumber less those created so far; None:
        no limit). The scheduler says so before each `suggest`; a tuner may spend the end of the budget
        differently (TPE searches around the best trial in its last rounds, GP's batches close in). The default
        ignores it."""


class SequentialTuner(BaseTuner):
    """A tuner that proposes one configuration at a time, each seeing the ones pending before it."""

    def suggest(self, n: int) -> list[Suggestion]:
        out: list[Suggestion] = []
        for _ in range(n):
            params = self.propose()
            if params is None:
                break
            self.mark_pending(params)
            out.append(Suggestion(params))
        return out

    @abstractmethod
    def propose(self) -> dict | None:
        """The next configuration, or None when there is none to give now (see `exhausted`)."""
