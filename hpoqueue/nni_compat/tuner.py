"""Custom tuners written against NNI's ``nni.tuner.Tuner`` run unchanged: an adapter drives one as
NNI's dispatcher does (update_search_space, generate_parameters, receive_trial_result, trial_end)."""

from __future__ import annotations

import inspect
import json
from typing import Any

from hpoqueue.errors import ConfigError
from hpoqueue.nni_compat.shim_path import use_nni_shim_here
from hpoqueue.registry import AlgorithmConfigLike
from hpoqueue.results.records import Suggestion, TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.states import TrialState
from hpoqueue.tuners._base import BaseTuner, OptimizeMode
from hpoqueue.tuners._registry import TUNERS


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


class NniTunerAdapter(BaseTuner):
    """A BaseTuner around an instance of an NNI Tuner subclass. Parameter ids count from 0 as in NNI;
    trials this instance did not generate (enqueued, warm-started, replayed on resume) reach it with
    ``customized=True``."""

    dedups = False
    reads_curves = False  #: an NNI tuner is given final results only

    def __init__(self, tuner: Any, space: SearchSpace, *, optimize_mode: OptimizeMode = "minimize",
                 seed: int | None = None) -> None:
        super().__init__(space, optimize_mode=optimize_mode, seed=seed)
        import nni

        self.tuner = tuner
        self._no_more: type[BaseException] = getattr(nni, "NoMoreTrialError", StopIteration)
        self._next_id = 0
        self._ids: dict[str, list[tuple[int, bool]]] = {}  #: params -> (parameter id, generated here)
        self._exhausted = False
        tuner.update_search_space(space.raw)

    def _new_id(self, params: dict[str, Any], generated: bool) -> int:
        self._next_id += 1
        self._ids.setdefault(_key(params), []).append((self._next_id - 1, generated))
        return self._next_id - 1

    def suggest(self, n: int) -> list[Suggestion]:
        out: list[Suggestion] = []
        for _ in range(n):
            try:
                params = self.tuner.generate_parameters(self._next_id)
            except self._no_more:
                self._exhausted = True
                break
            self._new_id(params, generated=True)
            out.append(Suggestion(dict(params)))
        return out

    def mark_pending(self, params: dict) -> None:
        self._new_id(params, generated=False)

    def observe(self, result: TrialResult) -> None:
        ids = self._ids.get(_key(result.params))
        parameter_id, generated = ids.pop(0) if ids else (self._new_id(result.params, False), False)
        customized = not generated
        if result.value is not None:
            self.tuner.receive_trial_result(parameter_id, result.params, result.value, customized=customized)
        self.tuner.trial_end(parameter_id, result.state is TrialState.SUCCEEDED)

    @property
    def exhausted(self) -> bool:
        return self._exhausted

    def update_space(self, space: SearchSpace) -> None:
        """A new search space for the trials still to come (`hpoqueue update --search-space`)."""
        self.space = space
        self.tuner.update_search_space(space.raw)


def nni_tuner(config: AlgorithmConfigLike, space: SearchSpace, *, optimize_mode: OptimizeMode,
              seed: int | None, source: str | None = None) -> NniTunerAdapter | None:
    """The adapter around `config`'s className when that class is an NNI Tuner, else None."""
    use_nni_shim_here()
    import nni.tuner

    cls = TUNERS.import_class(config.class_name or "", config.code_directory, source=source)  # type: ignore[arg-type]
    if not (inspect.isclass(cls) and issubclass(cls, nni.tuner.Tuner)):
        return None
    try:
        instance = cls(**(config.class_args or {}))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{config.class_name}: {exc}", source=source, field="tuner.classArgs") from exc
    return NniTunerAdapter(instance, space, optimize_mode=optimize_mode, seed=seed)
