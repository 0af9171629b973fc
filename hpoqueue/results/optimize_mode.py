"""optimize_mode, written once: whether a smaller or a larger value is better, and the comparisons it implies.

The scheduler's best trial, the CLI's best and its sort by value, tuners' losses and assessors' "better" and
"best of" all go through these, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, UnaryExpression

OptimizeMode = Literal["minimize", "maximize"]
#: both modes, as messages list them
MODES: tuple[OptimizeMode, ...] = ("minimize", "maximize")


def loss(value: float, mode: str) -> float:
    """`value` as a quantity to minimize: itself when minimizing, its negation when maximizing."""
    return value if mode == "minimize" else -value


def better(a: float, b: float, mode: str) -> bool:
    """True when `a` is strictly better than `b` under `mode`."""
    return loss(a, mode) < loss(b, mode)


def best_of(values: Iterable[float], mode: str) -> float:
    """The best of `values` under `mode` (the first of equals): the minimum, or the maximum when maximizing."""
    return min(values, key=lambda value: loss(value, mode))


def best_first(column: ColumnElement[Any], mode: str) -> UnaryExpression[Any]:
    """The ORDER BY of `column` that puts the best value first under `mode`, for sorting in the database."""
    return column.asc() if mode == "minimize" else column.desc()
