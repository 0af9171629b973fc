"""The helpers of ``nni.utils`` that custom tuners use: OptimizeMode and extract_scalar_reward."""

from __future__ import annotations

from enum import Enum
from typing import Any

from hpoqueue.metrics import scalar


class OptimizeMode(Enum):
    """Whether the tuner minimises or maximises the metric."""

    Minimize = "minimize"
    Maximize = "maximize"


def extract_scalar_reward(value: Any, scalar_key: str = "default") -> float:
    """The number of a reported metric: the metric itself, or its `scalar_key` entry."""
    if isinstance(value, dict) and scalar_key != "default":
        value = {"default": value.get(scalar_key)}
    return scalar(value)


def extract_scalar_history(trial_history: list[Any], scalar_key: str = "default") -> list[float]:
    """extract_scalar_reward of each metric of a history."""
    return [extract_scalar_reward(v, scalar_key) for v in trial_history]
