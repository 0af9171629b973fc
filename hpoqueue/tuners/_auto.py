"""Auto: the tuner hpoqueue picks by search space and budget (the default when a config names none).

GP is the strongest per trial on small, mostly numeric spaces (nested ones included: best of all methods
on the benchmark's nested model choice; see benchmarks/results/tuners.md), but its cost grows with the
number of trials; TPE handles large and
categorical spaces and any number of trials cheaply. So Auto runs GP while the space has at most
``GP_MAX_PARAMS`` parameters (those of every branch counted), at least two thirds of them numeric, and
hands over to TPE (rebuilt from every trial so far) once ``GP_MAX_TRIALS`` trials were handed out;
otherwise it runs TPE from the start.
"""

from __future__ import annotations

from collections.abc import Sequence

from hpoqueue.results.records import Suggestion, TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.states import TrialState
from hpoqueue.tuners._base import BaseTuner, OptimizeMode

GP_MAX_PARAMS = 10
GP_MAX_TRIALS = 200


def gp_suits(space: SearchSpace) -> bool:
    """True for a small, mostly numeric space: Auto starts with GP there."""
    dims = space.dims
    numeric = sum(d.kind != "categorical" for d in dims)
    return 0 < len(dims) <= GP_MAX_PARAMS and 3 * numeric >= 2 * len(dims)


def describe(space: SearchSpace, trials: int = 0) -> str:
    """What Auto runs on `space` once `trials` trials were created, in words (`submit`, `status`)."""
    if not gp_suits(space):
        return "TPE (a large or mostly categorical space)"
    if trials >= GP_MAX_TRIALS:
        return f"TPE (GP ran the first {GP_MAX_TRIALS} trials of this small, mostly numeric space)"
    return f"GP (a small, mostly numeric space; TPE after {GP_MAX_TRIALS} trials)"


def tuner_summary(name: str | None, class_name: str | None, space: SearchSpace, trials: int = 0) -> str:
    """The tuner a config names, and for Auto what it runs: ``Auto: GP (...)``."""
    if class_name:
        return class_name
    if name is not None and name.lower() in ("auto", "autotuner"):
        return f"Auto: {describe(space, trials)}"
    return str(name)


class AutoTuner(BaseTuner):
    """GP or TPE as the space and the number of trials suit (see the module's docstring)."""

    reads_curves = False
    model_based = True

    def __init__(self, space: SearchSpace, *, optimize_mode: OptimizeMode = "minimize",
                 seed: int | None = None) -> None:
        super().__init__(space, optimize_mode=optimize_mode, seed=seed)
        self._gp_phase = gp_suits(space)
        self._impl = self._make("GP" if self._gp_phase else "TPE")
        self._history: dict[str, TrialResult] = {}  # every trial handed out, kept while GP runs
        self._trials_left: int | None = None  # as last told (set_trials_left)

    def _make(self, name: str) -> BaseTuner:
        """A fresh GP or TPE (imported here: `status` reads this module's description without scipy)."""
        if name == "GP":
            from hpoqueue.tuners._gp import GPTuner

            return GPTuner(self.space, optimize_mode=self.optimize_mode, seed=self.seed)
        from hpoqueue.tuners._tpe import TPETuner

        return TPETuner(self.space, optimize_mode=self.optimize_mode, seed=self.seed)

    @property
    def current(self) -> str:
        """The tuner running now: 'GP' or 'TPE'."""
        return "GP" if self._gp_phase else "TPE"

    def suggest(self, n: int) -> list[Suggestion]:
        out: list[Suggestion] = []
        while len(out) < n:
            if self._gp_phase and len(self._history) >= GP_MAX_TRIALS:
                self._hand_over(len(out))
            got = self._impl.suggest(1 if self._gp_phase else n - len(out))
            if not got:
                break
            for s in got:
                self._remember(s.params)
            out += got
        return out

    def _hand_over(self, suggested: int) -> None:
        """Switch to TPE, rebuilt from every trial so far (pending ones stay pending), `suggested` trials
        into the current `suggest`."""
        tpe = self._make("TPE")
        tpe.rebuild(list(self._history.values()))
        tpe.set_trials_left(None if self._trials_left is None else self._trials_left - suggested)
        self._impl, self._gp_phase, self._history = tpe, False, {}

    def _remember(self, params: dict) -> None:
        if self._gp_phase:
            key = self.space.key(params)
            self._history.setdefault(key, TrialResult(len(self._history) + 1, params, TrialState.RUNNING))

    def mark_pending(self, params: dict) -> None:
        self._impl.mark_pending(params)
        self._remember(params)

    def set_trials_left(self, n: int | None) -> None:
        self._trials_left = n
        self._impl.set_trials_left(n)

    def observe(self, result: TrialResult) -> None:
        self._impl.observe(result)
        key = self.space.key(result.params)
        if self._gp_phase and key in self._history:
            self._history[key] = TrialResult(self._history[key].seq, result.params, result.state, result.value)

    def rebuild(self, trials: Sequence[TrialResult]) -> None:
        if self._gp_phase and len(trials) >= GP_MAX_TRIALS:
            self._impl, self._gp_phase = self._make("TPE"), False
        self._impl.rebuild(trials)
        for trial in trials:
            self._remember(trial.params)
            if trial.state.is_finished() and self._gp_phase:
                self._history[self.space.key(trial.params)] = trial

    @property
    def exhausted(self) -> bool:
        return self._impl.exhausted
