"""Remembering every configuration a tuner handed out, so it never proposes one twice (NNI PR #4679)."""

from __future__ import annotations

from typing import Any

import numpy as np

from hpoqueue.space import SearchSpace

#: Random draws tried before giving up on finding an unseen configuration by sampling.
SAMPLE_TRIES = 100
#: Finite spaces up to this size fall back to picking among their unseen grid points.
ENUMERATE_LIMIT = 200_000


class SeenConfigs:
    """Keys of every configuration handed out (pending and finished), plus unseen-config sampling."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self._keys: set[str] = set()

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, params: dict[str, Any]) -> bool:
        return self.space.key(params) in self._keys

    def add(self, params: dict[str, Any]) -> bool:
        """Record `params`; False when it had been seen already."""
        key = self.space.key(params)
        if key in self._keys:
            return False
        self._keys.add(key)
        return True

    @property
    def exhausted(self) -> bool:
        """True once every configuration of a finite space was handed out."""
        size = self.space.size
        return size is not None and len(self._keys) >= size

    def random_unseen(self, rng: np.random.Generator) -> dict[str, Any] | None:
        """A random configuration not handed out yet; None only when a finite space is exhausted.

        Samples up to SAMPLE_TRIES times, then picks among the unseen points of a finite space. A space
        too large to enumerate that still repeats gets its last sample back: the search is bounded.
        """
        if self.exhausted:
            return None
        params: dict[str, Any] = {}
        for _ in range(SAMPLE_TRIES):
            params = self.space.sample(rng)
            if params not in self:
                return params
        size = self.space.size
        if size is not None and size <= ENUMERATE_LIMIT:
            unseen = [p for p in self.space.grid() if p not in self]
            return unseen[int(rng.integers(len(unseen)))] if unseen else None
        return params
