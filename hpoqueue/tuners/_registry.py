"""The tuner registry: NNI names (case-insensitive) and aliases, each member imported on first use."""

from __future__ import annotations

from hpoqueue.registry import AlgorithmConfigLike, Registry
from hpoqueue.space import SearchSpace
from hpoqueue.tuners._base import BaseTuner, OptimizeMode

TUNERS: Registry[BaseTuner] = Registry("tuner", BaseTuner)
for _target, _names in {
    "_random:RandomTuner": ("Random", "RandomSearch"),
    "_gridsearch:GridSearchTuner": ("GridSearch", "Grid", "GridSearchTuner"),
    "_batch:BatchTuner": ("BatchTuner", "Batch"),
    "_tpe:TPETuner": ("TPE", "TPETuner"),
    "_hyperopt:AnnealTuner": ("Anneal", "AnnealTuner"),
    "_evolution:EvolutionTuner": ("Evolution", "EvolutionTuner", "NaiveEvolution"),
    "_gp:GPTuner": ("GP", "GPTuner"),
    "_hyperband:HyperbandTuner": ("Hyperband", "HyperbandTuner"),
    "_bohb:BOHBTuner": ("BOHB", "BOHBTuner"),
    "_pbt:PBTTuner": ("PBT", "PBTTuner"),
    "_nsga2:NSGA2Tuner": ("NSGA2", "NSGA2Tuner", "NSGAII"),
    "_auto:AutoTuner": ("Auto", "AutoTuner"),
}.items():
    TUNERS.register_lazy(f"hpoqueue.tuners.{_target}", *_names)


def create_tuner(config: AlgorithmConfigLike, space: SearchSpace, *, optimize_mode: OptimizeMode,
                 seed: int | None, source: str | None = None) -> BaseTuner:
    """Build the tuner named by `config` (built-in `name` or user `className`, an NNI Tuner class too)."""
    if config.class_name:
        from hpoqueue.nni_compat.tuner import nni_tuner

        adapted = nni_tuner(config, space, optimize_mode=optimize_mode, seed=seed, source=source)
        if adapted is not None:
            return adapted
    return TUNERS.build(config, source=source, space=space, optimize_mode=optimize_mode, seed=seed)


def available_tuners() -> list[str]:
    """Canonical names of the built-in tuners, in registration order."""
    return TUNERS.names()
