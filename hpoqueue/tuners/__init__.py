"""Tuners: one module per member, registered under its NNI name; `create_tuner` builds one from config.

Members are imported on first use (``TUNERS.resolve`` or attribute access here), so a process pays only
for the tuner it runs.
"""

from __future__ import annotations

import importlib
from typing import Any

from hpoqueue.tuners._base import BaseTuner, SequentialTuner
from hpoqueue.tuners._registry import TUNERS, available_tuners, create_tuner

_CLASSES = {
    "RandomTuner": "_random", "GridSearchTuner": "_gridsearch", "BatchTuner": "_batch", "TPETuner": "_tpe",
    "AnnealTuner": "_hyperopt", "EvolutionTuner": "_evolution", "GPTuner": "_gp", "HyperbandTuner": "_hyperband",
    "BOHBTuner": "_bohb", "PBTTuner": "_pbt", "NSGA2Tuner": "_nsga2", "AutoTuner": "_auto",
}

__all__ = ["TUNERS", "BaseTuner", "SequentialTuner", "available_tuners", "create_tuner", *_CLASSES]


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        return getattr(importlib.import_module(f"hpoqueue.tuners.{_CLASSES[name]}"), name)
    raise AttributeError(f"module 'hpoqueue.tuners' has no attribute {name!r}")
