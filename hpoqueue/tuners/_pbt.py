"""Population-based training (NNI's pbt_tuner): generations of ``population_size`` trials that pass
checkpoints on.

Member ``i`` of generation ``g`` saves to ``<all_checkpoint_dir>/<i>/<g>``. When a generation is
complete, the bottom ``fraction`` of members copy a random top-``fraction`` member: they load its
checkpoint and perturb its numeric parameters by ``1 +- factor`` (or resample any parameter with
probability ``resample_probability``), within the space's bounds; the others continue from their own
checkpoint with their own parameters. ``suggest`` returns nothing while a generation is running.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hpoqueue.results.records import Suggestion, TrialResult
from hpoqueue.settings import pbt_checkpoint_dir
from hpoqueue.space import SearchSpace
from hpoqueue.tuners._base import BaseTuner, OptimizeMode

LOAD_KEY, SAVE_KEY = "load_checkpoint_dir", "save_checkpoint_dir"


class PBTTuner(BaseTuner):
    """Synchronous PBT with NNI's classArgs and checkpoint-directory parameters."""

    reads_curves = False
    extra_params = frozenset({LOAD_KEY, SAVE_KEY})
    dedups = False
    model_based = False

    def __init__(self, space: SearchSpace, *, optimize_mode: OptimizeMode = "minimize",
                 seed: int | None = None, all_checkpoint_dir: str | None = None,
                 population_size: int = 10, factor: float = 0.2, resample_probability: float = 0.25,
                 fraction: float = 0.2) -> None:
        super().__init__(space, optimize_mode=optimize_mode, seed=seed)
        if not 2 <= population_size <= 100_000:  # it holds a list of this size
            raise ValueError(f"population_size must be between 2 and 100000, not {population_size!r}")
        if not 0 < fraction <= 0.5:
            raise ValueError(f"fraction must be in (0, 0.5], not {fraction!r}")
        if not 0 <= resample_probability <= 1 or factor < 0:
            raise ValueError("resample_probability must be in [0, 1] and factor >= 0")
        self.root = pbt_checkpoint_dir(all_checkpoint_dir)
        self.population_size = population_size
        self.factor, self.resample_probability, self.fraction = factor, resample_probability, fraction
        self.rng = np.random.default_rng(seed)
        self._numeric = {d.path for d in space.dims if d.parent is None and d.kind != "categorical"}
        self.generation = 0
        self._members: list[dict[str, Any]] = [self._with_dirs(space.sample(self.rng), i, None)
                                               for i in range(population_size)]
        self._handed = [False] * population_size
        self._losses: list[float | None] = [None] * population_size

    def _save_dir(self, member: int, generation: int) -> str:
        return str(self.root / str(member) / str(generation))

    def _with_dirs(self, config: dict, member: int, load_from: str | None) -> dict[str, Any]:
        save = self._save_dir(member, self.generation)
        return {**config, LOAD_KEY: load_from or save, SAVE_KEY: save}

    def _where(self, params: dict) -> tuple[int, int] | None:
        """(member, generation) from a trial's save directory, or None for a foreign one."""
        path = Path(str(params.get(SAVE_KEY, "")))
        if path.parent.parent != self.root or not (path.name.isdigit() and path.parent.name.isdigit()):
            return None
        return int(path.parent.name), int(path.name)

    def suggest(self, n: int) -> list[Suggestion]:
        out: list[Suggestion] = []
        for i in range(self.population_size):
            if len(out) < n and not self._handed[i]:
                self._handed[i] = True
                out.append(Suggestion(dict(self._members[i])))
        return out

    def mark_pending(self, params: dict) -> None:
        where = self._where(params)
        if where is not None and where[1] == self.generation:
            self._members[where[0]] = dict(params)
            self._handed[where[0]] = True

    def observe(self, result: TrialResult) -> None:
        where = self._where(result.params)
        if where is None or where[1] != self.generation:
            return
        self._losses[where[0]] = math.inf if result.value is None else self.loss(result.value)
        if all(loss is not None for loss in self._losses):
            self._next_generation()

    def _next_generation(self) -> None:
        order = np.argsort(np.array(self._losses, dtype=float), kind="stable")
        cut = max(1, int(self.population_size * self.fraction))
        top, bottom = order[:cut], set(order[-cut:].tolist())
        old = self._members
        self.generation += 1
        self._members = []
        for i, params in enumerate(old):
            config = {k: v for k, v in params.items() if k not in self.extra_params}
            if i in bottom:
                donor = old[int(self.rng.choice(top))]
                config = self.explore({k: v for k, v in donor.items() if k not in self.extra_params})
                self._members.append(self._with_dirs(config, i, donor[SAVE_KEY]))
            else:
                self._members.append(self._with_dirs(config, i, params[SAVE_KEY]))
        self._handed = [False] * self.population_size
        self._losses = [None] * self.population_size

    def explore(self, config: dict[str, Any]) -> dict[str, Any]:
        """Resample each parameter with probability resample_probability, else scale numeric ones by
        1 - factor or 1 + factor; the result is snapped back into the space (clipped, rounded)."""
        fresh = self.space.sample(self.rng)
        out = dict(config)
        for name in out:
            if self.rng.random() < self.resample_probability:
                out[name] = fresh[name]
            elif name in self._numeric:
                out[name] = out[name] * (1 + self.factor * self.rng.choice([-1.0, 1.0]))
        return self.space.decode(self.space.encode(out))

    def rebuild(self, trials: Sequence[TrialResult]) -> None:
        """Replay in sequence order, observing each finished trial at once: a generation's trials were
        all handed out after the previous generation finished."""
        for trial in trials:
            self.mark_pending(trial.params)
            if trial.state.is_finished():
                self.observe(trial)
