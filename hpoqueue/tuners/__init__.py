"""Tuners: one module per member, registered under its NNI name; `create_tuner` builds one from config."""

from hpoqueue.tuners._base import BaseTuner
from hpoqueue.tuners._batch import BatchTuner
from hpoqueue.tuners._bohb import BOHBTuner
from hpoqueue.tuners._evolution import EvolutionTuner
from hpoqueue.tuners._gp import GPTuner
from hpoqueue.tuners._gridsearch import GridSearchTuner
from hpoqueue.tuners._hyperband import HyperbandTuner
from hpoqueue.tuners._hyperopt import AnnealTuner, TPETuner
from hpoqueue.tuners._pbt import PBTTuner
from hpoqueue.tuners._random import RandomTuner
from hpoqueue.tuners._registry import TUNERS, available_tuners, create_tuner

__all__ = [
    "TUNERS",
    "AnnealTuner",
    "BaseTuner",
    "BOHBTuner",
    "BatchTuner",
    "EvolutionTuner",
    "GPTuner",
    "GridSearchTuner",
    "HyperbandTuner",
    "PBTTuner",
    "RandomTuner",
    "TPETuner",
    "available_tuners",
    "create_tuner",
]
