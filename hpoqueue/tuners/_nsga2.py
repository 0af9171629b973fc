"""NSGA-II: an evolutionary search for the Pareto front of several objectives (``objectives`` in the
config); with one objective it is a plain genetic search."""

from __future__ import annotations

from typing import Any

import numpy as np

from hpoqueue.results.pareto import crowding, fronts, losses, objective_values
from hpoqueue.results.records import TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.tuners._base import OptimizeMode, SequentialTuner
from hpoqueue.tuners._dedup import SeenConfigs


class NSGA2Tuner(SequentialTuner):
    """Random configurations until `population_size` results are in; then each child takes every top-level
    parameter from one of two parents (binary tournaments on front rank, then crowding distance) and
    re-samples one parameter. The population is the best `population_size` by the same order."""

    reads_curves = False
    multi_objective = True

    def __init__(self, space: SearchSpace, *, optimize_mode: OptimizeMode = "minimize", seed: int | None = None,
                 objectives: list[dict[str, str]] | None = None, population_size: int = 16) -> None:
        super().__init__(space, optimize_mode=optimize_mode, seed=seed)
        if population_size < 2:
            raise ValueError(f"population_size must be at least 2, not {population_size}")
        self.objectives = [(o["metric"], o["mode"]) for o in objectives or []]
        self.population_size = population_size
        self._rng = np.random.default_rng(seed)
        self._seen = SeenConfigs(space)
        self._population: list[tuple[dict[str, Any], tuple[float, ...]]] = []
        self._rank: list[tuple[int, float]] = []  #: (front, -crowding) of each member, lower is better

    def _losses(self, result: TrialResult) -> tuple[float, ...] | None:
        if not self.objectives:
            return None if result.value is None else (self.loss(float(result.value)),)
        values = objective_values(self.objectives, result.value, result.data)
        return None if values is None else losses(self.objectives, values)

    def observe(self, result: TrialResult) -> None:
        point = self._losses(result)
        if point is None:
            return
        self._population.append((result.params, point))
        points = [p for _, p in self._population]
        order: dict[int, tuple[int, float]] = {}
        for rank, front in enumerate(fronts(points)):
            order.update((i, (rank, -d)) for i, d in crowding(points, front).items())
        keep = sorted(order, key=order.__getitem__)[:self.population_size]
        self._population = [self._population[i] for i in keep]
        self._rank = [order[i] for i in keep]

    def _tournament(self) -> dict[str, Any]:
        a, b = self._rng.integers(len(self._population), size=2)
        return self._population[min(a, b, key=lambda i: self._rank[i])][0]

    def propose(self) -> dict[str, Any] | None:
        if len(self._population) < self.population_size:
            return self._seen.random_unseen(self._rng)
        first, second = self._tournament(), self._tournament()
        names = self.space.names()
        child = {n: (first if self._rng.random() < 0.5 else second)[n] for n in names}
        mutated = names[int(self._rng.integers(len(names)))]
        child[mutated] = self.space.sample(self._rng)[mutated]
        return self._seen.random_unseen(self._rng) if child in self._seen else child

    def mark_pending(self, params: dict) -> None:
        self._seen.add(params)

    @property
    def exhausted(self) -> bool:
        return self._seen.exhausted
