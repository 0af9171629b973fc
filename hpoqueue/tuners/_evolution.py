"""Naive evolution (NNI's ``Evolution``): tournaments of two, the winner mutated in one parameter."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from hpoqueue.results.records import TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.tuners._base import OptimizeMode, SequentialTuner
from hpoqueue.tuners._dedup import SeenConfigs

#: Mutations of a tournament's winner tried before settling for a random unseen configuration.
MUTATION_TRIES = 5

Path = tuple[str, ...]


class EvolutionTuner(SequentialTuner):
    """The first `population_size` suggestions are random. After that each suggestion draws two
    individuals from the population of finished trials, drops the worse from the population, and
    returns the better one with one active parameter re-sampled (a nested choice re-samples its whole
    option). Failed trials never join the population."""

    reads_curves = False
    def __init__(self, space: SearchSpace, *, optimize_mode: OptimizeMode = "minimize",
                 seed: int | None = None, population_size: int = 32) -> None:
        super().__init__(space, optimize_mode=optimize_mode, seed=seed)
        if population_size < 1:
            raise ValueError(f"population_size must be at least 1, not {population_size}")
        self.population_size = population_size
        self._rng = np.random.default_rng(seed)
        self._seen = SeenConfigs(space)
        self._handed_out = 0
        self._population: list[tuple[dict[str, Any], float]] = []  # (params, loss) of finished trials

    def propose(self) -> dict[str, Any] | None:
        """A mutant of a tournament winner once the first population is out, else random (unseen)."""
        if self._seen.exhausted:
            return None
        if self._handed_out >= self.population_size and self._population:
            winner = self._tournament()
            for _ in range(MUTATION_TRIES):
                child = self._mutate(winner)
                if child not in self._seen:
                    return child
        return self._seen.random_unseen(self._rng)

    def _tournament(self) -> dict[str, Any]:
        """Two random individuals: the worse leaves the population, the better's params are returned."""
        if len(self._population) == 1:
            return self._population[0][0]
        i, j = (int(k) for k in self._rng.choice(len(self._population), size=2, replace=False))
        if self._population[j][1] < self._population[i][1]:
            i, j = j, i
        winner = self._population[i][0]
        del self._population[j]
        return winner

    def _mutate(self, params: dict[str, Any]) -> dict[str, Any]:
        """`params` with one randomly chosen active parameter re-sampled from its own spec."""
        sites = list(_active_params(self.space.raw, params, ()))
        path, spec = sites[int(self._rng.integers(len(sites)))]
        child = copy.deepcopy(params)
        parent = child
        for name in path[:-1]:
            parent = parent[name]
        parent[path[-1]] = SearchSpace.from_dict({path[-1]: spec}).sample(self._rng)[path[-1]]
        return child

    def mark_pending(self, params: dict) -> None:
        if self._seen.add(params):
            self._handed_out += 1

    def observe(self, result: TrialResult) -> None:
        if result.value is not None:
            self._population.append((result.params, self.loss(float(result.value))))

    def rebuild(self, trials: Sequence[TrialResult]) -> None:
        """Replay the history, then keep the best `population_size` finished trials: the tournaments
        that trimmed the population were random and are not replayed."""
        super().rebuild(trials)
        self._population = sorted(self._population, key=lambda ind: ind[1])[:self.population_size]

    @property
    def exhausted(self) -> bool:
        return self._seen.exhausted


def _active_params(raw: dict, params: dict[str, Any], prefix: Path) -> Iterator[tuple[Path, dict]]:
    """(path, spec) of every parameter active in `params`, nested ones under their chosen option."""
    for name, spec in raw.items():
        if name == "_name":
            continue
        yield (*prefix, name), spec
        value = params.get(name)
        if spec["_type"] == "choice" and isinstance(value, dict) and "_name" in value:
            option = next((o for o in spec["_value"]
                           if isinstance(o, dict) and o.get("_name") == value["_name"]), None)
            if option is not None:
                yield from _active_params(option, value, (*prefix, name))
