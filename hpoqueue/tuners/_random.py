"""Random search: independent samples, never repeating a configuration (NNI's ``Random``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from hpoqueue.space import SearchSpace
from hpoqueue.tuners._base import OptimizeMode, SequentialTuner
from hpoqueue.tuners._dedup import SeenConfigs


class RandomTuner(SequentialTuner):
    """Samples the space uniformly (per each parameter's distribution); on a finite space it hands out
    every configuration at most once and is exhausted after `space.size` of them."""

    reads_curves = False
    def __init__(self, space: SearchSpace, *, optimize_mode: OptimizeMode = "minimize",
                 seed: int | None = None) -> None:
        super().__init__(space, optimize_mode=optimize_mode, seed=seed)
        self._rng = np.random.default_rng(seed)
        self._seen = SeenConfigs(space)

    def propose(self) -> dict[str, Any] | None:
        return self._seen.random_unseen(self._rng)

    @property
    def exhausted(self) -> bool:
        return self._seen.exhausted

    def mark_pending(self, params: dict) -> None:
        self._seen.add(params)
