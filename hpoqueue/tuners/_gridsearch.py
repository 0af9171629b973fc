"""Grid search: every configuration of a finite space in order; continuous ranges refined step by step."""

from __future__ import annotations

from collections.abc import Iterator

from hpoqueue.results.records import Suggestion
from hpoqueue.space import SearchSpace
from hpoqueue.tuners._base import BaseTuner, OptimizeMode
from hpoqueue.tuners._dedup import SeenConfigs

#: Values per continuous parameter in the first, coarsest grid (both ends and the middle).
FIRST_POINTS = 3


class GridSearchTuner(BaseTuner):
    """Enumerates `space.grid()`. With continuous parameters it starts from a coarse grid and, when
    that is used up, subdivides it (``points -> 2 * points - 1``, a superset of the previous grid)
    skipping what was tried, as NNI's GridSearch does; such a space is never exhausted."""

    reads_curves = False
    def __init__(self, space: SearchSpace, *, optimize_mode: OptimizeMode = "minimize",
                 seed: int | None = None) -> None:
        super().__init__(space, optimize_mode=optimize_mode, seed=seed)
        self._seen = SeenConfigs(space)
        self._finite = space.size is not None
        self._points = 0 if self._finite else FIRST_POINTS
        grid = space.grid(self._points)
        self._grid_size = len(grid)
        self._pending_grid: Iterator[dict] = iter(grid)
        self._done = False

    def suggest(self, n: int) -> list[Suggestion]:
        out: list[Suggestion] = []
        while len(out) < n and not self._done:
            params = next(self._pending_grid, None)
            if params is None:
                self._refine()
            elif self._seen.add(params):
                out.append(Suggestion(params))
        return out

    def _refine(self) -> None:
        """The current grid is used up: finish (finite space, or a grid that refining no longer
        grows) or move to the next, finer grid."""
        if self._finite:
            self._done = True
            return
        self._points = 2 * self._points - 1
        grid = self.space.grid(self._points)
        self._done = len(grid) <= self._grid_size
        self._grid_size = len(grid)
        self._pending_grid = iter(grid)

    @property
    def exhausted(self) -> bool:
        return self._done or self._seen.exhausted

    def mark_pending(self, params: dict) -> None:
        self._seen.add(params)
