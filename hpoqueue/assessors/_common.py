"""Helpers the assessors share: classArg checks and "best of" under an optimize mode."""

from __future__ import annotations

import math
from collections.abc import Sequence

from hpoqueue.results import optimize_mode as modes
from hpoqueue.results.optimize_mode import OptimizeMode


def check_int(name: str, value: object, *, minimum: int) -> int:
    """`value` as an int >= `minimum`, or a ValueError naming the classArg and the fix."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return value


def check_float(name: str, value: object, *, low: float, high: float) -> float:
    """`value` as a finite float in [low, high], or a ValueError naming the classArg and the fix."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low}, {high}], not {value!r}")
    return float(value)


def best_of(values: Sequence[float], mode: OptimizeMode) -> float:
    """The best value under `mode`: the minimum when minimizing, the maximum when maximizing."""
    return modes.best_of(values, mode)
