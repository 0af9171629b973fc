"""Batch: run a user-given list of full configurations, in order (NNI's ``BatchTuner``)."""

from __future__ import annotations

from typing import Any

from hpoqueue.errors import SearchSpaceError
from hpoqueue.results.records import Suggestion
from hpoqueue.space import SearchSpace
from hpoqueue.tuners._base import BaseTuner, OptimizeMode

_SHAPE_HINT = ('BatchTuner needs exactly one parameter of _type "choice" whose options are the '
               'configurations, e.g. {"combine_params": {"_type": "choice", "_value": '
               '[{"lr": 0.1}, {"lr": 0.01}]}}')


class BatchTuner(BaseTuner):
    """The space is one ``choice`` whose options are parameter dicts; each option, verbatim, is one
    trial's parameters (not wrapped in the choice's name, as in NNI). Exhausted after the last one."""

    reads_curves = False
    def __init__(self, space: SearchSpace, *, optimize_mode: OptimizeMode = "minimize",
                 seed: int | None = None) -> None:
        super().__init__(space, optimize_mode=optimize_mode, seed=seed)
        self._todo: list[dict[str, Any]] = list(batch_configs(space))

    def suggest(self, n: int) -> list[Suggestion]:
        taken, self._todo = self._todo[:max(n, 0)], self._todo[max(n, 0):]
        return [Suggestion(params) for params in taken]

    @property
    def exhausted(self) -> bool:
        return not self._todo

    def mark_pending(self, params: dict) -> None:
        if params in self._todo:
            self._todo.remove(params)

    def check_params(self, params: dict) -> None:
        """Raise SearchSpaceError unless `params` is one of the batch's configurations (a Batch trial's
        parameters are an option, not a value of the space, so `space.validate_params` does not apply)."""
        if params not in batch_configs(self.space):
            raise SearchSpaceError(f"{params!r} is not one of the batch's configurations",
                                   source=getattr(self.space, "source", None), field="searchSpace")


def batch_configs(space: SearchSpace) -> list[dict[str, Any]]:
    """The configurations listed by a BatchTuner space, or SearchSpaceError naming the fix."""
    source = getattr(space, "source", None)
    raw = space.raw
    if len(raw) != 1:
        raise SearchSpaceError(f"BatchTuner takes one parameter, got {len(raw)} ({', '.join(raw)})",
                               source=source, field="searchSpace", hint=_SHAPE_HINT)
    (name, spec), = raw.items()
    options = spec.get("_value") if isinstance(spec, dict) else None
    if not isinstance(spec, dict) or spec.get("_type") != "choice" or not isinstance(options, list):
        raise SearchSpaceError(f"BatchTuner's parameter '{name}' must be a choice", source=source,
                               field=f"searchSpace.{name}", hint=_SHAPE_HINT)
    for i, option in enumerate(options):
        if not isinstance(option, dict):
            raise SearchSpaceError(f"option {i} is {option!r}, not a dict of parameters", source=source,
                                   field=f"searchSpace.{name}._value", hint=_SHAPE_HINT)
    return [dict(option) for option in options]
