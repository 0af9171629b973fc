"""Random search: independent samples, never repeating a configuration (NNI's ``Random``)."""

from __future__ import annotations

import numpy as np

from hpoqueue.records import Suggestion
from hpoqueue.space import SearchSpace
from hpoqueue.tuners._base import BaseTuner, OptimizeMode
from hpoqueue.tuners._dedup import SeenConfigs
from hpoqueue.tuners._registry import TUNERS


@TUNERS.register("Random", "RandomSearch")
class RandomTuner(BaseTuner):
    """Samples the space uniformly (per each parameter's distribution); on a finite space it hands out
    every configuration at most once and is exhausted after `space.size` of them."""

    extra_params: frozenset[str] = frozenset()
    dedups = True
    model_based = False

    def __init__(self, space: SearchSpace, *, optimize_mode: OptimizeMode = "minimize",
                 seed: int | None = None) -> None:
        super().__init__(space, optimize_mode=optimize_mode, seed=seed)
        self._rng = np.random.default_rng(seed)
        self._seen = SeenConfigs(space)

    def suggest(self, n: int) -> list[Suggestion]:
        out: list[Suggestion] = []
        for _ in range(n):
            params = self._seen.random_unseen(self._rng)
            if params is None:
                break
            self._seen.add(params)
            out.append(Suggestion(params))
        return out

    @property
    def exhausted(self) -> bool:
        return self._seen.exhausted

    def mark_pending(self, params: dict) -> None:
        self._seen.add(params)
