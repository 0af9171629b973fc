"""Hyperband (NNI's hyperband_advisor) and the bracket schedule it shares with BOHB.

Bracket ``s`` (``s_max`` down to 0, then again: NNI loops) starts ``n = ceil((s_max+1) * eta^s / (s+1))``
configurations at budget ``max_budget * eta^-s``; each rung is a barrier, after which the best
``floor(n_i / eta)`` by loss (failed trials last) run again as new trials at ``eta`` times the budget.
The budget reaches the trial as ``params["TRIAL_BUDGET"]``.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hpoqueue.results.records import Suggestion, TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.tuners._base import BaseTuner, OptimizeMode

BUDGET_KEY = "TRIAL_BUDGET"
_EPS = 1e-6


def bracket_plan(max_budget: float, min_budget: float, eta: int) -> list[list[tuple[int, float]]]:
    """``(n_i, r_i)`` per rung for every bracket of one Hyperband iteration, largest bracket first."""
    s_max = math.floor(math.log(max_budget / min_budget, eta) + _EPS)
    plan = []
    for s in range(s_max, -1, -1):
        n = math.ceil((s_max + 1) * eta**s / (s + 1) - _EPS)
        plan.append([(math.floor(n * eta**-i + _EPS), _budget(max_budget * eta ** (i - s)))
                     for i in range(s + 1)])
    return plan


def _budget(value: float) -> float | int:
    """Budgets that are whole numbers are handed out as ints (81 * 3**-4 -> 1, not 1.0000000000000002)."""
    return round(value) if abs(value - round(value)) < _EPS else round(value, 9)


@dataclass
class _Rung:
    size: int
    budget: float | int
    to_sample: int = 0  # rung 0 only: configurations still to be drawn
    to_hand: list[dict] = field(default_factory=list)  # promoted configurations not yet handed out
    handed: int = 0
    results: list[tuple[float, dict]] = field(default_factory=list)

    def complete(self) -> bool:
        return self.handed == self.size and len(self.results) == self.size


@dataclass
class _Bracket:
    rungs: list[_Rung]
    current: int = 0

    def done(self) -> bool:
        return self.current == len(self.rungs) - 1 and self.rungs[-1].complete()

    def has_work(self) -> bool:
        rung = self.rungs[self.current]
        return rung.to_sample > 0 or bool(rung.to_hand)


class BracketTuner(BaseTuner):
    """Successive-halving brackets with rung barriers; subclasses choose the new configurations."""

    reads_curves = False
    extra_params = frozenset({BUDGET_KEY})
    dedups = False
    model_based = False

    def __init__(self, space: SearchSpace, *, optimize_mode: OptimizeMode = "minimize",
                 seed: int | None = None, max_budget: float, min_budget: float, eta: int,
                 serial: bool) -> None:
        super().__init__(space, optimize_mode=optimize_mode, seed=seed)
        if not (isinstance(eta, int) and eta >= 2):
            raise ValueError(f"eta must be an integer >= 2, not {eta!r}")
        if not (0 < min_budget <= max_budget):
            raise ValueError(f"budgets must satisfy 0 < min_budget <= max_budget, not {min_budget!r} "
                             f"and {max_budget!r}")
        self.eta = eta
        self.plan = bracket_plan(max_budget, min_budget, eta)
        self.serial = serial
        self.rng = np.random.default_rng(seed)
        self._brackets: list[_Bracket] = []
        self._started = 0
        self._slots: dict[tuple[str, float], deque[_Bracket]] = {}
        self.drawn: set[str] = set()  # keys of every fresh (first-rung) configuration handed out

    @abstractmethod
    def new_config(self, budget: float) -> dict:
        """A fresh configuration (without TRIAL_BUDGET) for the first rung of a bracket at `budget`."""

    def _start_bracket(self) -> _Bracket:
        rungs = [_Rung(n, r) for n, r in self.plan[self._started % len(self.plan)]]
        rungs[0].to_sample = rungs[0].size
        bracket = _Bracket(rungs)
        self._brackets.append(bracket)
        self._started += 1
        return bracket

    def _bracket_with_work(self) -> _Bracket | None:
        for bracket in self._brackets:
            if bracket.has_work():
                return bracket
        if self.serial and self._brackets:
            return None
        return self._start_bracket()

    def suggest(self, n: int) -> list[Suggestion]:
        out: list[Suggestion] = []
        while len(out) < n and (bracket := self._bracket_with_work()) is not None:
            rung = bracket.rungs[bracket.current]
            config = rung.to_hand.pop(0) if rung.to_hand else self.new_config(rung.budget)
            params = self._hand_out(bracket, config)
            out.append(Suggestion(params))
        return out

    def _hand_out(self, bracket: _Bracket, config: dict) -> dict:
        rung = bracket.rungs[bracket.current]
        rung.to_sample = max(rung.to_sample - 1, 0)
        rung.handed += 1
        params = {**config, BUDGET_KEY: rung.budget}
        key = self._slot_key(params)
        self._slots.setdefault(key, deque()).append(bracket)
        if bracket.current == 0:
            self.drawn.add(key[0])
        return params

    def _slot_key(self, params: dict) -> tuple[str, float]:
        config = {k: v for k, v in params.items() if k != BUDGET_KEY}
        return self.space.key(config), float(params[BUDGET_KEY])

    def mark_pending(self, params: dict) -> None:
        """Put a trial handed out before a resume back into its bracket and rung."""
        config = {k: v for k, v in params.items() if k != BUDGET_KEY}
        key, budget = self._slot_key(params)
        for bracket in self._brackets:
            rung = bracket.rungs[bracket.current]
            keys = [self.space.key(c) for c in rung.to_hand]
            if key in keys and abs(rung.budget - budget) < _EPS:
                rung.to_hand.pop(keys.index(key))
                self._hand_out(bracket, config)
                return
        for bracket in self._brackets:
            rung = bracket.rungs[bracket.current]
            if rung.to_sample > 0 and abs(rung.budget - budget) < _EPS:
                self._hand_out(bracket, config)
                return
        while True:  # brackets that started later: open them in order until the budget fits
            bracket = self._start_bracket()
            if abs(bracket.rungs[0].budget - budget) < _EPS:
                self._hand_out(bracket, config)
                return

    def observe(self, result: TrialResult) -> None:
        queue = self._slots.get(self._slot_key(result.params))
        if not queue:
            return
        bracket = queue.popleft()
        loss = math.inf if result.value is None else self.loss(result.value)
        config = {k: v for k, v in result.params.items() if k != BUDGET_KEY}
        rung = bracket.rungs[bracket.current]
        rung.results.append((loss, config))
        self.on_result(config, float(result.params[BUDGET_KEY]), loss)
        if rung.complete() and bracket.current < len(bracket.rungs) - 1:
            ranked = sorted(rung.results, key=lambda item: item[0])
            bracket.current += 1
            nxt = bracket.rungs[bracket.current]
            nxt.to_hand = [cfg for _, cfg in ranked[:nxt.size]]
        if bracket.done():
            self._brackets.remove(bracket)

    def on_result(self, config: dict, budget: float, loss: float) -> None:
        """Hook for model-based subclasses: one finished trial (loss is inf when it failed)."""

    def rebuild(self, trials: Sequence[TrialResult]) -> None:
        """Replay in sequence order, observing each finished trial at once: a rung's results were all
        in before any of its promotions was handed out, so the brackets come back as they were."""
        for trial in trials:
            self.mark_pending(trial.params)
            if trial.state.is_finished():
                self.observe(trial)


class HyperbandTuner(BracketTuner):
    """NNI's Hyperband: random configurations, ``R`` the largest budget, budgets from ``R * eta^-s_max``."""

    def __init__(self, space: SearchSpace, *, optimize_mode: OptimizeMode = "minimize",
                 seed: int | None = None, R: float = 60, eta: int = 3,
                 exec_mode: str = "parallelism") -> None:
        if exec_mode not in ("parallelism", "serial"):
            raise ValueError(f"exec_mode must be 'parallelism' or 'serial', not {exec_mode!r}")
        super().__init__(space, optimize_mode=optimize_mode, seed=seed, max_budget=R, min_budget=1,
                         eta=eta, serial=exec_mode == "serial")

    def new_config(self, budget: float) -> dict:
        for _ in range(100):  # avoid re-running a configuration on a finite space while we can
            config = self.space.sample(self.rng)
            if self.space.key(config) not in self.drawn:
                break
        return config
